package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
)

// AuthThrottleMaxEntries bounds the in-memory REST/SMTP throttle table
// (about 100 bytes an entry, so a few MB at most): past it, expired windows
// are swept and then other entries evicted, never grown.
const AuthThrottleMaxEntries = 50_000

// limiterKey is a fixed-size table key, whatever the client sent: an API key
// is 16 bytes once decoded (callers check its format first) and an address
// 16 bytes (IPv4 mapped into IPv6; anything unparsable is hashed).
type limiterKey struct {
	kind byte // 'p' (API key, address), 'k' API key, 'i' address
	key  [16]byte
	ip   [16]byte
}

func apiKeyBytes(apiKey string) (b [16]byte) {
	_, _ = hex.Decode(b[:], []byte(apiKey)) // 32 lowercase hex: checked by the caller
	return b
}

// apiLimiterKeys are the throttle's three keys of a well-formed API key
// from an address: the pair, the key, the address.
func apiLimiterKeys(apiKey, ip string) (pair, key, addr limiterKey) {
	kb, ipb := apiKeyBytes(apiKey), ipBytes(ip)
	return limiterKey{kind: 'p', key: kb, ip: ipb}, limiterKey{kind: 'k', key: kb}, limiterKey{kind: 'i', ip: ipb}
}

func ipBytes(ip string) [16]byte {
	if a, err := netip.ParseAddr(ip); err == nil {
		return a.As16()
	}
	sum := sha256.Sum256([]byte(ip))
	var b [16]byte
	copy(b[:], sum[:])
	return b
}

// authLimiter throttles failed API-key authentications (REST and SMTP) per
// (API key, client address), per API key and per address. The counters are
// kept in the database's throttles table, shared by every instance, but
// only failures write there (recordAPIFailure): the check before an
// attempt reads this in-memory table of each counter's last known state,
// so a successful request costs a few map lookups, not a database round
// trip. An instance learns a lockout that another one set through NOTIFY
// (PostgreSQL), from the database when its listener connects, and from
// the row it updates on its own next failure. A secret has at least 128
// bits, so what matters here is that nobody can aim a lockout at a key's
// owner cheaply, that N instances do not give N times the tries, and that
// the table cannot be grown without bound.
type authLimiter struct {
	mu     sync.RWMutex // checks share it; failures take it alone
	policy ThrottlePolicy
	max    int
	m      map[limiterKey]*failWindow
	// lockedUntil is the latest lockout any window holds (Unix
	// nanoseconds; it only grows, under mu): a check made after it finds
	// no lockout (the rule: a failure that locks nobody out, or a lockout
	// that ended, does not stop this) without taking the lock, which
	// would write to memory every core shares (issue 13 #1: two cores
	// serving requests passed that lock's cache line back and forth at
	// every request).
	lockedUntil atomic.Int64
}

func newAuthLimiter(p ThrottlePolicy, maxEntries int) *authLimiter {
	return &authLimiter{policy: p, max: maxEntries, m: map[limiterKey]*failWindow{}}
}

func (l *authLimiter) blocked(now time.Time, keys ...limiterKey) time.Duration {
	if !l.anyLocked(now) {
		return 0
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	var wait time.Duration
	for _, k := range keys {
		if w := l.m[k]; w != nil {
			wait = max(wait, w.lockedFor(now))
		}
	}
	return wait
}

// anyLocked reports whether any window may still be locked out at now
// (without the lock: lockedUntil). While none is, no check can refuse, so
// callers need not even make the keys they would check.
func (l *authLimiter) anyLocked(now time.Time) bool {
	return now.UnixNano() < l.lockedUntil.Load()
}

// entry returns key's window, created empty (l.mu held).
func (l *authLimiter) entry(now time.Time, key limiterKey) *failWindow {
	w := l.m[key]
	if w == nil {
		if len(l.m) >= l.max {
			l.shrink(now)
		}
		w = &failWindow{start: now}
		l.m[key] = w
	}
	return w
}

// noteLockout keeps lockedUntil at or after w's lockout (l.mu held).
func (l *authLimiter) noteLockout(w *failWindow) {
	if until := w.until.UnixNano(); !w.until.IsZero() && until > l.lockedUntil.Load() {
		l.lockedUntil.Store(until)
	}
}

// fail counts a failure in memory only (when the database cannot be
// reached: the throttle then holds per instance).
func (l *authLimiter) fail(now time.Time, key limiterKey, limit int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.entry(now, key)
	w.roll(now, l.policy.Window)
	w.fail(now, limit, l.policy.Lockout)
	l.noteLockout(w)
}

// set takes the shared counter's state as the database holds it.
func (l *authLimiter) set(now time.Time, key limiterKey, w failWindow) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entry(now, key)
	*e = w
	l.noteLockout(e)
}

