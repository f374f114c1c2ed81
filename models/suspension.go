package models

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// SuspendAccount stops an account (support, with a reason): its people's
// sessions end, and every key of its tree fails Verify at once, in this
// instance and, through NOTIFY, in every other one — so REST answers 401
// and SMTP 535. Its people who sign in see a page saying it is suspended.
func (s *Store) SuspendAccount(ctx context.Context, actor Actor, accountID uint, rawReason string) error {
	return s.setSuspended(ctx, actor, accountID, rawReason, true)
}

// ReinstateAccount lifts a suspension (support, with a reason).
func (s *Store) ReinstateAccount(ctx context.Context, actor Actor, accountID uint, rawReason string) error {
	return s.setSuspended(ctx, actor, accountID, rawReason, false)
}

func (s *Store) setSuspended(ctx context.Context, actor Actor, accountID uint, rawReason string, suspend bool) error {
	if err := requireStaff(actor, RoleSupport); err != nil {
		return err
	}
	reason, msg := validateReason("reason", rawReason, true)
	if msg != "" {
		return &ValidationError{Fields: map[string]string{"reason": msg}}
	}
	var apiKeys []string
	err := s.tx(ctx, func(tx *gorm.DB) error {
		a, err := s.lockAccount(tx, accountID)
		if err != nil {
			return err
		}
		if (a.SuspendedAt != nil) == suspend {
			if suspend {
				return &ValidationError{Fields: map[string]string{"reason": "This account is already suspended."}}
			}
			return &ValidationError{Fields: map[string]string{"reason": "This account is not suspended."}}
		}
		updates := map[string]any{"is_active": !suspend, "suspended_reason": "", "suspended_at": nil}
		action := ActionAccountReinstated
		details := map[string]any{"reason": reason}
		if suspend {
			now := s.Now()
			updates["suspended_at"], updates["suspended_reason"] = now, reason
			action = ActionAccountSuspended
			// Every session working in the account ends now (one bound to
			// no account works in its user's home account).
			ended := tx.Where(`account_id = ? OR (account_id IS NULL AND user_id IN (SELECT id FROM users WHERE account_id = ?))`, a.ID, a.ID).Delete(&Session{})
			if ended.Error != nil {
				return ended.Error
			}
			details["sessions_ended"] = ended.RowsAffected
		}
		if err := tx.Model(&Account{}).Where("id = ?", a.ID).Updates(updates).Error; err != nil {
			return err
		}
		if err := tx.Model(&APIKey{}).Where("tree_id = ?", a.ID).Pluck("api_key", &apiKeys).Error; err != nil {
			return err
		}
		// The path deactivation uses, for every key of the tree at once:
		// other instances drop them from their caches at commit.
		if s.engine == Postgres {
			if err := tx.Exec("SELECT pg_notify(?, api_key) FROM api_keys WHERE tree_id = ?", s.pg.channel, a.ID).Error; err != nil {
				return err
			}
		}
		if err := s.notifyTreeChanged(tx, a.ID); err != nil {
			return err
		}
		details["keys"] = len(apiKeys)
		return s.appendAudit(tx, actor, action, a.ID, target("account", a.ID, a.Name), details)
	})
	if err != nil {
		return wrapOp("suspend account", err)
	}
	for _, k := range apiKeys {
		s.invalidate(k)
	}
	s.invalidateTree(accountID)
	return nil
}

// SuspensionOf is what the suspended page says.
type SuspensionOf struct {
	AccountName string
	Since       time.Time
}
