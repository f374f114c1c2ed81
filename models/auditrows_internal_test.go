package models

import (
	"strings"
	"testing"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/gorm"
)

// The export reads an entry's time as text on SQLite (exportSelect) and
// parses it itself: it must come out as the driver reads a DATETIME
// column, for the text keydesk writes and for any other the driver
// accepts; what the driver does not parse is refused.
func TestSQLiteTimeTextReadsAsTheDriverReadsIt(t *testing.T) {
	db, err := gorm.Open(sqlite.Open(t.TempDir()+"/t.db"), &gorm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Exec("CREATE TABLE t (n INTEGER PRIMARY KEY, at DATETIME)").Error; err != nil {
		t.Fatal(err)
	}
	texts := []string{
		"2026-12-06 17:36:31+00:00", "2026-12-06 17:36:31.8+00:00", "2026-12-06 17:36:31.83041+00:00",
		"2026-12-06 17:36:31.000000001+00:00", "2026-12-06 17:36:31.123456789+00:00", "2026-12-06 17:36:31.1234567891+00:00",
		"2026-12-06 17:36:31.+00:00", "2026-12-06 17:36:31.5+02:00", "2026-12-06 17:36:31.5-05:30", "2026-12-06T17:36:31.5+00:00",
		"2026-12-06 17:36:31.5Z", "2026-12-06 17:36:31.5", "2026-12-06 17:36:31", "2026-12-06 17:36", "2026-12-06",
		"2026-12-06 17:36:31.83041 +0000 UTC", "2026-12-06 17:36:31.83041 +0000 UTC m=+0.5", "2026-02-29 10:00:00+00:00",
		"2028-02-29 10:00:00+00:00", "2026-13-01 10:00:00+00:00", "2026-12-32 10:00:00+00:00", "2026-12-06 24:00:00+00:00",
		"2026-12-06 23:60:00+00:00", "2026-12-06 23:59:60+00:00", "2026-12-06 23:59:59+00:0", "2026-12-06 23:59:59+0000",
		"0001-01-01 00:00:00+00:00", "9999-12-31 23:59:59.999999999+00:00", "2026-1-06 10:00:00+00:00", "+2026-12-06 10:00:00+00:00",
		"2026-12-06 1a:00:00+00:00", "2026-12-06 10:00:00+00:00 ", "", "now", "2026-12-06 10:00:00+25:00", "2026-12-06 10:00:00-00:00",
	}
	for n, s := range texts {
		if err := db.Exec("INSERT INTO t (n, at) VALUES (?, ?)", n, s).Error; err != nil {
			t.Fatal(err)
		}
	}
	rows, err := db.Raw("SELECT n, at, CAST(at AS TEXT) FROM t ORDER BY n").Rows()
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var n int
		var driver any
		var text string
		if err := rows.Scan(&n, &driver, &text); err != nil {
			t.Fatal(err)
		}
		got, err := sqliteTimeText(text)
		want, parsed := driver.(time.Time)
		switch {
		case !parsed && err == nil:
			t.Errorf("%q: read as %v; the driver does not parse it", text, got)
		case parsed && err != nil:
			t.Errorf("%q: %v; the driver reads %v", text, err, want)
		case parsed && (!got.Equal(want) || got.Location().String() != want.Location().String() || got.String() != want.String()):
			t.Errorf("%q: read as %v, the driver reads %v", text, got, want)
		}
		if strings.HasSuffix(text, "+00:00") && parsed && got.Location() != time.UTC {
			t.Errorf("%q: location %v", text, got.Location())
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}
