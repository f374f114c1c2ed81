package smtp_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	netsmtp "net/smtp"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"keydesk/models"
	"keydesk/models/testdb"
	kdsmtp "keydesk/smtp"
)

var ctx = context.Background()

const password = "correct horse battery staple"

// testCert is one self-signed certificate for every test server.
var testCert = sync.OnceValue(func() struct {
	certPEM, keyPEM []byte
	tls             *tls.Config
	pool            *x509.CertPool
} {
	certPEM, keyPEM, err := kdsmtp.SelfSignedCertificate("127.0.0.1")
	if err != nil {
		panic(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return struct {
		certPEM, keyPEM []byte
		tls             *tls.Config
		pool            *x509.CertPool
	}{certPEM, keyPEM, kdsmtp.TLSConfig(pair), pool}
})

// env is a real store with one account and a real listener on a random
// loopback port. At the end of the test the log must not contain any
// secret or message body the test registered.
type env struct {
	store  *models.Store
	clock  *testdb.Clock
	actor  models.Actor
	acct   *models.SignUpResult
	sink   *kdsmtp.SinkRelay
	srv    *kdsmtp.Server
	addr   string
	logs   *testdb.LogBuffer
	secret []string // must never be logged
}

func newEnv(t testing.TB, mod func(*kdsmtp.Config)) *env {
	t.Helper()
	store, clock := testdb.Open(t)
	res, err := store.CreateAccount(ctx, models.SignUpInput{AccountName: "Acme", Email: "owner@acme.example", Password: password},
		models.Actor{}, models.ActionSignup)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{store: store, clock: clock, acct: res, logs: &testdb.LogBuffer{}}
	e.actor = models.Actor{UserID: res.User.ID, Email: res.User.Email, Role: models.RoleOwner, AccountID: res.Account.ID,
		AuthAt: store.Now(), Meta: models.RequestMeta{IP: "203.0.113.7", UserAgent: "test"}}
	e.secret = append(e.secret, res.Secret.Secret, password)
	e.srv, e.addr = e.start(t, mod)
	e.sink, _ = e.srv.Relay().(*kdsmtp.SinkRelay)
	t.Cleanup(func() {
		logs := e.logs.String()
		for _, s := range e.secret {
			if s != "" && strings.Contains(logs, s) {
				t.Errorf("the log contains a secret or a message body (%.12s…):\n%s", s, logs)
			}
		}
	})
	return e
}

// start runs another listener on the same store.
func (e *env) start(t testing.TB, mod func(*kdsmtp.Config)) (*kdsmtp.Server, string) {
	t.Helper()
	cfg := kdsmtp.Config{
		Addr:   "127.0.0.1:0",
		TLS:    testCert().tls,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	cfg.Relay = kdsmtp.NewSinkRelay(cfg.Logger, 10)
	if mod != nil {
		mod(&cfg)
	}
	srv, err := kdsmtp.New(cfg, e.store)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return srv, srv.Addr().String()
}

// subaccount creates a sub-account and returns its key ID and credentials.
func (e *env) subaccount(t testing.TB) (uint, models.Revealed) {
	t.Helper()
	sub, rev, err := e.store.CreateSubaccount(ctx, e.actor, "Newsletters", "")
	if err != nil {
		t.Fatal(err)
	}
	e.secret = append(e.secret, rev.Secret)
	return sub.Key.ID, rev
}

// dial connects with net/smtp and upgrades with STARTTLS, verifying the
// test certificate.
func dial(t testing.TB, addr string) *netsmtp.Client {
	t.Helper()
	c, err := netsmtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.StartTLS(&tls.Config{RootCAs: testCert().pool, ServerName: "127.0.0.1"}); err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	return c
}

// loginAuth is AUTH LOGIN for net/smtp (which ships only PLAIN and CRAM-MD5).
type loginAuth struct{ user, pass string }

func (a loginAuth) Start(*netsmtp.ServerInfo) (string, []byte, error) { return "LOGIN", nil, nil }

func (a loginAuth) Next(from []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	switch string(from) {
	case "Username:":
		return []byte(a.user), nil
	case "Password:":
		return []byte(a.pass), nil
	}
	return nil, fmt.Errorf("unexpected challenge %q", from)
}

func plain(user, pass string) netsmtp.Auth { return netsmtp.PlainAuth("", user, pass, "127.0.0.1") }

func message(id, marker string) string {
	return "From: App <app@acme.example>\r\nTo: a@example.com, b@example.com\r\nSubject: hello\r\n" +
		"Message-ID: <" + id + ">\r\n\r\nHello " + marker + "\r\n"
}

func send(c *netsmtp.Client, body string, to ...string) error {
	if err := c.Mail("app@acme.example"); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, body); err != nil {
		return err
	}
	return w.Close()
}

// code is the SMTP reply code of a net/smtp error (0 if none).
func code(err error) int {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

// authAndSend dials, authenticates and sends one message; it returns the
// AUTH error (then nothing is sent) or the sending error.
func authAndSend(t testing.TB, addr string, a netsmtp.Auth, id string) error {
	t.Helper()
	c := dial(t, addr)
	if err := c.Auth(a); err != nil {
		return err
	}
	if err := send(c, message(id, "x"), "a@example.com"); err != nil {
		t.Fatalf("authenticated, but sending failed: %v", err)
	}
	return c.Quit()
}

// wantAuthCode expects AUTH with a to fail with the given code.
func wantAuthCode(t *testing.T, addr string, a netsmtp.Auth, want int, name string) {
	t.Helper()
	c := dial(t, addr)
	err := c.Auth(a)
	if code(err) != want {
		t.Errorf("%s: AUTH answered %v, want %d", name, err, want)
	}
}

func TestSendWithPlainAndLoginRecordsUsage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	subID, sub := e.subaccount(t)
	e.secret = append(e.secret, "BODY-MARKER-7f3a")

	// AUTH PLAIN with the master key.
	c := dial(t, e.addr)
	if ok, mechs := c.Extension("AUTH"); !ok || !strings.Contains(mechs, "PLAIN") || !strings.Contains(mechs, "LOGIN") {
		t.Fatalf("AUTH not advertised after STARTTLS: %v %q", ok, mechs)
	}
	if err := c.Auth(plain(e.acct.Secret.APIKey, e.acct.Secret.Secret)); err != nil {
		t.Fatalf("AUTH PLAIN: %v", err)
	}
	body := message("m1@acme.example", "BODY-MARKER-7f3a")
	if err := send(c, body, "a@example.com", "b@example.com"); err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}

	// AUTH LOGIN with the sub-account key.
	c = dial(t, e.addr)
	if err := c.Auth(loginAuth{sub.APIKey, sub.Secret}); err != nil {
		t.Fatalf("AUTH LOGIN: %v", err)
	}
	if err := send(c, message("m2@acme.example", "BODY-MARKER-7f3a"), "c@example.com"); err != nil {
		t.Fatalf("send: %v", err)
	}
	c.Quit()

	recs := e.sink.Recent()
	if len(recs) != 2 {
		t.Fatalf("sink recorded %d messages, want 2: %+v", len(recs), recs)
	}
	r := recs[0]
	if r.From != "app@acme.example" || r.Recipients != 2 || r.MessageID != "<m1@acme.example>" ||
		r.APIKey != e.acct.Secret.APIKey || r.AccountID != e.acct.Account.ID || r.Size != int64(len(body)) {
		t.Errorf("sink record %+v (body %d bytes)", r, len(body))
	}
	if recs[1].APIKey != sub.APIKey || recs[1].Recipients != 1 || recs[1].MessageID != "<m2@acme.example>" {
		t.Errorf("second record %+v", recs[1])
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "m1@acme.example") || !strings.Contains(logs, "recipients=2") {
		t.Errorf("the sink did not log the metadata:\n%s", logs)
	}

	if err := e.store.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	for name, id := range map[string]uint{"master": e.acct.Key.ID, "sub-account": subID} {
		u, err := e.store.UsageForKey(ctx, e.actor, id, 1)
		if err != nil {
			t.Fatal(err)
		}
		if u.Totals.SMTPMessages != 1 || u.Totals.APIRequests != 0 || u.Key.LastUsedAt == nil || u.Key.LastUsedIP != "127.0.0.1" {
			t.Errorf("%s usage: %+v, last used %v from %q", name, u.Totals, u.Key.LastUsedAt, u.Key.LastUsedIP)
		}
	}
}

func TestAuthFailuresAnswer535(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	subID, sub := e.subaccount(t)
	other, err := e.store.CreateAccount(ctx, models.SignUpInput{AccountName: "Other", Email: "o@other.example", Password: password},
		models.Actor{}, models.ActionSignup)
	if err != nil {
		t.Fatal(err)
	}
	e.secret = append(e.secret, other.Secret.Secret)
	master := e.acct.Secret

	wantAuthCode(t, e.addr, plain(master.APIKey, other.Secret.Secret), 535, "wrong secret (PLAIN)")
	wantAuthCode(t, e.addr, loginAuth{master.APIKey, other.Secret.Secret}, 535, "wrong secret (LOGIN)")
	wantAuthCode(t, e.addr, plain("0123456789abcdef0123456789abcdef", master.Secret), 535, "unknown key")
	wantAuthCode(t, e.addr, plain(master.Secret, master.APIKey), 535, "key and secret swapped")

	// Deactivated sub-account key.
	if err := authAndSend(t, e.addr, plain(sub.APIKey, sub.Secret), "before@x"); err != nil {
		t.Fatalf("sub-account key before deactivation: %v", err)
	}
	if _, err := e.store.SetKeyActive(ctx, e.actor, subID, false); err != nil {
		t.Fatal(err)
	}
	wantAuthCode(t, e.addr, plain(sub.APIKey, sub.Secret), 535, "deactivated key")
	wantAuthCode(t, e.addr, loginAuth{sub.APIKey, sub.Secret}, 535, "deactivated key (LOGIN)")

	// Immediate reset: the old secret is dead at once, the new one works.
	_, rev, err := e.store.ResetSecret(ctx, e.actor, e.acct.Key.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	e.secret = append(e.secret, rev.Secret)
	wantAuthCode(t, e.addr, plain(master.APIKey, master.Secret), 535, "just-reset secret")
	if err := authAndSend(t, e.addr, plain(rev.APIKey, rev.Secret), "after-reset@x"); err != nil {
		t.Fatalf("new secret after reset: %v", err)
	}
	if n := len(e.sink.Recent()); n != 2 {
		t.Errorf("sink has %d messages, want 2 (only the accepted ones)", n)
	}
}

func TestGraceSecretWorksUntilItsEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	old := e.acct.Secret
	_, rev, err := e.store.ResetSecret(ctx, e.actor, e.acct.Key.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e.secret = append(e.secret, rev.Secret)
	if err := authAndSend(t, e.addr, plain(old.APIKey, old.Secret), "old@x"); err != nil {
		t.Fatalf("old secret during the grace period: %v", err)
	}
	if err := authAndSend(t, e.addr, loginAuth{rev.APIKey, rev.Secret}, "new@x"); err != nil {
		t.Fatalf("new secret during the grace period: %v", err)
	}
	e.clock.Advance(59 * time.Minute)
	if err := authAndSend(t, e.addr, loginAuth{old.APIKey, old.Secret}, "old2@x"); err != nil {
		t.Fatalf("old secret a minute before the end: %v", err)
	}
	if err := e.store.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	k, err := e.store.KeyByID(ctx, e.actor, e.acct.Key.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(k.OldSecrets) != 1 || !k.OldSecrets[0].UsedSinceRetired() {
		t.Errorf("use of the old secret over SMTP was not tracked: %+v", k.OldSecrets)
	}
	e.clock.Advance(time.Minute + time.Second)
	wantAuthCode(t, e.addr, plain(old.APIKey, old.Secret), 535, "old secret after the grace period")
	if err := authAndSend(t, e.addr, plain(rev.APIKey, rev.Secret), "new2@x"); err != nil {
		t.Fatalf("new secret after the grace period: %v", err)
	}
}

// An open, authenticated connection cannot go on sending once its key is
// deactivated: each MAIL re-checks the credentials.
func TestDeactivationStopsAnOpenConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	subID, sub := e.subaccount(t)
	c := dial(t, e.addr)
	if err := c.Auth(plain(sub.APIKey, sub.Secret)); err != nil {
		t.Fatal(err)
	}
	if err := send(c, message("one@x", "x"), "a@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.SetKeyActive(ctx, e.actor, subID, false); err != nil {
		t.Fatal(err)
	}
	if err := send(c, message("two@x", "x"), "a@example.com"); code(err) != 535 {
		t.Fatalf("MAIL after deactivation: %v, want 535", err)
	}
	if n := len(e.sink.Recent()); n != 1 {
		t.Errorf("sink has %d messages, want 1", n)
	}
}

// rawSession speaks SMTP without a client library, to send what a careful
// client would not (AUTH before STARTTLS).
type rawSession struct {
	t  *testing.T
	tp *textproto.Conn
}

func raw(t *testing.T, addr string) *rawSession {
	t.Helper()
	tp, err := textproto.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.Close() })
	r := &rawSession{t: t, tp: tp}
	if c, msg := r.read(); c != 220 {
		t.Fatalf("greeting %d %s", c, msg)
	}
	return r
}

