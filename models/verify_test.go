package models_test

import (
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"keydesk/models"
	"keydesk/models/testdb"
)

func TestVerifyWarmPathDoesNotAllocate(t *testing.T) {
	s, _ := testdb.Open(t)
	_, res := owner(t, s, "Acme", "owner@acme.example")
	waitCache(t, s)
	if _, err := s.Verify(ctx, res.Secret.APIKey, res.Secret.Secret); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := s.Verify(ctx, res.Secret.APIKey, res.Secret.Secret); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("warm Verify allocates %.1f times per call, want 0", allocs)
	}
}

// With two old secrets in grace, a warm check of any of the three live
// secrets still allocates nothing.
func TestVerifyWarmPathWithOldSecretsDoesNotAllocate(t *testing.T) {
	s, _ := testdb.Open(t)
	actor, res := owner(t, s, "Acme", "owner@acme.example")
	waitCache(t, s)
	_, second, err := s.ResetSecret(ctx, actor, res.Key.ID, 7*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, third, err := s.ResetSecret(ctx, actor, res.Key.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{res.Secret.Secret, second.Secret, third.Secret} {
		if _, err := s.Verify(ctx, res.Secret.APIKey, secret); err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(200, func() {
			if _, err := s.Verify(ctx, res.Secret.APIKey, secret); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Fatalf("warm Verify with old secrets allocates %.1f times per call, want 0", allocs)
		}
	}
}

func waitCache(t testing.TB, stores ...*models.Store) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range stores {
		for !s.KeyCacheReady() {
			if time.Now().After(deadline) {
				t.Fatal("verification cache never became ready")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// Two keydesk instances on one PostgreSQL database: a reset or a
// deactivation on one must stop the other from accepting the old secret,
// even though the other has it cached.
func TestVerifyCacheInvalidatedAcrossInstances(t *testing.T) {
	t.Parallel()
	if testdb.Engine() != models.Postgres {
		t.Skip("multi-instance cache invalidation runs in the PostgreSQL suite (KEYDESK_TEST_DB); a SQLite file has one instance")
	}
	dsn := testdb.DSN(t)
	clock := testdb.NewClock()
	a := testdb.OpenDSN(t, dsn, testdb.Options(clock))
	b := testdb.OpenDSN(t, dsn, testdb.Options(clock))
	waitCache(t, a, b)
	actor, res := owner(t, a, "Acme", "owner@acme.example")
	key, old := res.Secret.APIKey, res.Secret.Secret
	if _, err := b.Verify(ctx, key, old); err != nil {
		t.Fatalf("instance B: %v", err)
	}
	// Prove B answers from its cache: a silent change in the database
	// (no notification) is not seen by B.
	if err := a.DB().Exec("UPDATE api_keys SET is_active = FALSE WHERE api_key = ?", key).Error; err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verify(ctx, key, old); err != nil {
		t.Fatalf("B is not caching (precondition of this test): %v", err)
	}
	if err := a.DB().Exec("UPDATE api_keys SET is_active = TRUE WHERE api_key = ?", key).Error; err != nil {
		t.Fatal(err)
	}

	_, fresh, err := a.ResetSecret(ctx, actor, res.Key.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	d := waitRejected(t, b, key, old, start)
	t.Logf("instance B rejected the reset secret %v after A's commit", d)
	if _, err := b.Verify(ctx, key, fresh.Secret); err != nil {
		t.Fatalf("B refuses the new secret: %v", err)
	}
	if _, err := a.Verify(ctx, key, old); !errors.Is(err, models.ErrVerifyFailed) {
		t.Fatalf("A accepts its own reset secret: %v", err)
	}

	// Deactivation of a sub-account key (master keys cannot be deactivated).
	sub := models.Account{ParentID: &res.Account.ID, Name: "eu-client", Plan: models.PlanFree, IsActive: true}
	if err := a.DB().Create(&sub).Error; err != nil {
		t.Fatal(err)
	}
	secret, _ := models.NewSecret()
	apiKey, _ := models.NewAPIKey()
	dg := models.DigestSecret(secret)
	k := models.APIKey{AccountID: sub.ID, TreeID: res.Account.ID, Name: "eu-client", APIKey: apiKey, SecretDigest: dg[:], SecretHint: "x", SecretSetAt: a.Now(), IsActive: true}
	if err := a.DB().Create(&k).Error; err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verify(ctx, apiKey, secret); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetKeyActive(ctx, actor, k.ID, false); err != nil {
		t.Fatal(err)
	}
	d = waitRejected(t, b, apiKey, secret, time.Now())
	t.Logf("instance B rejected the deactivated key %v after A's commit", d)

	// Stacked grace: B caches a key with two old secrets; ending one on A
	// reaches B, and the other keeps working there.
	_, g1, err := a.ResetSecret(ctx, actor, res.Key.ID, 7*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	k2, g2, err := a.ResetSecret(ctx, actor, res.Key.ID, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// B learns of the resets through NOTIFY, a few milliseconds later.
	waitAccepted(t, b, key, g2.Secret)
	for _, sec := range []string{fresh.Secret, g1.Secret, g2.Secret} {
		if _, err := b.Verify(ctx, key, sec); err != nil {
			t.Fatalf("B refuses a live secret after two resets with grace: %v", err)
		}
	}
	if _, _, err := a.EndOldSecret(ctx, actor, res.Key.ID, k2.OldSecrets[0].ID); err != nil { // fresh: 7 days
		t.Fatal(err)
	}
	d = waitRejected(t, b, key, fresh.Secret, time.Now())
	t.Logf("instance B rejected the ended old secret %v after A's commit", d)
	if _, err := b.Verify(ctx, key, g1.Secret); err != nil {
		t.Fatalf("B refuses the other old secret after End now: %v", err)
	}
}

// waitRejected polls b until it rejects the pair; the bound is generous for
// a loaded CI machine, and the measured delay is logged.
func waitRejected(t *testing.T, b *models.Store, key, secret string, start time.Time) time.Duration {
	t.Helper()
	for {
		if _, err := b.Verify(ctx, key, secret); errors.Is(err, models.ErrVerifyFailed) {
			return time.Since(start)
		}
		if time.Since(start) > 3*time.Second {
			t.Fatal("instance B still accepts the old credentials 3 s after instance A changed them")
		}
		time.Sleep(time.Millisecond)
	}
}

// waitAccepted polls b until it accepts the pair (a new secret reaches
// other instances' caches through NOTIFY).
func waitAccepted(t *testing.T, b *models.Store, key, secret string) {
	t.Helper()
	start := time.Now()
	for {
		if _, err := b.Verify(ctx, key, secret); err == nil {
			return
		}
		if time.Since(start) > 3*time.Second {
			t.Fatal("instance B still refuses the new secret 3 s after instance A set it")
		}
		time.Sleep(time.Millisecond)
	}
}

var sink [32]byte
var sinkP models.KeyPrincipal

// BenchmarkVerifyWarmOldSecret verifies the oldest of three live secrets
// (two resets with grace): the worst warm case.
func BenchmarkVerifyWarmOldSecret(b *testing.B) {
	s := testdb.OpenDSN(b, testdb.DSN(b), models.Options{Argon: testdb.FastArgon, AuditKey: testdb.AuditKey})
	actor, res := owner(b, s, "Acme", "owner@acme.example")
	waitCache(b, s)
	for _, g := range []time.Duration{7 * 24 * time.Hour, time.Hour} {
		if _, _, err := s.ResetSecret(ctx, actor, res.Key.ID, g); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.Verify(ctx, res.Secret.APIKey, res.Secret.Secret); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p, err := s.Verify(ctx, res.Secret.APIKey, res.Secret.Secret)
		if err != nil {
			b.Fatal(err)
		}
		sinkP = p
	}
}

// BenchmarkVerifyWarm and BenchmarkSHA256Bare run together; their ratio is
// the docs/DESIGN.md target "Verify ≤ 3× one bare sha256.Sum256, 0 allocations".
func BenchmarkVerifyWarm(b *testing.B) {
	s := testdb.OpenDSN(b, testdb.DSN(b), models.Options{Argon: testdb.FastArgon, AuditKey: testdb.AuditKey}) // the real clock
	_, res := owner(b, s, "Acme", "owner@acme.example")
	waitCache(b, s)
	if _, err := s.Verify(ctx, res.Secret.APIKey, res.Secret.Secret); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p, err := s.Verify(ctx, res.Secret.APIKey, res.Secret.Secret)
		if err != nil {
			b.Fatal(err)
		}
		sinkP = p
	}
}

func BenchmarkSHA256Bare(b *testing.B) {
	secret, _ := models.NewSecret()
	in := []byte(secret)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sink = sha256.Sum256(in)
	}
}
