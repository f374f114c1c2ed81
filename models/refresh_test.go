package models_test

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"keydesk/models"
	"keydesk/models/testdb"
)

// countLoads counts the verification and tree queries s issues from now on.
func countLoads(t *testing.T, s *models.Store) (verifies, trees *atomic.Int64) {
	t.Helper()
	verifies, trees = new(atomic.Int64), new(atomic.Int64)
	if err := s.DB().Callback().Row().Before("gorm:row").Register("test:count-"+t.Name(), func(db *gorm.DB) {
		switch sql := db.Statement.SQL.String(); {
		case strings.Contains(sql, "FROM api_keys k JOIN accounts a"):
			verifies.Add(1)
		case strings.Contains(sql, "FROM api_keys k LEFT JOIN"):
			trees.Add(1)
		}
	}); err != nil {
		t.Fatal(err)
	}
	return verifies, trees
}

// useKey verifies a key and lists its tree as GET /v3/REST/apikey does.
func useKey(t *testing.T, s *models.Store, k *models.SignUpResult) error {
	t.Helper()
	p, err := s.Verify(ctx, k.Secret.APIKey, k.Secret.Secret)
	if err != nil {
		return err
	}
	_, err = s.APIListKeysEncoded(ctx, p, models.DefaultAPIKeyQuery, func([]models.APIKeyRecord, int64) ([]byte, error) { return []byte("{}"), nil })
	return err
}

// The entries the caches hold are re-read in bulk before they age out,
// used or not (issue 13 #2): after minutes of idle time a key filled at
// start (or used once long ago) is still a hit, key and tree.
func TestIdleCachedKeysStayWarm(t *testing.T) {
	t.Parallel()
	s, clock := testdb.Open(t)
	waitCache(t, s)
	const n = 6
	keys := make([]*models.SignUpResult, n)
	for i := range keys {
		_, keys[i] = owner(t, s, fmt.Sprint("Acme ", i), fmt.Sprintf("owner%d@acme.example", i))
	}
	s.InvalidateAllKeys()
	s.FillCachesNow(ctx)
	verifies, trees := countLoads(t, s)
	for _, k := range keys[:2] { // two are used once, right after the fill
		if err := useKey(t, s, k); err != nil {
			t.Fatal(err)
		}
	}
	if v, tr := verifies.Load(), trees.Load(); v != 0 || tr != 0 {
		t.Fatalf("right after the fill: %d verify and %d tree queries", v, tr)
	}
	for range 16 { // four minutes, a refresh every 15 s, nothing used
		clock.Advance(15 * time.Second)
		s.RefreshCachesNow(ctx)
	}
	refreshV, refreshT := verifies.Load(), trees.Load()
	if refreshV == 0 || refreshT == 0 {
		t.Fatalf("four minutes of refreshes issued %d verify and %d tree queries", refreshV, refreshT)
	}
	for _, k := range keys {
		if err := useKey(t, s, k); err != nil {
			t.Fatal(err)
		}
	}
	if v, tr := verifies.Load()-refreshV, trees.Load()-refreshT; v != 0 || tr != 0 {
		t.Errorf("after four idle minutes a pass over %d cached keys issued %d verify and %d tree queries", n, v, tr)
	}
}

// Re-reading entries before they age out must not make a change the cache
// was not told about (made in the database directly, without NOTIFY) live
// longer than today's bound: refused at most one TTL (a minute) after it,
// whether the refresh runs or not.
func TestRefreshedEntriesRefuseUntoldChangesWithinTheTTL(t *testing.T) {
	t.Parallel()
	for _, refresh := range []bool{true, false} {
		t.Run(fmt.Sprint("refresh=", refresh), func(t *testing.T) {
			s, clock := testdb.Open(t)
			waitCache(t, s)
			const n = 6
			keys := make([]*models.SignUpResult, n)
			for i := range keys {
				_, keys[i] = owner(t, s, fmt.Sprint("Acme ", i), fmt.Sprintf("owner%d@acme.example", i))
			}
			s.InvalidateAllKeys()
			s.FillCachesNow(ctx)
			for range 6 { // the entries have been refreshed a few times
				clock.Advance(15 * time.Second)
				s.RefreshCachesNow(ctx)
			}
			for _, k := range keys {
				if err := useKey(t, s, k); err != nil {
					t.Fatal(err)
				}
			}
			// Untold changes, each on its own key.
			newSecret, _ := models.NewSecret()
			d := models.DigestSecret(newSecret)
			for _, c := range []struct {
				sql  string
				args []any
			}{
				{"UPDATE api_keys SET is_active = FALSE WHERE id = ?", []any{keys[0].Key.ID}},
				{"UPDATE accounts SET is_active = FALSE WHERE id = ?", []any{keys[1].Account.ID}},
				{"UPDATE api_keys SET secret_digest = ? WHERE id = ?", []any{d[:], keys[2].Key.ID}},
				{"DELETE FROM api_keys WHERE id = ?", []any{keys[3].Key.ID}},
			} {
				if err := s.DB().Exec(c.sql, c.args...).Error; err != nil {
					t.Fatalf("%s: %v", c.sql, err)
				}
			}
			changed := clock.Now()
			// An entry read at the change at the latest is served up to a
			// TTL after its read, never past: checked at 1 s, 16 s, …, 61 s
			// and on to two minutes.
			clock.Advance(time.Second)
			refused := map[int]time.Duration{}
			for step := 0; step <= 8; step++ {
				for i, k := range keys[:4] {
					if _, err := s.Verify(ctx, k.Secret.APIKey, k.Secret.Secret); errors.Is(err, models.ErrVerifyFailed) {
						if _, ok := refused[i]; !ok {
							refused[i] = clock.Now().Sub(changed)
						}
					} else if err != nil {
						t.Fatal(err)
					} else if _, ok := refused[i]; ok {
						t.Fatalf("key %d accepted again %v after its change", i, clock.Now().Sub(changed))
					}
				}
				for _, k := range keys[4:] {
					if err := useKey(t, s, k); err != nil {
						t.Fatalf("an unchanged key: %v", err)
					}
				}
				clock.Advance(15 * time.Second)
				if refresh {
					s.RefreshCachesNow(ctx)
				}
			}
			for i := range keys[:4] {
				if at, ok := refused[i]; !ok || at > time.Minute+time.Second {
					t.Errorf("change %d: refused %v after it (refused at all: %v), want within the minute's TTL", i, at, ok)
				}
			}
			t.Logf("refused after: %v", refused)
		})
	}
}