func (r *rawSession) read() (int, string) {
	r.t.Helper()
	c, msg, err := r.tp.ReadResponse(0)
	if err != nil && c == 0 {
		r.t.Fatalf("read reply: %v", err)
	}
	return c, msg
}

func (r *rawSession) cmd(format string, args ...any) (int, string) {
	r.t.Helper()
	if err := r.tp.PrintfLine(format, args...); err != nil {
		r.t.Fatal(err)
	}
	return r.read()
}

func plainIR(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
}

func TestAuthBeforeStartTLS(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	k := e.acct.Secret

	r := raw(t, e.addr)
	c, ehlo := r.cmd("EHLO client.test")
	if c != 250 || !strings.Contains(ehlo, "STARTTLS") || strings.Contains(ehlo, "AUTH") {
		t.Fatalf("EHLO before TLS must offer STARTTLS and not AUTH: %d %q", c, ehlo)
	}
	if c, msg := r.cmd("AUTH PLAIN %s", plainIR(k.APIKey, k.Secret)); c != 523 {
		t.Errorf("AUTH PLAIN before STARTTLS: %d %s, want 523 (TLS required)", c, msg)
	}
	if c, msg := r.cmd("AUTH LOGIN"); c != 523 {
		t.Errorf("AUTH LOGIN before STARTTLS: %d %s, want 523", c, msg)
	}
	if c, _ := r.cmd("MAIL FROM:<a@acme.example>"); c != 530 {
		t.Errorf("MAIL before AUTH (no TLS): %d, want 530", c)
	}
	if strings.Contains(e.logs.String(), "INSECURE") {
		t.Error("insecure-auth warning logged although it is off")
	}

	// With AllowInsecureAuth the same conversation succeeds, and the
	// server said so loudly at start.
	_, insecure := e.start(t, func(c *kdsmtp.Config) { c.AllowInsecureAuth = true })
	r = raw(t, insecure)
	if c, ehlo := r.cmd("EHLO client.test"); c != 250 || !strings.Contains(ehlo, "AUTH PLAIN LOGIN") {
		t.Fatalf("EHLO with insecure auth: %d %q", c, ehlo)
	}
	if c, msg := r.cmd("AUTH PLAIN %s", plainIR(k.APIKey, k.Secret)); c != 235 {
		t.Fatalf("AUTH PLAIN without TLS, insecure allowed: %d %s", c, msg)
	}
	if c, _ := r.cmd("MAIL FROM:<a@acme.example>"); c != 250 {
		t.Errorf("MAIL after AUTH: %d", c)
	}
	if !strings.Contains(e.logs.String(), "INSECURE: SMTP AUTH IS ACCEPTED WITHOUT TLS") {
		t.Errorf("no loud warning for insecure auth:\n%s", e.logs.String())
	}

	// AUTH LOGIN with the username as initial response (as Python sends it).
	r = raw(t, insecure)
	r.cmd("EHLO client.test")
	if c, ch := r.cmd("AUTH LOGIN %s", base64.StdEncoding.EncodeToString([]byte(k.APIKey))); c != 334 || ch != base64.StdEncoding.EncodeToString([]byte("Password:")) {
		t.Fatalf("AUTH LOGIN with initial response: %d %q", c, ch)
	}
	if c, msg := r.cmd("%s", base64.StdEncoding.EncodeToString([]byte(k.Secret))); c != 235 {
		t.Fatalf("AUTH LOGIN password: %d %s", c, msg)
	}

	// Without TLS and without insecure auth, a server cannot be built.
	if _, err := kdsmtp.New(kdsmtp.Config{Addr: "127.0.0.1:0"}, e.store); err == nil {
		t.Error("New accepted a config with neither TLS nor insecure auth")
	}
}

func TestMailBeforeAuthIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	c := dial(t, e.addr)
	err := c.Mail("app@acme.example")
	if code(err) != 530 || !strings.Contains(err.Error(), "Authentication required") {
		t.Fatalf("MAIL before AUTH: %v, want 530", err)
	}
	if err := c.Rcpt("a@example.com"); err == nil {
		t.Error("RCPT accepted without MAIL and AUTH")
	}
	if len(e.sink.Recent()) != 0 {
		t.Error("a message reached the sink without AUTH")
	}
}

func TestMessageSizeLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *kdsmtp.Config) { c.MaxMessageBytes = 4096 })
	k := e.acct.Secret
	c := dial(t, e.addr)
	if ok, size := c.Extension("SIZE"); !ok || size != "4096" {
		t.Errorf("SIZE extension: %v %q", ok, size)
	}
	if err := c.Auth(plain(k.APIKey, k.Secret)); err != nil {
		t.Fatal(err)
	}
	big := message("big@x", strings.Repeat("0123456789abcdef\r\n", 400)) // ~7 KB
	if err := send(c, big, "a@example.com"); code(err) != 552 {
		t.Fatalf("oversized message: %v, want 552", err)
	}
	// The connection is still usable for a message within the limit.
	if err := send(c, message("small@x", "fits"), "a@example.com"); err != nil {
		t.Fatalf("small message after a refused one: %v", err)
	}
	// A declared SIZE over the limit is refused at MAIL.
	r := raw(t, e.addr)
	r.cmd("EHLO client.test")
	if c, _ := r.cmd("MAIL FROM:<a@acme.example> SIZE=999999"); c != 552 {
		t.Errorf("MAIL with SIZE over the limit: %d, want 552", c)
	}
	if recs := e.sink.Recent(); len(recs) != 1 || recs[0].MessageID != "<small@x>" {
		t.Errorf("sink: %+v", recs)
	}
	if err := e.store.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	u, err := e.store.UsageForKey(ctx, e.actor, e.acct.Key.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if u.Totals.SMTPMessages != 1 {
		t.Errorf("SMTP messages counted: %d, want 1 (the refused one does not count)", u.Totals.SMTPMessages)
	}
}

