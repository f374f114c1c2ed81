package models

import (
	"context"
	"runtime"
	"sync"
	"time"
)

// batchLoader coalesces concurrent cache misses (verified keys, account
// trees) into few queries: a miss joins a queue, and at most `max`
// loaders at a time each take everything queued (up to batchLoadMax keys)
// and read it in one `IN (…)` query. A burst of distinct keys (the first
// pass after a start, a flood of made-up keys) then costs one statement
// per batch instead of one per key, and the database sees at most `max`
// such statements at once, however many requests miss (issue 13 #2).
//
// Freshness: a miss only joins a batch whose query has not started, so
// what it gets was read after it asked; the loader fills the cache with
// the epoch it read before its query (cache.go's rule: a fill that raced
// an invalidation is dropped).
type batchLoader[K comparable, V any] struct {
	mu      sync.Mutex
	queued  map[K]*loadCall[V]
	order   []K
	running int
	max     int
	load    func(ctx context.Context, keys []K) (map[K]V, error)
}

type loadCall[V any] struct {
	done  chan struct{}
	val   V
	found bool
	err   error
}

// batchLoadMax bounds the keys of one query (SQLite allows 32,766
// parameters a statement, PostgreSQL 65,535).
const batchLoadMax = 512

// batchLoadTimeout bounds one batch's query; it runs on its own context, so
// a client that hangs up does not fail the others' lookups.
const batchLoadTimeout = 10 * time.Second

func newBatchLoader[K comparable, V any](load func(context.Context, []K) (map[K]V, error)) *batchLoader[K, V] {
	return &batchLoader[K, V]{queued: map[K]*loadCall[V]{}, max: max(2, runtime.GOMAXPROCS(0)), load: load}
}

// get returns k's value as a query begun after this call read it (found
// false when there is none).
func (b *batchLoader[K, V]) get(ctx context.Context, k K) (V, bool, error) {
	b.mu.Lock()
	c := b.queued[k]
	if c == nil {
		c = &loadCall[V]{done: make(chan struct{})}
		b.queued[k] = c
		b.order = append(b.order, k)
		if b.running < b.max {
			b.running++
			go b.run()
		}
	}
	b.mu.Unlock()
	select {
	case <-c.done:
		return c.val, c.found, c.err
	case <-ctx.Done():
		var zero V
		return zero, false, ctx.Err()
	}
}

// run loads batches until the queue is empty.
func (b *batchLoader[K, V]) run() {
	for {
		b.mu.Lock()
		if len(b.order) == 0 {
			b.order = nil // let a burst's backing array go
			b.running--
			b.mu.Unlock()
			return
		}
		n := min(len(b.order), batchLoadMax)
		keys := make([]K, n)
		copy(keys, b.order)
		b.order = b.order[n:]
		calls := make([]*loadCall[V], n)
		for i, k := range keys {
			calls[i] = b.queued[k]
			delete(b.queued, k)
		}
		b.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), batchLoadTimeout)
		vals, err := b.load(ctx, keys)
		cancel()
		for i, c := range calls {
			if err != nil {
				c.err = err
			} else {
				c.val, c.found = vals[keys[i]]
			}
			close(c.done)
		}
	}
}

// padded returns keys with the last repeated up to the next power of two
// (at most batchLoadMax), so a prepared `IN (…)` statement comes in a few
// sizes only and the per-connection statement cache stays small.
func padded[K any](keys []K) []K {
	n := 1
	for n < len(keys) {
		n *= 2
	}
	if n == len(keys) {
		return keys
	}
	out := make([]K, n)
	copy(out, keys)
	for i := len(keys); i < n; i++ {
		out[i] = keys[len(keys)-1]
	}
	return out
}
