package models

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// SudoWindow is how long after an authentication sensitive actions are
// allowed without asking for the password again.
const SudoWindow = 15 * time.Minute

// Session is a signed-in browser. Only a digest of its opaque ID is stored,
// so a database leak does not hand out live sessions.
type Session struct {
	IDHash     string `gorm:"primaryKey;column:id_hash"`
	UserID     uint
	CreatedAt  time.Time
	LastSeenAt time.Time
	AuthAt     time.Time // last password entry (login or re-authentication)
	ExpiresAt  time.Time // absolute lifetime
	IP         string
	UserAgent  string
	// AccountID is the account the session works in (members.go); people
	// in several accounts switch it.
	AccountID *uint
	// Pending is a session whose password was right and whose second
	// factor is still to be entered: it opens nothing else (totp.go).
	Pending bool
}

// Principal is the signed-in user behind a request.
type Principal struct {
	User    User
	Account *Account // the account the session works in; nil for staff
	Session Session
	// Member is the person's membership in Account (nil for staff); Scope
	// the sub-accounts it reaches, nil meaning all of them.
	Member      *Member
	Scope       []uint
	Memberships []Membership // every account the person belongs to
	// MustEnrol2FA is set when two-factor sign-in is required (by the
	// account's owner, or by the operator for staff) and not yet on: the
	// person is sent to enrolment before anything else.
	MustEnrol2FA bool
}

// Role is what the principal is in the account the session works in.
func (p *Principal) Role() Role {
	if p.Member != nil {
		return p.Member.Role
	}
	return p.User.Role
}

// Suspended reports that the account the session works in is suspended.
func (p *Principal) Suspended() bool { return p.Account != nil && p.Account.SuspendedAt != nil }

// Actor turns a principal into the actor of an operation.
func (p *Principal) Actor(meta RequestMeta) Actor {
	a := Actor{UserID: p.User.ID, Email: p.User.Email, Role: p.Role(), AuthAt: p.Session.AuthAt, Meta: meta}
	if p.Account != nil {
		a.AccountID = p.Account.ID
	}
	if p.Member != nil {
		a.MemberID = p.Member.ID
		a.Scoped, a.Scope = !p.Member.ScopeAll, p.Scope
	}
	return a
}

// InSudo reports whether the last authentication is recent enough for
// sensitive actions.
func (p *Principal) InSudo(now time.Time) bool {
	return now.Sub(p.Session.AuthAt) <= SudoWindow
}

func sessionHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("models: session token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Login checks e-mail and password and opens a new session, returning its
// opaque token. Every failure is ErrInvalidCredentials (or a ThrottledError),
// whatever the cause. oldToken, the session the browser had, is ended so
// the session ID always changes at login (no fixation).
func (s *Store) Login(ctx context.Context, email, password, oldToken string, meta RequestMeta) (string, *Principal, error) {
	email = NormalizeEmail(email)
	// The attempt is charged before the password is hashed (see reserve):
	// parallel guesses cannot outrun the count.
	rules := s.loginRules(email, meta.IP)
	if err := s.reserve(ctx, rules); err != nil {
		if errors.As(err, new(*ThrottledError)) {
			return "", nil, err
		}
		return "", nil, fmt.Errorf("models: login: %w", err)
	}
	var u User
	err := s.db.WithContext(ctx).Where("email = ?", email).Take(&u).Error
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		s.release(rules)
		return "", nil, fmt.Errorf("models: login: %w", err)
	}
	known := err == nil
	hash := s.dummy // unknown e-mail: spend the same time as a real check
	if known {
		hash = u.PasswordHash
	}
	ok, err := s.checkPassword(ctx, password, hash)
	if err != nil {
		s.release(rules) // not evaluated (busy, cancelled) or unreadable: no failure
		if errors.As(err, new(*BusyError)) {
			return "", nil, err
		}
		return "", nil, fmt.Errorf("models: login: %w", err)
	}
	ok = ok && known && u.IsActive
	p := &Principal{User: u}
	if ok && !u.Role.IsStaff() {
		// People work in one of their accounts; someone who belongs to
		// none (removed everywhere) has nothing to sign in to. A suspended
		// account still signs in, to the page that says so.
		accountID, err := defaultAccount(s.db.WithContext(ctx), &u)
		if err == nil && accountID != 0 {
			err = s.bindMember(s.db.WithContext(ctx), p, accountID)
		}
		switch {
		case err == nil && accountID != 0:
			ok = p.Account.IsActive || p.Suspended()
		case err == nil || errors.Is(err, ErrSessionInvalid) || errors.Is(err, ErrNotFound):
			ok = false
		default:
			s.release(rules)
			return "", nil, fmt.Errorf("models: login: %w", err)
		}
	}
	if !ok {
		// The reservation stands as the failure; only the audit entry is left.
		var accountID uint
		if p.Account != nil {
			accountID = p.Account.ID
		} else if u.AccountID != nil {
			accountID = *u.AccountID
		}
		// The e-mail tried is stored masked; the password never.
		err := s.tx(ctx, func(tx *gorm.DB) error {
			return s.appendAudit(tx, systemActor(meta), ActionLoginFailed, accountID,
				auditTarget{Type: "user", Name: MaskEmail(email)}, map[string]any{"email": MaskEmail(email)})
		})
		if err != nil {
			return "", nil, fmt.Errorf("models: login failure: %w", err)
		}
		return "", nil, ErrInvalidCredentials
	}
	// With two-factor sign-in the password alone opens nothing: a pending
	// session that only the second-factor page accepts (totp.go).
	pending := u.Has2FA()
	var token string
	err = s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if token, err = s.openSession(tx, p, oldToken, pending, meta); err != nil {
			return err
		}
		if err := s.releaseIn(tx, rules, true); err != nil {
			return err
		}
		if pending {
			return nil // the sign-in is audited once the second factor is right
		}
		return s.signedIn(tx, p, meta)
	})
	if err != nil {
		return "", nil, fmt.Errorf("models: login: %w", err)
	}
	return token, p, nil
}

// signedIn records a complete sign-in: the audit entry and the time /team
// shows as the last sign-in.
func (s *Store) signedIn(tx *gorm.DB, p *Principal, meta RequestMeta) error {
	now := s.Now()
	if err := tx.Model(&User{}).Where("id = ?", p.User.ID).Update("last_login_at", now).Error; err != nil {
		return err
	}
	p.User.LastLoginAt = &now
	a := p.Actor(meta)
	return s.appendAudit(tx, a, ActionLoginSucceeded, a.AccountID, target("user", p.User.ID, p.User.Email), nil)
}

// openSession starts a session for p inside tx, in p.Account when it is
// set, and returns its opaque token. oldToken, the session the browser
// had, ends, so the session ID changes at every sign-in (no fixation). A
// pending session (password right, second factor to come) opens only the
// second-factor page, for a few minutes (totp.go).
func (s *Store) openSession(tx *gorm.DB, p *Principal, oldToken string, pending bool, meta RequestMeta) (string, error) {
	token, err := newToken()
	if err != nil {
		return "", err
	}
	now := s.Now()
	sess := Session{IDHash: sessionHash(token), UserID: p.User.ID, CreatedAt: now, LastSeenAt: now, AuthAt: now,
		ExpiresAt: now.Add(s.maxAge), IP: meta.IP, UserAgent: truncate(meta.UserAgent, maxUserAgent)}
	if p.Account != nil {
		sess.AccountID = &p.Account.ID
	}
	if pending {
		sess.Pending, sess.ExpiresAt = true, now.Add(PendingSecondFactorTTL)
	}
	if oldToken != "" {
		if err := tx.Where("id_hash = ?", sessionHash(oldToken)).Delete(&Session{}).Error; err != nil {
			return "", err
		}
	}
	if err := tx.Create(&sess).Error; err != nil {
		return "", err
	}
	p.Session = sess
	return token, nil
}

