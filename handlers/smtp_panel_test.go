package handlers_test

import (
	"strings"
	"testing"

	"keydesk/views"
	"keydesk/web"
)

func TestSMTPPanelShowsSettingsOrSaysItIsOff(t *testing.T) {
	t.Parallel()
	on := newApp(t)
	c := on.client()
	c.signup("Acme Mail", "owner@acme.example")
	r := c.get("/keys")
	if !r.has(`[data-testid="smtp-panel"]`) || r.has(`[data-testid="smtp-off"]`) || !strings.Contains(r.text(`[data-testid="smtp-panel"]`), "smtp.test.example") {
		t.Fatalf("SMTP on: panel %q", r.text(`[data-testid="smtp-panel"]`))
	}
	off := newApp(t, func(cfg *web.Config) { cfg.SMTP = views.SMTPInfo{Off: true} })
	c = off.client()
	resp, _, _ := c.signupResp("Acme Mail", "owner@acme.example")
	if strings.Contains(resp.text(`[data-testid="reveal-modal"]`), "SMTP: host") {
		t.Fatal("the reveal shows SMTP settings while SMTP is off")
	}
	if r := c.get("/keys"); !r.has(`[data-testid="smtp-off"]`) {
		t.Fatal("SMTP off: the panel does not say so")
	}
}
