package models

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Channel is where a credential was used.
type Channel int

const (
	ChannelAPI Channel = iota
	ChannelSMTP
)

// usageDelta accumulates one key's activity between flushes.
type usageDelta struct {
	apiRequests, smtpMessages, oldSecretUses int64
	apiMessages                              int64 // sent through the Send API
	lastUsed                                 time.Time
	lastIP                                   string
	// oldLastUsed is the last use of each old secret (by ID) during its
	// grace period; nil until one is used, so the common case allocates nothing.
	oldLastUsed map[uint]time.Time
}

// usageBuffer collects usage in memory so that authentication never waits
// on a database write; Flush writes it in one transaction.
type usageBuffer struct {
	mu       sync.Mutex
	byKey    map[uint]*usageDelta        // successful uses, by key ID
	failures map[string]map[string]int64 // failed auths: API key → day → count
}

func newUsageBuffer() *usageBuffer {
	return &usageBuffer{byKey: map[uint]*usageDelta{}, failures: map[string]map[string]int64{}}
}

// RecordUse notes a successful authentication (and, for SMTP, a message).
func (s *Store) RecordUse(p KeyPrincipal, ch Channel, ip string, messages int) {
	s.recordUse(s.now(), p, ch, ip, messages)
}

func (s *Store) recordUse(now time.Time, p KeyPrincipal, ch Channel, ip string, messages int) {
	b := s.usageBuf
	b.mu.Lock()
	d := b.byKey[p.KeyID]
	if d == nil {
		d = &usageDelta{}
		b.byKey[p.KeyID] = d
	}
	switch ch {
	case ChannelAPI:
		d.apiRequests++
	case ChannelSMTP:
		d.smtpMessages += int64(messages)
	}
	if p.UsedPrevious {
		d.oldSecretUses++
		if d.oldLastUsed == nil {
			d.oldLastUsed = map[uint]time.Time{}
		}
		d.oldLastUsed[p.OldSecretID] = now
	}
	if !now.Before(d.lastUsed) { // ties: the latest call wins
		d.lastUsed, d.lastIP = now, ip
	}
	b.mu.Unlock()
}

// RecordSent counts messages sent through the Send API with key p (the
// request itself was counted when it authenticated).
func (s *Store) RecordSent(p KeyPrincipal, messages int) {
	b := s.usageBuf
	b.mu.Lock()
	d := b.byKey[p.KeyID]
	if d == nil {
		d = &usageDelta{}
		b.byKey[p.KeyID] = d
	}
	d.apiMessages += int64(messages)
	b.mu.Unlock()
}

// RecordAuthFailure notes a failed authentication against an API key (the
// key may not exist; unknown keys are dropped at flush).
func (s *Store) RecordAuthFailure(apiKey string) {
	if !ValidAPIKeyFormat(apiKey) {
		return
	}
	day := s.now().UTC().Format("2006-01-02")
	b := s.usageBuf
	b.mu.Lock()
	m := b.failures[apiKey]
	if m == nil {
		if len(b.failures) > 10000 {
			b.mu.Unlock() // bounded: a flood of made-up keys cannot grow this
			return
		}
		m = map[string]int64{}
		b.failures[apiKey] = m
	}
	m[day]++
	b.mu.Unlock()
}

