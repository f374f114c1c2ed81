package smtp_test

import (
	"crypto/tls"
	"log/slog"
	netsmtp "net/smtp"
	"testing"
	"time"

	kdsmtp "keydesk/smtp"
)

// Throughput of the real listener on loopback with a real store, the sink
// relay (logging to a discard handler) and Go's net/smtp as the client,
// both in this process on the same cores. Reported as msgs/s.
//
//	go test -run '^$' -bench . -benchtime 200x ./smtp/

func benchEnv(b *testing.B, insecure bool) *env {
	discard := slog.New(slog.DiscardHandler)
	return newEnv(b, func(c *kdsmtp.Config) {
		c.Logger, c.Relay = discard, kdsmtp.NewSinkRelay(discard, 10)
		if insecure {
			c.TLS, c.AllowInsecureAuth = nil, true
		}
	})
}

// BenchmarkSMTPConnPerMessage: one connection per message — connect,
// STARTTLS (or not), AUTH PLAIN, MAIL, RCPT, DATA (≈200 bytes), QUIT.
func BenchmarkSMTPConnPerMessage(b *testing.B) {
	for _, mode := range []struct {
		name     string
		insecure bool
	}{{"starttls", false}, {"plaintext-insecure-auth", true}} {
		b.Run(mode.name, func(b *testing.B) {
			e := benchEnv(b, mode.insecure)
			k := e.acct.Secret
			auth := plain(k.APIKey, k.Secret)
			body := message("bench@acme.example", "small body")
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				c := dialMode(b, e.addr, mode.insecure)
				if err := c.Auth(auth); err != nil {
					b.Fatal(err)
				}
				if err := send(c, body, "a@example.com"); err != nil {
					b.Fatal(err)
				}
				if err := c.Quit(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
			if got := e.sink.Total(); got != int64(b.N) {
				b.Fatalf("sink accepted %d, want %d", got, b.N)
			}
		})
	}
}

// BenchmarkSMTP100PerConn: one connection (STARTTLS + AUTH PLAIN) that
// sends 100 small messages; each op is the whole connection.
func BenchmarkSMTP100PerConn(b *testing.B) {
	const perConn = 100
	e := benchEnv(b, false)
	k := e.acct.Secret
	auth := plain(k.APIKey, k.Secret)
	body := message("bench@acme.example", "small body")
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		c := dialMode(b, e.addr, false)
		if err := c.Auth(auth); err != nil {
			b.Fatal(err)
		}
		for j := 0; j < perConn; j++ {
			if err := send(c, body, "a@example.com"); err != nil {
				b.Fatal(err)
			}
		}
		if err := c.Quit(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*perConn)/time.Since(start).Seconds(), "msgs/s")
	if got := e.sink.Total(); got != int64(b.N*perConn) {
		b.Fatalf("sink accepted %d, want %d", got, b.N*perConn)
	}
}

// dialMode connects, with STARTTLS unless insecure; the caller QUITs.
func dialMode(b *testing.B, addr string, insecure bool) *netsmtp.Client {
	c, err := netsmtp.Dial(addr)
	if err != nil {
		b.Fatal(err)
	}
	if !insecure {
		if err := c.StartTLS(&tls.Config{RootCAs: testCert().pool, ServerName: "127.0.0.1"}); err != nil {
			b.Fatal(err)
		}
	}
	return c
}
