package models

import (
	"context"
	"time"
)

// KeepCachesWarm (serve runs it until ctx ends) fills the verification and
// tree caches in bulk and keeps the entries in use fresh (issue 13 #2):
//   - a fill: the most recently used keys up to the cache bound, read
//     refreshBatch at a time through the same queries as a batch of misses
//     (so the same rules: each batch fills with the epoch it read before
//     its query, and a change committed meanwhile voids that batch only),
//     then their trees; at start, and again after every reset of the
//     cache (on PostgreSQL, a listener that reconnected);
//   - a refresh every cacheTTL/4 (Options.CacheRefreshEvery): every entry
//     older than half the TTL, used or not, is read again the same way,
//     so age alone never turns a key within the bound into a miss (a key
//     idle for minutes is as warm as one in use); what leaves the caches
//     is what their bound evicts (CLOCK keeps the ones in use), what is
//     invalidated, and keys the reads no longer find. A refresh reads
//     rows like any load: an entry is still never served more than the
//     TTL after the read it holds, so a change no instance was told about
//     is refused within the same minute as without the refresh (sooner:
//     at the next refresh that reads it).
//
// A first pass over many keys after a start is then served from memory
// instead of one query per key; whatever the fill has not reached yet is
// loaded by batches of misses. Nothing here changes what is served: every
// entry obeys cache.go's rules, and while the cache is off (listener down)
// nothing is filled.
func (s *Store) KeepCachesWarm(ctx context.Context) {
	filled := uint64(0)
	first := true
	for {
		on, gen, _ := s.cache.state()
		wait := s.warmEvery
		switch {
		case !on:
			wait = min(wait, time.Second) // PostgreSQL: not listening yet
		case first || gen != filled:
			s.fillCaches(ctx)
			filled, first = gen, false
		default:
			s.refreshCaches(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// fillCaches loads the most recently used keys, up to the bound, and their
// trees.
func (s *Store) fillCaches(ctx context.Context) {
	start := time.Now()
	_, _, bound := s.cache.state()
	var apiKeys []string
	if err := s.db.WithContext(ctx).Raw(`SELECT api_key FROM api_keys
		ORDER BY (last_used_at IS NULL), last_used_at DESC, id LIMIT ?`, bound).Scan(&apiKeys).Error; err != nil {
		if ctx.Err() == nil {
			s.log.Warn("cache fill: keys not listed", "err", err)
		}
		return
	}
	n, t := s.reloadKeys(ctx, apiKeys, true)
	s.log.Info("caches filled", "keys", n, "trees", t, "took", time.Since(start).Round(time.Millisecond))
}

// refreshBatch is how many keys or trees one query of a fill or refresh
// reads, as many as a batch of misses: at 1,024 keys PostgreSQL 15 plans
// the key query as a parallel sequential scan of api_keys (250,000 keys:
// 14,500 buffers a query, 0.3-0.8 s) where 512 keep to the api_key index.
const refreshBatch = batchLoadMax

// refreshCaches reads every cached entry older than half the TTL again.
func (s *Store) refreshCaches(ctx context.Context) {
	now := s.now()
	s.reloadKeys(ctx, s.cache.stale(now, cacheTTL/2), false)
	roots := s.trees.stale(now, cacheTTL/2)
	for start := 0; start < len(roots) && ctx.Err() == nil; start += refreshBatch {
		bctx, cancel := context.WithTimeout(context.Background(), batchLoadTimeout)
		_, err := s.loadTrees(bctx, roots[start:min(len(roots), start+refreshBatch)])
		cancel()
		if err != nil {
			s.log.Warn("cache refresh: trees not reloaded", "err", err)
			return
		}
	}
}

// reloadKeys loads apiKeys into the verification cache, refreshBatch at a
// time, and with trees also the trees of those not cached yet. It returns
// how many keys and trees it loaded.
func (s *Store) reloadKeys(ctx context.Context, apiKeys []string, trees bool) (keys, treesLoaded int) {
	for start := 0; start < len(apiKeys) && ctx.Err() == nil; start += refreshBatch {
		k, t, err := s.reloadBatch(apiKeys[start:min(len(apiKeys), start+refreshBatch)], trees)
		keys, treesLoaded = keys+k, treesLoaded+t
		if err != nil {
			s.log.Warn("cache fill: not loaded", "err", err)
			return keys, treesLoaded
		}
	}
	return keys, treesLoaded
}

// reloadBatch is one batch of reloadKeys, on its own context: stopping
// ends reloadKeys between batches, never a batch midway.
func (s *Store) reloadBatch(apiKeys []string, trees bool) (keys, treesLoaded int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), batchLoadTimeout)
	defer cancel()
	found, err := s.loadKeys(ctx, apiKeys)
	if err != nil || !trees {
		return len(found), 0, err
	}
	now := s.now()
	var roots []uint
	seen := map[uint]bool{}
	for _, e := range found {
		r := e.principal.root()
		if !s.trees.has(r, now) && !seen[r] {
			seen[r] = true
			roots = append(roots, r)
		}
	}
	if len(roots) == 0 {
		return len(found), 0, nil
	}
	if _, err := s.loadTrees(ctx, roots); err != nil {
		return len(found), 0, err
	}
	return len(found), len(roots), nil
}