// touchEvery is how far apart last-seen is written for one session: once a
// minute at most, and never less often than a tenth of the idle timeout, so
// a short timeout (under a minute) cannot end a session that is in use.
func (s *Store) touchEvery() time.Duration {
	return min(time.Minute, s.idle/10)
}

// ResolveSession returns the principal behind a session token, enforcing
// the idle timeout and the absolute lifetime. Expired sessions are deleted.
func (s *Store) ResolveSession(ctx context.Context, token string) (*Principal, error) {
	if token == "" {
		return nil, ErrSessionInvalid
	}
	db := s.db.WithContext(ctx)
	var sess Session
	if err := db.Where("id_hash = ?", sessionHash(token)).Take(&sess).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, ErrSessionInvalid
		}
		return nil, fmt.Errorf("models: resolve session: %w", err)
	}
	now := s.Now()
	if !now.Before(sess.ExpiresAt) || now.Sub(sess.LastSeenAt) > s.idle {
		db.Where("id_hash = ?", sess.IDHash).Delete(&Session{})
		return nil, ErrSessionInvalid
	}
	var u User
	if err := db.Take(&u, sess.UserID).Error; err != nil {
		return nil, ErrSessionInvalid
	}
	if !u.IsActive {
		return nil, ErrSessionInvalid
	}
	p := &Principal{User: u, Session: sess}
	if sess.Pending {
		return p, nil // the caller lets it reach the second-factor page only
	}
	if !u.Role.IsStaff() {
		// The membership is read again on every request: a removed member
		// or a narrowed scope takes effect at the next click.
		var accountID uint
		if sess.AccountID != nil {
			accountID = *sess.AccountID
		} else if u.AccountID != nil {
			accountID = *u.AccountID
		}
		err := s.bindMember(db, p, accountID)
		if errors.Is(err, ErrSessionInvalid) || errors.Is(err, ErrNotFound) {
			db.Where("id_hash = ?", sess.IDHash).Delete(&Session{})
			return nil, ErrSessionInvalid
		}
		if err != nil {
			return nil, fmt.Errorf("models: resolve session: %w", err)
		}
		if !p.Account.IsActive && !p.Suspended() {
			return nil, ErrSessionInvalid
		}
	}
	p.MustEnrol2FA = s.Requires2FA(p) && !u.Has2FA()
	if now.Sub(sess.LastSeenAt) >= s.touchEvery() {
		if err := db.Model(&Session{}).Where("id_hash = ?", sess.IDHash).Update("last_seen_at", now).Error; err != nil {
			return nil, fmt.Errorf("models: touch session: %w", err)
		}
		p.Session.LastSeenAt = now
	}
	return p, nil
}

// Logout ends the session server-side, so a replayed cookie is useless.
func (s *Store) Logout(ctx context.Context, p *Principal, meta RequestMeta) error {
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Where("id_hash = ?", p.Session.IDHash).Delete(&Session{}).Error; err != nil {
			return err
		}
		a := p.Actor(meta)
		return s.appendAudit(tx, a, ActionLogout, a.AccountID, target("user", p.User.ID, p.User.Email), nil)
	})
	if err != nil {
		return fmt.Errorf("models: logout: %w", err)
	}
	return nil
}