// A change made through the store (invalidated here, and on PostgreSQL in
// every instance by NOTIFY) while a refresh's query is running must not be
// undone by that refresh storing what it read before the change. (On
// PostgreSQL the statement's snapshot is taken when the hook below runs; on
// SQLite the read may happen when the rows are fetched, after the change,
// and the test then shows only that the refresh read the new row.)
func TestRefreshRacingAChangeDoesNotStoreTheOldRow(t *testing.T) {
	t.Parallel()
	s, clock := testdb.Open(t)
	waitCache(t, s)
	actor, k := owner(t, s, "Acme", "owner@acme.example")
	s.InvalidateAllKeys()
	s.FillCachesNow(ctx)
	if err := useKey(t, s, k); err != nil {
		t.Fatal(err)
	}
	clock.Advance(40 * time.Second) // old enough to be refreshed
	var armed atomic.Bool
	read, release := make(chan struct{}), make(chan struct{})
	if err := s.DB().Callback().Row().After("gorm:row").Register("test:hold-refresh", func(db *gorm.DB) {
		if strings.Contains(db.Statement.SQL.String(), "FROM api_keys k JOIN accounts a") && armed.CompareAndSwap(true, false) {
			close(read) // the query has run: its rows are from before the change
			<-release
		}
	}); err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	done := make(chan struct{})
	go func() { defer close(done); s.RefreshCachesNow(ctx) }()
	<-read
	if _, _, err := s.ResetSecret(ctx, actor, k.Key.ID, 0); err != nil {
		t.Fatal(err)
	}
	close(release)
	<-done
	if _, err := s.Verify(ctx, k.Secret.APIKey, k.Secret.Secret); !errors.Is(err, models.ErrVerifyFailed) {
		t.Fatalf("a secret reset while a refresh read the key still verifies after it: %v", err)
	}
}

// A refresh that reads a tree unchanged keeps its entry, so the encoded
// default list survives it (no encoding again every half minute); one that
// reads a change, even an untold one, replaces it.
func TestRefreshKeepsAnUnchangedTreesEncodedList(t *testing.T) {
	t.Parallel()
	s, clock := testdb.Open(t)
	waitCache(t, s)
	_, k := owner(t, s, "Acme", "owner@acme.example")
	p, err := s.Verify(ctx, k.Secret.APIKey, k.Secret.Secret)
	if err != nil {
		t.Fatal(err)
	}
	encodes := 0
	list := func() string {
		t.Helper()
		b, err := s.APIListKeysEncoded(ctx, p, models.DefaultAPIKeyQuery, func(rows []models.APIKeyRecord, _ int64) ([]byte, error) {
			encodes++
			var names []string
			for _, r := range rows {
				names = append(names, r.Key.Name)
			}
			return []byte(strings.Join(names, ",")), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	first := list()
	list() // kept from the second list on
	before := encodes
	clock.Advance(40 * time.Second)
	s.RefreshCachesNow(ctx)
	if got := list(); got != first || encodes != before {
		t.Errorf("after a refresh that read the same tree: %q, %d encodings more", got, encodes-before)
	}
	if err := s.DB().Exec("UPDATE api_keys SET name = 'renamed untold' WHERE id = ?", k.Key.ID).Error; err != nil {
		t.Fatal(err)
	}
	clock.Advance(40 * time.Second)
	s.RefreshCachesNow(ctx)
	if got := list(); got != "renamed untold" {
		t.Errorf("after a refresh that read a renamed key the list says %q", got)
	}
}
