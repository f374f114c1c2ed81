package models

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"
)

// KeyPrincipal is who a verified API key + secret pair authenticates.
type KeyPrincipal struct {
	KeyID     uint
	AccountID uint
	ParentID  uint // 0 for a main account
	IsMaster  bool
	APIKey    string
	// UsedPrevious is true when an old secret matched during its grace
	// period; OldSecretID says which (0 for the current secret).
	UsedPrevious bool
	OldSecretID  uint
}

// oldDigest is an old secret as verification needs it.
type oldDigest struct {
	id      uint
	digest  [32]byte
	expires time.Time
}

// cachedKey is what verification needs, copied out of the database.
type cachedKey struct {
	principal KeyPrincipal
	active    bool // key, its account and any parent account are active
	digest    [32]byte
	// old holds the live old secrets (at most maxOldSecrets), nil for
	// most keys: a cache of 100,000 entries should not carry three empty
	// slots each (issue 13 #3). Reading it allocates nothing.
	old []oldDigest
}

// keyCache holds verified-key rows by API key so a warm verification is one
// SHA-256 and a map lookup; the rules are those of cache (cache.go). On
// PostgreSQL it is off while the change listener is down.
type keyCache = cache[string, *cachedKey]

// invalidate drops a key from this process's cache.
func (s *Store) invalidate(apiKey string) {
	if s.cache != nil {
		s.cache.invalidate(apiKey)
	}
}

// InvalidateVerifyCache empties this process's verification cache only
// (benchmarks of the cold path).
func (s *Store) InvalidateVerifyCache() {
	s.cache.reset(s.cache.isEnabled())
}

// InvalidateAllKeys empties this process's verification cache (used when an
// account is disabled, and by tests).
func (s *Store) InvalidateAllKeys() {
	s.cache.reset(s.cache.isEnabled())
	s.trees.reset(s.trees.isEnabled())
}

// notifyKeyChanged tells every other instance, when tx commits, to drop the
// key from its cache (PostgreSQL delivers NOTIFY only on commit).
func (s *Store) notifyKeyChanged(tx *gorm.DB, apiKey string) error {
	if s.engine != Postgres {
		return nil
	}
	return tx.Exec("SELECT pg_notify(?, ?)", s.pg.channel, apiKey).Error
}

// listenForKeyChanges keeps a dedicated connection LISTENing for other
// instances' key changes. The cache is enabled only while the listener is
// connected: a missed notification can never leave a stale entry.
func (s *Store) listenForKeyChanges(ctx context.Context, dsn string) {
	defer close(s.listenDone)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, dsn)
		s.cache.reset(false)
		s.trees.reset(false)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("key cache listener lost; verification goes to the database until it reconnects", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (s *Store) listenOnce(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, s.listenSQL()); err != nil {
		return err
	}
	// Lockouts set while this instance was not listening (before the
	// migrations have run there is no table yet: nothing to load).
	if err := s.loadAPILockouts(ctx); err != nil {
		s.log.Debug("throttle: lockouts not loaded", "err", err)
	}
	s.trees.reset(true)
	s.cache.reset(true)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		s.handleNotification(n.Payload)
	}
}

// ErrVerifyFailed is the one answer to any failed verification.
var ErrVerifyFailed = errors.New("invalid API key or secret key")

// Verify checks an API key and secret key pair, returning its principal or
// ErrVerifyFailed whatever the reason (unknown key, wrong secret, expired
// old secret, inactive key or account). The secret is compared as a
// SHA-256 digest in constant time. Later callers (REST, SMTP) use only this.
func (s *Store) Verify(ctx context.Context, apiKey, secret string) (KeyPrincipal, error) {
	return s.verifyAt(ctx, apiKey, secret, s.now())
}

// verifyAt is Verify at a time the caller read already (one clock read a
// request).
func (s *Store) verifyAt(ctx context.Context, apiKey, secret string, now time.Time) (KeyPrincipal, error) {
	p, err := s.verify(ctx, apiKey, secret, now)
	s.stats.verified(err)
	return p, err
}

func (s *Store) verify(ctx context.Context, apiKey, secret string, now time.Time) (KeyPrincipal, error) {
	if !ValidAPIKeyFormat(apiKey) || len(secret) != SecretLen {
		return KeyPrincipal{}, ErrVerifyFailed
	}
	e, ok, _ := s.cache.get(apiKey, now)
	if ok {
		s.stats.cacheHits.Add(1)
	} else {
		s.stats.cacheMisses.Add(1)
		// The checksum rejects typos and foreign strings before any
		// database lookup; a warm entry needs no such guard.
		if !ValidSecretFormat(secret) {
			return KeyPrincipal{}, ErrVerifyFailed
		}
		// Concurrent misses share one query (batchload.go), which also
		// fills the cache.
		var found bool
		var err error
		if e, found, err = s.keyLoads.get(ctx, apiKey); err != nil {
			return KeyPrincipal{}, fmt.Errorf("models: verify: %w", err)
		} else if !found {
			return KeyPrincipal{}, ErrVerifyFailed
		}
	}
	return e.check(secret, now)
}

