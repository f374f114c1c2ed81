package handlers_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"keydesk/models"
	"keydesk/models/testdb"
)

// postForm posts a form from a goroutine (no t.Fatal there): it returns the
// status, or 0 when the request itself failed.
func (c *client) postForm(path string, form url.Values) int {
	req, err := http.NewRequest(http.MethodPost, c.app.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := c.http.Do(req)
	if err != nil {
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}

// 40 wrong passwords for one account sent at once from one address: the
// attempt is reserved before hashing, so at most the limit is evaluated.
func TestParallelWrongLoginsEvaluateAtMostTheLimit(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.client().signup("Acme Mail", "owner@acme.example")
	const n = 40
	clients, tokens := make([]*client, n), make([]string, n)
	for i := range clients {
		clients[i] = a.client()
		tokens[i] = clients[i].csrf("/login")
	}
	before := a.store.PasswordEvaluations()
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			statuses[i] = clients[i].postForm("/login", url.Values{
				"_csrf": {tokens[i]}, "email": {"owner@acme.example"}, "password": {"wrong password " + strconv.Itoa(i)},
			})
		}(i)
	}
	wg.Wait()
	evaluated := a.store.PasswordEvaluations() - before
	count := map[int]int{}
	for _, st := range statuses {
		count[st]++
	}
	limit := models.DefaultThrottle.PerPair
	if evaluated > uint64(limit) || count[http.StatusUnauthorized] > limit {
		t.Fatalf("%d parallel wrong logins: %d passwords evaluated (statuses %v); at most %d may be", n, evaluated, count, limit)
	}
	if count[http.StatusUnauthorized]+count[http.StatusTooManyRequests] != n {
		t.Fatalf("statuses %v: want only 401 and 429", count)
	}
}

// Sign-up from one address is rate-limited: a clear 429 on the form, with
// Retry-After, and nothing created.
func TestSignupIsThrottledPerAddress(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	for i := 0; i < models.DefaultSignup.PerIP; i++ {
		a.client().signup("Acme "+strconv.Itoa(i), "owner"+strconv.Itoa(i)+"@acme.example")
	}
	c := a.client()
	r := c.submit("/signup", "/signup", url.Values{"account_name": {"One more"}, "email": {"more@acme.example"}, "password": {testPassword}})
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("sign-up %d from one address: status %d, want 429", models.DefaultSignup.PerIP+1, r.status)
	}
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 60 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	if msg := r.text(`[role="alert"]`); !strings.Contains(msg, "Too many sign-ups") {
		t.Fatalf("throttled sign-up message %q", msg)
	}
	if c.signedIn() {
		t.Fatal("a throttled sign-up signed in")
	}
	if r := a.client().login("more@acme.example", testPassword); r.status != http.StatusUnauthorized {
		t.Fatalf("the throttled sign-up created an account: login status %d", r.status)
	}
}

// When every password-hashing slot stays taken, a login is answered 503
// with Retry-After on the login page, not left to pile up memory.
func TestLoginWhileHashingIsSaturatedIs503(t *testing.T) {
	t.Parallel()
	clock := testdb.NewClock()
	opt := testdb.Options(clock)
	opt.HashConcurrency, opt.HashWait = 1, time.Millisecond
	opt.Argon = models.ArgonParams{MemoryKiB: 8 * 1024, Time: 20, Threads: 1} // the unknown-e-mail check holds the slot a while
	store := testdb.OpenDSN(t, testdb.DSN(t), opt)
	a := newAppOn(t, store, clock)
	// A slow unknown-e-mail login holds the only slot; a second login sent
	// meanwhile must be refused. If the holder happens to finish before the
	// second one reaches the slot (a loaded machine), that round proves
	// nothing and is tried again.
	for round := 0; round < 5; round++ {
		holder, c := a.client(), a.client()
		holderTok, tok := holder.csrf("/login"), c.csrf("/login")
		before := store.PasswordEvaluations()
		done := make(chan int, 1)
		go func() {
			done <- holder.postForm("/login", url.Values{"_csrf": {holderTok}, "email": {"nobody" + strconv.Itoa(round) + "@acme.example"}, "password": {"wrong password!!"}})
		}()
		for store.PasswordEvaluations() == before {
			time.Sleep(time.Millisecond)
		}
		r := c.post("/login", url.Values{"_csrf": {tok}, "email": {"someone@acme.example"}, "password": {"wrong password!!"}})
		if st := <-done; st != http.StatusUnauthorized {
			t.Fatalf("the login holding the slot: %d", st)
		}
		if r.status == http.StatusUnauthorized && store.PasswordEvaluations()-before == 2 {
			continue // the holder was done first: inconclusive
		}
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
			t.Fatalf("login while hashing is saturated: status %d, Retry-After %q; want 503 with Retry-After", r.status, r.header.Get("Retry-After"))
		}
		if msg := r.text(`[data-testid="login-error"]`); !strings.Contains(msg, "busy") {
			t.Fatalf("busy login message %q", msg)
		}
		return
	}
	t.Fatal("no round kept the slot taken long enough to tell")
}
