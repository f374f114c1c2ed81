package models_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"keydesk/models"
	"keydesk/models/testdb"
)

// Each secret keeps the deadline it was given: a later reset never
// shortens an earlier promise (issue 11, item 1).
func TestStackedGraceEachOldSecretKeepsItsDeadline(t *testing.T) {
	t.Parallel()
	s, clock := testdb.Open(t)
	actor, res := owner(t, s, "Acme", "owner@acme.example")
	key, first := res.Secret.APIKey, res.Secret.Secret
	verify := func(secret string) error { _, err := s.Verify(ctx, key, secret); return err }

	_, second, err := s.ResetSecret(ctx, actor, res.Key.ID, 7*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	actor.AuthAt = s.Now()
	_, third, err := s.ResetSecret(ctx, actor, res.Key.ID, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for name, sec := range map[string]string{"first (7 days)": first, "second (24 h)": second.Secret, "current": third.Secret} {
		if err := verify(sec); err != nil {
			t.Errorf("%s secret right after the second reset: %v", name, err)
		}
	}
	// 25 hours later the 24 h promise is over, the 7-day one is not.
	clock.Advance(25 * time.Hour)
	if err := verify(second.Secret); !errors.Is(err, models.ErrVerifyFailed) {
		t.Errorf("second secret after its 24 h: %v", err)
	}
	if err := verify(first); err != nil {
		t.Errorf("first secret within its 7 days: %v", err)
	}
	clock.Advance(6 * 24 * time.Hour) // 7 days and 2 hours after the first reset
	if err := verify(first); !errors.Is(err, models.ErrVerifyFailed) {
		t.Errorf("first secret after its 7 days: %v", err)
	}
	if err := verify(third.Secret); err != nil {
		t.Errorf("current secret: %v", err)
	}
}

// End now stops one old secret at once and leaves the others and the
// current secret working; it needs sudo, is audited, and refuses other
// keys' (and tenants') secrets with 404.
func TestEndOldSecretNow(t *testing.T) {
	t.Parallel()
	s, clock := testdb.Open(t)
	actor, res := owner(t, s, "Acme", "owner@acme.example")
	key, first := res.Secret.APIKey, res.Secret.Secret
	_, second, err := s.ResetSecret(ctx, actor, res.Key.ID, 7*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	k, third, err := s.ResetSecret(ctx, actor, res.Key.ID, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(k.OldSecrets) != 2 || k.OldSecrets[0].Hint != res.Key.SecretHint || k.OldSecrets[1].Hint != hintOf(second.Secret) {
		t.Fatalf("old secrets after two resets (latest deadline first): %+v", k.OldSecrets)
	}
	for _, o := range k.OldSecrets {
		if len(o.Digest) != 0 {
			t.Fatal("a read for display carries a digest")
		}
	}
	firstID := k.OldSecrets[0].ID

	// Another tenant, and the right secret ID under the wrong key, are 404.
	bob, bres := owner(t, s, "Bob", "bob@example.com")
	if _, _, err := s.EndOldSecret(ctx, bob, res.Key.ID, firstID); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("Bob ended Alice's old secret: %v", err)
	}
	if _, _, err := s.EndOldSecret(ctx, bob, bres.Key.ID, firstID); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("Alice's old secret ended through Bob's key: %v", err)
	}
	// Sudo lapsed: refused.
	stale := actor
	clock.Advance(models.SudoWindow + time.Minute)
	if _, _, err := s.EndOldSecret(ctx, stale, res.Key.ID, firstID); !errors.Is(err, models.ErrReauthRequired) {
		t.Fatalf("End now without a recent authentication: %v", err)
	}
	actor.AuthAt = s.Now()

	before := lastAuditID(t, s)
	k, ended, err := s.EndOldSecret(ctx, actor, res.Key.ID, firstID)
	if err != nil {
		t.Fatal(err)
	}
	if ended.ID != firstID || len(k.OldSecrets) != 1 || k.OldSecrets[0].Hint != hintOf(second.Secret) {
		t.Fatalf("after End now: ended %+v, left %+v", ended, k.OldSecrets)
	}
	if _, err := s.Verify(ctx, key, first); !errors.Is(err, models.ErrVerifyFailed) {
		t.Fatalf("ended secret still works: %v", err)
	}
	for name, sec := range map[string]string{"other old": second.Secret, "current": third.Secret} {
		if _, err := s.Verify(ctx, key, sec); err != nil {
			t.Errorf("%s secret after End now: %v", name, err)
		}
	}
	var entries []models.AuditEntry
	testdb.Must(t, s.DB().Where("id > ?", before).Order("id").Find(&entries))
	if len(entries) != 1 || entries[0].Action != models.ActionOldSecretEnded || entries[0].ActorLabel != "owner@acme.example" {
		t.Fatalf("audit after End now: %+v", entries)
	}
	if strings.Contains(entries[0].Details, first[len(models.SecretPrefix):]) || !strings.Contains(entries[0].Details, hintOf(first)) {
		t.Fatalf("audit details %s: want the hint, never the secret", entries[0].Details)
	}
	// Ending it twice is 404: it no longer exists.
	if _, _, err := s.EndOldSecret(ctx, actor, res.Key.ID, firstID); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("ended twice: %v", err)
	}
}

func hintOf(secret string) string { return models.SecretPrefix + "…" + secret[len(secret)-4:] }

// At most MaxLiveSecrets work at once: a reset with a grace period that
// would make a fourth ends the old secret whose deadline comes first, and
// CapVictim names it beforehand (for the dialog).
func TestLiveSecretsCapped(t *testing.T) {
	t.Parallel()
	s, clock := testdb.Open(t)
	actor, res := owner(t, s, "Acme", "owner@acme.example")
	key := res.Secret.APIKey
	secrets := []string{res.Secret.Secret}
	graces := []time.Duration{7 * 24 * time.Hour, time.Hour}
	for _, g := range graces {
		k, rev, err := s.ResetSecret(ctx, actor, res.Key.ID, g)
		if err != nil {
			t.Fatal(err)
		}
		if v := k.CapVictim(s.Now()); len(secrets) == 1 && v != nil {
			t.Fatalf("with one old secret, CapVictim = %+v", v)
		}
		secrets = append(secrets, rev.Secret)
		clock.Advance(time.Minute)
	}
	// Now: current = secrets[2]; old: secrets[0] (7 days), secrets[1] (1 h).
	k, err := s.KeyByID(ctx, actor, res.Key.ID)
	if err != nil {
		t.Fatal(err)
	}
	victim := k.CapVictim(s.Now())
	if victim == nil || victim.Hint != hintOf(secrets[1]) {
		t.Fatalf("CapVictim = %+v, want the 1 h secret %s", victim, hintOf(secrets[1]))
	}
	// An immediate reset ends no old secret: current + 2 old is the cap.
	k, rev, err := s.ResetSecret(ctx, actor, res.Key.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(k.OldSecrets) != 2 {
		t.Fatalf("an immediate reset changed the old secrets: %+v", k.OldSecrets)
	}
	if _, err := s.Verify(ctx, key, secrets[2]); !errors.Is(err, models.ErrVerifyFailed) {
		t.Fatal("the secret replaced immediately still works")
	}
	secrets[2] = rev.Secret
	// A reset with a grace period now ends the 1 h secret early.
	k, rev, err = s.ResetSecret(ctx, actor, res.Key.ID, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(k.OldSecrets) != 2 || k.OldSecrets[0].Hint != hintOf(secrets[0]) || k.OldSecrets[1].Hint != hintOf(secrets[2]) {
		t.Fatalf("old secrets after a capped reset: %+v", k.OldSecrets)
	}
	live := 0
	for _, sec := range append(secrets, rev.Secret) {
		if _, err := s.Verify(ctx, key, sec); err == nil {
			live++
		}
	}
	if live != models.MaxLiveSecrets {
		t.Fatalf("%d secrets work, want %d", live, models.MaxLiveSecrets)
	}
	if _, err := s.Verify(ctx, key, secrets[1]); !errors.Is(err, models.ErrVerifyFailed) {
		t.Fatal("the capped secret still works")
	}
	var e models.AuditEntry
	testdb.Must(t, s.DB().Where("action = ?", models.ActionSecretReset).Order("id DESC").Take(&e))
	if !strings.Contains(e.Details, "ended_early") || !strings.Contains(e.Details, hintOf(secrets[1])) {
		t.Fatalf("the reset's audit entry does not say which secret the cap ended: %s", e.Details)
	}
}

// Each old secret's use is tracked on its own row.
func TestOldSecretUseTrackedPerSecret(t *testing.T) {
	t.Parallel()
	s, clock := testdb.Open(t)
	actor, res := owner(t, s, "Acme", "owner@acme.example")
	if _, _, err := s.ResetSecret(ctx, actor, res.Key.ID, 7*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ResetSecret(ctx, actor, res.Key.ID, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	p, err := s.VerifyRequest(ctx, res.Secret.APIKey, res.Secret.Secret, "203.0.113.9", models.ChannelAPI)
	if err != nil || !p.UsedPrevious || p.OldSecretID == 0 {
		t.Fatalf("first secret: %+v %v", p, err)
	}
	if err := s.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	k, err := s.KeyByID(ctx, actor, res.Key.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(k.OldSecrets) != 2 {
		t.Fatalf("old secrets: %+v", k.OldSecrets)
	}
	used, unused := k.OldSecrets[0], k.OldSecrets[1] // 7 days first
	if used.ID != p.OldSecretID || !used.UsedSinceRetired() || !used.LastUsedAt.Equal(s.Now()) || unused.LastUsedAt != nil {
		t.Fatalf("use recorded on the wrong secret: %+v", k.OldSecrets)
	}
}

// Migration 8 moves a key's previous secret (migration 2's one column pair)
// into old_secrets with its deadline and last use.
func TestMigrationMovesPreviousSecret(t *testing.T) {
	t.Parallel()
	clock := testdb.NewClock()
	s, err := models.Open(ctx, testdb.DSN(t), testdb.Options(clock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.MigrateTo(ctx, 7); err != nil {
		t.Fatal(err)
	}
	cur, _ := models.NewSecret()
	prev, _ := models.NewSecret()
	apiKey, _ := models.NewAPIKey()
	dc, dp := models.DigestSecret(cur), models.DigestSecret(prev)
	now := s.Now()
	until, used := now.Add(time.Hour), now.Add(-time.Minute)
	db := s.DB()
	if err := db.Exec("INSERT INTO accounts (name, created_at, updated_at) VALUES (?, ?, ?)", "Acme", now, now).Error; err != nil {
		t.Fatal(err)
	}
	var acct uint
	db.Raw("SELECT id FROM accounts").Scan(&acct)
	if err := db.Exec(`INSERT INTO api_keys (account_id, tree_id, name, api_key, secret_digest, secret_hint, secret_set_at,
		prev_secret_digest, prev_secret_expires_at, prev_secret_last_used_at, is_master, is_active, created_at, updated_at)
		VALUES (?, ?, 'Acme', ?, ?, 'h', ?, ?, ?, ?, TRUE, TRUE, ?, ?)`,
		acct, acct, apiKey, dc[:], now, dp[:], until, used, now, now).Error; err != nil {
		t.Fatal(err)
	}
	if applied, err := s.Migrate(ctx); err != nil || len(applied) == 0 || applied[0] != 8 {
		t.Fatalf("migrate: %v %v", applied, err)
	}
	for name, sec := range map[string]string{"current": cur, "previous": prev} {
		if _, err := s.Verify(ctx, apiKey, sec); err != nil {
			t.Errorf("%s secret after the migration: %v", name, err)
		}
	}
	var olds []models.OldSecret
	db.Find(&olds)
	if len(olds) != 1 || !olds[0].ExpiresAt.Equal(until) || olds[0].LastUsedAt == nil || !olds[0].LastUsedAt.Equal(used) {
		t.Fatalf("migrated old secrets: %+v", olds)
	}
	clock.Advance(time.Hour)
	s.InvalidateVerifyCache()
	if _, err := s.Verify(ctx, apiKey, prev); !errors.Is(err, models.ErrVerifyFailed) {
		t.Fatalf("migrated previous secret after its deadline: %v", err)
	}
}
