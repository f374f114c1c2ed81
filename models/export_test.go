package models

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Internals exposed to the external tests of this package only.
var (
	NewSecret    = newSecret
	NewAPIKey    = newAPIKey
	DigestSecret = digestSecret
)

// MigrateLock is the advisory lock one migrating instance holds.
func (s *Store) MigrateLock() int64 { return s.lock(lockMigrate) }

// AuditCheckLock is the advisory lock the store's periodic audit check tries.
func (s *Store) AuditCheckLock() int64 { return s.lock(lockAuditCheck) }

// MigrateTo applies the migrations up to version v only.
func (s *Store) MigrateTo(ctx context.Context, v int) ([]int, error) { return s.migrateUpTo(ctx, v) }

// SeedAuditLog appends n chained (keyed) entries spread over accounts,
// fast (bulk inserts in one transaction), for benchmarks at a million
// entries.
func (s *Store) SeedAuditLog(n int, accounts []uint, start time.Time) error {
	return s.seedAuditLog(n, accounts, start, true)
}

// SeedLegacyAuditLog appends n entries as keydesk wrote them before the
// chain was keyed (plain SHA-256 links only), to test the migration.
func (s *Store) SeedLegacyAuditLog(n int, accounts []uint, start time.Time) error {
	return s.seedAuditLog(n, accounts, start, false)
}

func (s *Store) seedAuditLog(n int, accounts []uint, start time.Time, keyed bool) error {
	return s.db.Transaction(func(tx *gorm.DB) error {
		var head AuditEntry
		if err := tx.Order("id DESC").Limit(1).Find(&head).Error; err != nil {
			return err
		}
		prev := head
		batch := make([]AuditEntry, 0, 500)
		for i := 0; i < n; i++ {
			acc := accounts[i%len(accounts)]
			uid := uint(1)
			e := AuditEntry{ID: prev.ID + 1, At: start.Add(time.Duration(i) * time.Second).UTC(), ActorType: "user", ActorUserID: &uid,
				ActorLabel: "owner@acme.example", ActorRole: "owner", AccountID: &acc, TreeID: &acc, Action: ActionKeyRenamed, TargetType: "apikey",
				TargetID: "1", TargetName: "key", IP: "203.0.113.7", UserAgent: "bench", Details: `{"from":"a","to":"b"}`, PrevHash: prev.Hash}
			e.Hash = e.computeHash()
			if keyed {
				if err := s.linkEntry(&e, &prev); err != nil {
					return err
				}
			}
			prev = e
			batch = append(batch, e)
			if len(batch) == cap(batch) || i == n-1 {
				if err := tx.Create(&batch).Error; err != nil {
					return err
				}
				batch = batch[:0]
			}
		}
		return nil
	})
}

// SetAuthLimiterMax bounds the in-memory REST/SMTP throttle table at n
// entries (tests of the bound: each failure writes to the database, so a
// test cannot afford AuthThrottleMaxEntries of them).
func (s *Store) SetAuthLimiterMax(n int) {
	s.limiter.mu.Lock()
	defer s.limiter.mu.Unlock()
	s.limiter.max = n
}

// AuthLimiterEntries is the size of the in-memory REST/SMTP throttle table.
func (s *Store) AuthLimiterEntries() int {
	s.limiter.mu.Lock()
	defer s.limiter.mu.Unlock()
	return len(s.limiter.m)
}

// HoldHashSlot takes one password-hashing slot until release is called, as
// a long hash would.
func (s *Store) HoldHashSlot() (release func()) {
	s.hashes.slots <- struct{}{}
	return func() { <-s.hashes.slots }
}

// VerifyCacheEntries is how many keys the verification cache holds.
func (s *Store) VerifyCacheEntries() int { return s.cache.len() }

// AuditAppendForBench appends one entry in its own transaction; unkeyed
// writes it as keydesk did before the chain was keyed (for the ratio in
// BENCHMARKS.md).
func (s *Store) AuditAppendForBench(ctx context.Context, unkeyed bool) error {
	s.benchUnkeyed.Store(unkeyed)
	return s.tx(ctx, func(tx *gorm.DB) error {
		return s.appendAudit(tx, SystemActor(), ActionLimitChanged, 0, auditTarget{Type: "bench", ID: "1", Name: "bench"}, map[string]any{"n": 1})
	})
}

