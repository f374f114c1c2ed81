package models

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
)

// PasswordResetTTL is how long a reset link works.
const PasswordResetTTL = 30 * time.Minute

// Reset requests are limited so the form cannot be used to flood a
// mailbox: per address and per client address, per hour.
const (
	resetPerEmail = 5
	resetPerIP    = 30
	resetRuleSpan = time.Hour
)

// passwordReset is one link: only the token's digest is stored; single use.
type passwordReset struct {
	ID          uint `gorm:"primaryKey"`
	UserID      uint
	TokenDigest string
	CreatedAt   time.Time
	ExpiresAt   time.Time
	UsedAt      *time.Time
}

func (passwordReset) TableName() string { return "password_resets" }

// ResetLinkError says why a reset link no longer works.
type ResetLinkError struct{ State InvitationState }

func (e *ResetLinkError) Error() string { return "password reset link " + string(e.State) }

// newResetToken records a link for u inside tx and returns its token.
func (s *Store) newResetToken(tx *gorm.DB, u *User, actor Actor) (string, error) {
	token, err := newToken()
	if err != nil {
		return "", err
	}
	now := s.Now()
	if err := tx.Create(&passwordReset{UserID: u.ID, TokenDigest: sessionHash(token), CreatedAt: now, ExpiresAt: now.Add(PasswordResetTTL)}).Error; err != nil {
		return "", err
	}
	var accountID uint
	if u.AccountID != nil {
		accountID = *u.AccountID
	}
	return token, s.appendAudit(tx, actor, ActionPasswordResetAsked, accountID, target("user", u.ID, u.Email), map[string]any{"expires_in": PasswordResetTTL.String()})
}

// RequestPasswordReset makes a reset link for the address when a user has
// it. The caller answers the same whatever the outcome (user nil, token
// ""): whether an address is known never shows.
func (s *Store) RequestPasswordReset(ctx context.Context, rawEmail string, meta RequestMeta) (string, *User, error) {
	email := NormalizeEmail(rawEmail)
	v := &ValidationError{}
	validateEmail(v, "email", email)
	if err := v.OrNil(); err != nil {
		return "", nil, err
	}
	rules := []throttleRule{
		{throttleKey("reset", email), resetPerEmail, resetRuleSpan, resetRuleSpan},
		{throttleKey("resetip", meta.IP), resetPerIP, resetRuleSpan, resetRuleSpan},
	}
	if err := s.reserve(ctx, rules); err != nil {
		return "", nil, err
	}
	var u User
	err := s.db.WithContext(ctx).Where("email = ? AND is_active = ?", email, true).Take(&u).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, wrapOp("password reset", err)
	}
	var token string
	err = s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		token, err = s.newResetToken(tx, &u, systemActor(meta))
		return err
	})
	if err != nil {
		return "", nil, wrapOp("password reset", err)
	}
	return token, &u, nil
}

// ResetLinkFor makes a reset link for an operator (the CLI, when there is
// no mail relay). ErrNotFound when no user has the address.
func (s *Store) ResetLinkFor(ctx context.Context, rawEmail string, actor Actor) (string, error) {
	email := NormalizeEmail(rawEmail)
	var token string
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var u User
		if err := tx.Where("email = ?", email).Take(&u).Error; err != nil {
			return notFound(err)
		}
		var err error
		token, err = s.newResetToken(tx, &u, actor)
		return err
	})
	if err != nil {
		return "", wrapOp("reset link", err)
	}
	return token, nil
}

func (s *Store) usableReset(tx *gorm.DB, token string) (*passwordReset, error) {
	var r passwordReset
	if token == "" || len(token) > 128 {
		return nil, &ResetLinkError{State: InvitationUnknown}
	}
	if err := tx.Where("token_digest = ?", sessionHash(token)).Take(&r).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, &ResetLinkError{State: InvitationUnknown}
		}
		return nil, err
	}
	switch {
	case r.UsedAt != nil:
		return nil, &ResetLinkError{State: InvitationUsed}
	case !s.Now().Before(r.ExpiresAt):
		return nil, &ResetLinkError{State: InvitationExpired}
	}
	return &r, nil
}

// CheckResetLink tells the reset page whether its link still works.
func (s *Store) CheckResetLink(ctx context.Context, token string) error {
	_, err := s.usableReset(s.db.WithContext(ctx), token)
	return err
}

// ResetPassword sets a new password through a reset link: single use;
// every session of the user ends, and every other link of theirs too.
func (s *Store) ResetPassword(ctx context.Context, token, password string, meta RequestMeta) error {
	if _, err := s.usableReset(s.db.WithContext(ctx), token); err != nil {
		return err
	}
	if msg := CheckPasswordPolicy(password); msg != "" {
		return &ValidationError{Fields: map[string]string{"password": msg}}
	}
	hash, err := s.hashPassword(ctx, password)
	if err != nil {
		return err
	}
	err = s.tx(ctx, func(tx *gorm.DB) error {
		r, err := s.usableReset(tx, token)
		if err != nil {
			return err
		}
		now := s.Now()
		res := tx.Model(&passwordReset{}).Where("id = ? AND used_at IS NULL", r.ID).Update("used_at", now)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return &ResetLinkError{State: InvitationUsed}
		}
		// Other links of this user die with this use.
		if err := tx.Model(&passwordReset{}).Where("user_id = ? AND used_at IS NULL", r.UserID).Update("used_at", now).Error; err != nil {
			return err
		}
		var u User
		if err := tx.Take(&u, r.UserID).Error; err != nil {
			return err
		}
		if err := tx.Model(&User{}).Where("id = ?", u.ID).Updates(map[string]any{"password_hash": hash, "password_changed_at": now}).Error; err != nil {
			return err
		}
		ended := tx.Where("user_id = ?", u.ID).Delete(&Session{})
		if ended.Error != nil {
			return ended.Error
		}
		a := Actor{UserID: u.ID, Email: u.Email, Role: u.Role, Meta: meta}
		if u.AccountID != nil {
			a.AccountID = *u.AccountID
		}
		return s.appendAudit(tx, a, ActionPasswordReset, a.AccountID, target("user", u.ID, u.Email), map[string]any{"sessions_ended": ended.RowsAffected})
	})
	if err != nil {
		return wrapOp("reset password", err)
	}
	return nil
}