func TestRepeatedFailuresAreThrottled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	_, sub := e.subaccount(t)
	other, err := e.store.CreateAccount(ctx, models.SignUpInput{AccountName: "Other", Email: "o@other.example", Password: password},
		models.Actor{}, models.ActionSignup)
	if err != nil {
		t.Fatal(err)
	}
	e.secret = append(e.secret, other.Secret.Secret)
	k := e.acct.Secret
	pol := models.DefaultThrottle

	// Per (key, address): PerPair wrong secrets lock the key for this address, even with the right one.
	for i := 0; i < pol.PerPair; i++ {
		wantAuthCode(t, e.addr, plain(k.APIKey, other.Secret.Secret), 535, fmt.Sprintf("wrong secret #%d", i+1))
	}
	c := dial(t, e.addr)
	err = c.Auth(plain(k.APIKey, k.Secret))
	if code(err) != 454 || !strings.Contains(err.Error(), "Too many failed authentication attempts") || !strings.Contains(err.Error(), "try again in") {
		t.Fatalf("right secret on a locked key: %v, want 454 with a clear text", err)
	}
	// Another key from the same IP is not locked yet.
	if err := authAndSend(t, e.addr, loginAuth{sub.APIKey, sub.Secret}, "sub@x"); err != nil {
		t.Fatalf("another key during the key lockout: %v", err)
	}
	// The lockout ends.
	e.clock.Advance(pol.Lockout + time.Minute)
	if err := authAndSend(t, e.addr, plain(k.APIKey, k.Secret), "after@x"); err != nil {
		t.Fatalf("after the lockout: %v", err)
	}

	// Per IP: PerIP failures over made-up keys lock the address for every key.
	for i := 0; i < pol.PerIP; i++ {
		wantAuthCode(t, e.addr, plain(fmt.Sprintf("%032x", i+1), k.Secret), 535, fmt.Sprintf("unknown key #%d", i+1))
	}
	c = dial(t, e.addr)
	if err := c.Auth(loginAuth{sub.APIKey, sub.Secret}); code(err) != 454 {
		t.Fatalf("right credentials from a locked IP: %v, want 454", err)
	}
	if err := e.store.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	u, err := e.store.UsageForKey(ctx, e.actor, e.acct.Key.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if u.Totals.AuthFailures != int64(pol.PerPair) {
		t.Errorf("auth failures recorded for the key: %d, want %d", u.Totals.AuthFailures, pol.PerPair)
	}
}

