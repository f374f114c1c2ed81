package models_test

import (
	"testing"
	"time"

	"keydesk/models"
	"keydesk/models/testdb"
)

// BenchmarkAuditAppend appends one entry per transaction, as every audited
// operation does: "unkeyed" as keydesk did before the keyed chain (plain
// SHA-256 link), "keyed" with the HMAC link as now. .ci/bench prints the
// ratio of the medians.
func BenchmarkAuditAppend(b *testing.B) {
	s, _ := testdb.Open(b)
	for _, mode := range []string{"unkeyed", "keyed"} {
		b.Run(mode, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if err := s.AuditAppendForBench(ctx, mode == "unkeyed"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAuditVerify: a full walk of the benchmark log (1,000,000
// entries) and an incremental verification after 1,000 new entries on it,
// reported in entries/s and ns/op.
func BenchmarkAuditVerify(b *testing.B) {
	s := benchLog(b)
	b.Run("full", func(b *testing.B) {
		var walked int64
		start := time.Now()
		for i := 0; i < b.N; i++ {
			r, err := s.VerifyAudit(ctx, models.VerifyOptions{Full: true})
			if err != nil || !r.OK || r.Entries < int64(benchLogSize()) {
				b.Fatalf("full verify: %+v %v", r, err)
			}
			walked += r.Entries
		}
		b.ReportMetric(float64(walked)/time.Since(start).Seconds(), "entries/s")
	})
	b.Run("incremental-1000", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			if _, err := s.SealAuditHead(ctx, "bench"); err != nil {
				b.Fatal(err)
			}
			if err := s.SeedAuditLog(1000, benchAccounts, benchClock.Now()); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			r, err := s.VerifyAudit(ctx, models.VerifyOptions{})
			if err != nil || !r.OK || r.Entries != 1000 {
				b.Fatalf("incremental verify: %+v %v", r, err)
			}
		}
	})
}
