package models

import (
	"sync"
	"sync/atomic"
)

// Per-processor shards (issue 13 #1). A warm REST request writes a few
// things every request shares: the caches' read locks (an RWMutex's reader
// count is a write), the verification counters, the usage buffer. On a
// machine with several cores serving at once, each such write passes its
// cache line from core to core; in process, two cores served fewer than
// 1.3 times the requests of one. So each of these is split into nShards
// parts, and a request uses the part of its shard: an index that
// goroutines running on one processor mostly share and goroutines on
// others mostly do not. A sync.Pool keeps one per processor (its private
// slot), which is all the standard library offers for that; an empty pool
// (a processor's first request, after a garbage collection) hands out the
// next index round-robin. Two goroutines may hold the same index: each
// part keeps its own lock or atomics, so that is only slower, never wrong.

// nShards is how many parts: more than the cores of most machines that
// run keydesk, few enough that a writer taking every part stays cheap.
const nShards = 16

// shard is one index, taken with takeShard and given back with done.
type shard struct{ i int }

var (
	shardPool  sync.Pool
	shardNext  atomic.Uint32
	shardsEach = func() (s [nShards]shard) {
		for i := range s {
			s[i].i = i
		}
		return s
	}()
)

// takeShard returns this processor's shard (mostly).
func takeShard() *shard {
	if s, ok := shardPool.Get().(*shard); ok {
		return s
	}
	return &shardsEach[shardNext.Add(1)%nShards]
}

// done gives the shard back for the next request on this processor.
func (s *shard) done() { shardPool.Put(s) }

// readMostlyLock is an RWMutex for data read at every request and written
// rarely: a reader takes one part's read lock (its shard's), a writer
// takes every part's write lock, in order. Readers on different
// processors then write different cache lines.
type readMostlyLock struct {
	parts [nShards]paddedRWMutex
}

type paddedRWMutex struct {
	sync.RWMutex
	_ [64 - 24]byte // a cache line each (sync.RWMutex is 24 bytes)
}

func (l *readMostlyLock) RLock(s *shard)   { l.parts[s.i].RLock() }
func (l *readMostlyLock) RUnlock(s *shard) { l.parts[s.i].RUnlock() }

func (l *readMostlyLock) Lock() {
	for i := range l.parts {
		l.parts[i].Lock()
	}
}

func (l *readMostlyLock) Unlock() {
	for i := range l.parts {
		l.parts[i].Unlock()
	}
}
