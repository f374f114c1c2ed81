package models_test

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"keydesk/models"
	"keydesk/models/testdb"
)

// The filter benchmark's log: a varied one (models.Seed: Zipf-spread
// trees, owners, API keys, targets, addresses), KEYDESK_BENCH_AUDIT entries
// (1,000,000 by default) over 2,000 trees and 20,000 sub-accounts; or an
// existing seeded database (.ci/seed) named by KEYDESK_BENCH_DSN, with its
// audit key in KEYDESK_BENCH_AUDIT_KEY (hex), read only; on SQLite with
// KEYDESK_BENCH_CACHE=dir, a file of that directory seeded once per size.
var (
	filterOnce  sync.Once
	filterStore *models.Store
	filterErr   error
)

func filterBenchLog(b *testing.B) *models.Store {
	b.Helper()
	filterOnce.Do(func() {
		if dsn := os.Getenv("KEYDESK_BENCH_DSN"); dsn != "" {
			key, err := hex.DecodeString(os.Getenv("KEYDESK_BENCH_AUDIT_KEY"))
			if err != nil {
				filterErr = err
				return
			}
			filterStore, filterErr = models.Open(ctx, dsn, models.Options{AuditKey: key})
			return
		}
		if cache := os.Getenv("KEYDESK_BENCH_CACHE"); cache != "" && testdb.Engine() == models.SQLite {
			filterStore, filterErr = cachedFilterLog(b, cache)
			return
		}
		dir, err := os.MkdirTemp("", "keydesk-filter-bench-")
		if err != nil {
			filterErr = err
			return
		}
		dsn, drop := dir+"/bench.db", func() {}
		if testdb.Engine() == models.Postgres {
			if dsn, drop, err = testdb.NewSchema(); err != nil {
				filterErr = err
				return
			}
		}
		prev := benchCleanup
		benchCleanup = func() {
			if prev != nil {
				prev()
			}
			filterStore.Close()
			drop()
			os.RemoveAll(dir)
		}
		opt := testdb.Options(testdb.NewClock())
		opt.AuditAnchor = dir + "/keydesk.audit-anchor"
		s, err := models.Open(ctx, dsn, opt)
		if err != nil {
			filterErr = err
			return
		}
		filterStore = s
		if _, err := s.Migrate(ctx); err != nil {
			filterErr = err
			return
		}
		start := time.Now()
		if _, err := s.Seed(ctx, models.SeedOptions{Accounts: 2000, Subaccounts: 20000, BigTree: 1000, AuditEntries: benchLogSize(), DeferIndexes: true}); err != nil {
			filterErr = err
			return
		}
		filterErr = s.Analyze(ctx)
		b.Logf("seeded %d varied entries in %v", benchLogSize(), time.Since(start).Round(time.Millisecond))
	})
	if filterErr != nil {
		b.Fatal(filterErr)
	}
	return filterStore
}

// cachedFilterLog is the SQLite filter log kept in dir between runs, one
// file per size (KEYDESK_BENCH_CACHE=dir): seeded once, then reopened (a
// million entries take minutes to seed on a shared machine, and .ci/bench
// audit runs several benchmark binaries on it). The ".done" file is
// written last: a seed cut short is started again.
func cachedFilterLog(b *testing.B, dir string) (*models.Store, error) {
	base := filepath.Join(dir, "keydesk-filter-bench-"+strconv.Itoa(benchLogSize()))
	done := base + ".done"
	_, err := os.Stat(done)
	fresh := err != nil
	if fresh {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		for _, f := range []string{base + ".db", base + ".db-wal", base + ".db-shm", base + ".anchor"} {
			if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
				return nil, err
			}
		}
	}
	opt := testdb.Options(testdb.NewClock())
	opt.AuditAnchor = base + ".anchor"
	s, err := models.Open(ctx, base+".db", opt)
	if err != nil {
		return nil, err
	}
	prev := benchCleanup
	benchCleanup = func() {
		if prev != nil {
			prev()
		}
		s.Close()
	}
	if _, err := s.Migrate(ctx); err != nil || !fresh {
		return s, err
	}
	start := time.Now()
	if _, err := s.Seed(ctx, models.SeedOptions{Accounts: 2000, Subaccounts: 20000, BigTree: 1000, AuditEntries: benchLogSize(), DeferIndexes: true}); err != nil {
		return nil, err
	}
	b.Logf("seeded %d varied entries in %v, kept in %s", benchLogSize(), time.Since(start).Round(time.Millisecond), base+".db")
	return s, os.WriteFile(done, nil, 0o644)
}

