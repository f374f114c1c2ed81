package models

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
)

// InvitationTTL is how long an invitation link works.
const InvitationTTL = 7 * 24 * time.Hour

// Invitation asks someone to join an account with a role and a scope. The
// link's token is random; only its digest is stored, so the table cannot
// be replayed into joins. Single use, revocable.
type Invitation struct {
	ID           uint `gorm:"primaryKey"`
	AccountID    uint
	Email        string
	Role         Role
	ScopeAll     bool
	Scope        string // comma-separated sub-account IDs when !ScopeAll
	TokenDigest  string `json:"-"`
	InvitedBy    uint
	InviterEmail string
	CreatedAt    time.Time
	ExpiresAt    time.Time
	AcceptedAt   *time.Time
	AcceptedBy   *uint
	RevokedAt    *time.Time
}

// ScopeIDs are the listed sub-accounts (nil with ScopeAll).
func (inv *Invitation) ScopeIDs() []uint {
	if inv.ScopeAll || inv.Scope == "" {
		return nil
	}
	var ids []uint
	for _, p := range strings.Split(inv.Scope, ",") {
		if n, err := strconv.ParseUint(p, 10, 64); err == nil {
			ids = append(ids, uint(n))
		}
	}
	return ids
}

// InvitationState says why a link no longer works.
type InvitationState string

const (
	InvitationUnknown InvitationState = "unknown"
	InvitationExpired InvitationState = "expired"
	InvitationUsed    InvitationState = "used"
	InvitationRevoked InvitationState = "revoked"
)

// InvitationError is a link that cannot be accepted, with the reason the
// page gives.
type InvitationError struct{ State InvitationState }

func (e *InvitationError) Error() string { return "invitation " + string(e.State) }

// InvitationView is what the acceptance page needs.
type InvitationView struct {
	Invitation  Invitation
	AccountName string
	// Existing is true when a user with the invited address exists: they
	// sign in to join instead of choosing a password.
	Existing bool
}

// Invite creates an invitation and returns its link token, once. The
// token is the only copy: the caller shows it in one response and/or
// sends it by e-mail.
func (s *Store) Invite(ctx context.Context, actor Actor, rawEmail, rawRole string, scope ScopeInput) (*Invitation, string, error) {
	if !actor.Can(PermTeamManage) || actor.AccountID == 0 {
		return nil, "", ErrForbidden
	}
	v := &ValidationError{}
	email := NormalizeEmail(rawEmail)
	validateEmail(v, "email", email)
	role, ok := ParseMemberRole(rawRole)
	if !ok {
		v.Add("role", "Choose admin, developer or viewer.")
	}
	if err := v.OrNil(); err != nil {
		return nil, "", err
	}
	token, err := newToken()
	if err != nil {
		return nil, "", err
	}
	var inv *Invitation
	err = s.tx(ctx, func(tx *gorm.DB) error {
		acc, err := s.lockAccount(tx, actor.AccountID)
		if err != nil {
			return err
		}
		ids, err := checkScope(tx, acc.ID, scope)
		if err != nil {
			return err
		}
		var members int64
		if err := tx.Raw(`SELECT COUNT(*) FROM members m JOIN users u ON u.id = m.user_id WHERE m.account_id = ? AND u.email = ?`, acc.ID, email).Scan(&members).Error; err != nil {
			return err
		}
		if members > 0 {
			return &ValidationError{Fields: map[string]string{"email": "This person is already a member of the account."}}
		}
		var pending int64
		if err := tx.Model(&Invitation{}).Where("account_id = ? AND email = ? AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ?", acc.ID, email, s.Now()).
			Count(&pending).Error; err != nil {
			return err
		}
		if pending > 0 {
			return &ValidationError{Fields: map[string]string{"email": "This address has a pending invitation. Revoke it to send a new one."}}
		}
		now := s.Now()
		inv = &Invitation{AccountID: acc.ID, Email: email, Role: role, ScopeAll: scope.All, Scope: scopeList(ids), TokenDigest: sessionHash(token),
			InvitedBy: actor.UserID, InviterEmail: actor.Email, CreatedAt: now, ExpiresAt: now.Add(InvitationTTL)}
		if err := tx.Create(inv).Error; err != nil {
			return err
		}
		return s.appendAudit(tx, actor, ActionMemberInvited, acc.ID, target("invitation", inv.ID, email),
			map[string]any{"email": email, "role": role, "scope": scopeDetail(scope.All, ids), "expires_at": inv.ExpiresAt.Format(time.RFC3339)})
	})
	if err != nil {
		return nil, "", wrapOp("invite", err)
	}
	return inv, token, nil
}

func scopeList(ids []uint) string {
	d, _ := scopeDetail(false, ids).(string)
	return d
}

