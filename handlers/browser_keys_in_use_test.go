package handlers_test

import (
	"io"
	"log/slog"
	netsmtp "net/smtp"
	"strings"
	"testing"

	"keydesk/smtp"
)

// smtpAuth tries AUTH PLAIN against the listener; nil means accepted.
func smtpAuth(t *testing.T, addr, user, pass string) error {
	t.Helper()
	c, err := netsmtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.Auth(netsmtp.PlainAuth("", user, pass, "127.0.0.1"))
}

// Keys in use: a deactivation and a reset made in the browser make the
// very next REST call and SMTP AUTH with the old credentials fail.
func TestBrowserResetAndDeactivateStopTheAPIAndSMTP(t *testing.T) {
	b := newBrowser(t)
	a := b.app
	srv, err := smtp.New(smtp.Config{Addr: "127.0.0.1:0", AllowInsecureAuth: true, // loopback only, for the test
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, a.store)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })
	smtpAddr := srv.Addr().String()

	masterKey, oldSecret := b.signUp("Acme Mail", "owner@acme.example")
	b.finishReveal()

	// A sub-account, created in the browser.
	b.click(`[data-testid="create-subaccount"]`)
	b.visible(`[data-testid="create-dialog"]`)
	b.fill(`#create-dialog #f-name`, "newsletters")
	b.click(`[data-testid="confirm-create"]`)
	b.visible(revealModal)
	subKey, subSecret := b.text(revealAPIKey), b.text(revealSecret)
	b.finishReveal()

	for _, cred := range [][2]string{{masterKey, oldSecret}, {subKey, subSecret}} {
		if st, _, _ := restDo(t, a, "GET", "/v3/REST/apikey", cred[0], cred[1], ""); st != 200 {
			t.Fatalf("REST with %s before any change: %d", cred[0], st)
		}
		if err := smtpAuth(t, smtpAddr, cred[0], cred[1]); err != nil {
			t.Fatalf("SMTP AUTH with %s before any change: %v", cred[0], err)
		}
	}

	// Deactivate the sub-account key through its gear menu.
	row := `[data-testid="key-row"]`
	b.click(row + ` [data-testid="gear"]`)
	b.click(row + ` [data-testid="menu-deactivate"]`)
	b.visible(`[data-testid="deactivate-dialog"]`)
	b.click(`[data-testid="confirm-deactivate"]`)
	b.visible(`[data-testid="menu-activate"]`) // the page reloaded with the key inactive
	if got := b.text(row + ` [data-testid="status"]`); !strings.Contains(got, "Inactive") {
		t.Fatalf("status after deactivation: %q", got)
	}
	if st, m, _ := restDo(t, a, "GET", "/v3/REST/apikey", subKey, subSecret, ""); st != 401 {
		t.Fatalf("REST with the deactivated key: %d %v", st, m)
	}
	if err := smtpAuth(t, smtpAddr, subKey, subSecret); err == nil || !strings.Contains(err.Error(), "535") {
		t.Fatalf("SMTP AUTH with the deactivated key: %v", err)
	}

	// Reset the master secret (immediately) through its gear menu.
	b.click(masterGear)
	b.click(masterCard + ` [data-testid="menu-reset"]`)
	b.visible(`[data-testid="reset-dialog"]`)
	b.click(`[data-testid="confirm-reset"]`)
	b.visible(revealModal)
	newSecret := b.text(revealSecret)
	if newSecret == oldSecret || newSecret == "" {
		t.Fatalf("reset revealed %q", newSecret)
	}
	if st, _, _ := restDo(t, a, "GET", "/v3/REST/apikey", masterKey, oldSecret, ""); st != 401 {
		t.Fatalf("REST with the reset secret: %d", st)
	}
	if err := smtpAuth(t, smtpAddr, masterKey, oldSecret); err == nil || !strings.Contains(err.Error(), "535") {
		t.Fatalf("SMTP AUTH with the reset secret: %v", err)
	}
	if st, _, _ := restDo(t, a, "GET", "/v3/REST/apikey", masterKey, newSecret, ""); st != 200 {
		t.Fatalf("REST with the new secret: %d", st)
	}
	if err := smtpAuth(t, smtpAddr, masterKey, newSecret); err != nil {
		t.Fatalf("SMTP AUTH with the new secret: %v", err)
	}
	b.finishReveal()
}