// lock notes a lockout another instance set.
func (l *authLimiter) lock(now time.Time, key limiterKey, until time.Time) {
	if !now.Before(until) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if w := l.entry(now, key); w.until.Before(until) {
		w.until = until
		l.noteLockout(w)
	}
}

// apiThrottlePrefix marks the REST/SMTP counters among the throttles rows;
// the rest of the key is the limiterKey in hex.
const apiThrottlePrefix = "api:"

func (k limiterKey) dbKey() string {
	var b [1 + 16 + 16]byte
	b[0] = k.kind
	copy(b[1:], k.key[:])
	copy(b[17:], k.ip[:])
	return apiThrottlePrefix + hex.EncodeToString(b[:])
}

func parseLimiterKey(s string) (limiterKey, bool) {
	var b [1 + 16 + 16]byte
	h, ok := strings.CutPrefix(s, apiThrottlePrefix)
	if !ok || len(h) != 2*len(b) {
		return limiterKey{}, false
	}
	if _, err := hex.Decode(b[:], []byte(h)); err != nil {
		return limiterKey{}, false
	}
	var k limiterKey
	k.kind = b[0]
	copy(k.key[:], b[1:17])
	copy(k.ip[:], b[17:])
	return k, true
}

// apiRule is one counter a failed API authentication is charged to.
type apiRule struct {
	key   limiterKey
	limit int
}

// throttleNotifyPrefix marks a NOTIFY payload announcing a lockout:
// "throttle:<db key> <locked until, Unix ns>".
const throttleNotifyPrefix = "throttle:"

// recordAPIFailure charges a failed authentication to its counters in the
// database, in one transaction (rows locked in key order, as the login
// throttle's), and keeps their new state in memory. A counter that locks
// here is announced to the other instances when the transaction commits.
// It runs on its own context: a client that hangs up does not escape the
// count. If the database cannot be reached the failure is counted in this
// instance's memory only.
func (s *Store) recordAPIFailure(now time.Time, rules []apiRule) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rules = slices.Clone(rules)
	slices.SortFunc(rules, func(a, b apiRule) int { return strings.Compare(a.key.dbKey(), b.key.dbKey()) })
	wins := make([]failWindow, len(rules))
	p := s.apiThrottle
	err := s.tx(ctx, func(tx *gorm.DB) error {
		for i, r := range rules {
			dbKey := r.key.dbKey()
			t, err := s.lockThrottle(tx, dbKey, now)
			if err != nil {
				return err
			}
			w := t.window()
			w.roll(now, p.Window)
			wasLocked := w.lockedFor(now) > 0
			w.fail(now, r.limit, p.Lockout)
			t.setWindow(w)
			if err := saveThrottle(tx, t); err != nil {
				return err
			}
			if !wasLocked && w.lockedFor(now) > 0 && s.engine == Postgres {
				payload := throttleNotifyPrefix + dbKey + " " + strconv.FormatInt(w.until.UnixNano(), 10)
				if err := tx.Exec("SELECT pg_notify(?, ?)", s.pg.channel, payload).Error; err != nil {
					return err
				}
			}
			wins[i] = w
		}
		return nil
	})
	if err != nil {
		s.log.Warn("throttle: could not record an API authentication failure in the database; counted in this instance only", "err", err)
		for _, r := range rules {
			s.limiter.fail(now, r.key, r.limit)
		}
		return
	}
	for i, r := range rules {
		s.limiter.set(now, r.key, wins[i])
	}
	s.sweepThrottles(ctx, now)
}

