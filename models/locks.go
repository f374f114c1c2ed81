package models

// PostgreSQL advisory lock IDs: each serialises one thing across every
// instance sharing the schema (SQLite has one writer anyway). They are the
// IDs in the public schema; Store.lock gives them in the store's
// (pgscope.go).
const (
	lockMigrate     int64 = 7311001 // session lock: one instance migrates at a time
	lockAuditAppend int64 = 7311002 // transaction lock: audit entries append in chain order
	lockAuditSign   int64 = 7311003 // transaction lock: signed heads are numbered without gaps
	lockAuditCheck  int64 = 7311004 // session lock, tried: one instance runs the periodic check
)
