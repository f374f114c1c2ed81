package models_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"keydesk/models"
	"keydesk/models/testdb"
)

func TestUsageIsBufferedThenFlushed(t *testing.T) {
	t.Parallel()
	s, clock := testdb.Open(t)
	actor, res := owner(t, s, "Acme", "owner@acme.example")
	key, secret := res.Secret.APIKey, res.Secret.Secret
	for i := 0; i < 3; i++ {
		if _, err := s.VerifyRequest(ctx, key, secret, "203.0.113.9", models.ChannelAPI); err != nil {
			t.Fatal(err)
		}
	}
	p, err := s.Verify(ctx, key, secret)
	if err != nil {
		t.Fatal(err)
	}
	s.RecordUse(p, models.ChannelSMTP, "203.0.113.10", 2)
	bad, _ := models.NewSecret()
	if _, err := s.VerifyRequest(ctx, key, bad, "198.51.100.1", models.ChannelAPI); !errors.Is(err, models.ErrVerifyFailed) {
		t.Fatal(err)
	}
	// Nothing is written before the flush: authentication never waits on it.
	if k, err := s.KeyByID(ctx, actor, res.Key.ID); err != nil || k.LastUsedAt != nil {
		t.Fatal("last use written synchronously")
	}
	if err := s.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	k, err := s.KeyByID(ctx, actor, res.Key.ID)
	if err != nil {
		t.Fatal(err)
	}
	if k.LastUsedAt == nil || k.LastUsedIP != "203.0.113.10" {
		t.Fatalf("last use %v from %q", k.LastUsedAt, k.LastUsedIP)
	}
	u, err := s.UsageForKey(ctx, actor, res.Key.ID, 30)
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Days) != 30 || u.Totals.APIRequests != 3 || u.Totals.SMTPMessages != 2 || u.Totals.AuthFailures != 1 {
		t.Fatalf("usage %+v", u.Totals)
	}
	if last := u.Days[29]; last.APIRequests != 3 || !last.Day.Equal(s.Now().Truncate(24*time.Hour)) {
		t.Fatalf("today's bar %+v", last)
	}
	// A second flush adds to the same day; a new day gets its own row.
	if _, err := s.VerifyRequest(ctx, key, secret, "203.0.113.9", models.ChannelAPI); err != nil {
		t.Fatal(err)
	}
	if err := s.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	clock.Advance(24 * time.Hour)
	if _, err := s.VerifyRequest(ctx, key, secret, "203.0.113.9", models.ChannelAPI); err != nil {
		t.Fatal(err)
	}
	if err := s.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	u, err = s.UsageForKey(ctx, actor, res.Key.ID, 30)
	if err != nil {
		t.Fatal(err)
	}
	if u.Totals.APIRequests != 5 || u.Days[28].APIRequests != 4 || u.Days[29].APIRequests != 1 {
		t.Fatalf("after two days: total %d, yesterday %d, today %d", u.Totals.APIRequests, u.Days[28].APIRequests, u.Days[29].APIRequests)
	}
}

