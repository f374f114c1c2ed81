package models

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestPrefixPageHidesItsValuesFromThePlanner: the one statement of a typed
// actor or target on PostgreSQL (prefixPage) keeps its prepared generic
// plan only if the planner cannot see a value that would make each custom
// plan look cheaper: the tree, a sub-account and the dates are InitPlans'
// values, "(SELECT CAST(? AS …))", never a bare placeholder beside their
// column. With the dates in sight, a busy e-mail or target name and one
// day was planned for every page at 10,000,000 entries (~1 ms among 37
// indexes), which a log small enough for a test does not show.
func TestPrefixPageHidesItsValuesFromThePlanner(t *testing.T) {
	s := &Store{engine: Postgres}
	from, to := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 7, 23, 59, 59, 0, time.UTC)
	tree := uint(7)
	scopes := map[string]auditScope{
		"the whole log": {},
		"a tree":        {[]sqlCond{{"tree_id = ?", []any{tree}}}, &tree},
		"a sub-account": {[]sqlCond{{"tree_id = ?", []any{tree}}, {"account_id = ?", []any{uint(70)}}}, &tree},
	}
	filters := map[string]AuditFilter{
		"an e-mail and a day":   {Actor: "owner@example.com", From: &from, To: &to},
		"an actor ID and dates": {Actor: "12", From: &from},
		"a target name and day": {Target: "Key A", From: &from, To: &to},
		"a target ID and dates": {Target: "31", To: &to},
	}
	checked := 0
	for sn, scope := range scopes {
		for fn, f := range filters {
			q, err := s.scopedAuditQuery(context.Background(), scope, f, nil, false, 0, AuditPageSize+1, nil)
			if err != nil {
				t.Fatalf("%s, %s: %v", sn, fn, err)
			}
			if !q.cached || q.prefix == nil {
				t.Fatalf("%s, %s: not prefixPage's one statement: %s", sn, fn, q.sql)
			}
			for _, col := range []string{"tree_id", "account_id", "at"} {
				for _, op := range []string{" = ?", " >= ?", " <= ?"} {
					if strings.Contains(q.sql, " "+col+op) {
						t.Errorf("%s, %s: the planner sees %q:\n%s", sn, fn, col+op, q.sql)
					}
				}
			}
			if n := strings.Count(q.sql, "?"); n != len(q.args) {
				t.Errorf("%s, %s: %d placeholders, %d arguments", sn, fn, n, len(q.args))
			}
			checked++
		}
	}
	if checked != 12 {
		t.Fatalf("%d cases, want 12", checked)
	}
}