// ExplainAuditEntries returns the plan of each query AuditEntries runs for
// this filter and cursor: EXPLAIN (COSTS OFF) on PostgreSQL, EXPLAIN QUERY
// PLAN on SQLite, one line per plan node.
func (s *Store) ExplainAuditEntries(ctx context.Context, actor Actor, f AuditFilter, before *AuditCursor) ([]string, error) {
	q, err := s.buildAuditQuery(ctx, actor, f, before, false, 0, AuditPageSize+1, nil)
	if err != nil || q.none {
		return nil, err
	}
	plan, err := s.explain(ctx, q.sql, q.args)
	if err != nil {
		return nil, err
	}
	// The prefix resolution, when there is one, is a query of its own
	// (unless the page's query finds the values itself: prefixPage).
	if q.prefix != nil {
		return plan, nil
	}
	_, tree, err := s.scopeConds(ctx, actor, f)
	if err != nil {
		return nil, err
	}
	for _, p := range []struct{ col, v string }{{"actor_label", f.Actor}, {"target_name", f.Target}} {
		if p.v == "" {
			continue
		}
		r, args := s.prefixValuesSQL(p.col, strings.ToLower(strings.TrimSpace(p.v)), tree, nil)
		more, err := s.explain(ctx, r, args)
		if err != nil {
			return nil, err
		}
		plan = append(plan, more...)
	}
	return plan, nil
}

// ExplainAuditEntriesWithout (PostgreSQL) is the plan of a page's query
// with the indexes named dropped, and sequential scans, bitmaps and sorts
// disabled, in a transaction rolled back after: on a test's small log the
// planner rightly prefers one value's short walk (or a scan) to a pair's
// index, and what is checked is that an index can answer the query's
// shape (at scale the planner walks it: BENCHMARKS.md).
func (s *Store) ExplainAuditEntriesWithout(ctx context.Context, actor Actor, f AuditFilter, drop []string) (plan []string, err error) {
	q, err := s.buildAuditQuery(ctx, actor, f, nil, false, 0, AuditPageSize+1, nil)
	if err != nil || q.none {
		return nil, err
	}
	done := errors.New("rolled back")
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, d := range drop {
			if err := tx.Exec("DROP INDEX IF EXISTS " + d).Error; err != nil {
				return err
			}
		}
		for _, set := range []string{"enable_seqscan", "enable_bitmapscan", "enable_sort"} {
			if err := tx.Exec("SET LOCAL " + set + " = off").Error; err != nil {
				return err
			}
		}
		if plan, err = (&Store{db: tx, engine: s.engine}).explain(ctx, q.sql, q.args); err != nil {
			return err
		}
		return done
	})
	if errors.Is(err, done) {
		err = nil
	}
	return plan, err
}

// AuditKeysReadTheTable (SQLite) lists the instructions of a page's query
// that read a column of a table row through an index's deferred seek
// (DeferredSeek's table cursor): a keys query whose index holds all it
// reads has none, whether or not SQLite calls the index covering. The
// page's own rows are read by rowid (SeekRowid), not deferred.
func (s *Store) AuditKeysReadTheTable(ctx context.Context, actor Actor, f AuditFilter, before *AuditCursor) ([]string, error) {
	q, err := s.buildAuditQuery(ctx, actor, f, before, false, 0, AuditPageSize+1, nil)
	if err != nil || q.none {
		return nil, err
	}
	var ops []struct {
		Addr       int
		Opcode     string
		P1, P2, P3 int
		P4         *string
		P5         int
		Comment    *string
	}
	if err := s.db.WithContext(ctx).Raw("EXPLAIN "+q.sql, q.args...).Scan(&ops).Error; err != nil {
		return nil, err
	}
	deferred := map[int]bool{}
	for _, o := range ops {
		if o.Opcode == "DeferredSeek" {
			deferred[o.P3] = true
		}
	}
	var reads []string
	for _, o := range ops {
		if deferred[o.P1] && (o.Opcode == "Column" || o.Opcode == "Rowid" || o.Opcode == "Offset") {
			reads = append(reads, fmt.Sprintf("%d %s %d %d %d", o.Addr, o.Opcode, o.P1, o.P2, o.P3))
		}
	}
	return reads, nil
}

// ExplainAuditExport returns the plan of one batch of an export of f up
// to entry through (the first batch without a cursor, a later one with).
// On PostgreSQL sequential scans are disabled for it: a batch of 1,000 is
// a large part of a test's log, cheaper to scan, and what is checked is
// that an index can answer the batch's shape.
func (s *Store) ExplainAuditExport(ctx context.Context, actor Actor, f AuditFilter, cursor *AuditCursor, through uint64) (plan []string, err error) {
	q, err := s.buildAuditQuery(ctx, actor, f, cursor, false, through, exportBatch, s.exportSelect)
	if err != nil || q.none {
		return nil, err
	}
	err = s.db.WithContext(ctx).Connection(func(tx *gorm.DB) error {
		if s.engine == Postgres {
			if err := tx.Exec("SET enable_seqscan = off").Error; err != nil {
				return err
			}
			defer tx.Exec("RESET enable_seqscan")
		}
		plan, err = (&Store{db: tx, engine: s.engine}).explain(ctx, q.sql, q.args)
		return err
	})
	return plan, err
}

