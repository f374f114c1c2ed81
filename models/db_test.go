package models_test

import (
	"os"
	"path/filepath"
	"testing"

	"keydesk/models"
	"keydesk/models/testdb"
)

// The SQLite database and its WAL and shared-memory files hold password
// hashes, secret digests and the audit log: only the owner may read them,
// like the key files beside them. (SQLite on purpose, on both suites.)
func TestSQLiteFilesAreCreatedOwnerOnly(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "data", "keydesk.db")
	s := testdb.OpenDSN(t, path, testdb.Options(testdb.NewClock()))
	mustAccount(t, s, "Acme", "owner@acme.example") // something in the WAL
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(p), err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s is %#o, want 0600", filepath.Base(p), perm)
		}
	}
}

// Migrations run in slice order and stop past the newest version, so the
// slice must ascend: a step appended out of order would never run.
func TestMigrationsAscend(t *testing.T) {
	t.Parallel()
	v := models.MigrationVersions()
	for i := 1; i < len(v); i++ {
		if v[i] <= v[i-1] {
			t.Fatalf("migration %d comes after %d: keep the list in ascending order (%v)", v[i], v[i-1], v)
		}
	}
}