func (e *cachedKey) check(secret string, now time.Time) (KeyPrincipal, error) {
	d := digestSecret(secret)
	cur := digestEqual(d, e.digest[:])
	var oldID uint
	for i := range e.old {
		o := &e.old[i]
		// Each old secret is checked against its own deadline, so a cached
		// entry never outlives a promise (nor extends one).
		if digestEqual(d, o.digest[:]) && now.Before(o.expires) {
			oldID = o.id
		}
	}
	if !e.active || (!cur && oldID == 0) {
		return KeyPrincipal{}, ErrVerifyFailed
	}
	p := e.principal
	if !cur {
		p.UsedPrevious, p.OldSecretID = true, oldID
	}
	return p, nil
}

// loadKeys reads what verification needs for a batch of API keys, each key
// with its live old secrets, in one query, and caches what it found
// (unknown keys are absent from the answer). The cache and the principals
// hold the API key as the database returned it, never the caller's string,
// which may share its memory with the secret of a Basic-auth header.
func (s *Store) loadKeys(ctx context.Context, apiKeys []string) (map[string]*cachedKey, error) {
	now := s.now()
	epoch := s.cache.currentEpoch() // before the query: a change committed since voids the fill
	out := make(map[string]*cachedKey, len(apiKeys))
	var e *cachedKey
	var c cols
	err := rawRows(s.hot.WithContext(ctx), 12, func(v []any) error {
		apiKey := c.text(v[0])
		if e == nil || e.principal.APIKey != apiKey {
			e = &cachedKey{
				principal: KeyPrincipal{KeyID: c.id(v[1]), AccountID: c.id(v[2]), IsMaster: c.bool(v[3], false), APIKey: apiKey,
					ParentID: c.id(v[7])},
				// key, account and parent (if any) active
				active: c.bool(v[4], false) && c.bool(v[6], false) && c.bool(v[8], true),
			}
			copy(e.digest[:], c.bytes(v[5]))
			out[apiKey] = e
		}
		oldID, oldSum, oldExpires := c.id(v[9]), c.bytes(v[10]), c.time(v[11])
		if c.err != nil {
			return c.err
		}
		if oldID == 0 || len(oldSum) != 32 || !now.Before(oldExpires) || len(e.old) == maxOldSecrets {
			return nil
		}
		if e.old == nil {
			e.old = make([]oldDigest, 0, maxOldSecrets)
		}
		o := oldDigest{id: oldID, expires: oldExpires}
		copy(o.digest[:], oldSum)
		e.old = append(e.old, o)
		return nil
	}, `SELECT k.api_key, k.id, k.account_id, k.is_master, k.is_active, k.secret_digest,
		a.is_active AS account_active, a.parent_id, p.is_active AS parent_active,
		o.id AS old_id, o.digest AS old_digest, o.expires_at AS old_expires_at
		FROM api_keys k JOIN accounts a ON a.id = k.account_id LEFT JOIN accounts p ON p.id = a.parent_id
		LEFT JOIN old_secrets o ON o.key_id = k.id AND o.expires_at > ?
		WHERE k.api_key IN ? ORDER BY k.api_key, o.expires_at DESC`, now, padded(apiKeys))
	if err != nil {
		return nil, err
	}
	for k, e := range out {
		s.cache.put(k, e, now, epoch)
	}
	if len(out) < len(apiKeys) {
		// Keys without a row (deleted, or never existed): a cached entry of
		// one is dropped (a refresh reading a key deleted untold).
		var gone []string
		for _, k := range apiKeys {
			if out[k] == nil {
				gone = append(gone, k)
			}
		}
		s.cache.drop(gone)
	}
	return out, nil
}

// sameKey reports whether two reads of a key found the same row (what
// verification uses of it).
func sameKey(a, b *cachedKey) bool {
	if a.principal != b.principal || a.active != b.active || a.digest != b.digest || len(a.old) != len(b.old) {
		return false
	}
	for i := range a.old {
		if a.old[i].id != b.old[i].id || a.old[i].digest != b.old[i].digest || !a.old[i].expires.Equal(b.old[i].expires) {
			return false
		}
	}
	return true
}

// KeyCacheReady reports whether verification results are being cached
// (on PostgreSQL only while the change listener is connected).
func (s *Store) KeyCacheReady() bool { return s.cache.isEnabled() }
