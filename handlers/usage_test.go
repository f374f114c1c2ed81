package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestUsageAppearsOnKeysPageAndChart(t *testing.T) {
	a := newApp(t)
	c := a.client()
	apiKey, secret := c.signup("Acme Mail", "owner@acme.example")
	id := c.masterID()
	if r := c.get("/keys"); !strings.Contains(r.text(`[data-testid="last-used"]`), "never") {
		t.Fatalf("fresh key last used: %q", r.text(`[data-testid="last-used"]`))
	}
	for i := 0; i < 4; i++ {
		if st, _, _ := restDo(t, a, "GET", "/v3/REST/apikey", apiKey, secret, ""); st != 200 {
			t.Fatalf("REST call %d: %d", i, st)
		}
	}
	if err := a.store.FlushUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := c.get("/keys")
	if lu := r.text(`[data-testid="last-used"]`); !strings.Contains(lu, "just now") || !strings.Contains(lu, "127.0.0.1") {
		t.Fatalf("last used after REST calls: %q", lu)
	}
	u := c.get("/keys/" + id + "/usage")
	if u.status != http.StatusOK {
		t.Fatalf("usage page: %d", u.status)
	}
	if got := u.text(`[data-testid="usage-api"]`); got != "4" {
		t.Fatalf("API requests total %q, want 4", got)
	}
	if n := u.doc.Find(`[data-testid="usage-bar"]`).Length(); n != 30 {
		t.Fatalf("%d bars, want 30", n)
	}
	if strings.Contains(u.body, secret) {
		t.Fatal("usage page shows the secret")
	}
	// Another owner's key answers 404.
	other := a.client()
	other.signup("Other", "other@other.example")
	if r := other.get("/keys/" + id + "/usage"); r.status != http.StatusNotFound {
		t.Fatalf("other owner's usage page: %d", r.status)
	}
}

func TestKeysPageSaysWhetherOldSecretIsStillUsed(t *testing.T) {
	a := newApp(t)
	c := a.client()
	apiKey, oldSecret := c.signup("Acme Mail", "owner@acme.example")
	id := c.masterID()
	r := c.submit("/keys/"+id+"/reset", "/keys/"+id+"/reset", url.Values{"grace": {"24h"}})
	if r.status != http.StatusOK {
		t.Fatalf("reset: %d", r.status)
	}
	if got := c.get("/keys").text(`[data-testid="old-secret-use"]`); got != "not used since the reset" {
		t.Fatalf("before use: %q", got)
	}
	a.clock.Advance(3 * time.Minute)
	if st, _, _ := restDo(t, a, "GET", "/v3/REST/apikey", apiKey, oldSecret, ""); st != 200 {
		t.Fatalf("old secret in grace: %d", st)
	}
	a.store.FlushUsage(context.Background())
	a.clock.Advance(2 * time.Minute)
	if got := c.get("/keys").text(`[data-testid="old-secret-use"]`); got != "last used 2 minutes ago" {
		t.Fatalf("after use: %q", got)
	}
}
