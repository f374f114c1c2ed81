package models_test

import (
	"testing"
	"time"

	"keydesk/models"
	"keydesk/models/testdb"
)

// A person's time zone: UTC until chosen, an IANA name checked against the
// zone database, saved on the user (a session sees it at once), audited
// once per change (issue 14 #4). Runs on SQLite and, with
// KEYDESK_TEST_DB, on PostgreSQL.
func TestSetTimeZone(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	mustAccount(t, s, "Acme", "owner@acme.example")
	tok, _, err := s.Login(ctx, "owner@acme.example", pw, "", meta)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.ResolveSession(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if p.User.TimeZone != models.DefaultTimeZone || p.User.Zone() != time.UTC {
		t.Fatalf("new user's zone %q (%v), want UTC", p.User.TimeZone, p.User.Zone())
	}
	for _, bad := range []string{"", "Local", "Mars/Olympus_Mons", "europe/paris", "../../etc/passwd", "Europe/Paris/x", "CET CEST", "/etc/localtime"} {
		if fe := models.FieldErrors(s.SetTimeZone(ctx, p, bad, meta)); fe["time_zone"] != "Choose a time zone from the list." {
			t.Errorf("SetTimeZone(%q): %v, want a field error", bad, fe)
		}
	}
	if p.User.TimeZone != models.DefaultTimeZone {
		t.Fatalf("a refused zone changed the user: %q", p.User.TimeZone)
	}
	if err := s.SetTimeZone(ctx, p, " Europe/Paris ", meta); err != nil {
		t.Fatal(err)
	}
	again, err := s.ResolveSession(ctx, tok)
	if err != nil || again.User.TimeZone != "Europe/Paris" || again.User.Zone().String() != "Europe/Paris" {
		t.Fatalf("after SetTimeZone(Europe/Paris): %q %v", again.User.TimeZone, err)
	}
	count := func() int64 {
		var n int64
		testdb.Must(t, s.DB().Model(&models.AuditEntry{}).Where("action = ?", models.ActionTimeZoneChanged).Count(&n))
		return n
	}
	if err := s.SetTimeZone(ctx, again, "Europe/Paris", meta); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Fatalf("time_zone_changed entries: %d, want 1 (an unchanged choice writes nothing)", n)
	}
	var e models.AuditEntry
	testdb.Must(t, s.DB().Where("action = ?", models.ActionTimeZoneChanged).Take(&e))
	if e.ActorLabel != "owner@acme.example" || e.Details == "" {
		t.Errorf("audit entry: actor %q details %q", e.ActorLabel, e.Details)
	}
	// Every zone the menu offers is in the database.
	for _, z := range models.TimeZones {
		if _, ok := models.ParseTimeZone(z); !ok {
			t.Errorf("the menu offers %q, which the zone database does not know", z)
		}
	}
	// A saved name the database no longer knows shows UTC, not an error.
	testdb.Must(t, s.DB().Model(&models.User{}).Where("id = ?", p.User.ID).Update("time_zone", "Gone/Zone"))
	if gone, err := s.ResolveSession(ctx, tok); err != nil || gone.User.Zone() != time.UTC {
		t.Fatalf("unknown saved zone: %v %v", gone, err)
	}
	if v := verifyChain(t, s); !v.OK {
		t.Fatalf("chain: %+v", v)
	}
}
