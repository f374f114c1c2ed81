package models_test

import (
	"strconv"
	"testing"
	"time"

	"keydesk/models"
	"keydesk/models/testdb"
)

// More distinct keys than the bound authenticate: the verification cache
// stays at its bound and an evicted key still verifies (from the database).
func TestVerifyCacheStaysBounded(t *testing.T) {
	t.Parallel()
	const bound, extra = 3, 2
	clock := testdb.NewClock()
	opt := testdb.Options(clock)
	opt.CacheEntries = bound
	s := testdb.OpenDSN(t, testdb.DSN(t), opt)
	waitCache(t, s)
	var keys [][2]string
	for i := 0; i < bound+extra; i++ {
		_, res := owner(t, s, "Acme "+strconv.Itoa(i), "owner"+strconv.Itoa(i)+"@acme.example")
		keys = append(keys, [2]string{res.Secret.APIKey, res.Secret.Secret})
	}
	for round := 0; round < 2; round++ {
		for _, k := range keys {
			if _, err := s.Verify(ctx, k[0], k[1]); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			if n := s.VerifyCacheEntries(); n > bound {
				t.Fatalf("verification cache holds %d keys, bound %d", n, bound)
			}
		}
	}
}

// A cached key past the cache TTL is read again: a change the cache was
// not told about is seen after at most the TTL.
func TestVerifyCacheDoesNotServeExpiredEntry(t *testing.T) {
	t.Parallel()
	s, clock := testdb.Open(t)
	_, res := owner(t, s, "Acme", "owner@acme.example")
	waitCache(t, s)
	key, secret := res.Secret.APIKey, res.Secret.Secret
	if _, err := s.Verify(ctx, key, secret); err != nil {
		t.Fatal(err)
	}
	if err := s.DB().Exec("UPDATE api_keys SET is_active = FALSE WHERE api_key = ?", key).Error; err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(ctx, key, secret); err != nil {
		t.Fatalf("not cached (precondition of this test): %v", err)
	}
	clock.Advance(time.Minute + time.Second)
	if _, err := s.Verify(ctx, key, secret); err != models.ErrVerifyFailed {
		t.Fatalf("expired cache entry served: err = %v, want ErrVerifyFailed", err)
	}
}
