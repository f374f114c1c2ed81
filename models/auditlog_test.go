package models_test

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"keydesk/models"
	"keydesk/models/testdb"
)

// seedLog creates a little history: an account, logins, a reset, a rename.
func seedLog(t *testing.T, s *models.Store) (models.Actor, *models.SignUpResult) {
	t.Helper()
	actor, res := owner(t, s, "Acme", "owner@acme.example")
	for i := 0; i < 3; i++ {
		if _, _, err := s.Login(ctx, "owner@acme.example", pw, "", meta); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.ResetSecret(ctx, actor, res.Key.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RenameKey(ctx, actor, res.Key.ID, "Acme prod"); err != nil {
		t.Fatal(err)
	}
	return actor, res
}

func TestAuditIsAppendOnlyInTheDatabase(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	seedLog(t, s)
	if err := s.DB().Exec("UPDATE audit_entries SET action = 'x' WHERE id = 1").Error; err == nil {
		t.Fatal("UPDATE of an audit entry was allowed")
	}
	if err := s.DB().Exec("DELETE FROM audit_entries WHERE id = 1").Error; err == nil {
		t.Fatal("DELETE of an audit entry was allowed")
	}
	if _, err := s.Checkpoint(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	if err := s.DB().Exec("DELETE FROM audit_checkpoints").Error; err == nil {
		t.Fatal("DELETE of a checkpoint was allowed")
	}
}

func TestAuditChainVerifiesAndDetectsTampering(t *testing.T) {
	t.Parallel()
	fields := map[string]string{
		"at":          "at = ?",
		"actor_label": "actor_label = ?",
		"action":      "action = ?",
		"target_name": "target_name = ?",
		"ip":          "ip = ?",
		"user_agent":  "user_agent = ?",
		"details":     "details = ?",
		"account_id":  "account_id = ?",
	}
	values := map[string]any{
		"at": time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), "actor_label": "mallory@evil.example", "action": "logout",
		"target_name": "x", "ip": "10.0.0.1", "user_agent": "curl", "details": `{"grace":"never"}`, "account_id": 999,
	}
	for field, set := range fields {
		t.Run("edit "+field, func(t *testing.T) {
			s, _ := testdb.Open(t)
			seedLog(t, s)
			r, err := s.VerifyAuditChain(ctx)
			if err != nil || !r.OK || r.Entries < 8 {
				t.Fatalf("clean log: %+v %v", r, err)
			}
			testdb.AllowTampering(t, s)
			if err := s.DB().Exec("UPDATE audit_entries SET "+set+" WHERE id = 4", values[field]).Error; err != nil {
				t.Fatal(err)
			}
			r, err = s.VerifyAuditChain(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if r.OK || r.BadEntry != 4 || !strings.Contains(r.Problem, "#4") {
				t.Fatalf("edited %s not caught at #4: %+v", field, r)
			}
		})
	}
	t.Run("delete an entry", func(t *testing.T) {
		s, _ := testdb.Open(t)
		seedLog(t, s)
		testdb.AllowTampering(t, s)
		if n := testdb.Must(t, s.DB().Exec("DELETE FROM audit_entries WHERE id = 3")).RowsAffected; n != 1 {
			t.Fatalf("deleted %d entries, want 1", n)
		}
		r := verifyChain(t, s)
		if r.OK || r.BadEntry != 3 || !strings.Contains(r.Problem, "missing") {
			t.Fatalf("deleted entry not caught: %+v", r)
		}
	})
	t.Run("truncate the tail", func(t *testing.T) {
		s, _ := testdb.Open(t)
		seedLog(t, s)
		cp, err := s.Checkpoint(ctx, "test")
		if err != nil {
			t.Fatal(err)
		}
		testdb.AllowTampering(t, s)
		if n := testdb.Must(t, s.DB().Exec("DELETE FROM audit_entries WHERE id > ?", cp.Entry-2)).RowsAffected; n == 0 {
			t.Fatal("the tail was not truncated")
		}
		r := verifyChain(t, s)
		if r.OK || !strings.Contains(r.Problem, "truncated") || r.BadEntry != cp.Entry-1 {
			t.Fatalf("truncation not caught: %+v", r)
		}
	})
	t.Run("rewrite the whole chain", func(t *testing.T) {
		s, _ := testdb.Open(t)
		seedLog(t, s)
		if _, err := s.Checkpoint(ctx, "test"); err != nil {
			t.Fatal(err)
		}
		testdb.AllowTampering(t, s)
		// Rebuild a self-consistent chain with one entry changed, as an
		// attacker without the audit key would: hashes all recomputed.
		var entries []models.AuditEntry
		testdb.Must(t, s.DB().Order("id").Find(&entries))
		prev := ""
		for i := range entries {
			e := entries[i]
			if e.ID == 2 {
				e.IP = "198.51.100.66"
			}
			e.PrevHash = prev
			e.Hash = models.ComputeAuditHash(&e)
			prev = e.Hash
			if err := s.DB().Save(&e).Error; err != nil {
				t.Fatal(err)
			}
		}
		r := verifyChain(t, s)
		if r.OK || r.BadEntry != 2 || !strings.Contains(r.Problem, "#2") {
			t.Fatalf("rewritten chain not caught at #2: %+v", r)
		}
	})
	t.Run("forged checkpoint", func(t *testing.T) {
		s, _ := testdb.Open(t)
		seedLog(t, s)
		if _, err := s.Checkpoint(ctx, "test"); err != nil {
			t.Fatal(err)
		}
		testdb.AllowTampering(t, s)
		if n := testdb.Must(t, s.DB().Exec("UPDATE audit_checkpoints SET signature = ?", strings.Repeat("0", 64))).RowsAffected; n == 0 {
			t.Fatal("no checkpoint to forge")
		}
		r := verifyChain(t, s)
		if r.OK || !strings.Contains(r.Problem, "signature") {
			t.Fatalf("forged checkpoint not caught: %+v", r)
		}
	})
}

func TestAuditConcurrentAppendsFormOneChain(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	actor, res := owner(t, s, "Acme", "owner@acme.example")
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, err := s.RenameKey(ctx, actor, res.Key.ID, "name "+strconv.Itoa(i)); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	r, err := s.VerifyAuditChain(ctx)
	if err != nil || !r.OK || r.Entries < 40 {
		t.Fatalf("after concurrent appends: %+v %v", r, err)
	}
}

func TestAuditPagingAndTenancy(t *testing.T) {
	t.Parallel()
	s, clock := testdb.Open(t)
	alice, aliceRes := owner(t, s, "Alice", "alice@example.com")
	bob, _ := owner(t, s, "Bob", "bob@example.com")
	for i := 0; i < 120; i++ {
		clock.Advance(time.Second)
		who, id := alice, aliceRes.Key.ID
		if i%3 == 0 {
			who = bob
			keys, err := s.ListKeys(ctx, bob)
			if err != nil {
				t.Fatal(err)
			}
			id = keys[0].ID
		}
		if _, err := s.RenameKey(ctx, who, id, fmt.Sprintf("n%03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// Alice pages through everything: only her tree, newest first, no
	// duplicates, no gaps, then back to the first page.
	var seen []uint64
	page, err := s.AuditEntries(ctx, alice, models.AuditFilter{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := page
	pages := 1
	for {
		for _, e := range page.Entries {
			if e.AccountID == nil || *e.AccountID != aliceRes.Account.ID {
				t.Fatalf("Alice sees entry #%d of account %v", e.ID, e.AccountID)
			}
			if len(seen) > 0 && e.ID >= seen[len(seen)-1] {
				t.Fatalf("order broken at #%d", e.ID)
			}
			seen = append(seen, e.ID)
		}
		if page.Older == nil {
			break
		}
		page, err = s.AuditEntries(ctx, alice, models.AuditFilter{}, page.Older, nil)
		if err != nil {
			t.Fatal(err)
		}
		pages++
	}
	var want int64
	testdb.Must(t, s.DB().Table("audit_entries").Where("account_id = ?", aliceRes.Account.ID).Count(&want))
	if int64(len(seen)) != want || pages != int(want+49)/50 {
		t.Fatalf("paged %d entries in %d pages, want %d", len(seen), pages, want)
	}
	// Newer from the last page leads back, and page 1 has no Newer.
	if first.Newer != nil {
		t.Fatal("the first page has a Newer link")
	}
	back, err := s.AuditEntries(ctx, alice, models.AuditFilter{}, nil, page.Newer)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Entries) != models.AuditPageSize || back.Older == nil {
		t.Fatalf("newer page: %d entries", len(back.Entries))
	}
	// A cursor, a filter or an account filter naming Bob's data changes nothing.
	// Bob's account ID answers as unknown (the error was dropped here
	// before, so this went unchecked).
	cursor := &models.AuditCursor{At: clock.Now().Add(time.Hour), ID: 1 << 40}
	if _, err := s.AuditEntries(ctx, alice, models.AuditFilter{AccountID: bob.AccountID, Target: "Bob"}, cursor, nil); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("Alice filters by Bob's account: %v, want not found", err)
	}
	p, err := s.AuditEntries(ctx, alice, models.AuditFilter{Target: "Bob"}, cursor, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range p.Entries {
		if *e.AccountID != aliceRes.Account.ID {
			t.Fatal("Alice reached Bob's entries through a filter or cursor")
		}
	}
	// One entry by ID: Bob's answers not found to Alice, hers is found.
	var bobEntry, aliceEntry uint64
	testdb.Must(t, s.DB().Table("audit_entries").Select("MIN(id)").Where("account_id = ?", bob.AccountID).Scan(&bobEntry))
	testdb.Must(t, s.DB().Table("audit_entries").Select("MIN(id)").Where("account_id = ?", aliceRes.Account.ID).Scan(&aliceEntry))
	if bobEntry == 0 || aliceEntry == 0 {
		t.Fatal("no entries to look up")
	}
	if _, err := s.AuditEntryByID(ctx, alice, bobEntry); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("Alice reads Bob's entry #%d: %v", bobEntry, err)
	}
	if e, err := s.AuditEntryByID(ctx, alice, aliceEntry); err != nil || e.ID != aliceEntry {
		t.Fatalf("Alice's own entry #%d: %v", aliceEntry, err)
	}
	// Auditors see both accounts; the account filter narrows to one.
	aud, err := s.CreateStaffUser(ctx, "aud@keydesk.example", pw, models.RoleAuditor, models.SystemActor())
	if err != nil {
		t.Fatal(err)
	}
	auditor := models.Actor{UserID: aud.ID, Email: aud.Email, Role: models.RoleAuditor}
	all, err := s.AuditEntries(ctx, auditor, models.AuditFilter{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	accounts := map[uint]bool{}
	for _, e := range all.Entries {
		if e.AccountID != nil {
			accounts[*e.AccountID] = true
		}
	}
	if len(accounts) != 2 {
		t.Fatalf("auditor sees %d accounts on page 1", len(accounts))
	}
	onlyBob, err := s.AuditEntries(ctx, auditor, models.AuditFilter{AccountID: bob.AccountID}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range onlyBob.Entries {
		if *e.AccountID != bob.AccountID {
			t.Fatal("account filter leaks other accounts")
		}
	}
	if _, err := s.AuditEntries(ctx, models.Actor{Role: "nobody"}, models.AuditFilter{}, nil, nil); !errors.Is(err, models.ErrForbidden) {
		t.Fatalf("unknown role: %v", err)
	}
}

func TestAuditFilters(t *testing.T) {
	t.Parallel()
	s, clock := testdb.Open(t)
	actor, res := seedLog(t, s)
	clock.Advance(48 * time.Hour)
	other := meta
	other.IP = "192.0.2.99"
	actor.Meta = other
	actor.AuthAt = s.Now()
	if _, _, err := s.ResetSecret(ctx, actor, res.Key.ID, 0); err != nil {
		t.Fatal(err)
	}
	count := func(f models.AuditFilter) int {
		p, err := s.AuditEntries(ctx, actor, f, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return len(p.Entries)
	}
	day := s.Now().Truncate(24 * time.Hour)
	for name, tc := range map[string]struct {
		f    models.AuditFilter
		want int
	}{
		"action":         {models.AuditFilter{Actions: []string{models.ActionSecretReset}}, 2},
		"two actions":    {models.AuditFilter{Actions: []string{models.ActionSecretReset, models.ActionKeyRenamed}}, 3},
		"ip":             {models.AuditFilter{IP: "192.0.2.99"}, 2},
		"ip and action":  {models.AuditFilter{IP: "192.0.2.99", Actions: []string{models.ActionKeyRenamed}}, 0},
		"from today":     {models.AuditFilter{From: &day}, 2},
		"actor":          {models.AuditFilter{Actor: "OWNER@acme"}, count(models.AuditFilter{})},
		"actor no match": {models.AuditFilter{Actor: "nobody"}, 0},
		"target by name": {models.AuditFilter{Target: "acme prod", Actions: []string{models.ActionKeyRenamed}}, 1},
		"like wildcards": {models.AuditFilter{Actor: "%"}, 0},
	} {
		if got := count(tc.f); got != tc.want {
			t.Errorf("%s: %d entries, want %d", name, got, tc.want)
		}
	}
}

func TestAuditExportMatchesPageAndCarriesCheckpoint(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	actor, _ := seedLog(t, s)
	f := models.AuditFilter{Actions: []string{models.ActionLoginSucceeded, models.ActionSecretReset}}
	page, err := s.AuditEntries(ctx, actor, f, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	var began *models.AuditHead
	cp, err := s.ExportAudit(ctx, actor, f, "csv", func(c *models.AuditHead) error { began = c; return nil },
		func(e models.AuditEntry) error { got = append(got, e.ID); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if began == nil || cp.Entry != began.Entry {
		t.Fatal("begin did not receive the checkpoint")
	}
	if len(got) != len(page.Entries) || len(got) != 4 {
		t.Fatalf("export has %d rows, page %d", len(got), len(page.Entries))
	}
	for i := range got {
		if got[i] != page.Entries[i].ID {
			t.Fatalf("row %d: export #%d, page #%d", i, got[i], page.Entries[i].ID)
		}
	}
	// The export is audited, and the checkpoint covers that entry.
	var last models.AuditEntry
	testdb.Must(t, s.DB().Order("id DESC").Take(&last))
	if last.Action != models.ActionAuditExported || cp.Entry != last.ID || cp.Hash != last.Hash || cp.Link != last.Link {
		t.Fatalf("export entry %+v, checkpoint %+v", last, cp)
	}
	if r := verifyChain(t, s); !r.OK || r.Checkpoints != 1 || r.LastCheckpoint != cp.Entry || r.AnchorHead != cp.Entry {
		t.Fatalf("verify after export: %+v", r)
	}
}

func TestAuditReviews(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	actor, res := seedLog(t, s)
	st, err := s.AuditStatusFor(ctx, actor)
	if err != nil {
		t.Fatal(err)
	}
	if st.LastReview != nil || st.NewSinceReview == 0 || st.Head == 0 {
		t.Fatalf("before review: %+v", st)
	}
	if _, err := s.MarkReviewed(ctx, actor, st.Head, "weekly check"); err != nil {
		t.Fatal(err)
	}
	st2, err := s.AuditStatusFor(ctx, actor)
	if err != nil {
		t.Fatal(err)
	}
	if st2.LastReview == nil || st2.LastReview.ThroughID != st.Head || st2.LastReview.Note != "weekly check" {
		t.Fatalf("after review: %+v", st2)
	}
	// The review itself is audited, and so is an export, but neither is
	// news to the person who just made them.
	if st2.NewSinceReview != 0 {
		t.Fatalf("%d new since my own review, want 0", st2.NewSinceReview)
	}
	if _, err := s.ExportAudit(ctx, actor, models.AuditFilter{}, "csv", func(*models.AuditHead) error { return nil }, func(models.AuditEntry) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if st2, err = s.AuditStatusFor(ctx, actor); err != nil || st2.NewSinceReview != 0 {
		t.Fatalf("%d new since my own review and export, want 0", st2.NewSinceReview)
	}
	if _, err := s.RenameKey(ctx, actor, res.Key.ID, "Acme renamed"); err != nil {
		t.Fatal(err)
	}
	if st2, err = s.AuditStatusFor(ctx, actor); err != nil || st2.NewSinceReview != 1 {
		t.Fatalf("%d new since review after a rename, want 1", st2.NewSinceReview)
	}
	// Reviews are per scope: an auditor's global review starts from nothing.
	aud, err := s.CreateStaffUser(ctx, "aud@keydesk.example", pw, models.RoleAuditor, models.SystemActor())
	if err != nil {
		t.Fatal(err)
	}
	auditor := models.Actor{UserID: aud.ID, Email: aud.Email, Role: models.RoleAuditor}
	if st3, err := s.AuditStatusFor(ctx, auditor); err != nil || st3.LastReview != nil {
		t.Fatal("the owner's review counts as the auditor's")
	}
	if _, err := s.MarkReviewed(ctx, actor, 1<<40, ""); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("review through a missing entry: %v", err)
	}
	support := models.Actor{UserID: 99, Email: "s@x.example", Role: models.RoleSupport}
	if _, err := s.MarkReviewed(ctx, support, st.Head, ""); !errors.Is(err, models.ErrForbidden) {
		t.Fatalf("support marked reviewed: %v", err)
	}
	var n int64
	testdb.Must(t, s.DB().Table("audit_entries").Where("action = ?", models.ActionAuditReviewed).Count(&n))
	if n != 1 {
		t.Fatalf("%d audit.reviewed entries", n)
	}
}

func TestAuditCursorRoundTrip(t *testing.T) {
	t.Parallel()
	c := models.AuditCursor{At: time.Date(2026, 11, 26, 14, 3, 11, 123456000, time.UTC), ID: 48211}
	back, ok := models.ParseAuditCursor(c.String())
	if !ok || !back.At.Equal(c.At) || back.ID != c.ID {
		t.Fatalf("round trip %v → %q → %v", c, c.String(), back)
	}
	for _, bad := range []string{"", "x", "1-", "-1", "12-ab", "1.5-2"} {
		if _, ok := models.ParseAuditCursor(bad); ok {
			t.Errorf("ParseAuditCursor(%q) accepted", bad)
		}
	}
}
