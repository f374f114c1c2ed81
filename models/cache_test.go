package models

import (
	"runtime"
	"strconv"
	"testing"
	"time"
)

func TestCacheStaysBoundedAndEvictsLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	const n, k = 4, 3
	now := time.Unix(1_700_000_000, 0)
	c := newCache[string, int](n, time.Minute, true)
	for i := 0; i < n; i++ {
		_, _, ep := c.get(strconv.Itoa(i), now)
		c.put(strconv.Itoa(i), i, now, ep)
	}
	// Touch every entry but "1": it becomes the least recently used.
	for _, key := range []string{"0", "2", "3"} {
		if _, ok, _ := c.get(key, now); !ok {
			t.Fatalf("entry %s missing before the cache was full", key)
		}
	}
	_, _, ep := c.get("new", now)
	c.put("new", 100, now, ep)
	if c.len() != n {
		t.Fatalf("after %d fills the cache holds %d entries, bound %d", n+1, c.len(), n)
	}
	if _, ok, _ := c.get("1", now); ok {
		t.Fatal("the least recently used entry survived; another was evicted")
	}
	for _, key := range []string{"0", "2", "3", "new"} {
		if _, ok, _ := c.get(key, now); !ok {
			t.Fatalf("recently used entry %s was evicted", key)
		}
	}
	for i := 0; i < k; i++ {
		key := "more" + strconv.Itoa(i)
		_, _, ep := c.get(key, now)
		c.put(key, i, now, ep)
		if _, ok, _ := c.get(key, now); !ok {
			t.Fatalf("fresh entry %s not stored", key)
		}
	}
	if c.len() > n || len(c.slots) > n {
		t.Fatalf("after %d distinct fills the cache holds %d entries in %d slots, bound %d", n+1+k, c.len(), len(c.slots), n)
	}
}

func TestCacheDoesNotServeExpiredEntry(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	c := newCache[uint, string](10, time.Minute, true)
	_, _, ep := c.get(7, now)
	c.put(7, "v", now, ep)
	if v, ok, _ := c.get(7, now.Add(time.Minute)); !ok || v != "v" {
		t.Fatal("entry not served within its TTL")
	}
	if _, ok, _ := c.get(7, now.Add(time.Minute+time.Nanosecond)); ok {
		t.Fatal("entry served after its TTL")
	}
}

// An expired entry is the first evicted, even when recently used.
func TestCacheEvictsExpiredFirst(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	c := newCache[int, int](2, time.Minute, true)
	_, _, ep := c.get(1, now)
	c.put(1, 1, now, ep)
	later := now.Add(50 * time.Second)
	_, _, ep = c.get(2, later)
	c.put(2, 2, later, ep)
	c.get(1, now) // referenced, but will be expired
	c.get(2, later)
	at := now.Add(70 * time.Second)
	_, _, ep = c.get(3, at)
	c.put(3, 3, at, ep)
	if _, ok, _ := c.get(2, at); !ok {
		t.Fatal("the live entry was evicted instead of the expired one")
	}
}

func TestCacheDropsFillThatRacedInvalidation(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	c := newCache[string, int](10, time.Minute, true)
	_, _, ep := c.get("k", now) // a fill starts: reads the database…
	c.invalidate("k")           // …a write commits and invalidates…
	c.put("k", 1, now, ep)      // …the stale fill arrives.
	if _, ok, _ := c.get("k", now); ok {
		t.Fatal("a fill that raced an invalidation was stored")
	}
	_, _, ep = c.get("k", now)
	c.reset(true)
	c.put("k", 1, now, ep)
	if _, ok, _ := c.get("k", now); ok {
		t.Fatal("a fill that raced a reset was stored")
	}
	_, _, ep = c.get("k", now)
	c.put("k", 2, now, ep)
	if v, ok, _ := c.get("k", now); !ok || v != 2 {
		t.Fatal("a clean fill was not stored")
	}
}

func TestCacheOffServesAndStoresNothing(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	c := newCache[string, int](10, time.Minute, true)
	_, _, ep := c.get("k", now)
	c.put("k", 1, now, ep)
	c.reset(false)
	_, _, ep = c.get("k", now)
	c.put("k", 1, now, ep)
	if _, ok, _ := c.get("k", now); ok || c.len() != 0 {
		t.Fatal("a disabled cache served or stored an entry")
	}
}

// Invalidated slots are reused before anything is evicted.
func TestCacheReusesInvalidatedSlots(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	c := newCache[int, int](3, time.Minute, true)
	for i := 0; i < 3; i++ {
		_, _, ep := c.get(i, now)
		c.put(i, i, now, ep)
	}
	c.invalidate(1)
	_, _, ep := c.get(9, now)
	c.put(9, 9, now, ep)
	for _, k := range []int{0, 2, 9} {
		if _, ok, _ := c.get(k, now); !ok {
			t.Fatalf("entry %d evicted though a slot was free", k)
		}
	}
	if len(c.slots) != 3 {
		t.Fatalf("%d slots, want 3", len(c.slots))
	}
}

// BenchmarkKeyCacheHeap fills the verified-key cache with 250,000 distinct
// keys (the issue 13 scale goal) at the default bound, and reports the live
// heap after a GC and the entries held. The cache alone: the server's
// other per-key state is not in this figure.
func BenchmarkKeyCacheHeap(b *testing.B) {
	const keys = 250_000
	for _, bound := range []int{DefaultCacheEntries, keys} {
		b.Run("bound="+strconv.Itoa(bound), func(b *testing.B) {
			var heap uint64
			var held int
			for it := 0; it < b.N; it++ {
				runtime.GC()
				var before runtime.MemStats
				runtime.ReadMemStats(&before)
				now := time.Now()
				c := newCache[string, *cachedKey](bound, time.Minute, true)
				for i := 0; i < keys; i++ {
					k, err := newAPIKey()
					if err != nil {
						b.Fatal(err)
					}
					_, _, ep := c.get(k, now)
					c.put(k, &cachedKey{principal: KeyPrincipal{KeyID: uint(i), APIKey: k}, active: true}, now, ep)
				}
				runtime.GC()
				var after runtime.MemStats
				runtime.ReadMemStats(&after)
				heap, held = after.HeapAlloc-before.HeapAlloc, c.len()
				runtime.KeepAlive(c)
			}
			b.ReportMetric(float64(heap)/(1<<20), "heapMB")
			b.ReportMetric(float64(held), "entries")
		})
	}
}

// len is the number of entries held.
func (c *cache[K, V]) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.index)
}