// FlushUsage writes the buffered usage: per-day counters (upserted) and
// each key's last use. Called every few seconds and at shutdown.
func (s *Store) FlushUsage(ctx context.Context) error {
	b := s.usageBuf
	b.mu.Lock()
	byKey, failures := b.byKey, b.failures
	b.byKey, b.failures = map[uint]*usageDelta{}, map[string]map[string]int64{}
	b.mu.Unlock()
	if len(byKey) == 0 && len(failures) == 0 {
		return nil
	}
	day := s.Now().Format("2006-01-02")
	type row struct {
		KeyID         uint   `gorm:"primaryKey"`
		Day           string `gorm:"primaryKey"`
		APIRequests   int64  `gorm:"column:api_requests"`
		SMTPMessages  int64  `gorm:"column:smtp_messages"`
		APIMessages   int64  `gorm:"column:api_messages"`
		AuthFailures  int64
		OldSecretUses int64
	}
	type rowKey struct {
		id  uint
		day string
	}
	byRow := map[rowKey]*row{}
	ids := make([]uint, 0, len(byKey))
	for id, d := range byKey {
		ids = append(ids, id)
		byRow[rowKey{id, day}] = &row{KeyID: id, Day: day, APIRequests: d.apiRequests, SMTPMessages: d.smtpMessages, APIMessages: d.apiMessages, OldSecretUses: d.oldSecretUses}
	}
	slices.Sort(ids) // stable lock order
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if len(failures) > 0 {
			keys := make([]string, 0, len(failures))
			for k := range failures {
				keys = append(keys, k)
			}
			var found []struct {
				ID     uint
				APIKey string `gorm:"column:api_key"`
			}
			for start := 0; start < len(keys); start += flushBatch {
				var part []struct {
					ID     uint
					APIKey string `gorm:"column:api_key"`
				}
				if err := tx.Model(&APIKey{}).Select("id", "api_key").Where("api_key IN ?", keys[start:min(len(keys), start+flushBatch)]).Find(&part).Error; err != nil {
					return err
				}
				found = append(found, part...)
			}
			for _, f := range found {
				for d, n := range failures[f.APIKey] {
					r := byRow[rowKey{f.ID, d}]
					if r == nil {
						r = &row{KeyID: f.ID, Day: d}
						byRow[rowKey{f.ID, d}] = r
					}
					r.AuthFailures += n
				}
			}
		}
		// One row per (key, day), so a statement never updates a row twice;
		// in key order, many rows a statement.
		rows := make([]row, 0, len(byRow))
		for _, r := range byRow {
			rows = append(rows, *r)
		}
		slices.SortFunc(rows, func(a, b row) int { return cmp.Or(cmp.Compare(a.KeyID, b.KeyID), strings.Compare(a.Day, b.Day)) })
		for start := 0; start < len(rows); start += flushBatch {
			part := rows[start:min(len(rows), start+flushBatch)]
			err := tx.Table("key_usage_daily").Clauses(clause.OnConflict{
				Columns: []clause.Column{{Name: "key_id"}, {Name: "day"}},
				DoUpdates: clause.Assignments(map[string]any{
					"api_requests":    gorm.Expr("key_usage_daily.api_requests + excluded.api_requests"),
					"smtp_messages":   gorm.Expr("key_usage_daily.smtp_messages + excluded.smtp_messages"),
					"api_messages":    gorm.Expr("key_usage_daily.api_messages + excluded.api_messages"),
					"auth_failures":   gorm.Expr("key_usage_daily.auth_failures + excluded.auth_failures"),
					"old_secret_uses": gorm.Expr("key_usage_daily.old_secret_uses + excluded.old_secret_uses"),
				}),
			}).Create(&part).Error
			if err != nil {
				return err
			}
		}
		// Each key's last use, many keys a statement; never moved
		// backwards (another instance may be ahead).
		var used []uint
		for _, id := range ids {
			if !byKey[id].lastUsed.IsZero() { // else only messages counted since the last flush
				used = append(used, id)
			}
		}
		for start := 0; start < len(used); start += flushBatch {
			var b strings.Builder
			part := used[start:min(len(used), start+flushBatch)]
			args := make([]any, 0, 3*len(part))
			b.WriteString("UPDATE api_keys SET last_used_at = v.column2, last_used_ip = v.column3 FROM (VALUES ")
			for i, id := range part {
				if i > 0 {
					b.WriteString(", ")
				}
				if s.engine == Postgres {
					b.WriteString("(CAST(? AS BIGINT), CAST(? AS TIMESTAMPTZ), CAST(? AS TEXT))")
				} else {
					b.WriteString("(?, ?, ?)")
				}
				d := byKey[id]
				args = append(args, id, d.lastUsed.UTC(), d.lastIP)
			}
			b.WriteString(") AS v WHERE api_keys.id = v.column1 AND (api_keys.last_used_at IS NULL OR api_keys.last_used_at < v.column2)")
			if err := tx.Exec(b.String(), args...).Error; err != nil {
				return err
			}
		}
		for _, id := range used {
			for oldID, at := range byKey[id].oldLastUsed {
				if err := tx.Model(&OldSecret{}).Where("id = ? AND key_id = ? AND (last_used_at IS NULL OR last_used_at < ?)", oldID, id, at.UTC()).
					Update("last_used_at", at.UTC()).Error; err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("models: flush usage: %w", err)
	}
	return nil
}

// flushBatch is how many rows one statement of a flush writes.
const flushBatch = 200

// RunUsageFlusher flushes every interval until ctx ends, then once more.
func (s *Store) RunUsageFlusher(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := s.FlushUsage(fctx); err != nil {
				s.log.Error("final usage flush failed", "err", err)
			}
			if err := s.FlushDenials(fctx, true); err != nil { // denials.go
				s.log.Error("final access-denied flush failed", "err", err)
			}
			cancel()
			return
		case <-t.C:
			if err := s.FlushUsage(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("usage flush failed", "err", err)
			}
			if err := s.FlushDenials(ctx, false); err != nil && ctx.Err() == nil {
				s.log.Error("access-denied flush failed", "err", err)
			}
		}
	}
}