func TestOldSecretUseIsTrackedDuringGrace(t *testing.T) {
	t.Parallel()
	s, clock := testdb.Open(t)
	actor, res := owner(t, s, "Acme", "owner@acme.example")
	if _, _, err := s.ResetSecret(ctx, actor, res.Key.ID, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	if _, err := s.VerifyRequest(ctx, res.Secret.APIKey, res.Secret.Secret, "203.0.113.9", models.ChannelAPI); err != nil {
		t.Fatalf("old secret in grace: %v", err)
	}
	if err := s.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	k, err := s.KeyByID(ctx, actor, res.Key.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(k.OldSecrets) != 1 || k.OldSecrets[0].LastUsedAt == nil || !k.OldSecrets[0].LastUsedAt.Equal(s.Now()) {
		t.Fatalf("old secret use not recorded: %+v", k.OldSecrets)
	}
	u, err := s.UsageForKey(ctx, actor, res.Key.ID, 7)
	if err != nil {
		t.Fatal(err)
	}
	if u.Totals.OldSecretUses != 1 {
		t.Fatalf("old secret uses %d", u.Totals.OldSecretUses)
	}
}

func TestUsageTenancyAndComparison(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	alice, _ := owner(t, s, "Alice", "alice@example.com")
	_, bres := owner(t, s, "Bob", "bob@example.com")
	if _, err := s.UsageForKey(ctx, alice, bres.Key.ID, 30); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("Alice reads Bob's usage: %v", err)
	}
	sub, secret, err := s.CreateSubaccount(ctx, alice, "newsletters", "")
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Verify(ctx, secret.APIKey, secret.Secret)
	if err != nil {
		t.Fatal(err)
	}
	s.RecordUse(p, models.ChannelSMTP, "203.0.113.1", 7)
	if err := s.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	rows, err := s.UsageForTree(ctx, alice, 30)
	if err != nil || len(rows) != 2 {
		t.Fatalf("comparison rows %d %v", len(rows), err)
	}
	for _, r := range rows {
		want := int64(0)
		if r.Key.ID == sub.Key.ID {
			want = 7
		}
		if r.Totals.SMTPMessages != want {
			t.Errorf("%s: %d messages, want %d", r.Key.Name, r.Totals.SMTPMessages, want)
		}
	}
}

// A flush writes many keys a statement (issue 13 #2): every key's counters
// and last use arrive, and a last use already ahead (another instance's)
// is not moved backwards.
func TestFlushOfManyKeys(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	_, res := owner(t, s, "Acme", "owner@acme.example")
	const n = 450
	type cred struct{ key, secret string }
	var creds []cred
	for i := 0; i < n; i++ {
		secret, _ := models.NewSecret()
		apiKey, _ := models.NewAPIKey()
		dg := models.DigestSecret(secret)
		k := models.APIKey{AccountID: res.Account.ID, TreeID: res.Account.ID, Name: fmt.Sprintf("k%d", i), APIKey: apiKey, SecretDigest: dg[:], SecretHint: "x", SecretSetAt: s.Now(), IsActive: true}
		if err := s.DB().Create(&k).Error; err != nil {
			t.Fatal(err)
		}
		creds = append(creds, cred{apiKey, secret})
	}
	future := s.Now().Add(time.Hour)
	if err := s.DB().Exec("UPDATE api_keys SET last_used_at = ?, last_used_ip = ? WHERE api_key = ?", future, "192.0.2.99", creds[7].key).Error; err != nil {
		t.Fatal(err)
	}
	bad, _ := models.NewSecret()
	for i, c := range creds {
		for j := 0; j <= i%3; j++ {
			if _, err := s.VerifyRequest(ctx, c.key, c.secret, "203.0.113.9", models.ChannelAPI); err != nil {
				t.Fatal(err)
			}
		}
		if i%5 == 0 {
			if _, err := s.VerifyRequest(ctx, c.key, bad, fmt.Sprintf("198.51.%d.%d", i/250, i%250), models.ChannelAPI); !errors.Is(err, models.ErrVerifyFailed) {
				t.Fatal(err)
			}
		}
	}
	if err := s.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	var got struct{ Requests, Failures, Keys int64 }
	if err := s.DB().Raw("SELECT SUM(api_requests) AS requests, SUM(auth_failures) AS failures, COUNT(*) AS keys FROM key_usage_daily").Scan(&got).Error; err != nil {
		t.Fatal(err)
	}
	if want := int64(n/3*6 + 0); got.Requests != want || got.Failures != n/5 || got.Keys != n {
		t.Fatalf("daily rows: %+v, want %d requests, %d failures, %d keys", got, want, n/5, n)
	}
	var used int64
	s.DB().Table("api_keys").Where("last_used_ip = ?", "203.0.113.9").Count(&used)
	if used != n-1 {
		t.Fatalf("%d keys have their last use, want %d", used, n-1)
	}
	var ip string
	s.DB().Table("api_keys").Select("last_used_ip").Where("api_key = ?", creds[7].key).Scan(&ip)
	if ip != "192.0.2.99" {
		t.Fatalf("a last use ahead was moved back: ip %q", ip)
	}
}

// Requests verified on every core at once are each counted once, in the
// usage and in the verification counters.
func TestUsageCountsConcurrentRequests(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	actor, res := owner(t, s, "Acme", "owner@acme.example")
	const workers, each = 8, 50
	errs := make(chan error, workers)
	for range workers {
		go func() {
			for range each {
				if _, err := s.VerifyRequest(ctx, res.Secret.APIKey, res.Secret.Secret, "203.0.113.9", models.ChannelAPI); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := s.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	u, err := s.UsageForKey(ctx, actor, res.Key.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if u.Totals.APIRequests != workers*each {
		t.Fatalf("%d requests counted, want %d", u.Totals.APIRequests, workers*each)
	}
	if st := s.Stats(); st.VerifyOK < workers*each {
		t.Fatalf("Stats counts %d successful verifications, want at least %d", st.VerifyOK, workers*each)
	}
}
