package models

import (
	"database/sql"
	"errors"
	"sync/atomic"
	"time"
)

// storeStats are plain counters for operators' metrics. models never
// imports a metrics library: web reads a snapshot with Stats.
type storeStats struct {
	// hot are counted at every request: one part per shard (shard.go),
	// so that cores do not write one cache line; summed when read.
	hot                            [nShards]hotStats
	throttledAPI, throttledLogin   atomic.Uint64
	auditAppends, auditAppendNanos atomic.Uint64
}

type hotStats struct {
	verifyOK, verifyFailed, verifyError atomic.Uint64
	cacheHits, cacheMisses              atomic.Uint64
	_                                   [64 - 5*8]byte // a cache line each
}

// Stats is a snapshot of this process's counters since start.
type Stats struct {
	VerifyOK, VerifyFailed, VerifyError uint64 // Verify outcomes: success, bad credentials, database error
	CacheHits, CacheMisses              uint64 // verification cache
	ThrottledAPI, ThrottledLogin        uint64 // refusals by the failure throttle (REST/SMTP, console login)
	AuditAppends                        uint64
	AuditAppendSeconds                  float64 // total time spent appending audit entries
	// LastChain is the latest background chain verification, nil before the first.
	LastChain *ChainReport
}

// Stats returns the counters for the metrics endpoint.
func (s *Store) Stats() Stats {
	st := &s.stats
	var hot Stats
	for i := range st.hot {
		h := &st.hot[i]
		hot.VerifyOK += h.verifyOK.Load()
		hot.VerifyFailed += h.verifyFailed.Load()
		hot.VerifyError += h.verifyError.Load()
		hot.CacheHits += h.cacheHits.Load()
		hot.CacheMisses += h.cacheMisses.Load()
	}
	return Stats{
		VerifyOK: hot.VerifyOK, VerifyFailed: hot.VerifyFailed, VerifyError: hot.VerifyError,
		CacheHits: hot.CacheHits, CacheMisses: hot.CacheMisses,
		ThrottledAPI: st.throttledAPI.Load(), ThrottledLogin: st.throttledLogin.Load(),
		AuditAppends:       st.auditAppends.Load(),
		AuditAppendSeconds: time.Duration(st.auditAppendNanos.Load()).Seconds(),
		LastChain:          s.LastChainReport(),
	}
}

// PoolStats is the database connection pool's state.
func (s *Store) PoolStats() sql.DBStats {
	sqlDB, err := s.db.DB()
	if err != nil {
		return sql.DBStats{}
	}
	return sqlDB.Stats()
}

func (st *storeStats) verified(sh *shard, err error) {
	h := &st.hot[sh.i]
	switch {
	case err == nil:
		h.verifyOK.Add(1)
	case errors.Is(err, ErrVerifyFailed):
		h.verifyFailed.Add(1)
	default:
		h.verifyError.Add(1)
	}
}
