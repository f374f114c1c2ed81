package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"keydesk/models"
)

// Long lists of sub-account keys are paged (25 a page) and searchable by
// name, on /keys and on /subaccounts.
func TestKeysAndSubaccountsArePagedAndSearchable(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	c.signup("Acme Mail", "owner@acme.example")
	actor := a.actorOf("owner@acme.example")
	a.setSubaccountLimit(actor.AccountID, 40)
	for i := 0; i < 30; i++ {
		if _, _, err := a.store.CreateSubaccount(context.Background(), actor, fmt.Sprintf("stream-%02d", i), ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ path, row, next string }{
		{"/keys", `[data-testid="key-row"]`, `[data-testid="keys-next"]`},
		{"/subaccounts", `[data-testid="subaccount-row"]`, `[data-testid="subaccounts-next"]`},
	} {
		r := c.get(tc.path)
		if r.status != http.StatusOK || r.doc.Find(tc.row).Length() != models.KeysPageSize || !r.has(tc.next) {
			t.Fatalf("%s page 1: %d rows, next %v", tc.path, r.doc.Find(tc.row).Length(), r.has(tc.next))
		}
		r = c.get(tc.path + "?page=2")
		if n := r.doc.Find(tc.row).Length(); n != 30-models.KeysPageSize || r.has(tc.next) {
			t.Fatalf("%s page 2: %d rows", tc.path, n)
		}
		if got := r.doc.Find(tc.row).First().Text(); !strings.Contains(got, "stream-25") {
			t.Fatalf("%s page 2 starts with %q", tc.path, got)
		}
		r = c.get(tc.path + "?q=STREAM-1")
		if n := r.doc.Find(tc.row).Length(); n != 10 {
			t.Fatalf("%s search: %d rows, want 10", tc.path, n)
		}
		r = c.get(tc.path + "?q=nothing-like-this")
		if !r.has(`[data-testid="search-empty"]`) {
			t.Fatalf("%s: no empty-search message", tc.path)
		}
		for _, bad := range []string{"?page=-3", "?page=abc", "?page=99999"} {
			if r := c.get(tc.path + bad); r.status != http.StatusOK || r.doc.Find(tc.row).Length() == 0 {
				t.Fatalf("%s%s: %d", tc.path, bad, r.status)
			}
		}
	}
}
