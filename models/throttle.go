package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// ThrottlePolicy bounds authentication failures. Counters live in the
// database so every instance behind a load balancer sees the same ones.
type ThrottlePolicy struct {
	PerKey  int           // failures per account (e-mail or API key) in Window
	PerIP   int           // failures per client IP in Window
	Window  time.Duration // counting window
	Lockout time.Duration // wait imposed once a limit is hit
}

// DefaultThrottle: 5 failures per account or 20 per IP within 15 minutes
// lock that account or IP out for 15 minutes.
var DefaultThrottle = ThrottlePolicy{PerKey: 5, PerIP: 20, Window: 15 * time.Minute, Lockout: 15 * time.Minute}

type throttle struct {
	Key         string `gorm:"primaryKey"`
	Failures    int
	WindowStart time.Time
	LockedUntil *time.Time
}

func (throttle) TableName() string { return "throttles" }

// throttleKey hashes the identifier so the table holds no e-mail addresses.
func throttleKey(kind, id string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(id))))
	return kind + ":" + hex.EncodeToString(sum[:16])
}

// checkThrottle returns a ThrottledError when any of keys is locked out.
func (s *Store) checkThrottle(ctx context.Context, keys ...string) error {
	var rows []throttle
	if err := s.db.WithContext(ctx).Where("key IN ?", keys).Find(&rows).Error; err != nil {
		return err
	}
	now := s.Now()
	var wait time.Duration
	for _, r := range rows {
		if r.LockedUntil != nil && r.LockedUntil.After(now) {
			wait = max(wait, r.LockedUntil.Sub(now))
		}
	}
	if wait > 0 {
		return &ThrottledError{RetryAfter: wait}
	}
	return nil
}

// recordFailure counts one failure against key inside tx, locking it out
// once limit is reached within the window.
func (s *Store) recordFailure(tx *gorm.DB, key string, limit int) error {
	now := s.Now()
	if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&throttle{Key: key, Failures: 0, WindowStart: now}).Error; err != nil {
		return err
	}
	var t throttle
	q := tx
	if s.engine == Postgres {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	if err := q.Where("key = ?", key).Take(&t).Error; err != nil {
		return err
	}
	if now.Sub(t.WindowStart) > s.throttle.Window {
		t.Failures, t.WindowStart, t.LockedUntil = 0, now, nil
	}
	t.Failures++
	if t.Failures >= limit {
		until := now.Add(s.throttle.Lockout)
		t.LockedUntil = &until
	}
	return tx.Model(&throttle{}).Where("key = ?", key).Updates(map[string]any{
		"failures": t.Failures, "window_start": t.WindowStart, "locked_until": t.LockedUntil,
	}).Error
}

func (s *Store) clearThrottle(tx *gorm.DB, key string) error {
	return tx.Where("key = ?", key).Delete(&throttle{}).Error
}
