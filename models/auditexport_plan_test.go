package models_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"keydesk/models"
	"keydesk/models/testdb"
)

// testAuditExportBatchesSearchAnIndex: an export's batches carry one more
// condition than a page, id <= the signed head; the batches must be read
// as the page is, in (at, id) order from an index on a filtered column.
// On SQLite the first batch of a tree's export (no cursor yet) took the
// (tree_id, id) index for tree_id = ? AND id <= ? and sorted every entry of
// the tree to return 1,000 of them (338,000 rows read for the busiest tree
// at 5,000,000 entries).
func testAuditExportBatchesSearchAnIndex(t *testing.T, s *models.Store, auditor, owner models.Actor, cases []filterCase) {
	var through uint64
	testdb.Must(t, s.DB().Raw("SELECT MAX(id) FROM audit_entries").Scan(&through))
	cursor := &models.AuditCursor{At: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), ID: through / 2}
	from, to := cursor.At.AddDate(0, -1, 0), cursor.At
	all := append([]filterCase{
		{"owner: everything", true, models.AuditFilter{}, []string{"tree_id"}},
		{"owner: a month", true, models.AuditFilter{From: &from, To: &to}, []string{"tree_id"}},
		{"everything", false, models.AuditFilter{}, nil},
	}, cases...)
	// A whole tree, dates aside: its owner's export, or an auditor's of its
	// main account.
	wholeTree := func(c filterCase) bool {
		f := c.f
		f.From, f.To = nil, nil
		return c.owner && reflect.DeepEqual(f, models.AuditFilter{}) || !c.owner && reflect.DeepEqual(f, models.AuditFilter{AccountID: owner.AccountID})
	}
	trees := 0
	for _, c := range all {
		who := auditor
		if c.owner {
			who = owner
		}
		for _, cur := range []*models.AuditCursor{nil, cursor} {
			plan, err := s.ExplainAuditExport(ctx, who, c.f, cur, through)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			why := ""
			switch {
			case wholeTree(c) && testdb.Engine() == models.SQLite:
				trees++
				// A tree's entries are scattered over the table: read from
				// the table, each is a page read of its own (two system
				// calls in SQLite's Go port). Its batches come from the
				// index that holds every exported column, searched on its
				// first column, the tree (migration 37).
				if len(plan) != 1 || !strings.HasPrefix(plan[0], "SEARCH audit_entries USING COVERING INDEX idx_audit_tree_export (<expr>=?") {
					why = "a tree's entries are not read from the index of its exported columns"
				}
			case c.cols != nil:
				why = scansTheLog(testdb.Engine(), plan, c.cols)
			default:
				// The whole log: read in order along the (at, id) index.
				for _, l := range plan {
					if strings.Contains(l, "TEMP B-TREE") || strings.Contains(l, "Sort") || strings.Contains(l, "Seq Scan") {
						why = "the log is sorted"
					}
				}
			}
			if why == "" && !wholeTree(c) && strings.Contains(strings.Join(plan, "\n"), "idx_audit_tree_export") {
				// With another filter, that index would walk every entry
				// of the tree to test it (SQLite, which keeps no
				// statistics, prefers an index that covers the query).
				why = "a filtered export walks the tree in the index of its exported columns"
			}
			if why != "" {
				t.Errorf("export, %s (cursor %v): %s:\n\t%s", c.name, cur != nil, why, strings.Join(plan, "\n\t"))
			}
		}
	}
	if testdb.Engine() == models.SQLite && trees != 6 {
		t.Errorf("%d plans of a whole tree's export checked, want 6 (an owner's, also for a month, and an auditor's, each with and without a cursor)", trees)
	}
}

