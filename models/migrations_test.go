package models_test

import (
	"errors"
	"strings"
	"testing"

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