// RevokeInvitation ends a pending invitation of the actor's account.
func (s *Store) RevokeInvitation(ctx context.Context, actor Actor, id uint) error {
	if !actor.Can(PermTeamManage) {
		return ErrForbidden
	}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var inv Invitation
		if err := tx.Where("id = ? AND account_id = ?", id, actor.AccountID).Take(&inv).Error; err != nil {
			return notFound(err)
		}
		if inv.AcceptedAt != nil || inv.RevokedAt != nil {
			return &ValidationError{Fields: map[string]string{"invitation": "This invitation is no longer pending."}}
		}
		now := s.Now()
		if err := tx.Model(&Invitation{}).Where("id = ?", inv.ID).Update("revoked_at", now).Error; err != nil {
			return err
		}
		return s.appendAudit(tx, actor, ActionInvitationRevoked, inv.AccountID, target("invitation", inv.ID, inv.Email), map[string]any{"email": inv.Email})
	})
	if err != nil {
		return wrapOp("revoke invitation", err)
	}
	return nil
}

// usableInvitation finds the invitation behind a token inside tx, or the
// InvitationError that explains why it cannot be used.
func (s *Store) usableInvitation(tx *gorm.DB, token string) (*Invitation, error) {
	var inv Invitation
	if token == "" || len(token) > 128 {
		return nil, &InvitationError{State: InvitationUnknown}
	}
	if err := tx.Where("token_digest = ?", sessionHash(token)).Take(&inv).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, &InvitationError{State: InvitationUnknown}
		}
		return nil, err
	}
	switch {
	case inv.AcceptedAt != nil:
		return nil, &InvitationError{State: InvitationUsed}
	case inv.RevokedAt != nil:
		return nil, &InvitationError{State: InvitationRevoked}
	case !s.Now().Before(inv.ExpiresAt):
		return nil, &InvitationError{State: InvitationExpired}
	}
	return &inv, nil
}

// InvitationByToken describes a usable invitation for its page.
func (s *Store) InvitationByToken(ctx context.Context, token string) (*InvitationView, error) {
	db := s.db.WithContext(ctx)
	inv, err := s.usableInvitation(db, token)
	if err != nil {
		return nil, err
	}
	v := &InvitationView{Invitation: *inv}
	var names []string
	if err := db.Model(&Account{}).Where("id = ?", inv.AccountID).Pluck("name", &names).Error; err != nil {
		return nil, err
	}
	if len(names) > 0 {
		v.AccountName = names[0]
	}
	var n int64
	if err := db.Model(&User{}).Where("email = ?", inv.Email).Count(&n).Error; err != nil {
		return nil, err
	}
	v.Existing = n > 0
	return v, nil
}

// join consumes the invitation for user u inside tx: the membership, the
// invitation marked used, the audit entry with the new member as actor.
func (s *Store) join(tx *gorm.DB, inv *Invitation, u *User, meta RequestMeta) error {
	if u.Role.IsStaff() {
		return &ValidationError{Fields: map[string]string{"invitation": "Staff users cannot join a customer account."}}
	}
	// The scope is checked again: a listed sub-account may be gone.
	ids := inv.ScopeIDs()
	if !inv.ScopeAll && len(ids) > 0 {
		var live []uint
		if err := tx.Model(&Account{}).Where("id IN ? AND parent_id = ?", ids, inv.AccountID).Pluck("id", &live).Error; err != nil {
			return err
		}
		ids = live
	}
	if _, err := addMember(tx, inv.AccountID, u.ID, inv.Role, inv.ScopeAll, ids); err != nil {
		return err
	}
	now := s.Now()
	res := tx.Model(&Invitation{}).Where("id = ? AND accepted_at IS NULL", inv.ID).Updates(map[string]any{"accepted_at": now, "accepted_by": u.ID})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected != 1 {
		return &InvitationError{State: InvitationUsed} // a concurrent accept won
	}
	a := Actor{UserID: u.ID, Email: u.Email, Role: inv.Role, AccountID: inv.AccountID, Meta: meta}
	return s.appendAudit(tx, a, ActionInvitationAccepted, inv.AccountID, target("invitation", inv.ID, u.Email),
		map[string]any{"role": inv.Role, "invited_by": inv.InviterEmail})
}

