package models

// PostgreSQL advisory lock IDs: each serialises one thing across every
// instance sharing the database (SQLite has one writer anyway).
const (
	lockMigrate     = 7311001 // session lock: one instance migrates at a time
	lockAuditAppend = 7311002 // transaction lock: audit entries append in chain order
	lockAuditSign   = 7311003 // transaction lock: signed heads are numbered without gaps
	lockAuditCheck  = 7311004 // session lock, tried: one instance runs the periodic check
)
