package models_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"keydesk/models"
	"keydesk/models/testdb"
)

// threeInstances opens three stores on one PostgreSQL database, as three
// keydesk processes behind a load balancer would be (issue 13 #8).
func threeInstances(t *testing.T) ([]*models.Store, string) {
	t.Helper()
	if testdb.Engine() != models.Postgres {
		t.Skip("multi-instance tests run in the PostgreSQL suite (KEYDESK_TEST_DB); a SQLite file has one instance")
	}
	dsn := testdb.DSN(t)
	clock := testdb.NewClock()
	var st []*models.Store
	for range 3 {
		st = append(st, testdb.OpenDSN(t, dsn, testdb.Options(clock)))
	}
	waitCache(t, st...)
	return st, dsn
}

// The REST/SMTP failure throttle is shared through the database: wrong
// secrets spread over three instances count once, so three instances do
// not give an attacker three times the tries, and within a second every
// instance refuses the attacker's address (even with the right secret).
func TestThreeInstancesShareTheAPIThrottle(t *testing.T) {
	st, dsn := threeInstances(t)
	res := mustAccount(t, st[0], "Acme", "owner@acme.example")
	key, secret := res.Secret.APIKey, res.Secret.Secret
	wrong, _ := models.NewSecret()
	const ip = "198.51.100.66"
	for i := 0; i < models.DefaultAPIThrottle.PerPair; i++ {
		if _, err := st[i%3].VerifyRequest(ctx, key, wrong, ip, models.ChannelAPI); !errors.Is(err, models.ErrVerifyFailed) {
			t.Fatalf("guess %d on instance %d: %v", i+1, i%3+1, err)
		}
	}
	start := time.Now()
	for i, s := range st {
		for {
			_, err := s.VerifyRequest(ctx, key, secret, ip, models.ChannelAPI)
			var te *models.ThrottledError
			if errors.As(err, &te) {
				t.Logf("instance %d refuses the address %v after the last failure", i+1, time.Since(start).Round(time.Microsecond))
				break
			}
			if time.Since(start) > time.Second {
				t.Fatalf("instance %d still evaluates the address 1 s after %d failures spread over three instances (answer: %v)", i+1, models.DefaultAPIThrottle.PerPair, err)
			}
			time.Sleep(time.Millisecond)
		}
	}
	// The owner elsewhere is not locked out, on any instance.
	for i, s := range st {
		if _, err := s.VerifyRequest(ctx, key, secret, "203.0.113.10", models.ChannelSMTP); err != nil {
			t.Fatalf("instance %d refuses the owner's right secret from another address: %v", i+1, err)
		}
	}
	// A fourth instance started now learns the lockout from the database.
	late := testdb.OpenDSN(t, dsn, testdb.Options(testdb.NewClock()))
	waitCache(t, late)
	var te *models.ThrottledError
	if _, err := late.VerifyRequest(ctx, key, secret, ip, models.ChannelAPI); !errors.As(err, &te) {
		t.Fatalf("an instance started after the lockout evaluates the address: %v", err)
	}
}