// BenchmarkAuditFilters: the first page of each filter of the audit page,
// alone and combined, as an auditor and as an owner, against the
// unfiltered first page of the same reader, alternated in one loop.
// x-unfiltered is the ratio of their times (docs/DESIGN.md target 7: ≤ 2).
func BenchmarkAuditFilters(b *testing.B) {
	s := filterBenchLog(b)
	// Reading the page needs the role only (no user row in a read-only
	// external database).
	auditor := models.Actor{Email: "aud@filter-bench.example", Role: models.RoleAuditor}
	// Probe values: a tree of the Zipf tail (50) and the busiest (0).
	var probe, busy models.AuditEntry
	if err := s.DB().Where("actor_label = ? AND target_type = 'apikey'", models.SeedOwnerEmail(50)).Order("id DESC").Limit(1).Find(&probe).Error; err != nil || probe.ID == 0 {
		b.Fatalf("no entry of tree 50 (%v): seed with models.Seed", err)
	}
	if err := s.DB().Where("actor_label = ?", models.SeedOwnerEmail(0)).Order("id DESC").Limit(1).Find(&busy).Error; err != nil || busy.ID == 0 {
		b.Fatalf("no entry of tree 0: %v", err)
	}
	var sub models.Account
	if err := s.DB().Where("parent_id = ?", *probe.TreeID).Order("id").Limit(1).Find(&sub).Error; err != nil {
		b.Fatal(err)
	}
	var busySub models.Account
	if err := s.DB().Where("parent_id = ?", *busy.TreeID).Order("id").Limit(1).Find(&busySub).Error; err != nil || busySub.ID == 0 {
		b.Fatalf("no sub-account of tree 0: %v", err)
	}
	owner := models.Actor{UserID: *probe.ActorUserID, Email: probe.ActorLabel, Role: models.RoleOwner, AccountID: *probe.TreeID}
	day := probe.At.Truncate(24 * time.Hour)
	dayEnd := day.Add(24*time.Hour - time.Microsecond)
	uid := strconv.FormatUint(uint64(*probe.ActorUserID), 10)
	busyUID := strconv.FormatUint(uint64(*busy.ActorUserID), 10)
	cases := []filterCase{
		{"action-rare", false, models.AuditFilter{Actions: []string{models.ActionLimitChanged}}, nil},
		{"action-common", false, models.AuditFilter{Actions: []string{models.ActionLoginSucceeded}}, nil},
		{"two-actions", false, models.AuditFilter{Actions: []string{models.ActionLimitChanged, models.ActionSubaccountNew}}, nil},
		{"actor-email", false, models.AuditFilter{Actor: probe.ActorLabel}, nil},
		{"actor-email-busy", false, models.AuditFilter{Actor: busy.ActorLabel}, nil},
		{"actor-prefix", false, models.AuditFilter{Actor: "owner00005"}, nil},
		{"actor-id", false, models.AuditFilter{Actor: uid}, nil},
		{"target-id", false, models.AuditFilter{Target: probe.TargetID}, nil},
		{"target-name", false, models.AuditFilter{Target: probe.TargetName}, nil},
		{"target-prefix", false, models.AuditFilter{Target: "bench 000050"}, nil},
		{"ip", false, models.AuditFilter{IP: probe.IP}, nil},
		{"one-day", false, models.AuditFilter{From: &day, To: &dayEnd}, nil},
		{"account", false, models.AuditFilter{AccountID: *probe.TreeID}, nil},
		{"sub-account", false, models.AuditFilter{AccountID: sub.ID}, nil},
		{"actor+action", false, models.AuditFilter{Actor: probe.ActorLabel, Actions: []string{models.ActionKeyRenamed, models.ActionSecretReset}}, nil},
		{"target+ip", false, models.AuditFilter{Target: probe.TargetID, IP: probe.IP}, nil},
		{"day+actor-prefix", false, models.AuditFilter{From: &day, To: &dayEnd, Actor: "owner00005"}, nil},
		{"account+action", false, models.AuditFilter{AccountID: *probe.TreeID, Actions: []string{models.ActionLoginSucceeded}}, nil},
		{"owner/action-rare", true, models.AuditFilter{Actions: []string{models.ActionLimitChanged}}, nil},
		{"owner/two-actions", true, models.AuditFilter{Actions: []string{models.ActionKeyRenamed, models.ActionSecretReset}}, nil},
		{"owner/target-name", true, models.AuditFilter{Target: probe.TargetName}, nil},
		{"owner/ip", true, models.AuditFilter{IP: probe.IP}, nil},
		{"owner/actor-apikeys", true, models.AuditFilter{Actor: "API key"}, nil},
		// Combinations of a busy actor, tree or owner with a rare value
		// (an address, a rare action), or a prefix with a rare action: the
		// value's few entries among the busy one's many (issue 13 #6, "any
		// filter combination"). "busyowner" is the busiest tree's owner.
		{"combo/actor-busy+action-rare", false, models.AuditFilter{Actor: busy.ActorLabel, Actions: []string{models.ActionLimitChanged}}, nil},
		{"combo/actor-busy+two-rare", false, models.AuditFilter{Actor: busy.ActorLabel, Actions: []string{models.ActionLimitChanged, models.ActionSubaccountNew}}, nil},
		{"combo/actor-id-busy+action-rare", false, models.AuditFilter{Actor: busyUID, Actions: []string{models.ActionLimitChanged}}, nil},
		{"combo/account-busy+action-rare", false, models.AuditFilter{AccountID: *busy.TreeID, Actions: []string{models.ActionLimitChanged}}, nil},
		{"combo/ip-busy+action-rare", false, models.AuditFilter{IP: busy.IP, Actions: []string{models.ActionLimitChanged}}, nil},
		{"combo/day+action-rare", false, models.AuditFilter{From: &day, To: &dayEnd, Actions: []string{models.ActionLimitChanged}}, nil},
		{"combo/actor-prefix+action-rare", false, models.AuditFilter{Actor: "owner00005", Actions: []string{models.ActionLimitChanged}}, nil},
		{"combo/target-prefix+action-rare", false, models.AuditFilter{Target: "bench 000050", Actions: []string{models.ActionLimitChanged}}, nil},
		{"combo/account-busy+ip", false, models.AuditFilter{AccountID: *busy.TreeID, IP: probe.IP}, nil},
		{"combo/actor-busy+ip", false, models.AuditFilter{Actor: busy.ActorLabel, IP: probe.IP}, nil},
		{"combo/actor-busy+day", false, models.AuditFilter{Actor: busy.ActorLabel, From: &day, To: &dayEnd}, nil},
		{"combo/account-busy+day+action-rare", false, models.AuditFilter{AccountID: *busy.TreeID, From: &day, To: &dayEnd, Actions: []string{models.ActionLimitChanged}}, nil},
		{"combo/busyowner/action-rare", true, models.AuditFilter{Actions: []string{models.ActionLimitChanged}}, nil},
		{"combo/busyowner/ip", true, models.AuditFilter{IP: probe.IP}, nil},
		// An address with an actor ID or a target (the busy owner's
		// e-mail is the target of their logins), and within the busiest
		// tree an actor prefix, an actor ID or a target prefix (11 names)
		// with a rare action; an actor ID with two rare actions.
		{"combo/actor-id-busy+two-rare", false, models.AuditFilter{Actor: busyUID, Actions: []string{models.ActionLimitChanged, models.ActionSubaccountNew}}, nil},
		{"combo/actor-id-busy+ip", false, models.AuditFilter{Actor: busyUID, IP: probe.IP}, nil},
		{"combo/target-busy+ip", false, models.AuditFilter{Target: busy.ActorLabel, IP: probe.IP}, nil},
		{"combo/busyowner/actor-prefix+action-rare", true, models.AuditFilter{Actor: "owner000000", Actions: []string{models.ActionLimitChanged}}, nil},
		{"combo/busyowner/actor-id+action-rare", true, models.AuditFilter{Actor: busyUID, Actions: []string{models.ActionLimitChanged}}, nil},
		{"combo/busyowner/target-prefix+action-rare", true, models.AuditFilter{Target: "bench 000000 sub 86", Actions: []string{models.ActionLimitChanged}}, nil},
		// The other pairs of the page's filters, so that every pair of
		// dimensions has a case (BENCHMARKS.md "Filters, seventh pass"
		// lists them): the tree (an account filter or an owner), a
		// sub-account (busysub: the busiest tree's first), the actor (an
		// e-mail or prefix, or a user ID), the target (a name or prefix,
		// or an ID: the busiest owner's user ID is the target ID of their
		// logins), the address, actions, dates. A busy value with a rare
		// or another tree's one, so that walking one and testing the
		// other would show.
		{"combo/target-id-busy+ip", false, models.AuditFilter{Target: busyUID, IP: probe.IP}, nil},
		{"combo/target-id-busy+action-rare", false, models.AuditFilter{Target: busyUID, Actions: []string{models.ActionLimitChanged}}, nil},
		{"combo/actor-busy+target-name", false, models.AuditFilter{Actor: busy.ActorLabel, Target: probe.TargetName}, nil},
		{"combo/actor-busy+target-id", false, models.AuditFilter{Actor: busy.ActorLabel, Target: probe.TargetID}, nil},
		{"combo/actor-id-busy+target-name", false, models.AuditFilter{Actor: busyUID, Target: probe.TargetName}, nil},
		{"combo/actor-id-busy+target-id", false, models.AuditFilter{Actor: busyUID, Target: probe.TargetID}, nil},
		{"combo/actor-id-busy+day", false, models.AuditFilter{Actor: busyUID, From: &day, To: &dayEnd}, nil},
		{"combo/target-busy+day", false, models.AuditFilter{Target: busy.ActorLabel, From: &day, To: &dayEnd}, nil},
		{"combo/target-id-busy+day", false, models.AuditFilter{Target: busyUID, From: &day, To: &dayEnd}, nil},
		{"combo/ip-busy+day", false, models.AuditFilter{IP: busy.IP, From: &day, To: &dayEnd}, nil},
		{"combo/account-busy+day", false, models.AuditFilter{AccountID: *busy.TreeID, From: &day, To: &dayEnd}, nil},
		{"combo/account+actor-id-busy", false, models.AuditFilter{AccountID: *probe.TreeID, Actor: busyUID}, nil},
		{"combo/account+target-id-busy", false, models.AuditFilter{AccountID: *probe.TreeID, Target: busyUID}, nil},
		{"combo/account-busy+actor-prefix", false, models.AuditFilter{AccountID: *busy.TreeID, Actor: "owner00005"}, nil},
		{"combo/account-busy+target-prefix", false, models.AuditFilter{AccountID: *busy.TreeID, Target: "bench 000050"}, nil},
		{"combo/busyowner/actor-id", true, models.AuditFilter{Actor: busyUID}, nil},
		{"combo/busyowner/target-id", true, models.AuditFilter{Target: busyUID}, nil},
		{"combo/busysub+actor-busy", false, models.AuditFilter{AccountID: busySub.ID, Actor: busy.ActorLabel}, nil},
		{"combo/busysub+actor-id-busy", false, models.AuditFilter{AccountID: busySub.ID, Actor: busyUID}, nil},
		{"combo/busysub+target-name", false, models.AuditFilter{AccountID: busySub.ID, Target: busySub.Name}, nil},
		{"combo/busysub+target-id", false, models.AuditFilter{AccountID: busySub.ID, Target: strconv.FormatUint(uint64(busySub.ID), 10)}, nil},
		{"combo/busysub+ip-busy", false, models.AuditFilter{AccountID: busySub.ID, IP: busy.IP}, nil},
		{"combo/busysub+action-rare", false, models.AuditFilter{AccountID: busySub.ID, Actions: []string{models.ActionLimitChanged}}, nil},
		{"combo/busysub+day", false, models.AuditFilter{AccountID: busySub.ID, From: &day, To: &dayEnd}, nil},
	}
	for _, c := range cases {
		who := auditor
		if c.owner {
			who = owner
		}
		if strings.HasPrefix(c.name, "combo/busyowner/") {
			who = models.Actor{UserID: *busy.ActorUserID, Email: busy.ActorLabel, Role: models.RoleOwner, AccountID: *busy.TreeID}
		}
		b.Run(c.name, func(b *testing.B) {
			var filtered, unfiltered time.Duration
			rows := 0
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				p, err := s.AuditEntries(ctx, who, c.f, nil, nil)
				t1 := time.Now()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := s.AuditEntries(ctx, who, models.AuditFilter{}, nil, nil); err != nil {
					b.Fatal(err)
				}
				filtered, unfiltered, rows = filtered+t1.Sub(t0), unfiltered+time.Since(t1), len(p.Entries)
			}
			b.ReportMetric(float64(filtered.Nanoseconds())/float64(b.N), "filtered-ns")
			b.ReportMetric(float64(unfiltered.Nanoseconds())/float64(b.N), "unfiltered-ns")
			b.ReportMetric(float64(filtered)/float64(unfiltered), "x-unfiltered")
			b.ReportMetric(float64(rows), "rows")
		})
	}
}
