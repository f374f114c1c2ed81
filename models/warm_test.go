package models_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"keydesk/models"
	"keydesk/models/testdb"
)

// KeepCachesWarm (issue 13 #2) fills the verification and tree caches in
// bulk, so a first pass over the keys issues no query per key; it reloads
// the entries in use before the TTL ends, so they never expire into a
// miss; and a change after the fill is refused at once (the fill obeys
// the cache's invalidation rules).
func TestCachesFilledInBulkAndRefreshedBeforeExpiry(t *testing.T) {
	clock := testdb.NewClock()
	opt := testdb.Options(clock)
	opt.AuditAnchor = filepath.Join(t.TempDir(), "keydesk.audit-anchor")
	opt.CacheRefreshEvery = 10 * time.Millisecond
	s := testdb.OpenDSN(t, testdb.DSN(t), opt)
	const n = 20
	actors := make([]models.Actor, n)
	keys := make([]*models.SignUpResult, n)
	for i := range keys {
		actors[i], keys[i] = owner(t, s, fmt.Sprint("Acme ", i), fmt.Sprintf("owner%d@acme.example", i))
	}
	waitCache(t, s)
	var verifyQ, treeQ atomic.Int64
	if err := s.DB().Callback().Row().Before("gorm:row").Register("test:count-loads", func(db *gorm.DB) {
		switch sql := db.Statement.SQL.String(); {
		case strings.Contains(sql, "FROM api_keys k JOIN accounts a"):
			verifyQ.Add(1)
		case strings.Contains(sql, "FROM api_keys k LEFT JOIN"):
			treeQ.Add(1)
		}
	}); err != nil {
		t.Fatal(err)
	}
	var treeDone atomic.Int64 // tree queries that returned
	if err := s.DB().Callback().Row().After("gorm:row").Register("test:count-done", func(db *gorm.DB) {
		if strings.Contains(db.Statement.SQL.String(), "FROM api_keys k LEFT JOIN") {
			treeDone.Add(1)
		}
	}); err != nil {
		t.Fatal(err)
	}
	s.InvalidateAllKeys()
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); s.KeepCachesWarm(wctx) }()
	t.Cleanup(func() { stop(); <-done })

	useAll := func() (verifies, trees int64) {
		v0, t0 := verifyQ.Load(), treeQ.Load()
		for _, k := range keys {
			p, err := s.Verify(ctx, k.Secret.APIKey, k.Secret.Secret)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.APIListKeysEncoded(ctx, p, models.DefaultAPIKeyQuery, func([]models.APIKeyRecord, int64) ([]byte, error) { return []byte("{}"), nil }); err != nil {
				t.Fatal(err)
			}
		}
		return verifyQ.Load() - v0, treeQ.Load() - t0
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Wait for the fill; then a pass over every key is all hits.
		if verifyQ.Load() > 0 && treeQ.Load() > 0 {
			if v, tr := useAll(); v == 0 && tr == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the fill a pass over %d keys still queries (%d verify, %d tree queries so far)", n, verifyQ.Load(), treeQ.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if v := verifyQ.Load(); v > 3 {
		t.Errorf("the fill of %d keys took %d verification queries", n, v)
	}

	// Used entries are reloaded once older than half the TTL…
	clock.Advance(40 * time.Second)
	before, beforeT := verifyQ.Load(), treeDone.Load()
	for verifyQ.Load() == before || treeDone.Load() == beforeT {
		if time.Now().After(deadline) {
			t.Fatalf("the entries in use were never refreshed (%d verify, %d tree queries since)", verifyQ.Load()-before, treeDone.Load()-beforeT)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// …so past the TTL of the first load they are still hits (the loop
	// stopped after the refresh's query returned: its fill is done).
	stop()
	<-done
	clock.Advance(30 * time.Second)
	if v, tr := useAll(); v != 0 || tr != 0 {
		t.Errorf("70 s after the fill, with a refresh at 40 s, a pass issued %d verify and %d tree queries", v, tr)
	}
	// A change after the fill is refused at once.
	if _, _, err := s.ResetSecret(ctx, actors[3], keys[3].Key.ID, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(ctx, keys[3].Secret.APIKey, keys[3].Secret.Secret); !errors.Is(err, models.ErrVerifyFailed) {
		t.Fatalf("a secret reset after the fill still verifies: %v", err)
	}
}
