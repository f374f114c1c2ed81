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
	verifyOK, verifyFailed, verifyError atomic.Uint64
	cacheHits, cacheMisses              atomic.Uint64
	throttledAPI, throttledLogin        atomic.Uint64
	auditAppends, auditAppendNanos      atomic.Uint64
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
	return Stats{
		VerifyOK: st.verifyOK.Load(), VerifyFailed: st.verifyFailed.Load(), VerifyError: st.verifyError.Load(),
		CacheHits: st.cacheHits.Load(), CacheMisses: st.cacheMisses.Load(),
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

func (st *storeStats) verified(err error) {
	switch {
	case err == nil:
		st.verifyOK.Add(1)
	case errors.Is(err, ErrVerifyFailed):
		st.verifyFailed.Add(1)
	default:
		st.verifyError.Add(1)
	}
}