// handleThrottleNotification notes a lockout another instance set.
func (s *Store) handleThrottleNotification(payload string) {
	dbKey, at, ok := strings.Cut(payload, " ")
	k, okKey := parseLimiterKey(dbKey)
	ns, err := strconv.ParseInt(at, 10, 64)
	if !ok || !okKey || err != nil {
		return
	}
	s.limiter.lock(s.now(), k, time.Unix(0, ns))
}

// loadAPILockouts reads the lockouts in force from the database (an
// instance that starts, or whose listener reconnects, may have missed
// their notifications).
func (s *Store) loadAPILockouts(ctx context.Context) error {
	now := s.now()
	var rows []throttle
	if err := s.db.WithContext(ctx).Where("key LIKE ? AND locked_until > ?", apiThrottlePrefix+"%", now).Find(&rows).Error; err != nil {
		return err
	}
	for _, t := range rows {
		if k, ok := parseLimiterKey(t.Key); ok && t.LockedUntil != nil {
			s.limiter.lock(now, k, *t.LockedUntil)
		}
	}
	return nil
}

// shrink brings the table to 90% of its bound: first windows that no longer
// matter, then others (map order is random, so no one can pick which go).
// Each call frees at least a tenth of the table, so the sweep costs O(1)
// per insertion, amortised.
func (l *authLimiter) shrink(now time.Time) {
	target := l.max - l.max/10
	for k, w := range l.m {
		if now.Sub(w.start) >= l.policy.Window && w.lockedFor(now) == 0 {
			delete(l.m, k)
		}
	}
	for pass := 0; pass < 2 && len(l.m) > target; pass++ {
		for k, w := range l.m {
			if len(l.m) <= target {
				break
			}
			// Unlocked entries go first; locked ones only if still over.
			if pass == 1 || w.lockedFor(now) == 0 {
				delete(l.m, k)
			}
		}
	}
}

// VerifyRequest authenticates an API key + secret from REST or SMTP: it
// applies the throttle, calls Verify, and records usage (a success) or a
// failure. Any credential problem is ErrVerifyFailed; a throttled caller
// gets a ThrottledError before the secret is even looked at. A username
// that is not a well-formed API key is refused before anything keyed on it
// is stored: it counts only against the client address.
func (s *Store) VerifyRequest(ctx context.Context, apiKey, secret, ip string, ch Channel) (KeyPrincipal, error) {
	now := s.now()
	if !ValidAPIKeyFormat(apiKey) {
		ipK := limiterKey{kind: 'i', ip: ipBytes(ip)}
		if wait := s.limiter.blocked(now, ipK); wait > 0 {
			s.stats.throttledAPI.Add(1)
			return KeyPrincipal{}, &ThrottledError{RetryAfter: wait}
		}
		s.recordAPIFailure(now, []apiRule{{ipK, s.apiThrottle.PerIP}})
		return KeyPrincipal{}, ErrVerifyFailed
	}
	// The throttle's keys (the API key and the address decoded) are made
	// only when they are needed: while no lockout is in force anywhere,
	// nothing is checked before a success (issue 13 #1: decoding them was
	// about 1 % of a warm request's instructions).
	if s.limiter.anyLocked(now) {
		pairK, keyK, ipK := apiLimiterKeys(apiKey, ip)
		if wait := s.limiter.blocked(now, pairK, keyK, ipK); wait > 0 {
			s.stats.throttledAPI.Add(1)
			return KeyPrincipal{}, &ThrottledError{RetryAfter: wait}
		}
	}
	p, err := s.verifyAt(ctx, apiKey, secret, now)
	if err != nil {
		if errors.Is(err, ErrVerifyFailed) {
			pairK, keyK, ipK := apiLimiterKeys(apiKey, ip)
			s.recordAPIFailure(now, []apiRule{{pairK, s.apiThrottle.PerPair}, {keyK, s.apiThrottle.PerIdentity}, {ipK, s.apiThrottle.PerIP}})
			s.RecordAuthFailure(apiKey)
		}
		return KeyPrincipal{}, err
	}
	if ch == ChannelAPI {
		s.recordUse(now, p, ch, ip, 0)
	}
	return p, nil
}
