package handlers_test

import (
	"errors"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"

	"gorm.io/gorm"
)

// failNth makes the n-th database statement fail (GORM callbacks), to
// prove that no failure after a commit can lose a revealed secret.
type failNth struct{ n, seen atomic.Int64 }

var errInjected = errors.New("injected database failure")

func (f *failNth) install(t *testing.T, db *gorm.DB) {
	t.Helper()
	hook := func(db *gorm.DB) {
		if n := f.n.Load(); n > 0 && f.seen.Add(1) == n {
			_ = db.AddError(errInjected)
		}
	}
	cb := db.Callback()
	for _, err := range []error{
		cb.Query().Before("gorm:query").Register("test:fail_nth", hook),
		cb.Row().Before("gorm:row").Register("test:fail_nth", hook),
		cb.Raw().Before("gorm:raw").Register("test:fail_nth", hook),
		cb.Create().Before("gorm:create").Register("test:fail_nth", hook),
		cb.Update().Before("gorm:update").Register("test:fail_nth", hook),
		cb.Delete().Before("gorm:delete").Register("test:fail_nth", hook),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func (f *failNth) arm(n int64) { f.seen.Store(0); f.n.Store(n) }
func (f *failNth) disarm()     { f.n.Store(0) }

// Issue 9 item 6, console path: whatever statement fails during a reset
// (page without JavaScript, or htmx), the response either shows the new
// secret or the reset did not happen; never an error after the commit.
func TestResetNeverCommitsWithoutShowingTheSecret(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	apiKey, current := c.signup("Acme Mail", "owner@acme.example")
	id := c.masterID()
	var f failNth
	f.install(t, a.store.DB())
	failures, reveals := 0, 0
	for _, htmx := range []bool{false, true} {
		for n := int64(1); n <= 45; n++ {
			// An injected failure may have ended the session (the cookie
			// is cleared when it cannot be resolved): sign in again.
			if !c.signedIn() {
				c.login("owner@acme.example", testPassword)
			}
			tok := c.csrf("/keys")
			cl := c
			if htmx {
				cl = c.with("HX-Request", "true")
			}
			f.arm(n)
			r := cl.post("/keys/"+id+"/reset", url.Values{"_csrf": {tok}, "grace": {"0"}})
			f.disarm()
			a.store.InvalidateVerifyCache()
			if r.status == http.StatusOK {
				_, fresh := r.revealed()
				if fresh == "" || !a.verifies(apiKey, fresh) {
					t.Fatalf("htmx %v, statement %d: 200 without a working new secret", htmx, n)
				}
				current = fresh
				reveals++
				continue
			}
			failures++
			if !a.verifies(apiKey, current) {
				t.Fatalf("htmx %v, statement %d failed (%d) after the reset committed: the new secret is lost", htmx, n, r.status)
			}
		}
	}
	if failures == 0 || reveals == 0 {
		t.Fatalf("%d failures, %d reveals: the injection does not exercise both paths", failures, reveals)
	}
}