// ReauthenticateWithCode is the sudo prompt: the password and, for a
// person with two-factor sign-in, a code too (a stolen password alone
// reaches no sensitive action). It restarts the session's sudo window and
// returns p as the actor of the sensitive action that follows, inside
// that window; p itself is left as it is.
func (s *Store) ReauthenticateWithCode(ctx context.Context, p *Principal, password, code string, meta RequestMeta) (Actor, error) {
	ok, err := s.checkRecentPassword(ctx, p, password, meta)
	if err != nil {
		return Actor{}, fmt.Errorf("models: reauthenticate: %w", err)
	}
	a := p.Actor(meta)
	if !ok {
		return Actor{}, &ValidationError{Fields: map[string]string{"password": "That password is not correct."}}
	}
	var rules []throttleRule
	if p.User.Has2FA() {
		rules = s.secondFactorRules(p.User.Email, meta.IP)
		if err := s.reserve(ctx, rules); err != nil {
			return Actor{}, err
		}
	}
	now := s.Now()
	err = s.tx(ctx, func(tx *gorm.DB) error {
		if rules != nil {
			// A copy: checkSecondFactor records the code's step on the user.
			u := p.User
			if err := s.checkSecondFactor(tx, &u, code, meta); err != nil {
				return err
			}
			if err := s.releaseIn(tx, rules, true); err != nil {
				return err
			}
		}
		if err := tx.Model(&Session{}).Where("id_hash = ?", p.Session.IDHash).Update("auth_at", now).Error; err != nil {
			return err
		}
		return s.appendAudit(tx, a, ActionReauthenticated, a.AccountID, target("user", p.User.ID, p.User.Email), nil)
	})
	if err != nil {
		return Actor{}, fmt.Errorf("models: reauthenticate: %w", err)
	}
	a.AuthAt = now
	return a, nil
}

// checkRecentPassword checks a signed-in user's password (sudo prompt,
// password change) under the login throttle, so a borrowed session cannot
// be used to guess the password.
func (s *Store) checkRecentPassword(ctx context.Context, p *Principal, password string, meta RequestMeta) (bool, error) {
	rules := s.loginRules(p.User.Email, meta.IP)
	if err := s.reserve(ctx, rules); err != nil {
		return false, err
	}
	ok, err := s.checkPassword(ctx, password, p.User.PasswordHash)
	if err != nil {
		s.release(rules)
		return false, err
	}
	if ok {
		err = s.tx(ctx, func(tx *gorm.DB) error { return s.releaseIn(tx, rules, true) })
	}
	return ok, err
}

// ChangePassword replaces the password after checking the current one and
// ends every other session of the user.
func (s *Store) ChangePassword(ctx context.Context, p *Principal, current, next string, meta RequestMeta) error {
	v := &ValidationError{}
	ok, err := s.checkRecentPassword(ctx, p, current, meta)
	if err != nil {
		return fmt.Errorf("models: change password: %w", err)
	}
	if !ok {
		v.Add("current", "That is not your current password.")
	}
	if msg := CheckPasswordPolicy(next); msg != "" {
		v.Add("new", msg)
	}
	if err := v.OrNil(); err != nil {
		return err
	}
	hash, err := s.hashPassword(ctx, next)
	if err != nil {
		return err
	}
	a := p.Actor(meta)
	now := s.Now()
	err = s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Model(&User{}).Where("id = ?", p.User.ID).Updates(map[string]any{"password_hash": hash, "password_changed_at": now}).Error; err != nil {
			return err
		}
		res := tx.Where("user_id = ? AND id_hash <> ?", p.User.ID, p.Session.IDHash).Delete(&Session{})
		if res.Error != nil {
			return res.Error
		}
		if err := tx.Model(&Session{}).Where("id_hash = ?", p.Session.IDHash).Update("auth_at", now).Error; err != nil {
			return err
		}
		if err := s.appendAudit(tx, a, ActionPasswordChanged, a.AccountID, target("user", p.User.ID, p.User.Email), nil); err != nil {
			return err
		}
		if res.RowsAffected > 0 {
			return s.appendAudit(tx, a, ActionSessionRevoked, a.AccountID, target("user", p.User.ID, p.User.Email),
				map[string]any{"sessions": res.RowsAffected, "reason": "password changed"})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("models: change password: %w", err)
	}
	p.User.PasswordHash = hash
	return nil
}

// MaskEmail keeps enough of an address to recognise it, not to harvest it:
// "ana@example.com" → "a**@example.com".
func MaskEmail(email string) string {
	at := -1
	for i := len(email) - 1; i >= 0; i-- {
		if email[i] == '@' {
			at = i
			break
		}
	}
	if at <= 0 {
		if len(email) > 1 {
			return email[:1] + "***"
		}
		return "***"
	}
	local := []rune(email[:at])
	return string(local[0]) + "**" + truncate(email[at:], 120)
}
