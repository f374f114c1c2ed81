package models

import (
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCacheEntries bounds each in-memory cache (verified keys, account
// trees) when Options.CacheEntries is zero (--cache-keys in main).
const DefaultCacheEntries = 100_000

// cacheTTL bounds how long any cached row is trusted without a reload,
// whatever the invalidation paths did.
const cacheTTL = time.Minute

// cache is the one in-memory cache of this package: the verified keys
// (verify.go) and the account trees (treecache.go) both use it.
// Correctness rules, shared by every user:
//   - every write invalidates its entry after commit in this process and,
//     on PostgreSQL, in every other instance through NOTIFY;
//   - a fill that raced an invalidation is dropped: get returns the epoch
//     it saw and put stores only if no invalidation happened since;
//   - while disabled (the PostgreSQL listener is down) nothing is served
//     or stored;
//   - an entry older than the TTL is never served.
//
// The size is bounded: when full, a put evicts with CLOCK (second chance),
// the usual approximation of least-recently-used that lets a hit take only
// the read lock: a hit sets its slot's reference bit, the sweeping hand
// clears set bits and evicts the first slot whose bit is clear, or any
// expired slot it meets. A hit allocates nothing.
type cache[K comparable, V any] struct {
	mu      sync.RWMutex
	index   map[K]int32 // key → slot
	slots   []cacheSlot[K, V]
	free    []int32 // slots emptied by invalidate
	hand    int
	max     int
	epoch   uint64
	enabled bool
	ttl     time.Duration
	// generation counts resets: KeepCachesWarm fills the cache again
	// after one (a listener that reconnected, an account disabled).
	generation uint64
	// same, when set, tells a reload that found what an entry holds
	// already: put then keeps the entry (and what hangs from it, a tree's
	// encoded list) and only renews its load time.
	same func(old, new V) bool
}

type cacheSlot[K comparable, V any] struct {
	key      K
	val      V
	loadedAt time.Time
	used     bool
	ref      atomic.Bool
}

// newCache returns an empty cache of at most max entries (DefaultCacheEntries
// when max <= 0).
func newCache[K comparable, V any](max int, ttl time.Duration, enabled bool) *cache[K, V] {
	if max <= 0 {
		max = DefaultCacheEntries
	}
	return &cache[K, V]{index: map[K]int32{}, max: max, ttl: ttl, enabled: enabled}
}

// get returns the live entry for k (ok false when there is none, it expired
// or the cache is off) and the epoch to hand to put after a fill.
func (c *cache[K, V]) get(k K, now time.Time) (v V, ok bool, epoch uint64) {
	c.mu.RLock()
	epoch = c.epoch
	if i, found := c.index[k]; found && c.enabled {
		s := &c.slots[i]
		if now.Sub(s.loadedAt) <= c.ttl {
			if !s.ref.Load() {
				s.ref.Store(true)
			}
			v, ok = s.val, true
		}
	}
	c.mu.RUnlock()
	return v, ok, epoch
}

// put stores v for k, loaded at loadedAt, unless an invalidation happened
// since get returned epoch or the cache is off. A full cache evicts one
// entry first.
func (c *cache[K, V]) put(k K, v V, loadedAt time.Time, epoch uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enabled || c.epoch != epoch {
		return
	}
	if i, found := c.index[k]; found {
		s := &c.slots[i]
		if c.same == nil || !c.same(s.val, v) {
			s.val = v
		}
		s.loadedAt = loadedAt
		return
	}
	var i int32
	switch {
	case len(c.free) > 0:
		i = c.free[len(c.free)-1]
		c.free = c.free[:len(c.free)-1]
	case len(c.slots) < c.max:
		c.slots = append(c.slots, cacheSlot[K, V]{})
		i = int32(len(c.slots) - 1)
	default:
		i = c.evict(loadedAt)
	}
	s := &c.slots[i]
	s.key, s.val, s.loadedAt, s.used = k, v, loadedAt, true
	s.ref.Store(false)
	c.index[k] = i
}

// evict frees one slot of a full cache and returns it (c.mu held).
func (c *cache[K, V]) evict(now time.Time) int32 {
	for {
		if c.hand >= len(c.slots) {
			c.hand = 0
		}
		i := c.hand
		c.hand++
		s := &c.slots[i]
		if s.used && s.ref.Load() && now.Sub(s.loadedAt) <= c.ttl {
			s.ref.Store(false)
			continue
		}
		if s.used {
			delete(c.index, s.key)
		}
		c.clear(s)
		return int32(i)
	}
}

func (c *cache[K, V]) clear(s *cacheSlot[K, V]) {
	var zk K
	var zv V
	s.key, s.val, s.used = zk, zv, false
	s.ref.Store(false)
}

// invalidate drops k and makes every fill begun before it void.
func (c *cache[K, V]) invalidate(k K) {
	c.mu.Lock()
	c.remove(k)
	c.epoch++
	c.mu.Unlock()
}

// drop removes the entries of keys a read found no row for (a key deleted
// without this process being told): fills in flight stay valid, since
// removing an entry can only cause a miss.
func (c *cache[K, V]) drop(keys []K) {
	c.mu.Lock()
	for _, k := range keys {
		c.remove(k)
	}
	c.mu.Unlock()
}

func (c *cache[K, V]) remove(k K) { // c.mu held
	if i, found := c.index[k]; found {
		delete(c.index, k)
		c.clear(&c.slots[i])
		c.free = append(c.free, i)
	}
}

// reset empties the cache, voids every fill in flight and turns it on or off.
func (c *cache[K, V]) reset(enabled bool) {
	c.mu.Lock()
	c.index = map[K]int32{}
	c.slots, c.free, c.hand = nil, nil, 0
	c.epoch++
	c.generation++
	c.enabled = enabled
	c.mu.Unlock()
}

// currentEpoch is the epoch to hand to put for a fill whose reads begin
// after this call (a batch of misses, batchload.go).
func (c *cache[K, V]) currentEpoch() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.epoch
}

// has reports a live entry for k without counting it as a use.
func (c *cache[K, V]) has(k K, now time.Time) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	i, found := c.index[k]
	return found && c.enabled && now.Sub(c.slots[i].loadedAt) <= c.ttl
}

// stale returns the keys of the entries loaded more than age before now,
// used or not: what a refresh reads again before the TTL ends (warm.go),
// so that age alone never turns an entry within the bound into a miss (one
// that expired meanwhile, a refresh having failed, is read again too).
func (c *cache[K, V]) stale(now time.Time, age time.Duration) []K {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.enabled {
		return nil
	}
	var out []K
	for i := range c.slots {
		s := &c.slots[i]
		if s.used && now.Sub(s.loadedAt) > age {
			out = append(out, s.key)
		}
	}
	return out
}

// state is whether the cache is on, its generation and its bound.
func (c *cache[K, V]) state() (enabled bool, generation uint64, max int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.enabled, c.generation, c.max
}

// isEnabled reports whether the cache serves and stores entries.
func (c *cache[K, V]) isEnabled() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.enabled
}
