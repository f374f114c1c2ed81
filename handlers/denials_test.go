package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"keydesk/models"
	"keydesk/models/testdb"
)

// Issue 9, finding 11: a signed-in user hammering staff pages cannot
// flood the audit log; the number of attempts is still recorded.
func TestAccessDeniedFloodLeavesBoundedEntries(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c, _, _, _ := a.owner("Acme Mail", "owner@acme.example")
	const n = 300
	for i := 0; i < n; i++ {
		path := "/support"
		if i%2 == 1 {
			path = fmt.Sprintf("/support/accounts/%d", i) // another path of one route
		}
		if r := c.get(path); r.status != http.StatusForbidden {
			t.Fatalf("GET %s: %d, want 403", path, r.status)
		}
	}
	if got := a.auditCount(models.ActionAccessDenied); got > 2 {
		t.Fatalf("%d access.denied entries after %d denials within a minute, want at most 2 (one per route)", got, n)
	}
	flushDenials(t, a)
	var details []string
	testdb.Must(t, a.store.DB().Table("audit_entries").Where("action = ?", models.ActionAccessDenied).Order("id").Pluck("details", &details))
	if len(details) > 4 {
		t.Fatalf("%d entries after the minute, want at most 4 (first and count, per route)", len(details))
	}
	total := 0
	for _, d := range details {
		var m map[string]any
		if err := json.Unmarshal([]byte(d), &m); err != nil {
			t.Fatalf("details %s: %v", d, err)
		}
		if r, ok := m["repeats"].(float64); ok {
			total += int(r)
		} else {
			total++
		}
	}
	if total != n {
		t.Fatalf("the entries account for %d denials, want %d: %v", total, n, details)
	}
}

// flushDenials ends the minute and writes the repeat counts, as the
// server's flusher does.
func flushDenials(t *testing.T, a *app) {
	t.Helper()
	a.clock.Advance(time.Minute)
	if err := a.store.FlushDenials(context.Background(), false); err != nil {
		t.Fatal(err)
	}
}
