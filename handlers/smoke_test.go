package handlers_test

import (
	"net/http"
	"strings"
	"testing"
)

func TestSignupRevealsOnceThenKeysPageHidesSecret(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	apiKey, secret := c.signup("Acme Mail", "owner@acme.example")
	r := c.get("/keys")
	if r.status != http.StatusOK {
		t.Fatalf("GET /keys: %d", r.status)
	}
	if strings.Contains(r.body, secret) {
		t.Fatal("keys page contains the secret")
	}
	if !strings.Contains(r.body, apiKey) {
		t.Fatal("keys page lacks the API key")
	}
}
