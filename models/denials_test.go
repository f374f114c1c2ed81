package models_test

import (
	"encoding/json"
	"testing"
	"time"

	"keydesk/models"
	"keydesk/models/testdb"
)

// deniedEntries returns the access.denied entries' details, oldest first.
func deniedEntries(t *testing.T, s *models.Store) []map[string]any {
	t.Helper()
	var details []string
	if err := s.DB().Table("audit_entries").Where("action = ?", models.ActionAccessDenied).Order("id").Pluck("details", &details).Error; err != nil {
		t.Fatal(err)
	}
	out := make([]map[string]any, len(details))
	for i, d := range details {
		if err := json.Unmarshal([]byte(d), &out[i]); err != nil {
			t.Fatalf("details %q: %v", d, err)
		}
	}
	return out
}

// deniedTotal is the number of denials the entries account for: one per
// entry plus the repeats a summary entry carries.
func deniedTotal(es []map[string]any) int64 {
	var n int64
	for _, e := range es {
		if r, ok := e["repeats"].(float64); ok {
			n += int64(r)
		} else {
			n++
		}
	}
	return n
}

// Issue 9, finding 11: a flood of denials from one actor on one route
// costs at most two entries a minute, and the count is recorded.
func TestAccessDeniedFloodIsAggregated(t *testing.T) {
	t.Parallel()
	s, clock := testdb.Open(t)
	actor, _ := owner(t, s, "Acme", "owner@acme.example")
	now := clock.Now() // start 5 s into a minute
	clock.Advance(now.Truncate(time.Minute).Add(time.Minute + 5*time.Second).Sub(now))
	for i := 0; i < 500; i++ {
		if err := s.RecordRouteDenied(ctx, actor, "/support/accounts/:id", "/support/accounts/"+string(rune('0'+i%10))); err != nil {
			t.Fatal(err)
		}
	}
	if es := deniedEntries(t, s); len(es) != 1 {
		t.Fatalf("%d access.denied entries after 500 denials in one minute, want 1 until the minute is over", len(es))
	}
	// The minute is not over: nothing more yet.
	if err := s.FlushDenials(ctx, false); err != nil {
		t.Fatal(err)
	}
	if es := deniedEntries(t, s); len(es) != 1 {
		t.Fatalf("%d entries after a flush within the minute", len(es))
	}
	clock.Advance(time.Minute)
	if err := s.FlushDenials(ctx, false); err != nil {
		t.Fatal(err)
	}
	es := deniedEntries(t, s)
	if len(es) != 2 || es[1]["repeats"] != float64(499) || es[1]["route"] != "/support/accounts/:id" || deniedTotal(es) != 500 {
		t.Fatalf("entries after the minute: %v, want the first and one with repeats 499", es)
	}
	// Another route, another actor and the next minute are counted apart;
	// a denial in a later minute writes out the earlier minute's count.
	other, _ := owner(t, s, "Globex", "owner@globex.example")
	for i := 0; i < 3; i++ {
		for _, a := range []models.Actor{actor, other} {
			if err := s.RecordRouteDenied(ctx, a, "/support", "/support"); err != nil {
				t.Fatal(err)
			}
		}
	}
	clock.Advance(time.Minute)
	if err := s.RecordRouteDenied(ctx, actor, "/support", "/support"); err != nil {
		t.Fatal(err)
	}
	es = deniedEntries(t, s)
	if len(es) != 2+2+2+1 || deniedTotal(es) != 500+3+3+1 {
		t.Fatalf("entries %d for %d denials: %v", len(es), deniedTotal(es), es)
	}
	if err := s.FlushDenials(ctx, true); err != nil { // as at shutdown
		t.Fatal(err)
	}
	if es = deniedEntries(t, s); deniedTotal(es) != 507 {
		t.Fatalf("after the final flush: %d denials recorded, want 507", deniedTotal(es))
	}
}