func TestForwardRelay(t *testing.T) {
	t.Parallel()
	// The upstream is a second, plain go-smtp server that records what it gets.
	up := &upstream{}
	us := gosmtp.NewServer(up)
	us.Domain, us.AllowInsecureAuth = "upstream.test", true
	if err := listenServe(t, us); err != nil {
		t.Fatal(err)
	}
	fr, err := kdsmtp.NewForwardRelay("smtp://" + us.Addr)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *kdsmtp.Config) { c.Relay = fr })
	k := e.acct.Secret
	c := dial(t, e.addr)
	if err := c.Auth(plain(k.APIKey, k.Secret)); err != nil {
		t.Fatal(err)
	}
	if err := send(c, message("fwd@acme.example", "forwarded body"), "a@example.com", "b@example.com"); err != nil {
		t.Fatalf("send through the forward relay: %v", err)
	}
	got := up.get()
	if len(got) != 1 || got[0].from != "app@acme.example" || strings.Join(got[0].to, ",") != "a@example.com,b@example.com" ||
		!strings.Contains(got[0].data, "Message-ID: <fwd@acme.example>") || !strings.Contains(got[0].data, "forwarded body") {
		t.Fatalf("upstream received %+v", got)
	}
	// The upstream refusing a recipient is a permanent failure for the client.
	up.refuse = "nobody@example.com"
	if err := send(c, message("r@x", "x"), "nobody@example.com"); code(err) != 554 {
		t.Errorf("upstream refusal: %v, want 554", err)
	}
	// An unreachable upstream is a temporary failure.
	us.Close()
	if err := send(c, message("down@x", "x"), "a@example.com"); code(err) != 451 {
		t.Errorf("upstream down: %v, want 451", err)
	}

	for _, bad := range []string{"http://h:25", "smtp://h", "smtp://u:p@h:25", "h:25", "smtp://h:25/x"} {
		if _, err := kdsmtp.NewForwardRelay(bad); err == nil {
			t.Errorf("NewForwardRelay(%q) accepted", bad)
		}
	}
	if r, err := kdsmtp.ParseRelay("", nil); err != nil {
		t.Error(err)
	} else if _, ok := r.(*kdsmtp.SinkRelay); !ok {
		t.Errorf("ParseRelay(\"\") = %T, want the sink", r)
	}
}