func (s *Store) explain(ctx context.Context, q string, args []any) ([]string, error) {
	var lines []string
	if s.engine == Postgres {
		if err := s.db.WithContext(ctx).Raw("EXPLAIN (COSTS OFF) "+q, args...).Scan(&lines).Error; err != nil {
			return nil, err
		}
		return lines, nil
	}
	var rows []struct {
		ID, Parent int
		Detail     string
	}
	if err := s.db.WithContext(ctx).Raw("EXPLAIN QUERY PLAN "+q, args...).Scan(&rows).Error; err != nil {
		return nil, err
	}
	for _, r := range rows {
		lines = append(lines, r.Detail)
	}
	return lines, nil
}

// MigrationVersions are the versions of the migrations, in their order.
func MigrationVersions() []int {
	var v []int
	for _, m := range migrations {
		v = append(v, m.Version)
	}
	return v
}

// ExplainAuditStatus returns the plans of AuditStatusFor's two queries
// (the head, then the count since since). On PostgreSQL bitmap scans are
// disabled for it: a test tree's few rows are cheaper to collect and sort,
// and what is checked is that an index gives them in id order (at scale
// the planner walks it: BENCHMARKS.md).
func (s *Store) ExplainAuditStatus(ctx context.Context, actor Actor, since uint64) (hp, cp []string, err error) {
	head, count, err := s.auditStatusQueries(ctx, actor, since)
	if err != nil {
		return nil, nil, err
	}
	err = s.db.WithContext(ctx).Connection(func(tx *gorm.DB) error {
		if s.engine == Postgres {
			if err := tx.Exec("SET enable_bitmapscan = off").Error; err != nil {
				return err
			}
			defer tx.Exec("RESET enable_bitmapscan")
		}
		st := &Store{db: tx, engine: s.engine}
		if hp, err = st.explain(ctx, head.sql, head.args); err != nil {
			return err
		}
		cp, err = st.explain(ctx, count.sql, count.args)
		return err
	})
	return hp, cp, err
}

// ExplainSearchAccounts returns the plan of each query SearchAccounts runs
// for q. On PostgreSQL sequential scans are disabled for it: a test's few
// rows are cheaper to scan, and what is checked is that an index can
// answer each query's shape (at scale the planner picks it: BENCHMARKS.md).
func (s *Store) ExplainSearchAccounts(ctx context.Context, q string) ([][]string, error) {
	var plans [][]string
	err := s.db.WithContext(ctx).Connection(func(tx *gorm.DB) error {
		if s.engine == Postgres {
			if err := tx.Exec("SET enable_seqscan = off").Error; err != nil {
				return err
			}
			defer tx.Exec("RESET enable_seqscan")
		}
		for _, sq := range s.searchQueries(strings.ToLower(strings.TrimSpace(q))) {
			var lines []string
			if s.engine == Postgres {
				if err := tx.Raw("EXPLAIN (COSTS OFF) "+sq.sql, sq.args...).Scan(&lines).Error; err != nil {
					return err
				}
			} else {
				var rows []struct {
					ID, Parent int
					Detail     string
				}
				if err := tx.Raw("EXPLAIN QUERY PLAN "+sq.sql, sq.args...).Scan(&rows).Error; err != nil {
					return err
				}
				for _, r := range rows {
					lines = append(lines, r.Detail)
				}
			}
			plans = append(plans, lines)
		}
		return nil
	})
	return plans, err
}

// StreamAudit is the export's read of the log up to entry through, without
// recording and signing an export (a benchmark on a read-only database).
func (s *Store) StreamAudit(ctx context.Context, actor Actor, f AuditFilter, through uint64, emit func(AuditEntry) error) error {
	return s.streamAudit(ctx, actor, f, through, emit)
}

// FillCachesNow runs KeepCachesWarm's start-up fill once, synchronously.
func (s *Store) FillCachesNow(ctx context.Context) { s.fillCaches(ctx) }

// RefreshCachesNow runs one of KeepCachesWarm's refreshes, synchronously.
func (s *Store) RefreshCachesNow(ctx context.Context) { s.refreshCaches(ctx) }

// MigrationStatements are migration v's engine-specific statements on e,
// and whether it runs online there (outside a transaction).
func MigrationStatements(v int, e Engine) ([]string, bool) {
	for _, m := range migrations {
		if m.Version == v {
			return m.Only[e], m.online(e)
		}
	}
	return nil, false
}
