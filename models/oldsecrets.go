package models

import (
	"context"
	"sort"
	"time"

	"gorm.io/gorm"
)

// MaxLiveSecrets caps how many secrets of one key work at once: the current
// one plus older ones inside their grace periods. Each live secret is a
// credential that may have leaked; the cap keeps rotation meaningful.
const MaxLiveSecrets = 3

// maxOldSecrets is how many older secrets a key may keep beside its current one.
const maxOldSecrets = MaxLiveSecrets - 1

// OldSecret is a replaced secret that still works until ExpiresAt, the end
// of the grace period chosen when it was replaced. Only its digest is kept.
type OldSecret struct {
	ID         uint `gorm:"primaryKey"`
	KeyID      uint
	Digest     []byte `json:"-"`
	Hint       string // "kd_live_…Xq4Z"; empty for secrets migrated from before hints were kept
	RetiredAt  time.Time
	ExpiresAt  time.Time
	LastUsedAt *time.Time
}

func (OldSecret) TableName() string { return "old_secrets" }

// Live reports whether the secret still works at now.
func (o *OldSecret) Live(now time.Time) bool { return now.Before(o.ExpiresAt) }

// UsedSinceRetired reports whether a client used it after it was replaced.
func (o *OldSecret) UsedSinceRetired() bool {
	return o.LastUsedAt != nil && !o.LastUsedAt.Before(o.RetiredAt)
}

// GraceUntil is the latest deadline among the key's live old secrets, if any.
func (k *APIKey) GraceUntil(now time.Time) *time.Time {
	var until *time.Time
	for i := range k.OldSecrets {
		o := &k.OldSecrets[i]
		if o.Live(now) && (until == nil || o.ExpiresAt.After(*until)) {
			until = &o.ExpiresAt
		}
	}
	return until
}

// CapVictim is the old secret that a reset with a grace period would end
// early because of MaxLiveSecrets (the one whose deadline comes first), or
// nil when a reset ends none. A reset without a grace period ends none:
// the current secret dies at once instead.
func (k *APIKey) CapVictim(now time.Time) *OldSecret {
	var live []*OldSecret
	for i := range k.OldSecrets {
		if k.OldSecrets[i].Live(now) {
			live = append(live, &k.OldSecrets[i])
		}
	}
	if len(live) < maxOldSecrets {
		return nil
	}
	sort.Slice(live, func(i, j int) bool { return live[i].ExpiresAt.Before(live[j].ExpiresAt) })
	return live[0]
}

// liveOldSecrets reads the old secrets of keys that still work at now, the
// latest deadline first. Digests are read only when withDigest is set
// (display paths never carry them).
func liveOldSecrets(db *gorm.DB, keyIDs []uint, now time.Time, withDigest bool) (map[uint][]OldSecret, error) {
	out := map[uint][]OldSecret{}
	if len(keyIDs) == 0 {
		return out, nil
	}
	cols := []string{"id", "key_id", "hint", "retired_at", "expires_at", "last_used_at"}
	if withDigest {
		cols = append(cols, "digest")
	}
	var rows []OldSecret
	if err := db.Model(&OldSecret{}).Select(cols).Where("key_id IN ? AND expires_at > ?", keyIDs, now).
		Order("expires_at DESC").Order("id DESC").Find(&rows).Error; err != nil {
		return nil, err
	}
	for _, r := range rows {
		if r.Live(now) {
			out[r.KeyID] = append(out[r.KeyID], r)
		}
	}
	return out, nil
}

// attachOldSecrets fills OldSecrets (without digests) on each key.
func attachOldSecrets(db *gorm.DB, now time.Time, keys ...*APIKey) error {
	ids := make([]uint, 0, len(keys))
	for _, k := range keys {
		if k != nil {
			ids = append(ids, k.ID)
		}
	}
	m, err := liveOldSecrets(db, ids, now, false)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if k != nil {
			k.OldSecrets = m[k.ID]
		}
	}
	return nil
}

// EndOldSecret stops one old secret of a key before its grace period ends
// ("End now"). It needs a recent authentication, is audited, and reaches
// every instance's verification cache like a reset.
func (s *Store) EndOldSecret(ctx context.Context, actor Actor, keyID, secretID uint) (*APIKey, OldSecret, error) {
	if err := s.requireSudo(actor); err != nil {
		return nil, OldSecret{}, err
	}
	var ended OldSecret
	k, err := s.withOwnedKey(ctx, actor, keyID, "end old secret", func(tx *gorm.DB, k *APIKey) error {
		now := s.Now()
		// The key_id condition keeps another key's (or tenant's) secret out.
		if err := tx.Select("id", "key_id", "hint", "retired_at", "expires_at", "last_used_at").
			Where("id = ? AND key_id = ? AND expires_at > ?", secretID, k.ID, now).Take(&ended).Error; err != nil {
			return notFound(err)
		}
		if err := tx.Where("id = ?", ended.ID).Delete(&OldSecret{}).Error; err != nil {
			return err
		}
		if err := s.appendAudit(tx, actor, ActionOldSecretEnded, k.AccountID, target("apikey", k.ID, k.Name), map[string]any{
			"api_key": k.APIKey, "secret_hint": ended.Hint, "was_valid_until": ended.ExpiresAt.UTC().Format(time.RFC3339),
		}); err != nil {
			return err
		}
		if err := attachOldSecrets(tx, now, k); err != nil {
			return err
		}
		return s.notifyKeyChanged(tx, k.APIKey)
	})
	if err != nil {
		return nil, OldSecret{}, err
	}
	return k, ended, nil
}
