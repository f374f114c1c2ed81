package smtp_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"keydesk/models"
	"keydesk/models/testdb"
	kdsmtp "keydesk/smtp"
)

// FuzzSMTPCommands drives one SMTP session of the real listener (go-smtp
// plus keydesk's session, spool, caps and sink relay) with fuzzed bytes
// over an in-memory connection, then checks that the server:
//   - never panics (go-smtp would log "panic serving" and answer 421
//     "Internal server error"),
//   - answers only well-formed replies (three digits, then space or dash),
//   - never echoes the secret key in a reply or a log line,
//   - ends the session when the client quits or goes away (no hang).
//
// The store is a stand-in that accepts one API key and secret, so the
// fuzzer can reach MAIL, RCPT and DATA. Run it (not in CI) with
//
//	go test -run '^$' -fuzz '^FuzzSMTPCommands$' -fuzztime 10m ./smtp/
func FuzzSMTPCommands(f *testing.F) {
	fz := fuzzServer(f)
	auth := "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+fuzzKey+"\x00"+fuzzSecret)) + "\r\n"
	login := "AUTH LOGIN\r\n" + base64.StdEncoding.EncodeToString([]byte(fuzzKey)) + "\r\n" + base64.StdEncoding.EncodeToString([]byte(fuzzSecret)) + "\r\n"
	for _, seed := range []string{
		"EHLO a\r\n" + auth + "MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\nSubject: x\r\nMessage-ID: <1@x>\r\n\r\nhi\r\n.\r\nQUIT\r\n",
		"HELO a\r\n" + login + "MAIL FROM:<a@b.c> SIZE=10\r\nRCPT TO:<d@e.f>\r\nRSET\r\nNOOP\r\nQUIT\r\n",
		"EHLO a\r\nAUTH PLAIN\r\n" + base64.StdEncoding.EncodeToString([]byte("\x00"+fuzzKey+"\x00wrong")) + "\r\nMAIL FROM:<a@b.c>\r\n",
		"EHLO a\r\n" + auth + "MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nBDAT 5 LAST\r\nhello",
		"EHLO a\r\n" + auth + "MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n" + strings.Repeat("0123456789\r\n", 2000) + ".\r\n",
		"EHLO a\r\nSTARTTLS\r\n\x16\x03\x01\x00\x05hello",
		"MAIL FROM:<>\r\nDATA\r\nVRFY x\r\nAUTH CRAM-MD5\r\n*\r\nAUTH LOGIN\r\n*\r\n",
		"EHLO " + strings.Repeat("x", 3000) + "\r\n",
		"\x00\r\n\r\nHELO\r\nEHLO a\r\nMAIL FROM:<a@b.c> BODY=8BITMIME SMTPUTF8\r\n",
	} {
		f.Add([]byte(seed))
	}
	reply := regexp.MustCompile(`^[2-5][0-9][0-9]([ -]|$)`)
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 1<<16 {
			in = in[:1<<16]
		}
		fz.logs.Reset() // each iteration checks its own log lines
		out, hung := fz.session(in)
		for _, l := range strings.Split(strings.TrimSuffix(out, "\r\n"), "\r\n") {
			if l != "" && !reply.MatchString(l) {
				t.Fatalf("malformed reply line %q\ninput %q", l, in)
			}
		}
		if strings.Contains(out, "Internal server error") {
			t.Fatalf("the server panicked (421 Internal server error)\ninput %q\nlog:\n%s", in, fz.logs.String())
		}
		if strings.Contains(out, fuzzSecret) {
			t.Fatalf("a reply contains the secret\ninput %q", in)
		}
		if logs := fz.logs.String(); strings.Contains(logs, "panic") || strings.Contains(logs, fuzzSecret) {
			t.Fatalf("the log shows a panic or the secret\ninput %q\nlog:\n%s", in, logs)
		}
		if hung {
			t.Fatalf("the session did not end after the client quit and closed\ninput %q", in)
		}
	})
}

const (
	fuzzKey    = "0123456789abcdef0123456789abcdef"
	fuzzSecret = "kd_fuzz_secret_value_never_echoed"
)

// fuzzStore accepts fuzzKey with fuzzSecret and nothing else.
type fuzzStore struct{}

func (fuzzStore) VerifyRequest(_ context.Context, apiKey, secret, _ string, _ models.Channel) (models.KeyPrincipal, error) {
	if apiKey == fuzzKey && secret == fuzzSecret {
		return models.KeyPrincipal{KeyID: 1, AccountID: 1, IsMaster: true, APIKey: fuzzKey}, nil
	}
	return models.KeyPrincipal{}, models.ErrVerifyFailed
}

func (fuzzStore) RecordUse(models.KeyPrincipal, models.Channel, string, int) {}

// pipeListener hands the server the far ends of net.Pipe connections, so
// millions of sessions use no ports.
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.closed) }); return nil }
func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "192.0.2.1:2525" }

type fuzzEnv struct {
	ln   *pipeListener
	logs *testdb.LogBuffer
}

func fuzzServer(f *testing.F) *fuzzEnv {
	logs := &testdb.LogBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := kdsmtp.New(kdsmtp.Config{
		Addr: "127.0.0.1:0", TLS: testCert().tls, AllowInsecureAuth: true, // no TLS over the pipe
		MaxMessageBytes: 64 << 10, SpoolThreshold: 1024, SpoolDir: f.TempDir(),
		Relay: kdsmtp.NewSinkRelay(log, 10), Logger: log,
		ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
	}, fuzzStore{})
	if err != nil {
		f.Fatal(err)
	}
	ln := &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- srv.ServeListener(ln) }()
	f.Cleanup(func() {
		_ = srv.Close()
		_ = ln.Close()
		<-done
	})
	return &fuzzEnv{ln: ln, logs: logs}
}

// session writes in (then ends any DATA or AUTH exchange and quits) and
// returns every byte the server answered; hung reports a session that
// did not end within 5 s of the client closing the connection.
func (fz *fuzzEnv) session(in []byte) (string, bool) {
	client, server := net.Pipe()
	ended := make(chan struct{})
	fz.ln.conns <- &watchedConn{Conn: server, ended: ended}
	var out bytes.Buffer
	read := make(chan struct{})
	go func() {
		_, _ = io.Copy(&out, client)
		close(read)
	}()
	_ = client.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Write(in); err == nil {
		_, _ = client.Write([]byte("\r\n.\r\n*\r\nQUIT\r\n"))
	}
	select {
	case <-read: // the server closed after QUIT (or an error)
	case <-time.After(300 * time.Millisecond):
		// It waits for more input (a BDAT chunk, say): closing ends it.
	}
	_ = client.Close()
	<-read
	select {
	case <-ended:
		return out.String(), false
	case <-time.After(5 * time.Second):
		return out.String(), true
	}
}

// watchedConn reports when the server closes its end.
type watchedConn struct {
	net.Conn
	ended chan struct{}
	once  sync.Once
}

func (c *watchedConn) Close() error {
	c.once.Do(func() { close(c.ended) })
	return c.Conn.Close()
}
