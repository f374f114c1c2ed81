package models_test

import (
	"testing"
	"time"

	"keydesk/models"
)

// BenchmarkAuditExportRate: the rows per second an export reads from the
// log (issue 13 #4: at least 100,000 rows/s), on the filter benchmark's
// varied log (KEYDESK_BENCH_AUDIT entries, or KEYDESK_BENCH_DSN): the whole
// log as an auditor, the busiest tree (about 7 % of the log) as an auditor
// and filtered by an action as its owner, and a small tree as its owner.
// What is timed is the database side of the export (queries, rows read
// into entries); writing CSV and HTTP are measured by .ci/export-rate.
func BenchmarkAuditExportRate(b *testing.B) {
	s := filterBenchLog(b)
	var through uint64
	if err := s.DB().Raw("SELECT MAX(id) FROM audit_entries").Scan(&through).Error; err != nil {
		b.Fatal(err)
	}
	tree := func(n int) models.Actor {
		var e models.AuditEntry
		if err := s.DB().Where("actor_label = ?", models.SeedOwnerEmail(n)).Order("id DESC").Limit(1).Find(&e).Error; err != nil || e.ID == 0 {
			b.Fatalf("no entry of tree %d (%v): seed with models.Seed", n, err)
		}
		return models.Actor{UserID: *e.ActorUserID, Email: e.ActorLabel, Role: models.RoleOwner, AccountID: *e.TreeID}
	}
	auditor := models.Actor{Email: "aud@export-bench.example", Role: models.RoleAuditor}
	busy, small := tree(0), tree(50)
	for _, c := range []struct {
		name string
		who  models.Actor
		f    models.AuditFilter
	}{
		{"whole-log", auditor, models.AuditFilter{}},
		{"busiest-tree", auditor, models.AuditFilter{AccountID: busy.AccountID}},
		{"busiest-tree-owner-action", busy, models.AuditFilter{Actions: []string{models.ActionLoginSucceeded}}},
		{"small-tree-owner", small, models.AuditFilter{}},
	} {
		b.Run(c.name, func(b *testing.B) {
			rows := 0
			start := time.Now()
			for i := 0; i < b.N; i++ {
				err := s.StreamAudit(ctx, c.who, c.f, through, func(models.AuditEntry) error { rows++; return nil })
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
			b.ReportMetric(float64(rows)/float64(b.N), "rows")
		})
	}
}
