package models

// Internals exposed to the external tests of this package only.
var (
	NewSecret    = newSecret
	NewAPIKey    = newAPIKey
	DigestSecret = digestSecret
)
