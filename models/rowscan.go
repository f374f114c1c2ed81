package models

import (
	"time"

	"gorm.io/gorm"
)

// rawRows runs a raw query and hands each row's values to each as the
// driver gives them (no conversion: int64, bool, string, []byte, time.Time
// or nil), in a slice reused for every row. The cold path's batch queries
// (loadKeys, loadTrees) read their columns this way: GORM's scan by
// reflection was a third of a pass over keys whose cache entries had aged
// out (BENCHMARKS.md, issue 13 #2), as it had been of the audit export's
// time (auditRows).
func rawRows(db *gorm.DB, ncols int, each func(vals []any) error, query string, args ...any) error {
	rows, err := db.Raw(query, args...).Rows()
	if err != nil {
		return err
	}
	defer rows.Close()
	vals, dest := make([]any, ncols), make([]any, ncols)
	for i := range vals {
		dest[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		if err := each(vals); err != nil {
			return err
		}
	}
	return rows.Err()
}

// cols reads a row's values into typed fields and keeps the first value
// of an unexpected type as its error (checked once a row).
type cols struct{ err error }

func (c *cols) fail(v any) {
	if c.err == nil {
		c.err = typeErr(false, v)
	}
}

// id is an integer column's value (0 for NULL: IDs start at 1).
func (c *cols) id(v any) uint {
	switch t := v.(type) {
	case int64:
		if t >= 0 {
			return uint(t)
		}
	case nil:
		return 0
	}
	c.fail(v)
	return 0
}

// bool is a boolean column's value: PostgreSQL's bool, SQLite's 0 or 1;
// NULL is null (a LEFT JOIN that found nothing).
func (c *cols) bool(v any, null bool) bool {
	switch t := v.(type) {
	case bool:
		return t
	case int64:
		return t != 0
	case nil:
		return null
	}
	c.fail(v)
	return false
}

// text is a text column's value ("" for NULL).
func (c *cols) text(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case []byte:
		return string(t)
	case nil:
		return ""
	}
	c.fail(v)
	return ""
}

// bytes is a binary column's value (nil for NULL); the slice is the row's
// own (database/sql copies a []byte scanned into an any).
func (c *cols) bytes(v any) []byte {
	switch t := v.(type) {
	case []byte:
		return t
	case string:
		return []byte(t)
	case nil:
		return nil
	}
	c.fail(v)
	return nil
}

// time is a timestamp column's value (the zero time for NULL).
func (c *cols) time(v any) time.Time {
	switch t := v.(type) {
	case time.Time:
		return t
	case nil:
		return time.Time{}
	}
	c.fail(v)
	return time.Time{}
}
