package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// ThrottlePolicy bounds authentication failures. Failures are counted per
// (identity, client address), so an attacker's address is stopped while
// the owner's right credential from anywhere else still works; a much
// higher per-identity ceiling stops guessing spread over many addresses,
// and a per-address limit stops one address trying many identities.
type ThrottlePolicy struct {
	PerPair     int           // failures per (identity, client address) in Window
	PerIdentity int           // failures per identity (e-mail or API key) from all addresses in Window
	PerIP       int           // failures per client address over all identities in Window
	Window      time.Duration // counting window
	Lockout     time.Duration // wait imposed once a limit is hit
}

// DefaultThrottle guards passwords (console login, the sudo prompt and
// password change). A password may be weak, so guesses must stay few:
// 5 per (e-mail, address) in 15 minutes, 50 per e-mail from all addresses
// (reaching that takes at least 10 addresses), 20 per address over all
// e-mails; each locks out for 15 minutes. The counters live in the
// database, shared by every instance.
var DefaultThrottle = ThrottlePolicy{PerPair: 5, PerIdentity: 50, PerIP: 20, Window: 15 * time.Minute, Lockout: 15 * time.Minute}

// DefaultAPIThrottle guards API secrets (REST Basic auth and SMTP AUTH).
// A secret has at least 128 random bits, so no rate of guessing finds one:
// the limits only stop a client hammering with a wrong secret, and the
// per-key ceiling is high (1,000 in 15 minutes, 200 addresses at the
// per-pair limit) so that nobody can aim a lockout at a key's owner cheaply.
var DefaultAPIThrottle = ThrottlePolicy{PerPair: 5, PerIdentity: 1000, PerIP: 20, Window: 15 * time.Minute, Lockout: 15 * time.Minute}

// SignupPolicy limits self sign-up per client address: each attempt that
// reaches the e-mail check counts, so probing which addresses are
// registered gets no speed.
type SignupPolicy struct {
	PerIP  int
	Window time.Duration
}

// DefaultSignup: 10 sign-up attempts per address an hour.
var DefaultSignup = SignupPolicy{PerIP: 10, Window: time.Hour}

type throttle struct {
	Key         string `gorm:"primaryKey"`
	Failures    int
	WindowStart time.Time
	LockedUntil *time.Time
}

func (throttle) TableName() string { return "throttles" }

// failWindow is one failure counter, the arithmetic both throttles share
// (the login throttle's rows here, the REST/SMTP throttle's in apiauth.go):
// a window opened by its first failure, the failures in it, and the end of
// a lockout (zero when none).
type failWindow struct {
	start    time.Time
	failures int
	until    time.Time
}

// roll opens a new window once the old one has passed and no lockout holds.
func (w *failWindow) roll(now time.Time, window time.Duration) {
	if now.Sub(w.start) >= window && !now.Before(w.until) {
		*w = failWindow{start: now}
	}
}

// lockedFor is how long the lockout still holds (0: none).
func (w *failWindow) lockedFor(now time.Time) time.Duration {
	if now.Before(w.until) {
		return w.until.Sub(now)
	}
	return 0
}

// fullFor is how long before another attempt may count: the lockout, or
// the rest of a window whose failures reached limit.
func (w *failWindow) fullFor(now time.Time, limit int, window time.Duration) time.Duration {
	if d := w.lockedFor(now); d > 0 {
		return d
	}
	if w.failures >= limit {
		return w.start.Add(window).Sub(now)
	}
	return 0
}

// fail counts one failure; reaching limit locks out for lockout.
func (w *failWindow) fail(now time.Time, limit int, lockout time.Duration) {
	w.failures++
	if w.failures >= limit {
		w.until = now.Add(lockout)
	}
}

// unfail gives one failure back, lifting a lockout below the limit.
func (w *failWindow) unfail(limit int) {
	if w.failures > 0 {
		w.failures--
	}
	if w.failures < limit {
		w.until = time.Time{}
	}
}

// window is the row's counter; setWindow stores one in the row.
func (t throttle) window() failWindow {
	w := failWindow{start: t.WindowStart, failures: t.Failures}
	if t.LockedUntil != nil {
		w.until = *t.LockedUntil
	}
	return w
}

func (t *throttle) setWindow(w failWindow) {
	t.WindowStart, t.Failures, t.LockedUntil = w.start, w.failures, nil
	if !w.until.IsZero() {
		until := w.until
		t.LockedUntil = &until
	}
}

// throttleKey hashes the identifier so the table holds no e-mail addresses
// and its keys have a fixed size.
func throttleKey(kind string, id ...string) string {
	h := sha256.New()
	for i, part := range id {
		if i > 0 {
			h.Write([]byte{0})
		}
		h.Write([]byte(strings.ToLower(strings.TrimSpace(part))))
	}
	return kind + ":" + hex.EncodeToString(h.Sum(nil)[:16])
}

// throttleRule is one counter an attempt is charged to.
type throttleRule struct {
	key     string
	limit   int
	window  time.Duration
	lockout time.Duration
}

// loginRules are the counters a password attempt for email from ip uses.
func (s *Store) loginRules(email, ip string) []throttleRule {
	p := s.throttle
	return []throttleRule{
		{throttleKey("pair", email, ip), p.PerPair, p.Window, p.Lockout},
		{throttleKey("login", email), p.PerIdentity, p.Window, p.Lockout},
		{throttleKey("ip", ip), p.PerIP, p.Window, p.Lockout},
	}
}

