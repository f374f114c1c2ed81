// Package testdb opens throwaway keydesk databases for tests: a SQLite file
// in t.TempDir() by default, or a fresh PostgreSQL schema when
// KEYDESK_TEST_DB names a postgres:// server (as CI does). Only tests
// import it.
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"

	"keydesk/models"
)

// FastArgon keeps password hashing cheap under -race; one test checks the
// production parameters (models.DefaultArgon) separately.
var FastArgon = models.ArgonParams{MemoryKiB: 64, Time: 1, Threads: 1}

// AuditKey is the checkpoint key every test store uses.
var AuditKey = []byte("keydesk-test-audit-key-0123456789abcdef")

// Clock is a settable clock for models.Options.Now. Reading it writes no
// shared memory (an atomic load), so parallel benchmarks measure the
// store's own contention, not the clock's.
type Clock struct {
	mu sync.Mutex // serializes Advance
	t  atomic.Pointer[time.Time]
}

// NewClock starts at a fixed instant.
func NewClock() *Clock {
	c := &Clock{}
	t := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	c.t.Store(&t)
	return c
}

// Now is the current test time.
func (c *Clock) Now() time.Time { return *c.t.Load() }

// Advance moves time forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	t := c.t.Load().Add(d)
	c.t.Store(&t)
	c.mu.Unlock()
}

// Engine is the engine tests run against: "postgres" when KEYDESK_TEST_DB
// is set, else "sqlite".
func Engine() models.Engine {
	if models.IsPostgresDSN(os.Getenv("KEYDESK_TEST_DB")) {
		return models.Postgres
	}
	return models.SQLite
}

// DSN creates an empty database for one test and returns its DSN. On
// PostgreSQL it is a new schema, dropped when the test ends.
func DSN(t testing.TB) string {
	t.Helper()
	if !models.IsPostgresDSN(os.Getenv("KEYDESK_TEST_DB")) {
		return filepath.Join(t.TempDir(), "keydesk.db")
	}
	dsn, drop, err := NewSchema()
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	t.Cleanup(drop)
	return dsn
}

// NewSchema creates a fresh PostgreSQL schema on KEYDESK_TEST_DB and
// returns its DSN and a function that drops it (for data that outlives one
// test, such as a benchmark's million-entry log).
func NewSchema() (string, func(), error) {
	base := os.Getenv("KEYDESK_TEST_DB")
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", nil, fmt.Errorf("connect to KEYDESK_TEST_DB: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, fmt.Errorf("create schema: %w", err)
	}
	drop := func() {
		c, err := pgx.Connect(context.Background(), base)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	}
	u, err := url.Parse(base)
	if err != nil {
		drop()
		return "", nil, fmt.Errorf("parse KEYDESK_TEST_DB: %w", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), drop, nil
}

// QuietLogger drops log lines (every signed audit head is logged at info).
var QuietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// Options are test defaults: the given clock, fast hashing, no log.
func Options(clock *Clock) models.Options {
	return models.Options{Now: clock.Now, Argon: FastArgon, AuditKey: AuditKey, Logger: QuietLogger}
}

// OpenDSN opens and migrates a store on dsn, closed when the test ends.
func OpenDSN(t testing.TB, dsn string, opt models.Options) *models.Store {
	t.Helper()
	s, err := models.Open(context.Background(), dsn, opt)
	if err != nil {
		t.Fatalf("testdb: open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("testdb: migrate: %v", err)
	}
	return s
}

// Open gives a migrated store on a fresh database with a test clock.
func Open(t testing.TB) (*models.Store, *Clock) {
	t.Helper()
	clock := NewClock()
	opt := Options(clock)
	// Signed heads go to an anchor file outside the database, as in serve.
	opt.AuditAnchor = filepath.Join(t.TempDir(), "keydesk.audit-anchor")
	return OpenDSN(t, MigratedDSN(t), opt), clock
}

// MigratedDSN is DSN with every migration already applied. On SQLite it
// is a copy of a file migrated once per test binary: parsing the
// migrations' SQL in SQLite's Go port was half the CPU of a short test
// under -race. On PostgreSQL it is DSN (the server parses).
func MigratedDSN(t testing.TB) string {
	t.Helper()
	if Engine() != models.SQLite {
		return DSN(t)
	}
	b, err := migratedSQLite()
	if err != nil {
		t.Fatalf("testdb: migrated template: %v", err)
	}
	path := filepath.Join(t.TempDir(), "keydesk.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatalf("testdb: %v", err)
	}
	return path
}

// migratedSQLite is the bytes of a freshly migrated SQLite database,
// built once per process (in a folder removed at once).
var migratedSQLite = sync.OnceValues(func() ([]byte, error) {
	dir, err := os.MkdirTemp("", "keydesk-testdb-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "keydesk.db")
	s, err := models.Open(context.Background(), path, Options(NewClock()))
	if err != nil {
		return nil, err
	}
	_, err = s.Migrate(context.Background())
	if err == nil {
		// Everything into the main file: the copy carries no WAL.
		err = s.DB().Exec("PRAGMA wal_checkpoint(TRUNCATE)").Error
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return os.ReadFile(path)
})

// Must fails the test when a raw database call (tx is what a GORM chain
// returns: Exec, Update, Scan, Pluck, Count…) failed, so setup and
// tampering never fail silently and let a check pass on nothing. It
// returns tx for RowsAffected.
func Must(t testing.TB, tx *gorm.DB) *gorm.DB {
	t.Helper()
	if tx.Error != nil {
		t.Fatalf("testdb: %s: %v", tx.Statement.SQL.String(), tx.Error)
	}
	return tx
}

// AllowTampering lifts the audit log's append-only triggers, as someone
// with rights on the database could, so a test can check that
// verification still catches what they then change.
func AllowTampering(t testing.TB, s *models.Store) {
	t.Helper()
	var stmts []string
	if s.Engine() == models.Postgres {
		stmts = []string{"ALTER TABLE audit_entries DISABLE TRIGGER USER", "ALTER TABLE audit_checkpoints DISABLE TRIGGER USER"}
	} else {
		stmts = []string{"DROP TRIGGER audit_entries_no_update", "DROP TRIGGER audit_entries_no_delete",
			"DROP TRIGGER audit_checkpoints_no_update", "DROP TRIGGER audit_checkpoints_no_delete"}
	}
	for _, q := range stmts {
		Must(t, s.DB().Exec(q))
	}
}

// LogBuffer is a log sink safe for a server's goroutines: a test reads
// what was logged while the server may still write.
type LogBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything logged so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Reset forgets what was logged.
func (l *LogBuffer) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Reset()
}
