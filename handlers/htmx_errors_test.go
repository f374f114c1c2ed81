package handlers_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"keydesk/models"
)

// An htmx request that is throttled gets a dialog for the dialog slot, not
// a whole page swapped into it.
func TestHTMXThrottledAnswerIsADialog(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	c.signup("Acme Mail", "owner@acme.example")
	id := c.masterID()
	a.clock.Advance(16 * time.Minute)
	for i := 0; i < models.DefaultThrottle.PerPair; i++ {
		c.submit("/keys/"+id+"/reset", "/keys/"+id+"/reset", url.Values{"grace": {"0"}, "password": {"not my password"}})
	}
	h := c.with("HX-Request", "true")
	r := h.submit("/keys/"+id+"/reset", "/keys/"+id+"/reset", url.Values{"grace": {"0"}, "password": {testPassword}})
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
	if strings.Contains(r.body, "<html") || !r.has(`[data-testid="error-dialog"]`) {
		t.Fatalf("htmx error answer is not a dialog fragment: %.200s", r.body)
	}
}