func listenServe(t *testing.T, s *gosmtp.Server) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.Addr = ln.Addr().String()
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return nil
}

type received struct {
	from string
	to   []string
	data string
}

// upstream is a minimal go-smtp backend for TestForwardRelay.
type upstream struct {
	mu     sync.Mutex
	msgs   []received
	refuse string
}

func (u *upstream) get() []received {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]received(nil), u.msgs...)
}

func (u *upstream) NewSession(*gosmtp.Conn) (gosmtp.Session, error) { return &upSession{u: u}, nil }

type upSession struct {
	u   *upstream
	cur received
}

func (s *upSession) Reset()        { s.cur = received{} }
func (s *upSession) Logout() error { return nil }
func (s *upSession) Mail(from string, _ *gosmtp.MailOptions) error {
	s.cur.from = from
	return nil
}
func (s *upSession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	s.u.mu.Lock()
	refuse := s.u.refuse
	s.u.mu.Unlock()
	if to == refuse {
		return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	s.cur.to = append(s.cur.to, to)
	return nil
}
func (s *upSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = string(b)
	s.u.mu.Lock()
	s.u.msgs = append(s.u.msgs, s.cur)
	s.u.mu.Unlock()
	return nil
}

func TestPythonSmtplib(t *testing.T) {
	t.Parallel()
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3 is required in CI for the smtplib compatibility test")
		}
		t.Skip("python3 not found: skipping the smtplib compatibility test")
	}
	e := newEnv(t, nil)
	cafile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(cafile, testCert().certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	other, err := e.store.CreateAccount(ctx, models.SignUpInput{AccountName: "Other", Email: "o@other.example", Password: password},
		models.Actor{}, models.ActionSignup)
	if err != nil {
		t.Fatal(err)
	}
	e.secret = append(e.secret, other.Secret.Secret)
	host, port, _ := strings.Cut(e.addr, ":")
	const script = `
import json, os, smtplib, ssl
from email.message import EmailMessage
host, port = os.environ["SMTP_HOST"], int(os.environ["SMTP_PORT"])
user, secret, wrong = os.environ["SMTP_USER"], os.environ["SMTP_SECRET"], os.environ["SMTP_WRONG"]
tls = ssl.create_default_context(cafile=os.environ["SMTP_CA"])
out = {}
def msg(mid):
    m = EmailMessage()
    m["From"], m["To"], m["Subject"], m["Message-ID"] = "py@acme.example", "a@example.com, b@example.com", "from python", mid
    m.set_content("hello from smtplib")
    return m
# login() picks PLAIN; send_message sends SIZE since the server offers it.
with smtplib.SMTP(host, port, timeout=10) as s:
    s.starttls(context=tls)
    s.ehlo()
    out["auth_offer"] = s.esmtp_features.get("auth", "")
    s.login(user, secret)
    out["refused"] = s.send_message(msg("<py-plain@acme.example>"))
# AUTH LOGIN explicitly (Python sends the username as initial response).
with smtplib.SMTP(host, port, timeout=10) as s:
    s.starttls(context=tls)
    s.ehlo()
    s.user, s.password = user, secret
    s.auth("LOGIN", s.auth_login)
    s.sendmail("py@acme.example", ["c@example.com"], msg("<py-login@acme.example>").as_bytes())
# A wrong secret.
with smtplib.SMTP(host, port, timeout=10) as s:
    s.starttls(context=tls)
    try:
        s.login(user, wrong)
        out["wrong"] = "accepted"
    except smtplib.SMTPAuthenticationError as e:
        out["wrong"] = e.smtp_code
print(json.dumps(out))
`
	cmd := exec.Command(py, "-c", script)
	cmd.Env = append(os.Environ(), "SMTP_HOST="+host, "SMTP_PORT="+port, "SMTP_CA="+cafile,
		"SMTP_USER="+e.acct.Secret.APIKey, "SMTP_SECRET="+e.acct.Secret.Secret, "SMTP_WRONG="+other.Secret.Secret)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("python3 smtplib: %v\n%s", err, stderr.String())
	}
	var out struct {
		AuthOffer string         `json:"auth_offer"`
		Refused   map[string]any `json:"refused"`
		Wrong     any            `json:"wrong"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("python output %q: %v", stdout.String(), err)
	}
	if !strings.Contains(out.AuthOffer, "PLAIN") || !strings.Contains(out.AuthOffer, "LOGIN") || len(out.Refused) != 0 || out.Wrong != float64(535) {
		t.Fatalf("python results: %+v", out)
	}
	recs := e.sink.Recent()
	if len(recs) != 2 || recs[0].MessageID != "<py-plain@acme.example>" || recs[0].Recipients != 2 ||
		recs[1].MessageID != "<py-login@acme.example>" || recs[1].Recipients != 1 || recs[0].APIKey != e.acct.Secret.APIKey {
		t.Fatalf("sink after python: %+v", recs)
	}
}
