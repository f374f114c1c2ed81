package models_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"keydesk/models"
	"keydesk/models/testdb"
)

// issue 12 #5: Migrate reports a version as applied only once it is. When
// recording a migration fails, its transaction rolls back, so the version
// must be neither in the list returned nor in schema_migrations.
func TestMigrateReportsOnlyWhatWasApplied(t *testing.T) {
	t.Parallel()
	clock := testdb.NewClock()
	s, err := models.Open(ctx, testdb.DSN(t), testdb.Options(clock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.MigrateTo(ctx, 1); err != nil {
		t.Fatal(err)
	}
	hook := func(db *gorm.DB) {
		if strings.Contains(db.Statement.SQL.String(), "INSERT INTO schema_migrations") {
			_ = db.AddError(errInjected)
		}
	}
	if err := s.DB().Callback().Raw().Before("gorm:raw").Register("test:fail_record", hook); err != nil {
		t.Fatal(err)
	}
	applied, err := s.MigrateTo(ctx, 2)
	if !errors.Is(err, errInjected) {
		t.Fatalf("migrate with the record failing: %v, want the injected failure", err)
	}
	if len(applied) != 0 {
		t.Errorf("migrate returned %v as applied, but its transaction rolled back", applied)
	}
	if v, err := s.CurrentSchemaVersion(ctx); err != nil || v != 1 {
		t.Errorf("schema version %d (%v), want 1", v, err)
	}
}

// finishInterruptedMigration opens a store on a fresh schema migrated up
// to the version before v, runs done (the steps of online migration v an
// interrupted run left done), then migrates to v, which must apply v alone.
func finishInterruptedMigration(t *testing.T, v int, done ...string) *models.Store {
	t.Helper()
	s, err := models.Open(ctx, testdb.DSN(t), testdb.Options(testdb.NewClock()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	prev := 0
	for _, u := range models.MigrationVersions() {
		if u < v {
			prev = u
		}
	}
	if _, err := s.MigrateTo(ctx, prev); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range done {
		testdb.Must(t, s.DB().Exec(stmt))
	}
	applied, err := s.MigrateTo(ctx, v)
	if err != nil || len(applied) != 1 || applied[0] != v {
		t.Fatalf("migrate to %d after the interruption: %v, %v", v, applied, err)
	}
	return s
}

// Migration 29 runs outside a transaction on PostgreSQL (CREATE INDEX
// CONCURRENTLY, so that the log is written meanwhile): a run cut short
// leaves its steps done up to there and the version unrecorded, and the
// next run must finish it. Here the first index was rebuilt and renamed,
// and the second one's build was left under its temporary name (as an
// interrupted CONCURRENTLY build leaves an index, valid or not).
func TestOnlineMigrationFinishesAfterAnInterruption(t *testing.T) {
	if testdb.Engine() != models.Postgres {
		t.Skip("SQLite runs every migration in a transaction")
	}
	t.Parallel()
	s := finishInterruptedMigration(t, 29,
		`CREATE INDEX idx_audit_actor_label_at_29 ON audit_entries((lower(actor_label) COLLATE "C"), at, id) INCLUDE (actor_label, action)`,
		`DROP INDEX idx_audit_actor_label_at`,
		`ALTER INDEX idx_audit_actor_label_at_29 RENAME TO idx_audit_actor_label_at`,
		`CREATE INDEX idx_audit_tree_actor_label_at_29 ON audit_entries(tree_id) INCLUDE (action)`,
	)
	var defs []string
	testdb.Must(t, s.DB().Raw(`SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname LIKE '%actor_label_at%' ORDER BY indexname`).Scan(&defs))
	if len(defs) != 2 {
		t.Fatalf("want the two actor indexes, found %d: %v", len(defs), defs)
	}
	for i, name := range []string{"idx_audit_actor_label_at ", "idx_audit_tree_actor_label_at "} {
		if !strings.Contains(defs[i], name) || !strings.Contains(defs[i], "INCLUDE (actor_label, action)") || !strings.Contains(defs[i], "at, id") {
			t.Errorf("index %d: %s", i, defs[i])
		}
	}
	if v, err := s.CurrentSchemaVersion(ctx); err != nil || v != 29 {
		t.Errorf("schema version %d (%v), want 29", v, err)
	}
}

// The migrations that rebuild the audit log's indexes on PostgreSQL do it
// online: every index is created and dropped CONCURRENTLY, outside a
// transaction. Migration 27 dropped and rebuilt five in one transaction,
// and its DROP INDEX held the table's ACCESS EXCLUSIVE lock until the
// last build ended: at 10,000,000 entries, minutes without a login or a
// page for an instance upgrading from 26.
func TestAuditIndexRebuildsAreOnline(t *testing.T) {
	for _, v := range []int{27, 29, 32, 33, 34, 35} {
		stmts, online := models.MigrationStatements(v, models.Postgres)
		if !online {
			t.Errorf("migration %d runs in a transaction on PostgreSQL", v)
		}
		builds := 0
		for _, st := range stmts {
			up := strings.ToUpper(st)
			if strings.Contains(up, "INDEX") && (strings.HasPrefix(up, "CREATE") || strings.HasPrefix(up, "DROP")) {
				if !strings.Contains(up, " CONCURRENTLY ") {
					t.Errorf("migration %d: %s", v, st)
				}
				if strings.HasPrefix(up, "CREATE") {
					builds++
				}
			}
		}
		if builds == 0 {
			t.Errorf("migration %d builds no index on PostgreSQL: %v", v, stmts)
		}
	}
}

// Migration 27 cut short on PostgreSQL (as TestOnlineMigrationFinishesAfterAnInterruption
// for 29): its first index rebuilt and renamed, the second's build left under
// its temporary name. The next run finishes it, every index as defined.
func TestMigration27FinishesAfterAnInterruption(t *testing.T) {
	if testdb.Engine() != models.Postgres {
		t.Skip("SQLite runs every migration in a transaction")
	}
	t.Parallel()
	s := finishInterruptedMigration(t, 27,
		`CREATE INDEX idx_audit_actor_label_at_27 ON audit_entries((lower(actor_label) COLLATE "C"), at, id) INCLUDE (actor_label)`,
		`DROP INDEX idx_audit_actor_label_at`,
		`ALTER INDEX idx_audit_actor_label_at_27 RENAME TO idx_audit_actor_label_at`,
		`CREATE INDEX idx_audit_target_name_at_27 ON audit_entries(tree_id)`,
	)
	want := map[string]string{
		"idx_audit_actor_label_at":      "INCLUDE (actor_label)",
		"idx_audit_target_name_at":      "INCLUDE (target_name)",
		"idx_audit_tree_actor_label_at": "INCLUDE (actor_label)",
		"idx_audit_tree_target_name_at": "INCLUDE (target_name)",
		"idx_audit_tree_id":             "INCLUDE (action, actor_user_id)",
	}
	var rows []struct{ Indexname, Indexdef string }
	testdb.Must(t, s.DB().Raw(`SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'audit_entries'`).Scan(&rows))
	for _, r := range rows {
		if strings.HasSuffix(r.Indexname, "_27") {
			t.Errorf("temporary index left: %s", r.Indexdef)
		}
		if inc, ok := want[r.Indexname]; ok {
			if !strings.Contains(r.Indexdef, inc) {
				t.Errorf("%s: %s", r.Indexname, r.Indexdef)
			}
			delete(want, r.Indexname)
		}
	}
	if len(want) > 0 {
		t.Errorf("indexes missing after migration 27: %v", want)
	}
}

// An instance that starts while another runs an online migration waits
// for the migration lock without holding a snapshot: CREATE INDEX
// CONCURRENTLY waits for every transaction with an older snapshot to end,
// so a waiter blocked inside SELECT pg_advisory_lock(…) and the migration
// waited for each other until someone killed one (seen with two
// "keydesk migrate" on the 10,000,000-entry database: 6 minutes).
func TestMigrationWaiterDoesNotBlockAnOnlineIndexBuild(t *testing.T) {
	if testdb.Engine() != models.Postgres {
		t.Skip("SQLite runs every migration in a transaction")
	}
	t.Parallel()
	dsn := testdb.DSN(t)
	s1, err := models.Open(ctx, dsn, testdb.Options(testdb.NewClock()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s1.Close() })
	if _, err := s1.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// The migrating instance: the lock on one connection, the index built
	// on another, as migrateUpTo and migrateOnline do.
	sqlDB, err := s1.DB().DB()
	if err != nil {
		t.Fatal(err)
	}
	holder, err := sqlDB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if _, err := holder.ExecContext(ctx, "SELECT pg_advisory_lock($1)", s1.MigrateLock()); err != nil {
		t.Fatal(err)
	}
	unlocked := false
	unlock := func() {
		if !unlocked {
			unlocked = true
			if _, err := holder.ExecContext(context.Background(), "SELECT pg_advisory_unlock($1)", s1.MigrateLock()); err != nil {
				t.Error(err)
			}
		}
	}
	defer unlock()
	// A second instance starts and migrates: it must wait for the lock.
	s2, err := models.Open(ctx, dsn, testdb.Options(testdb.NewClock()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s2.Close() })
	done := make(chan error, 1)
	go func() { _, err := s2.Migrate(ctx); done <- err }()
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("the second instance migrated while the first held the lock: %v", err)
	default:
	}
	// The first instance's online build must finish meanwhile.
	bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	builder, err := sqlDB.Conn(bctx)
	if err != nil {
		t.Fatal(err)
	}
	defer builder.Close()
	start := time.Now()
	if _, err := builder.ExecContext(bctx, "CREATE INDEX CONCURRENTLY idx_test_waiter ON audit_entries(ip)"); err != nil {
		t.Fatalf("CREATE INDEX CONCURRENTLY with a second instance waiting to migrate: %v after %v", err, time.Since(start).Round(time.Millisecond))
	}
	testdb.Must(t, s1.DB().Exec("DROP INDEX idx_test_waiter"))
	unlock()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the second instance's migrate: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second instance still waits after the lock was released")
	}
}

// Analyze (after a seed) refreshes its own schema's statistics only: a
// database-wide ANALYZE waited for every table of the database, another
// schema's among them, and with another store's online migration building
// an index CONCURRENTLY there (which waits for ANALYZE's snapshot), one of
// the two was ended as a deadlock (parallel PostgreSQL tests failed so).
func TestAnalyzeLeavesOtherSchemasAlone(t *testing.T) {
	if testdb.Engine() != models.Postgres {
		t.Skip("PostgreSQL only")
	}
	t.Parallel()
	a, _ := testdb.Open(t)
	b, _ := testdb.Open(t)
	tx := b.DB().Begin()
	defer tx.Rollback()
	testdb.Must(t, tx.Exec("LOCK TABLE audit_entries IN SHARE UPDATE EXCLUSIVE MODE"))
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := a.Analyze(c); err != nil {
		t.Fatalf("Analyze waited for another schema's table: %v", err)
	}
}