// An export hands over every exported field of every entry as the table
// holds it, newest first, across batches: the whole log as an auditor, and
// one tree. The columns nothing exports (the chain's link and key, the
// tree, the actor's user ID) are not read: each column a row carries is a
// third of a microsecond of the driver's on SQLite (BENCHMARKS.md, "Audit
// export rate").
func TestAuditExportReadsEveryField(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	if _, err := s.Seed(ctx, models.SeedOptions{Accounts: 20, Subaccounts: 40, BigTree: 10, AuditEntries: 2600}); err != nil {
		t.Fatal(err)
	}
	u, err := s.CreateStaffUser(ctx, "aud@export.example", pw, models.RoleAuditor, models.SystemActor())
	if err != nil {
		t.Fatal(err)
	}
	// The export's own entry (the head, first row of the whole log) carries
	// text that a row format could mistake for its own: separators, digits
	// and colons, quotes, a newline, several bytes per character, and on
	// SQLite a NUL (PostgreSQL's text refuses it).
	ua := "12:34:\"q\",\n\r日本語 ü 0:" + strings.Repeat("9", 600)
	if testdb.Engine() == models.SQLite {
		ua = "\x00" + ua
	}
	auditor := models.Actor{UserID: u.ID, Email: u.Email, Role: models.RoleAuditor, Meta: models.RequestMeta{IP: "2001:db8::7", UserAgent: ua}}
	var tree uint
	testdb.Must(t, s.DB().Raw("SELECT tree_id FROM audit_entries WHERE tree_id IS NOT NULL GROUP BY tree_id ORDER BY COUNT(*) DESC LIMIT 1").Scan(&tree))
	// The whole log, a tree, and the auditor's own entries by a typed actor
	// (on PostgreSQL one statement that finds the actor's values itself).
	for _, f := range []models.AuditFilter{{}, {AccountID: tree}, {Actor: "AUD@export"}} {
		var got []models.AuditEntry
		head, err := s.ExportAudit(ctx, auditor, f, "csv", func(*models.AuditHead) error { return nil },
			func(e models.AuditEntry) error { got = append(got, e); return nil })
		if err != nil {
			t.Fatal(err)
		}
		var want []models.AuditEntry
		q := s.DB().Where("id <= ?", head.Entry)
		if f.AccountID != 0 {
			q = q.Where("tree_id = ?", tree)
		}
		if f.Actor != "" {
			q = q.Where("actor_label = ?", u.Email)
		}
		testdb.Must(t, q.Order("at DESC, id DESC").Find(&want))
		if len(want) < 2 {
			t.Fatalf("%+v: %d entries", f, len(want))
		}
		if len(want) < 1000 && f.AccountID == 0 && f.Actor == "" {
			t.Fatalf("only %d entries: no second batch", len(want))
		}
		if len(got) != len(want) {
			t.Fatalf("account %d: exported %d entries, want %d", f.AccountID, len(got), len(want))
		}
		for i := range want {
			g, w := got[i], want[i]
			if !g.At.Equal(w.At) {
				t.Fatalf("account %d, row %d: at %v, want %v", f.AccountID, i, g.At, w.At)
			}
			g.At = w.At
			if g.ActorUserID != nil || g.TreeID != nil || g.KeyID != "" || g.Link != "" {
				t.Fatalf("account %d, row %d: a column nothing exports was read: %+v", f.AccountID, i, g)
			}
			w.ActorUserID, w.TreeID, w.KeyID, w.Link = nil, nil, "", ""
			if !reflect.DeepEqual(g, w) {
				t.Fatalf("account %d, row %d:\n got %+v\nwant %+v", f.AccountID, i, g, w)
			}
		}
	}
}

// An export whose writer fails (the client went away) stops there: no
// entry is emitted after the failure, the failure comes back, and the
// batch read ahead meanwhile is abandoned (the race detector and the
// test's end see no read outliving the export).
func TestAuditExportStopsWhereItsWriterFails(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	if _, err := s.Seed(ctx, models.SeedOptions{Accounts: 5, Subaccounts: 5, AuditEntries: 2600}); err != nil {
		t.Fatal(err)
	}
	auditor := models.Actor{Email: "aud@export.example", Role: models.RoleAuditor}
	var through uint64
	testdb.Must(t, s.DB().Raw("SELECT MAX(id) FROM audit_entries").Scan(&through))
	gone := errors.New("client went away")
	for _, at := range []int{1, 999, 1000, 1001, 2500} {
		n := 0
		err := s.StreamAudit(ctx, auditor, models.AuditFilter{}, through, func(models.AuditEntry) error {
			n++
			if n == at {
				return gone
			}
			return nil
		})
		if !errors.Is(err, gone) || n != at {
			t.Fatalf("writer failing at row %d: %d rows emitted, err %v", at, n, err)
		}
	}
	// A cancelled request ends the export with the context's error once
	// the batch being emitted is out.
	cctx, cancel := context.WithCancel(ctx)
	n := 0
	err := s.StreamAudit(cctx, auditor, models.AuditFilter{}, through, func(models.AuditEntry) error {
		if n++; n == 1500 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n != 2000 {
		t.Fatalf("cancelled at row 1500: %d rows emitted, err %v", n, err)
	}
}