// DayUsage is one key's activity on one day.
type DayUsage struct {
	Day           time.Time
	APIRequests   int64
	SMTPMessages  int64
	APIMessages   int64 // sent through the Send API
	AuthFailures  int64
	OldSecretUses int64
}

// Messages is every message sent, by SMTP and by the Send API.
func (d DayUsage) Messages() int64 { return d.SMTPMessages + d.APIMessages }

// KeyUsage is a key's daily usage over a period, oldest first, with every
// day present (zeros where nothing happened).
type KeyUsage struct {
	Key    APIKey
	Days   []DayUsage
	Totals DayUsage
}

// UsageForKey returns the last `days` days of a key the owner manages.
func (s *Store) UsageForKey(ctx context.Context, actor Actor, keyID uint, days int) (*KeyUsage, error) {
	k, err := s.KeyByID(ctx, actor, keyID)
	if err != nil {
		return nil, err
	}
	m, err := s.dailyUsage(ctx, []uint{k.ID}, days)
	if err != nil {
		return nil, err
	}
	return s.assemble(*k, m[k.ID], days), nil
}

// CompareTop is how many keys the comparison shows.
const CompareTop = 10

// UsageForTree compares the keys of the owner's tree over the period: the
// CompareTop busiest keys (then others by name, up to CompareTop), with
// totals only. Bounded work however many sub-accounts the tree has.
func (s *Store) UsageForTree(ctx context.Context, actor Actor, days int) ([]KeyUsage, error) {
	if actor.AccountID == 0 {
		return nil, ErrForbidden
	}
	db := s.db.WithContext(ctx)
	from := s.Now().AddDate(0, 0, -(days - 1)).Format("2006-01-02")
	treeKeys := s.ownedKeys(db.Session(&gorm.Session{NewDB: true}).Model(&APIKey{}).Select("id"), actor)
	var top []struct {
		KeyID        uint
		APIRequests  int64 `gorm:"column:api_requests"`
		SMTPMessages int64 `gorm:"column:smtp_messages"`
		APIMessages  int64 `gorm:"column:api_messages"`
		AuthFailures int64
		OldUses      int64
	}
	err := db.Table("key_usage_daily").
		Select("key_id, SUM(api_requests) AS api_requests, SUM(smtp_messages) AS smtp_messages, SUM(api_messages) AS api_messages, SUM(auth_failures) AS auth_failures, SUM(old_secret_uses) AS old_uses").
		Where("key_id IN (?) AND day >= ?", treeKeys, from).Group("key_id").
		Order("SUM(api_requests) + SUM(smtp_messages) + SUM(api_messages) DESC").Order("key_id").Limit(CompareTop).Scan(&top).Error
	if err != nil {
		return nil, fmt.Errorf("models: usage comparison: %w", err)
	}
	ids := make([]uint, 0, CompareTop)
	totals := map[uint]DayUsage{}
	for _, t := range top {
		ids = append(ids, t.KeyID)
		totals[t.KeyID] = DayUsage{APIRequests: t.APIRequests, SMTPMessages: t.SMTPMessages, APIMessages: t.APIMessages, AuthFailures: t.AuthFailures, OldSecretUses: t.OldUses}
	}
	var keys []APIKey
	if len(ids) > 0 {
		if err := db.Where("id IN ?", ids).Find(&keys).Error; err != nil {
			return nil, fmt.Errorf("models: usage comparison: %w", err)
		}
	}
	if len(keys) < CompareTop {
		var more []APIKey
		q := s.ownedKeys(db.Model(&APIKey{}), actor)
		if len(ids) > 0 {
			q = q.Where("id NOT IN ?", ids)
		}
		if err := q.Order("is_master DESC").Order("LOWER(name)").Limit(CompareTop - len(keys)).Find(&more).Error; err != nil {
			return nil, fmt.Errorf("models: usage comparison: %w", err)
		}
		keys = append(keys, more...)
	}
	out := make([]KeyUsage, len(keys))
	for i, k := range keys {
		out[i] = KeyUsage{Key: k, Totals: totals[k.ID]}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Totals, out[j].Totals
		return a.APIRequests+a.Messages() > b.APIRequests+b.Messages()
	})
	return out, nil
}

