package models_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"keydesk/models"
	"keydesk/models/testdb"
)

// Parallel guesses for one account from one address: the attempt is
// reserved before the password is hashed, so at most the limit is ever
// evaluated, however many arrive at once.
func TestLoginReservesAttemptBeforeHashing(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	mustAccount(t, s, "Acme", "owner@acme.example")
	before := s.PasswordEvaluations()
	const n = 50
	var (
		wg                 sync.WaitGroup
		mu                 sync.Mutex
		invalid, throttled int
		other              []error
		attacker           = models.RequestMeta{IP: "198.51.100.66"}
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, _, err := s.Login(ctx, "owner@acme.example", fmt.Sprintf("wrong guess %02d!!", i), "", attacker)
			var te *models.ThrottledError
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, models.ErrInvalidCredentials):
				invalid++
			case errors.As(err, &te):
				throttled++
			default:
				other = append(other, err)
			}
		}(i)
	}
	wg.Wait()
	if len(other) > 0 {
		t.Fatalf("unexpected answers: %v", other)
	}
	evaluated := s.PasswordEvaluations() - before
	limit := models.DefaultThrottle.PerPair
	if evaluated > uint64(limit) || invalid > limit {
		t.Fatalf("%d parallel guesses: %d passwords evaluated, %d answered wrong, %d throttled; at most %d may be evaluated",
			n, evaluated, invalid, throttled, limit)
	}
	if invalid+throttled != n {
		t.Fatalf("%d wrong + %d throttled != %d", invalid, throttled, n)
	}
	var failed int64
	testdb.Must(t, s.DB().Table("audit_entries").Where("action = ?", models.ActionLoginFailed).Count(&failed))
	if failed != int64(invalid) {
		t.Fatalf("%d login.failed entries for %d evaluated failures", failed, invalid)
	}
}

