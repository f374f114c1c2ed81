package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/netip"
	"sync"
	"time"
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
// (API key, client address), per API key and per address. It lives in
// memory so a successful request costs a few map lookups, not a database
// round trip; each instance counts the failures it sees. A secret has at
// least 128 bits, so what matters here is that nobody can aim a lockout at
// a key's owner cheaply, and that the table cannot be grown without bound.
type authLimiter struct {
	mu     sync.Mutex
	policy ThrottlePolicy
	max    int
	m      map[limiterKey]*failWindow
}

func newAuthLimiter(p ThrottlePolicy, maxEntries int) *authLimiter {
	return &authLimiter{policy: p, max: maxEntries, m: map[limiterKey]*failWindow{}}
}

func (l *authLimiter) blocked(now time.Time, keys ...limiterKey) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.m) == 0 {
		return 0
	}
	var wait time.Duration
	for _, k := range keys {
		if w := l.m[k]; w != nil {
			wait = max(wait, w.lockedFor(now))
		}
	}
	return wait
}

func (l *authLimiter) fail(now time.Time, key limiterKey, limit int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.m[key]
	if w == nil {
		if len(l.m) >= l.max {
			l.shrink(now)
		}
		w = &failWindow{start: now}
		l.m[key] = w
	}
	w.roll(now, l.policy.Window)
	w.fail(now, limit, l.policy.Lockout)
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
	ipb := ipBytes(ip)
	ipK := limiterKey{kind: 'i', ip: ipb}
	if !ValidAPIKeyFormat(apiKey) {
		if wait := s.limiter.blocked(now, ipK); wait > 0 {
			s.stats.throttledAPI.Add(1)
			return KeyPrincipal{}, &ThrottledError{RetryAfter: wait}
		}
		s.limiter.fail(now, ipK, s.apiThrottle.PerIP)
		return KeyPrincipal{}, ErrVerifyFailed
	}
	kb := apiKeyBytes(apiKey)
	pairK, keyK := limiterKey{kind: 'p', key: kb, ip: ipb}, limiterKey{kind: 'k', key: kb}
	if wait := s.limiter.blocked(now, pairK, keyK, ipK); wait > 0 {
		s.stats.throttledAPI.Add(1)
		return KeyPrincipal{}, &ThrottledError{RetryAfter: wait}
	}
	p, err := s.Verify(ctx, apiKey, secret)
	if err != nil {
		if errors.Is(err, ErrVerifyFailed) {
			s.limiter.fail(now, pairK, s.apiThrottle.PerPair)
			s.limiter.fail(now, keyK, s.apiThrottle.PerIdentity)
			s.limiter.fail(now, ipK, s.apiThrottle.PerIP)
			s.RecordAuthFailure(apiKey)
		}
		return KeyPrincipal{}, err
	}
	if ch == ChannelAPI {
		s.RecordUse(p, ch, ip, 0)
	}
	return p, nil
}