func (s *Store) dailyUsage(ctx context.Context, ids []uint, days int) (map[uint]map[string]DayUsage, error) {
	from := s.Now().AddDate(0, 0, -(days - 1)).Format("2006-01-02")
	var rows []struct {
		KeyID         uint
		Day           string
		APIRequests   int64 `gorm:"column:api_requests"`
		SMTPMessages  int64 `gorm:"column:smtp_messages"`
		APIMessages   int64 `gorm:"column:api_messages"`
		AuthFailures  int64
		OldSecretUses int64
	}
	if len(ids) == 0 {
		return map[uint]map[string]DayUsage{}, nil
	}
	err := s.db.WithContext(ctx).Table("key_usage_daily").Where("key_id IN ? AND day >= ?", ids, from).Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("models: usage: %w", err)
	}
	out := map[uint]map[string]DayUsage{}
	for _, r := range rows {
		if out[r.KeyID] == nil {
			out[r.KeyID] = map[string]DayUsage{}
		}
		out[r.KeyID][r.Day] = DayUsage{APIRequests: r.APIRequests, SMTPMessages: r.SMTPMessages, APIMessages: r.APIMessages, AuthFailures: r.AuthFailures, OldSecretUses: r.OldSecretUses}
	}
	return out, nil
}

func (s *Store) assemble(k APIKey, m map[string]DayUsage, days int) *KeyUsage {
	u := &KeyUsage{Key: k}
	today := s.Now().Truncate(24 * time.Hour)
	for i := days - 1; i >= 0; i-- {
		d := today.AddDate(0, 0, -i)
		du := m[d.Format("2006-01-02")]
		du.Day = d
		u.Days = append(u.Days, du)
		u.Totals.APIRequests += du.APIRequests
		u.Totals.SMTPMessages += du.SMTPMessages
		u.Totals.APIMessages += du.APIMessages
		u.Totals.AuthFailures += du.AuthFailures
		u.Totals.OldSecretUses += du.OldSecretUses
	}
	return u
}