// A deactivation or a reset made on one instance is refused by all three
// within a second (the figures go to BENCHMARKS.md), while each instance
// answers from its cache; the audit entries all three wrote verify as one
// chain.
func TestThreeInstancesRefuseChangedKeysWithinASecond(t *testing.T) {
	st, _ := threeInstances(t)
	actor, res := owner(t, st[0], "Acme", "owner@acme.example")
	if err := st[0].DB().Table("accounts").Where("id = ?", res.Account.ID).Update("subaccount_limit", 100).Error; err != nil {
		t.Fatal(err)
	}
	const rounds = 30
	var delays []time.Duration
	for r := 0; r < rounds; r++ {
		on := st[r%3]
		sub, rev, err := on.CreateSubaccount(ctx, actor, fmt.Sprintf("client-%d", r), "")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st { // every instance has the key cached
			waitAccepted(t, s, rev.APIKey, rev.Secret)
		}
		var changed string
		start := time.Now()
		if r%2 == 0 {
			if _, err := on.SetKeyActive(ctx, actor, sub.Key.ID, false); err != nil {
				t.Fatal(err)
			}
			changed = "deactivated"
		} else {
			if _, _, err := on.ResetSecret(ctx, actor, sub.Key.ID, 0); err != nil {
				t.Fatal(err)
			}
			changed = "reset"
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i, s := range st {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					if _, err := s.Verify(ctx, rev.APIKey, rev.Secret); errors.Is(err, models.ErrVerifyFailed) {
						mu.Lock()
						delays = append(delays, time.Since(start))
						mu.Unlock()
						return
					}
					if time.Since(start) > time.Second {
						t.Errorf("round %d: instance %d still accepts a key %s on instance %d a second ago", r, i+1, changed, r%3+1)
						return
					}
					time.Sleep(100 * time.Microsecond)
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
	}
	slices.Sort(delays)
	p := func(q float64) time.Duration { return delays[min(len(delays)-1, int(q*float64(len(delays))))] }
	t.Logf("changed key refused by all three instances: %d observations, p50 %v, p99 %v, max %v",
		len(delays), p(0.50).Round(time.Microsecond), p(0.99).Round(time.Microsecond), delays[len(delays)-1].Round(time.Microsecond))
	for i, s := range st {
		rep, err := s.VerifyAudit(ctx, models.VerifyOptions{Full: true})
		if err != nil || !rep.OK {
			t.Fatalf("instance %d: the audit chain written by three instances does not verify: %v %+v", i+1, err, rep)
		}
	}
}

// Two schemas of one PostgreSQL database are two deployments (as each
// test is, in the PostgreSQL suite): a lockout announced in one must not
// reach the other. PostgreSQL delivers notifications in commit order, so
// once the second schema's own later lockout has arrived, the first one's
// would have too had it been sent on the same channel.
func TestSchemasOfOneDatabaseDoNotShareNotifications(t *testing.T) {
	t.Parallel()
	if testdb.Engine() != models.Postgres {
		t.Skip("schemas and NOTIFY are PostgreSQL's (KEYDESK_TEST_DB)")
	}
	clock := testdb.NewClock()
	a := testdb.OpenDSN(t, testdb.DSN(t), testdb.Options(clock))
	dsnB := testdb.DSN(t)
	b := testdb.OpenDSN(t, dsnB, testdb.Options(clock))
	b2 := testdb.OpenDSN(t, dsnB, testdb.Options(clock))
	waitCache(t, a, b, b2)
	res := mustAccount(t, b, "Acme", "owner@acme.example")
	key, secret := res.Secret.APIKey, res.Secret.Secret
	lockOut := func(s *models.Store, ip string) {
		t.Helper()
		for i := 0; i < models.DefaultAPIThrottle.PerIP; i++ {
			if _, err := s.VerifyRequest(ctx, "not-a-key", "x", ip, models.ChannelAPI); !errors.Is(err, models.ErrVerifyFailed) {
				t.Fatalf("guess %d from %s: %v", i+1, ip, err)
			}
		}
		var te *models.ThrottledError
		if _, err := s.VerifyRequest(ctx, key, secret, ip, models.ChannelAPI); !errors.As(err, &te) {
			t.Fatalf("%s is not locked out after %d failures: %v", ip, models.DefaultAPIThrottle.PerIP, err)
		}
	}
	const ipA, ipB = "198.51.100.71", "198.51.100.72"
	lockOut(a, ipA)  // announced in schema A
	lockOut(b2, ipB) // announced in schema B, after
	for start := time.Now(); ; time.Sleep(time.Millisecond) {
		var te *models.ThrottledError
		if _, err := b.VerifyRequest(ctx, key, secret, ipB, models.ChannelAPI); errors.As(err, &te) {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("the other instance on schema B never learnt schema B's lockout")
		}
	}
	if _, err := b.VerifyRequest(ctx, key, secret, ipA, models.ChannelAPI); err != nil {
		t.Fatalf("schema B refuses an address locked out in schema A: %v", err)
	}
}

// Advisory locks are per database too: the audit check another schema
// runs (holds its lock) does not stop this schema's.
func TestSchemasOfOneDatabaseDoNotShareLocks(t *testing.T) {
	t.Parallel()
	if testdb.Engine() != models.Postgres {
		t.Skip("schemas and advisory locks are PostgreSQL's (KEYDESK_TEST_DB)")
	}
	a, _ := openAnchored(t, testdb.DSN(t), testdb.AuditKey)
	b, _ := openAnchored(t, testdb.DSN(t), testdb.AuditKey)
	sqlDB, err := a.DB().DB()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", a.AuditCheckLock()); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(ctx, "SELECT pg_advisory_unlock($1)", a.AuditCheckLock()) //nolint:errcheck
	if _, ran, err := b.CheckAudit(ctx); err != nil || !ran {
		t.Fatalf("schema B's audit check while schema A's runs: ran=%v %v", ran, err)
	}
	if _, ran, err := a.CheckAudit(ctx); err != nil || ran {
		t.Fatalf("schema A's audit check while its lock is held: ran=%v %v", ran, err)
	}
}

// Instances that re-read their cached entries in bulk all the time (the
// refresh of KeepCachesWarm, here every 2 ms, with a clock that moves 20 s
// every 5 ms so every entry is always due) still refuse a key deactivated
// or reset on another instance within a second, and no refresh makes it
// accepted again afterwards.
func TestRefreshingInstancesRefuseChangesFromAnother(t *testing.T) {
	if testdb.Engine() != models.Postgres {
		t.Skip("multi-instance tests run in the PostgreSQL suite (KEYDESK_TEST_DB); a SQLite file has one instance")
	}
	dsn := testdb.DSN(t)
	clock := testdb.NewClock()
	opt := testdb.Options(clock)
	opt.CacheRefreshEvery = 2 * time.Millisecond
	var st []*models.Store
	for range 3 {
		st = append(st, testdb.OpenDSN(t, dsn, opt))
	}
	waitCache(t, st...)
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var hold atomic.Bool // the clock stands still while an owner acts (inside the sudo window)
	for _, s := range st {
		wg.Add(1)
		go func() { defer wg.Done(); s.KeepCachesWarm(wctx) }()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for wctx.Err() == nil {
			if !hold.Load() {
				clock.Advance(20 * time.Second)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { stop(); wg.Wait() })
	hold.Store(true)
	actor, res := owner(t, st[0], "Acme", "owner@acme.example")
	if err := st[0].DB().Table("accounts").Where("id = ?", res.Account.ID).Update("subaccount_limit", 100).Error; err != nil {
		t.Fatal(err)
	}
	for r := 0; r < 12; r++ {
		on := st[r%3]
		hold.Store(true)
		actor.AuthAt = clock.Now()
		sub, rev, err := on.CreateSubaccount(ctx, actor, fmt.Sprintf("client-%d", r), "")
		hold.Store(false)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st {
			waitAccepted(t, s, rev.APIKey, rev.Secret)
		}
		time.Sleep(20 * time.Millisecond) // a few refreshes of the entry everywhere
		hold.Store(true)
		actor.AuthAt = clock.Now()
		start := time.Now()
		if r%2 == 0 {
			_, err = on.SetKeyActive(ctx, actor, sub.Key.ID, false)
		} else {
			_, _, err = on.ResetSecret(ctx, actor, sub.Key.ID, 0)
		}
		hold.Store(false)
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range st {
			for {
				if _, err := s.Verify(ctx, rev.APIKey, rev.Secret); errors.Is(err, models.ErrVerifyFailed) {
					break
				}
				if time.Since(start) > time.Second {
					t.Fatalf("round %d: instance %d still accepts a key changed on instance %d a second ago", r, i+1, r%3+1)
				}
				time.Sleep(100 * time.Microsecond)
			}
		}
		for until := time.Now().Add(100 * time.Millisecond); time.Now().Before(until); time.Sleep(time.Millisecond) {
			for i, s := range st {
				if _, err := s.Verify(ctx, rev.APIKey, rev.Secret); !errors.Is(err, models.ErrVerifyFailed) {
					t.Fatalf("round %d: instance %d accepts the changed key again (%v)", r, i+1, err)
				}
			}
		}
	}
}
