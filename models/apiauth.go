package models

import (
	"context"
	"errors"
	"sync"
	"time"
)

// authLimiter throttles failed API-key authentications (REST and SMTP) per
// API key and per client IP, with the console's policy. It lives in memory
// so a successful request costs two map lookups, not a database round
// trip; each instance counts the failures it sees.
type authLimiter struct {
	mu     sync.Mutex
	policy ThrottlePolicy
	m      map[string]*failWindow
}

type failWindow struct {
	start    time.Time
	failures int
	until    time.Time
}

func newAuthLimiter(p ThrottlePolicy) *authLimiter {
	return &authLimiter{policy: p, m: map[string]*failWindow{}}
}

func (l *authLimiter) blocked(now time.Time, keys ...string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.m) == 0 {
		return 0
	}
	var wait time.Duration
	for _, k := range keys {
		if w := l.m[k]; w != nil && now.Before(w.until) {
			wait = max(wait, w.until.Sub(now))
		}
	}
	return wait
}

func (l *authLimiter) fail(now time.Time, key string, limit int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.m) > 100000 {
		// Bounded memory: drop windows that no longer matter.
		for k, w := range l.m {
			if now.Sub(w.start) > l.policy.Window && now.After(w.until) {
				delete(l.m, k)
			}
		}
	}
	w := l.m[key]
	if w == nil || now.Sub(w.start) > l.policy.Window {
		w = &failWindow{start: now}
		l.m[key] = w
	}
	w.failures++
	if w.failures >= limit {
		w.until = now.Add(l.policy.Lockout)
	}
}

// VerifyRequest authenticates an API key + secret from REST or SMTP: it
// applies the throttle, calls Verify, and records usage (a success) or a
// failure. Any credential problem is ErrVerifyFailed; a throttled caller
// gets a ThrottledError before the secret is even looked at.
func (s *Store) VerifyRequest(ctx context.Context, apiKey, secret, ip string, ch Channel) (KeyPrincipal, error) {
	now := s.now()
	keyK, ipK := "k:"+apiKey, "i:"+ip
	if wait := s.limiter.blocked(now, keyK, ipK); wait > 0 {
		return KeyPrincipal{}, &ThrottledError{RetryAfter: wait}
	}
	p, err := s.Verify(ctx, apiKey, secret)
	if err != nil {
		if errors.Is(err, ErrVerifyFailed) {
			s.limiter.fail(now, keyK, s.throttle.PerKey)
			s.limiter.fail(now, ipK, s.throttle.PerIP)
			s.RecordAuthFailure(apiKey)
		}
		return KeyPrincipal{}, err
	}
	if ch == ChannelAPI {
		s.RecordUse(p, ch, ip, 0)
	}
	return p, nil
}
