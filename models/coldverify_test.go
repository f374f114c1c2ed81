package models_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"keydesk/models"
	"keydesk/models/testdb"
)

// Distinct keys verified at once with an empty cache share their queries
// (issue 13 #2): 40 concurrent first verifications issue a handful of
// verification queries, not 40 (each query is held 50 ms so the others
// queue behind it), and every caller gets its own key's answer: the right
// principal, a refusal for a wrong secret and for an unknown key.
func TestConcurrentColdVerificationsShareQueries(t *testing.T) {
	s, _ := testdb.Open(t)
	const n = 40
	keys := make([]*models.SignUpResult, n)
	for i := range keys {
		keys[i] = mustAccount(t, s, fmt.Sprint("Acme ", i), fmt.Sprintf("owner%d@acme.example", i))
	}
	waitCache(t, s)
	var verifyQueries atomic.Int64
	if err := s.DB().Callback().Row().Before("gorm:row").Register("test:slow-verify", func(db *gorm.DB) {
		if strings.Contains(db.Statement.SQL.String(), "FROM api_keys k JOIN accounts a") {
			verifyQueries.Add(1)
			time.Sleep(50 * time.Millisecond)
		}
	}); err != nil {
		t.Fatal(err)
	}
	s.InvalidateVerifyCache()
	wrong, _ := models.NewSecret()
	unknown := strings.Repeat("0f", 16)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			secret := k.Secret.Secret
			if i%10 == 3 {
				secret = wrong
			}
			apiKey := k.Secret.APIKey
			if i%10 == 5 {
				apiKey = unknown
			}
			p, err := s.Verify(ctx, apiKey, secret)
			switch {
			case i%10 == 3 || i%10 == 5:
				if !errors.Is(err, models.ErrVerifyFailed) {
					t.Errorf("key %d: %v, want a refusal", i, err)
				}
			case err != nil:
				t.Errorf("key %d: %v", i, err)
			case p.APIKey != k.Secret.APIKey || p.AccountID != k.Account.ID || !p.IsMaster:
				t.Errorf("key %d: principal %+v of another key", i, p)
			}
		}()
	}
	close(start)
	wg.Wait()
	if q := verifyQueries.Load(); q > 10 {
		t.Errorf("%d concurrent first verifications issued %d verification queries", n, q)
	} else {
		t.Logf("%d concurrent first verifications: %d verification queries", n, q)
	}
	// They filled the cache: the same keys again issue none.
	verifyQueries.Store(0)
	for i, k := range keys {
		if i%10 != 3 && i%10 != 5 {
			if _, err := s.Verify(ctx, k.Secret.APIKey, k.Secret.Secret); err != nil {
				t.Fatal(err)
			}
		}
	}
	if q := verifyQueries.Load(); q != 0 {
		t.Errorf("warm verifications issued %d queries", q)
	}
}
