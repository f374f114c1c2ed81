package handlers_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The keys page lists each live old secret with its hint, deadline and
// use, with End now; End now asks first (with the password outside sudo),
// ends only that secret, and redirects (PRG) with a notice.
func TestKeysPageListsOldSecretsWithEndNow(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	apiKey, first := c.signup("Acme Mail", "owner@acme.example")
	id := c.masterID()
	r := c.reset(id, url.Values{"grace": {"7d"}})
	_, second := r.revealed()
	r = c.reset(id, url.Values{"grace": {"24h"}})
	_, third := r.revealed()
	if second == "" || third == "" {
		t.Fatal("resets revealed no secret")
	}
	page := c.get("/keys")
	items := page.doc.Find(`[data-testid="master-card"] [data-testid="old-secret"]`)
	if items.Length() != 2 {
		t.Fatalf("%d old secrets listed, want 2", items.Length())
	}
	wantHints := []string{hint(first), hint(second)}
	wantUntil := []string{"2026-12-03 12:00 UTC", "2026-11-27 12:00 UTC"}
	for i := 0; i < 2; i++ {
		it := items.Eq(i)
		if h := strings.TrimSpace(it.Find(`[data-testid="old-secret-hint"]`).Text()); h != wantHints[i] {
			t.Errorf("old secret %d: hint %q, want %q", i, h, wantHints[i])
		}
		if g := it.Find(`[data-testid="grace"]`).Text(); !strings.Contains(g, wantUntil[i]) {
			t.Errorf("old secret %d: %q, want until %s", i, g, wantUntil[i])
		}
		if u := it.Find(`[data-testid="old-secret-use"]`).Text(); u != "not used since the reset" {
			t.Errorf("old secret %d: use %q", i, u)
		}
	}
	if strings.Contains(page.body, first) || strings.Contains(page.body, second) {
		t.Fatal("the keys page shows an old secret in full")
	}
	endURL, _ := items.Eq(0).Find(`[data-testid="end-old-secret"]`).Attr("href")
	if endURL == "" {
		t.Fatal("no End now link")
	}

	// GET opens the confirmation and changes nothing.
	d := c.get(endURL)
	if d.status != http.StatusOK || !d.has(`[data-testid="end-secret-dialog"]`) || !a.verifies(apiKey, first) {
		t.Fatalf("End now dialog: %d", d.status)
	}
	// Outside sudo it asks for the password, inline.
	a.clock.Advance(16 * time.Minute)
	r = c.submit("/keys", endURL, nil)
	if r.status != http.StatusUnprocessableEntity || !r.has(`[data-testid="end-secret-dialog"] #e-password`) || !a.verifies(apiKey, first) {
		t.Fatalf("End now without password: %d", r.status)
	}
	r = c.submit("/keys", endURL, url.Values{"password": {testPassword}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/keys?done=ended" {
		t.Fatalf("End now: %d → %q, want 303 → /keys?done=ended", r.status, r.header.Get("Location"))
	}
	if a.verifies(apiKey, first) {
		t.Fatal("the ended secret still works")
	}
	if !a.verifies(apiKey, second) || !a.verifies(apiKey, third) {
		t.Fatal("End now ended more than one secret")
	}
	page = c.get("/keys?done=ended")
	if n := page.doc.Find(`[data-testid="old-secret"]`).Length(); n != 1 {
		t.Fatalf("%d old secrets after End now, want 1", n)
	}
	if !strings.Contains(page.text(`[role="status"], .alert-success`), "ended") {
		t.Fatalf("no notice after End now: %q", page.text(`[role="status"], .alert-success`))
	}
	// The same URL again (or under another tenant) is 404.
	if r := c.submit("/keys", endURL, nil); r.status != http.StatusNotFound {
		t.Fatalf("End now twice: %d, want 404", r.status)
	}
	bob := a.client()
	bob.signup("Bob Mail", "bob@example.com")
	if r := bob.get(endURL); r.status != http.StatusNotFound {
		t.Fatalf("Bob opens Alice's End now: %d, want 404", r.status)
	}
	if r := bob.submit("/keys", endURL, nil); r.status != http.StatusNotFound {
		t.Fatalf("Bob posts Alice's End now: %d, want 404", r.status)
	}
}

// With two old secrets live, the reset dialog says which one a reset with
// a grace period would end early, and when it was to end.
func TestResetDialogNamesTheSecretTheCapWouldEnd(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	_, first := c.signup("Acme Mail", "owner@acme.example")
	id := c.masterID()
	if c.get("/keys/" + id + "/reset").has(`[data-testid="cap-notice"]`) {
		t.Fatal("cap notice with no old secret")
	}
	// first: until 7 days from now; second: until 1 h from now.
	_, second := c.reset(id, url.Values{"grace": {"7d"}}).revealed()
	c.reset(id, url.Values{"grace": {"1h"}})
	notice := c.get("/keys/" + id + "/reset").text(`[data-testid="cap-notice"]`)
	if !strings.Contains(notice, hint(second)) || !strings.Contains(notice, "2026-11-26 13:00 UTC") || strings.Contains(notice, hint(first)) {
		t.Fatalf("cap notice %q: want the 1 h secret %s and its end 13:00", notice, hint(second))
	}
}