// AcceptInvitationNew is a new person accepting: they choose a password
// (the sign-up rules), become a member and are signed in to the account.
func (s *Store) AcceptInvitationNew(ctx context.Context, token, password, oldToken string, meta RequestMeta) (string, *Principal, error) {
	if msg := CheckPasswordPolicy(password); msg != "" {
		// The link is checked first so a dead link says so, not "password".
		if _, err := s.usableInvitation(s.db.WithContext(ctx), token); err != nil {
			return "", nil, err
		}
		return "", nil, &ValidationError{Fields: map[string]string{"password": msg}}
	}
	hash, err := s.hashPassword(ctx, password) // slow: outside the transaction
	if err != nil {
		return "", nil, err
	}
	var sessTok string
	p := &Principal{}
	err = s.tx(ctx, func(tx *gorm.DB) error {
		inv, err := s.usableInvitation(tx, token)
		if err != nil {
			return err
		}
		var n int64
		if err := tx.Model(&User{}).Where("email = ?", inv.Email).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return &ValidationError{Fields: map[string]string{"password": "An account with this address exists: sign in to join instead."}}
		}
		u := User{AccountID: &inv.AccountID, Email: inv.Email, PasswordHash: hash, Role: RoleMember, IsActive: true, PasswordChangedAt: s.Now()}
		if err := tx.Create(&u).Error; err != nil {
			return err
		}
		if err := s.join(tx, inv, &u, meta); err != nil {
			return err
		}
		p.User = u
		if err := s.bindMember(tx, p, inv.AccountID); err != nil {
			return err
		}
		if sessTok, err = s.openSession(tx, p, oldToken, false, meta); err != nil {
			return err
		}
		return s.signedIn(tx, p, meta)
	})
	if err != nil {
		return "", nil, wrapOp("accept invitation", err)
	}
	return sessTok, p, nil
}

// AcceptInvitationExisting is someone who already has a keydesk user
// joining: their password (and their second factor, when it is on) under
// the login throttle, then the membership and a session in the account.
func (s *Store) AcceptInvitationExisting(ctx context.Context, token, password, code, oldToken string, meta RequestMeta) (string, *Principal, error) {
	inv, err := s.usableInvitation(s.db.WithContext(ctx), token)
	if err != nil {
		return "", nil, err
	}
	rules := s.loginRules(inv.Email, meta.IP)
	if err := s.reserve(ctx, rules); err != nil {
		return "", nil, err
	}
	var u User
	if err := s.db.WithContext(ctx).Where("email = ?", inv.Email).Take(&u).Error; err != nil {
		s.release(rules)
		return "", nil, notFound(err)
	}
	ok, err := s.checkPassword(ctx, password, u.PasswordHash)
	if err != nil {
		s.release(rules)
		return "", nil, err
	}
	if !ok || !u.IsActive {
		return "", nil, &ValidationError{Fields: map[string]string{"password": "That password is not correct."}}
	}
	var sessTok string
	p := &Principal{User: u}
	err = s.tx(ctx, func(tx *gorm.DB) error {
		if u.Has2FA() {
			if err := s.checkSecondFactor(tx, &p.User, code, meta); err != nil {
				return err
			}
		}
		inv, err := s.usableInvitation(tx, token)
		if err != nil {
			return err
		}
		if err := s.join(tx, inv, &p.User, meta); err != nil {
			return err
		}
		if err := s.releaseIn(tx, rules, true); err != nil {
			return err
		}
		if err := s.bindMember(tx, p, inv.AccountID); err != nil {
			return err
		}
		if sessTok, err = s.openSession(tx, p, oldToken, false, meta); err != nil {
			return err
		}
		return s.signedIn(tx, p, meta)
	})
	if err != nil {
		return "", nil, wrapOp("accept invitation", err)
	}
	return sessTok, p, nil
}

// AcceptInvitationAs is a signed-in person joining with one click: the
// invitation must be for their address. The session moves to the account.
func (s *Store) AcceptInvitationAs(ctx context.Context, p *Principal, token string, meta RequestMeta) error {
	err := s.tx(ctx, func(tx *gorm.DB) error {
		inv, err := s.usableInvitation(tx, token)
		if err != nil {
			return err
		}
		if p.User.Role.IsStaff() || inv.Email != p.User.Email {
			return &ValidationError{Fields: map[string]string{"invitation": fmt.Sprintf("This invitation is for %s. Log out and open the link again to accept it.", MaskEmail(inv.Email))}}
		}
		if err := s.join(tx, inv, &p.User, meta); err != nil {
			return err
		}
		return tx.Model(&Session{}).Where("id_hash = ?", p.Session.IDHash).Update("account_id", inv.AccountID).Error
	})
	if err != nil {
		return wrapOp("accept invitation", err)
	}
	return nil
}

// SavedLanguage is the console language the person with this address chose
// ("" when no user has the address or they follow their browser): their
// invitation is written in it.
func (s *Store) SavedLanguage(ctx context.Context, rawEmail string) (string, error) {
	var langs []string
	if err := s.db.WithContext(ctx).Model(&User{}).Where("email = ?", NormalizeEmail(rawEmail)).Limit(1).Pluck("language", &langs).Error; err != nil {
		return "", wrapOp("saved language", err)
	}
	if len(langs) == 0 {
		return "", nil
	}
	return langs[0], nil
}
