package models

import (
	"testing"
	"time"
)

// A check takes no lock while no lockout holds: not only before any
// failure, but after failures that locked nobody out and after a lockout
// ended (issue 13 #1: the lock is memory every request would write).
// Here the table's lock is held by the test: a check that takes it waits.
func TestAuthLimiterChecksWithoutTheLockWhileNoLockoutHolds(t *testing.T) {
	p := ThrottlePolicy{PerPair: 3, PerIdentity: 10, PerIP: 10, Window: time.Minute, Lockout: time.Minute}
	l := newAuthLimiter(p, 100)
	now := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	pair := limiterKey{kind: 'p', ip: [16]byte{1}}
	other := limiterKey{kind: 'i', ip: [16]byte{2}}
	// checkUnlocked runs a check while the test holds the lock for
	// writing, and says what it answered, or that it waited.
	checkUnlocked := func(at time.Time) (time.Duration, bool) {
		l.mu.Lock()
		defer l.mu.Unlock()
		done := make(chan time.Duration, 1)
		go func() { done <- l.blocked(at, pair, other) }()
		select {
		case d := <-done:
			return d, true
		case <-time.After(time.Second):
			l.mu.Unlock() // let it finish
			<-done
			l.mu.Lock()
			return 0, false
		}
	}
	if d, ok := checkUnlocked(now); !ok || d != 0 {
		t.Fatalf("empty table: %v, without the lock %v", d, ok)
	}
	l.fail(now, pair, p.PerPair) // one failure of three: nobody is locked out
	if d, ok := checkUnlocked(now); !ok || d != 0 {
		t.Fatalf("after a failure that locks nobody out: %v, without the lock %v", d, ok)
	}
	l.fail(now, pair, p.PerPair)
	l.fail(now, pair, p.PerPair) // the third: locked out for a minute
	if d := l.blocked(now.Add(time.Second), pair); d != 59*time.Second {
		t.Fatalf("during the lockout a check answers %v, want 59s", d)
	}
	if d := l.blocked(now.Add(time.Second), other); d != 0 {
		t.Fatalf("another key during the lockout answers %v, want 0", d)
	}
	if d, ok := checkUnlocked(now.Add(time.Minute)); !ok || d != 0 {
		t.Fatalf("after the lockout ended: %v, without the lock %v", d, ok)
	}
	// Another instance's lockout, learned later, holds again.
	l.lock(now.Add(time.Minute), other, now.Add(2*time.Minute))
	if d := l.blocked(now.Add(90*time.Second), other); d != 30*time.Second {
		t.Fatalf("another instance's lockout answers %v, want 30s", d)
	}
	l.set(now.Add(3*time.Minute), pair, failWindow{start: now.Add(3 * time.Minute), failures: 3, until: now.Add(4 * time.Minute)})
	if d := l.blocked(now.Add(3*time.Minute), pair); d != time.Minute {
		t.Fatalf("a lockout taken from the database answers %v, want 1m", d)
	}
}
