package models

// Internals exposed to the external tests of this package only.
var (
	NewSecret    = newSecret
	NewAPIKey    = newAPIKey
	DigestSecret = digestSecret
)

// ComputeAuditHash lets tests rebuild a chain as an attacker would.
func ComputeAuditHash(e *AuditEntry) string { return e.computeHash() }