// An attacker's address is stopped for that account; the owner's right
// password from another address still works.
func TestLoginLockoutIsPerAddress(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	mustAccount(t, s, "Acme", "owner@acme.example")
	attacker := models.RequestMeta{IP: "198.51.100.66"}
	for i := 0; i < models.DefaultThrottle.PerPair; i++ {
		if _, _, err := s.Login(ctx, "owner@acme.example", "wrong password!!", "", attacker); !errors.Is(err, models.ErrInvalidCredentials) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	var te *models.ThrottledError
	if _, _, err := s.Login(ctx, "owner@acme.example", pw, "", attacker); !errors.As(err, &te) {
		t.Fatalf("the attacker's address is not stopped: %v", err)
	}
	if _, _, err := s.Login(ctx, "owner@acme.example", pw, "", models.RequestMeta{IP: "203.0.113.10"}); err != nil {
		t.Fatalf("the owner is locked out from another address: %v", err)
	}
}

// Distributed guessing (a few guesses from each of many addresses) meets
// the per-account ceiling, which stops everyone until it expires.
func TestLoginPerAccountCeilingStopsDistributedGuessing(t *testing.T) {
	t.Parallel()
	s, clock := testdb.Open(t)
	mustAccount(t, s, "Acme", "owner@acme.example")
	pol := models.DefaultThrottle
	for i := 0; i < pol.PerIdentity; i++ {
		ip := models.RequestMeta{IP: fmt.Sprintf("192.0.2.%d", i/(pol.PerPair-1))}
		if _, _, err := s.Login(ctx, "owner@acme.example", "wrong password!!", "", ip); !errors.Is(err, models.ErrInvalidCredentials) {
			t.Fatalf("guess %d from %s: %v", i, ip.IP, err)
		}
	}
	var te *models.ThrottledError
	if _, _, err := s.Login(ctx, "owner@acme.example", pw, "", models.RequestMeta{IP: "203.0.113.10"}); !errors.As(err, &te) {
		t.Fatalf("after %d guesses from many addresses the account is still open: %v", pol.PerIdentity, err)
	}
	clock.Advance(pol.Lockout + pol.Window)
	if _, _, err := s.Login(ctx, "owner@acme.example", pw, "", models.RequestMeta{IP: "203.0.113.10"}); err != nil {
		t.Fatalf("after the lockout: %v", err)
	}
}

// The same rule for API keys (REST Basic auth and SMTP AUTH): wrong secrets
// from one address do not lock the key's owner out elsewhere.
func TestAPIKeyLockoutIsPerAddress(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	res := mustAccount(t, s, "Acme", "owner@acme.example")
	wrong, _ := models.NewSecret()
	for i := 0; i < models.DefaultAPIThrottle.PerPair; i++ {
		if _, err := s.VerifyRequest(ctx, res.Secret.APIKey, wrong, "198.51.100.66", models.ChannelAPI); !errors.Is(err, models.ErrVerifyFailed) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	var te *models.ThrottledError
	if _, err := s.VerifyRequest(ctx, res.Secret.APIKey, res.Secret.Secret, "198.51.100.66", models.ChannelAPI); !errors.As(err, &te) {
		t.Fatalf("the attacker's address is not stopped: %v", err)
	}
	if _, err := s.VerifyRequest(ctx, res.Secret.APIKey, res.Secret.Secret, "203.0.113.10", models.ChannelSMTP); err != nil {
		t.Fatalf("the owner's right secret from another address: %v", err)
	}
}

// The REST/SMTP throttle's state is kept in memory; made-up usernames must
// not grow it without bound (each failure from a fresh address with a
// fresh key). The bound is lowered for the test (each failure is also a
// database write); the production bound is the same code.
func TestAuthThrottleTableStaysBounded(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	const bound = 1_000
	s.SetAuthLimiterMax(bound)
	secret, _ := models.NewSecret()
	secret = secret[:len(secret)-1] + string('A'+(secret[len(secret)-1]+1)%26) // bad checksum: no database lookup
	const n = 3 * bound
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("%032x", i+1)
		ip := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		if _, err := s.VerifyRequest(ctx, key, secret, ip, models.ChannelSMTP); !errors.Is(err, models.ErrVerifyFailed) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if got := s.AuthLimiterEntries(); got > bound {
		t.Fatalf("%d distinct usernames left %d throttle entries, bound %d", n, got, bound)
	}
	// A username that is not an API key is refused before anything keyed
	// on it is stored: 21 requests with 750 KB usernames from 10 addresses
	// add at most one entry per address.
	before := s.AuthLimiterEntries()
	long := string(make([]byte, 750_000))
	for i := 0; i < 210; i++ {
		_, _ = s.VerifyRequest(ctx, long+fmt.Sprint(i), secret, fmt.Sprintf("172.16.0.%d", i%10), models.ChannelAPI)
	}
	if added := s.AuthLimiterEntries() - before; added > 10 {
		t.Fatalf("210 malformed usernames from 10 addresses added %d entries", added)
	}
}

// Password hashing runs in a bounded number of slots: a request that finds
// them all taken for the whole short wait gets a BusyError, and its
// reserved attempt is given back (it was never evaluated).
func TestPasswordHashingIsBoundedAndBusyIsNotAFailure(t *testing.T) {
	t.Parallel()
	clock := testdb.NewClock()
	opt := testdb.Options(clock)
	opt.HashConcurrency, opt.HashWait = 1, 5*time.Millisecond
	s := testdb.OpenDSN(t, testdb.DSN(t), opt)
	mustAccount(t, s, "Acme", "owner@acme.example")

	before := s.PasswordEvaluations()
	release := s.HoldHashSlot() // the only slot, taken as by a long hash
	_, _, err := s.Login(ctx, "owner@acme.example", "wrong password!!", "", meta)
	var be *models.BusyError
	if !errors.As(err, &be) || be.RetryAfterSeconds() < 1 {
		t.Fatalf("login while the only hashing slot is taken: %v, want a BusyError", err)
	}
	tok, _, _ := s.Login(ctx, "owner@acme.example", pw, "", meta)
	if tok != "" {
		t.Fatal("a login succeeded while every hashing slot was taken")
	}
	release()
	if got := s.PasswordEvaluations() - before; got != 0 {
		t.Fatalf("%d evaluations while the slot was taken, want 0", got)
	}
	// The busy attempts were given back: all PerPair guesses are still there.
	for i := 0; i < models.DefaultThrottle.PerPair; i++ {
		if _, _, err := s.Login(ctx, "owner@acme.example", "wrong password!!", "", meta); !errors.Is(err, models.ErrInvalidCredentials) {
			t.Fatalf("guess %d after busy answers: %v", i, err)
		}
	}
	var te *models.ThrottledError
	if _, _, err := s.Login(ctx, "owner@acme.example", pw, "", meta); !errors.As(err, &te) {
		t.Fatalf("after PerPair guesses: %v, want a throttle", err)
	}
}

// Self sign-up is limited per client address; every attempt that reaches
// the e-mail check counts (a taken e-mail too), so probing which addresses
// are registered gets no speed. The throttled attempt hashes nothing.
func TestSignupIsRateLimitedPerAddress(t *testing.T) {
	t.Parallel()
	s, clock := testdb.Open(t)
	mustAccount(t, s, "Taken", "taken@acme.example")
	from := models.Actor{Meta: models.RequestMeta{IP: "198.51.100.23"}}
	signup := func(email string, who models.Actor) error {
		_, err := s.CreateAccount(ctx, models.SignUpInput{AccountName: "Acme", Email: email, Password: pw}, who, models.ActionSignup)
		return err
	}
	pol := models.DefaultSignup
	for i := 0; i < pol.PerIP; i++ {
		email := fmt.Sprintf("new%d@acme.example", i)
		if i%2 == 1 {
			email = "taken@acme.example" // an enumeration probe
			if err := signup(email, from); models.FieldErrors(err)["email"] == "" {
				t.Fatalf("attempt %d (taken e-mail): %v", i, err)
			}
			continue
		}
		if err := signup(email, from); err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	before := s.PasswordEvaluations()
	var te *models.ThrottledError
	if err := signup("one-more@acme.example", from); !errors.As(err, &te) || te.RetryAfterSeconds() < 60 {
		t.Fatalf("sign-up %d from one address: %v, want a throttle", pol.PerIP+1, err)
	}
	if err := signup("taken@acme.example", from); !errors.As(err, &te) {
		t.Fatalf("a throttled address can still probe e-mails: %v", err)
	}
	if n := s.PasswordEvaluations() - before; n != 0 {
		t.Fatalf("throttled sign-ups hashed %d passwords", n)
	}
	if err := signup("elsewhere@acme.example", models.Actor{Meta: models.RequestMeta{IP: "203.0.113.10"}}); err != nil {
		t.Fatalf("another address: %v", err)
	}
	clock.Advance(pol.Window + time.Second)
	if err := signup("later@acme.example", from); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// Right and wrong passwords at once, for one account from a few addresses:
// reservations and releases lock the counters in one order, so nothing
// deadlocks (PostgreSQL) and every answer is a session, a refusal or a
// throttle, never an error.
func TestConcurrentLoginsAnswerCleanly(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	mustAccount(t, s, "Acme", "owner@acme.example")
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			password := pw
			if i%2 == 1 {
				password = "wrong password!!"
			}
			_, _, err := s.Login(ctx, "owner@acme.example", password, "", models.RequestMeta{IP: fmt.Sprintf("192.0.2.%d", i%3)})
			var te *models.ThrottledError
			if err != nil && !errors.Is(err, models.ErrInvalidCredentials) && !errors.As(err, &te) {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Every address and (e-mail, address) pair tried leaves a counter row;
// rows whose window and lockout are long over are swept, so the table
// does not grow forever.
func TestExpiredThrottleCountersAreSwept(t *testing.T) {
	t.Parallel()
	s, clock := testdb.Open(t)
	for i := 0; i < 30; i++ {
		_, _, _ = s.Login(ctx, fmt.Sprintf("guess%d@acme.example", i), "wrong password!!", "", models.RequestMeta{IP: fmt.Sprintf("192.0.2.%d", i)})
	}
	var n int64
	testdb.Must(t, s.DB().Table("throttles").Count(&n))
	if n != 90 {
		t.Fatalf("%d counter rows after 30 failures, want 90 (pair, e-mail, address)", n)
	}
	clock.Advance(3 * time.Hour)
	_, _, _ = s.Login(ctx, "later@acme.example", "wrong password!!", "", models.RequestMeta{IP: "203.0.113.1"})
	testdb.Must(t, s.DB().Table("throttles").Count(&n))
	if n != 3 {
		t.Fatalf("%d counter rows three hours later, want 3 (only the newest attempt's)", n)
	}
}

// Only failures write the shared REST/SMTP throttle (issue 13 #8): a
// successful, cached authentication issues no database statement.
func TestAPISuccessIssuesNoDatabaseStatement(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	res := mustAccount(t, s, "Acme", "owner@acme.example")
	waitCache(t, s)
	if _, err := s.VerifyRequest(ctx, res.Secret.APIKey, res.Secret.Secret, "203.0.113.10", models.ChannelAPI); err != nil {
		t.Fatal(err)
	}
	var statements atomic.Int64
	count := func(*gorm.DB) { statements.Add(1) }
	cb := s.DB().Callback()
	for _, err := range []error{
		cb.Query().Before("gorm:query").Register("test:count", count), cb.Row().Before("gorm:row").Register("test:count", count),
		cb.Raw().Before("gorm:raw").Register("test:count", count), cb.Create().Before("gorm:create").Register("test:count", count),
		cb.Update().Before("gorm:update").Register("test:count", count), cb.Delete().Before("gorm:delete").Register("test:count", count),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 100; i++ {
		if _, err := s.VerifyRequest(ctx, res.Secret.APIKey, res.Secret.Secret, "203.0.113.10", models.ChannelAPI); err != nil {
			t.Fatal(err)
		}
	}
	if n := statements.Load(); n != 0 {
		t.Fatalf("100 successful authentications issued %d database statements", n)
	}
	wrong, _ := models.NewSecret()
	if _, err := s.VerifyRequest(ctx, res.Secret.APIKey, wrong, "203.0.113.10", models.ChannelAPI); !errors.Is(err, models.ErrVerifyFailed) {
		t.Fatal(err)
	}
	if statements.Load() == 0 {
		t.Fatal("a failure was not written to the database")
	}
}