// errThrottledRollback rolls a reservation back when one counter is full.
var errThrottledRollback = errors.New("throttled")

// reserve charges one attempt to every rule before the expensive check,
// atomically: in one transaction that locks each counter row (PostgreSQL:
// SELECT … FOR UPDATE in a fixed order; SQLite: the write lock BEGIN
// IMMEDIATE takes), checks it and counts the attempt. However many
// requests arrive at once, at most a rule's limit get past it in a window.
// A full counter answers a ThrottledError and charges nothing. The
// reservation stands as the failure unless release gives it back.
func (s *Store) reserve(ctx context.Context, rules []throttleRule) error {
	rules = slices.Clone(rules)
	slices.SortFunc(rules, func(a, b throttleRule) int { return strings.Compare(a.key, b.key) })
	now := s.Now()
	var wait time.Duration
	err := s.tx(ctx, func(tx *gorm.DB) error {
		rows := make([]throttle, len(rules))
		for i, r := range rules {
			t, err := s.lockThrottle(tx, r.key, now)
			if err != nil {
				return err
			}
			w := t.window()
			w.roll(now, r.window)
			wait = max(wait, w.fullFor(now, r.limit, r.window))
			t.setWindow(w)
			rows[i] = t
		}
		if wait > 0 {
			return errThrottledRollback
		}
		for i, r := range rules {
			t := rows[i]
			w := t.window()
			w.fail(now, r.limit, r.lockout)
			t.setWindow(w)
			if err := saveThrottle(tx, t); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, errThrottledRollback) {
		s.stats.throttledLogin.Add(1)
		return &ThrottledError{RetryAfter: max(wait, time.Second)}
	}
	if err == nil {
		s.sweepThrottles(ctx, now)
	}
	return err
}

// sweepThrottles deletes counters whose window and lockout are long over,
// at most once every 10 minutes per instance, so the table holds only
// counters that still matter (every address and pair tried leaves a row).
func (s *Store) sweepThrottles(ctx context.Context, now time.Time) {
	last := s.throttleSweep.Load()
	if now.UnixNano()-last < int64(10*time.Minute) || !s.throttleSweep.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	horizon := max(s.throttle.Window, s.apiThrottle.Window, s.signup.Window) + max(s.throttle.Lockout, s.apiThrottle.Lockout, s.signup.Window)
	cutoff := now.Add(-horizon)
	if err := s.db.WithContext(ctx).Where("window_start < ? AND (locked_until IS NULL OR locked_until < ?)", cutoff, now).
		Delete(&throttle{}).Error; err != nil {
		s.log.Warn("throttle: sweep of expired counters failed", "err", err)
	}
}

// lockThrottle returns key's counter row, created empty if missing, locked
// until the transaction ends. (A sweep may delete a stale row between the
// insert and the read: then it is created again.)
func (s *Store) lockThrottle(tx *gorm.DB, key string, now time.Time) (throttle, error) {
	var t throttle
	var err error
	for try := 0; try < 2; try++ {
		if err = tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&throttle{Key: key, WindowStart: now}).Error; err != nil {
			return throttle{}, err
		}
		q := tx
		if s.engine == Postgres {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		if err = q.Where("key = ?", key).Take(&t).Error; !errors.Is(err, gorm.ErrRecordNotFound) {
			break
		}
	}
	return t, err
}

func saveThrottle(tx *gorm.DB, t throttle) error {
	return tx.Model(&throttle{}).Where("key = ?", t.Key).Updates(map[string]any{
		"failures": t.Failures, "window_start": t.WindowStart, "locked_until": t.LockedUntil,
	}).Error
}

// releaseIn gives back an attempt reserve charged, inside tx: the attempt
// was no failure (the credential was right, or it was never evaluated).
// With clearFirst the first rule's counter (the (identity, address) pair)
// is deleted outright: the owner proved themselves from that address.
// Rows are locked in the same order as reserve's, so the two never
// deadlock on PostgreSQL.
func (s *Store) releaseIn(tx *gorm.DB, rules []throttleRule, clearFirst bool) error {
	clear := ""
	if clearFirst && len(rules) > 0 {
		clear = rules[0].key
	}
	rules = slices.Clone(rules)
	slices.SortFunc(rules, func(a, b throttleRule) int { return strings.Compare(a.key, b.key) })
	now := s.Now()
	for _, r := range rules {
		if r.key == clear {
			if err := tx.Where("key = ?", r.key).Delete(&throttle{}).Error; err != nil {
				return err
			}
			continue
		}
		t, err := s.lockThrottle(tx, r.key, now)
		if err != nil {
			return err
		}
		w := t.window()
		w.unfail(r.limit)
		t.setWindow(w)
		if err := saveThrottle(tx, t); err != nil {
			return err
		}
	}
	return nil
}

// release is releaseIn in a transaction of its own, for an attempt that
// ended before it was evaluated (the hashing slots were full, or a lookup
// failed). It must not be lost to a cancelled request.
func (s *Store) release(rules []throttleRule) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.tx(ctx, func(tx *gorm.DB) error { return s.releaseIn(tx, rules, false) }); err != nil {
		s.log.Warn("throttle: could not release an unevaluated attempt", "err", err)
	}
}
