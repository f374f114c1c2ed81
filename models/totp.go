package models

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
	"gorm.io/gorm"
)

// Two-factor sign-in: TOTP (RFC 6238, 30-second steps, 6 digits, SHA-1 as
// every authenticator app expects) plus ten single-use recovery codes.
const (
	totpPeriod = 30
	// totpSkew accepts the previous and the next step too (clock drift).
	totpSkew = 1
	// RecoveryCodeCount is how many recovery codes one set holds.
	RecoveryCodeCount = 10
	// PendingSecondFactorTTL bounds the time between the password and the
	// code: a pending session older than this is gone.
	PendingSecondFactorTTL = 5 * time.Minute
	totpIssuer             = "keydesk"
)

// The TOTP seed cannot be stored as a digest (codes are computed from
// it), so it is sealed with AES-256-GCM under a key derived from the audit
// key, which lives outside the database: a copy of the database alone
// yields no seed. The key ID is kept beside it so the audit key can rotate
// (older keys stay readable through Options.AuditOldKeys).
func (s *Store) totpKey(kid string) ([]byte, bool) {
	k, ok := s.keys.byID[kid]
	if !ok {
		return nil, false
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte("keydesk-totp-seed-v1"))
	return m.Sum(nil), true
}

func (s *Store) sealSeed(seed string) (string, error) {
	key, _ := s.totpKey(s.keys.current)
	block, err := aes.NewCipher(key)
	if err != nil {
		return "", err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	ct := gcm.Seal(nonce, nonce, []byte(seed), []byte(s.keys.current))
	return s.keys.current + ":" + base64.RawStdEncoding.EncodeToString(ct), nil
}

func (s *Store) openSeed(sealed string) (string, error) {
	kid, b64, ok := strings.Cut(sealed, ":")
	key, known := s.totpKey(kid)
	if !ok || !known {
		return "", errors.New("models: two-factor seed under an unknown key")
	}
	ct, err := base64.RawStdEncoding.DecodeString(b64)
	if err != nil {
		return "", err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return "", err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return "", err
	}
	if len(ct) < gcm.NonceSize() {
		return "", errors.New("models: two-factor seed truncated")
	}
	pt, err := gcm.Open(nil, ct[:gcm.NonceSize()], ct[gcm.NonceSize():], []byte(kid))
	if err != nil {
		return "", fmt.Errorf("models: two-factor seed: %w", err)
	}
	return string(pt), nil
}

// totpStep is the RFC 6238 counter of t.
func totpStep(t time.Time) int64 { return t.Unix() / totpPeriod }

// TOTPCode computes the code of a seed at t (tests, and nothing else:
// the server never needs to produce a code).
func TOTPCode(seed string, t time.Time) string {
	c, _ := hotp.GenerateCodeCustom(seed, uint64(totpStep(t)), hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	return c
}

// matchTOTP returns the step a code matches within ±totpSkew of now, or 0.
func matchTOTP(seed, code string, now time.Time) int64 {
	if len(code) != 6 {
		return 0
	}
	cur := totpStep(now)
	var hit int64
	for step := cur - totpSkew; step <= cur+totpSkew; step++ {
		want, err := hotp.GenerateCodeCustom(seed, uint64(step), hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			hit = step
		}
	}
	return hit
}

// normalizeCode strips what people type around a code: spaces, dashes.
func normalizeCode(raw string) string {
	return strings.ToLower(strings.NewReplacer(" ", "", "-", "", "\t", "").Replace(strings.TrimSpace(raw)))
}

// TOTPEnrolment is a seed being set up, shown on the enrolment page: the
// QR code's otpauth URL and the text secret. Never stored in the clear.
type TOTPEnrolment struct {
	Secret string
	URL    string
}

// BeginTOTP makes a new seed for the signed-in person and keeps it,
// sealed, as pending until a code confirms it. A second call replaces the
// pending one. Two-factor sign-in already on is left as it is.
func (s *Store) BeginTOTP(ctx context.Context, p *Principal) (*TOTPEnrolment, error) {
	if p.User.Has2FA() {
		return nil, &ValidationError{Fields: map[string]string{"code": "Two-factor sign-in is already on."}}
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: totpIssuer, AccountName: p.User.Email, Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return nil, wrapOp("begin 2FA", err)
	}
	sealed, err := s.sealSeed(key.Secret())
	if err != nil {
		return nil, wrapOp("begin 2FA", err)
	}
	if err := s.db.WithContext(ctx).Model(&User{}).Where("id = ?", p.User.ID).Update("totp_pending", sealed).Error; err != nil {
		return nil, wrapOp("begin 2FA", err)
	}
	p.User.TOTPPending = sealed
	return &TOTPEnrolment{Secret: key.Secret(), URL: key.URL()}, nil
}

// PendingTOTP shows the pending seed again (the enrolment page reloaded,
// or a wrong code), or nil when there is none.
func (s *Store) PendingTOTP(p *Principal) (*TOTPEnrolment, error) {
	if p.User.TOTPPending == "" || p.User.Has2FA() {
		return nil, nil
	}
	seed, err := s.openSeed(p.User.TOTPPending)
	if err != nil {
		return nil, err
	}
	key, err := otp.NewKeyFromURL(fmt.Sprintf("otpauth://totp/%s:%s?secret=%s&issuer=%s&period=%d&digits=6&algorithm=SHA1",
		totpIssuer, strings.ReplaceAll(p.User.Email, "@", "%40"), seed, totpIssuer, totpPeriod))
	if err != nil {
		return nil, err
	}
	return &TOTPEnrolment{Secret: seed, URL: key.URL()}, nil
}

// ConfirmTOTP turns two-factor sign-in on once a code from the pending
// seed is right, and returns the ten recovery codes, once.
func (s *Store) ConfirmTOTP(ctx context.Context, p *Principal, rawCode string, meta RequestMeta) ([]string, error) {
	code := normalizeCode(rawCode)
	if p.User.TOTPPending == "" || p.User.Has2FA() {
		return nil, &ValidationError{Fields: map[string]string{"code": "Start again: there is no setup in progress."}}
	}
	seed, err := s.openSeed(p.User.TOTPPending)
	if err != nil {
		return nil, wrapOp("confirm 2FA", err)
	}
	step := matchTOTP(seed, code, s.Now())
	if step == 0 {
		return nil, &ValidationError{Fields: map[string]string{"code": "That code is not right. Enter the 6 digits your app shows now."}}
	}
	var codes []string
	err = s.tx(ctx, func(tx *gorm.DB) error {
		now := s.Now()
		res := tx.Model(&User{}).Where("id = ? AND totp_enabled_at IS NULL", p.User.ID).Updates(map[string]any{
			"totp_secret": p.User.TOTPPending, "totp_pending": "", "totp_enabled_at": now, "totp_last_step": step,
		})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return &ValidationError{Fields: map[string]string{"code": "Two-factor sign-in is already on."}}
		}
		var err error
		if codes, err = newRecoveryCodes(tx, p.User.ID, now); err != nil {
			return err
		}
		a := p.Actor(meta)
		p.User.TOTPSecret, p.User.TOTPPending, p.User.TOTPEnabledAt, p.User.TOTPLastStep = p.User.TOTPPending, "", &now, step
		return s.appendAudit(tx, a, ActionTOTPEnabled, a.AccountID, target("user", p.User.ID, p.User.Email), nil)
	})
	if err != nil {
		return nil, wrapOp("confirm 2FA", err)
	}
	return codes, nil
}

// recoveryCode is one single-use code, kept as a digest.
type recoveryCode struct {
	ID        uint `gorm:"primaryKey"`
	UserID    uint
	Digest    string
	CreatedAt time.Time
	UsedAt    *time.Time
}

func (recoveryCode) TableName() string { return "recovery_codes" }

func codeDigest(code string) string {
	sum := sha256.Sum256([]byte("keydesk-recovery-v1\n" + code))
	return hex.EncodeToString(sum[:])
}

var codeEncoding = base32.NewEncoding("abcdefghijkmnpqrstuvwxyz23456789").WithPadding(base32.NoPadding)

// newRecoveryCodes replaces the user's recovery codes inside tx and
// returns the new ones as shown ("xxxxx-xxxxx", 50 bits each).
func newRecoveryCodes(tx *gorm.DB, userID uint, now time.Time) ([]string, error) {
	if err := tx.Where("user_id = ?", userID).Delete(&recoveryCode{}).Error; err != nil {
		return nil, err
	}
	codes := make([]string, RecoveryCodeCount)
	for i := range codes {
		b := make([]byte, 7)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		c := codeEncoding.EncodeToString(b)[:10]
		codes[i] = c[:5] + "-" + c[5:]
		if err := tx.Create(&recoveryCode{UserID: userID, Digest: codeDigest(c), CreatedAt: now}).Error; err != nil {
			return nil, err
		}
	}
	return codes, nil
}

// RegenerateRecoveryCodes replaces the recovery codes (sudo mode).
func (s *Store) RegenerateRecoveryCodes(ctx context.Context, actor Actor) ([]string, error) {
	if err := s.requireSudo(actor); err != nil {
		return nil, err
	}
	var codes []string
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var u User
		if err := tx.Take(&u, actor.UserID).Error; err != nil {
			return notFound(err)
		}
		if !u.Has2FA() {
			return &ValidationError{Fields: map[string]string{"code": "Turn two-factor sign-in on first."}}
		}
		var err error
		if codes, err = newRecoveryCodes(tx, u.ID, s.Now()); err != nil {
			return err
		}
		return s.appendAudit(tx, actor, ActionRecoveryCodesNew, actor.AccountID, target("user", u.ID, u.Email), nil)
	})
	if err != nil {
		return nil, wrapOp("recovery codes", err)
	}
	return codes, nil
}

// RecoveryCodesLeft counts the unused recovery codes.
func (s *Store) RecoveryCodesLeft(ctx context.Context, userID uint) (int, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&recoveryCode{}).Where("user_id = ? AND used_at IS NULL", userID).Count(&n).Error
	return int(n), err
}

var errWrongCode = &ValidationError{Fields: map[string]string{"code": "That code is not right."}}

// checkSecondFactor checks a TOTP code or a recovery code for u inside
// tx and consumes it: a TOTP step is accepted once (a code seen, even by
// someone looking over a shoulder, cannot be replayed), a recovery code
// once ever.
func (s *Store) checkSecondFactor(tx *gorm.DB, u *User, raw string, meta RequestMeta) error {
	code := normalizeCode(raw)
	if code == "" {
		return &ValidationError{Fields: map[string]string{"code": "Enter the 6-digit code from your app, or a recovery code."}}
	}
	if len(code) == 6 {
		seed, err := s.openSeed(u.TOTPSecret)
		if err != nil {
			return err
		}
		step := matchTOTP(seed, code, s.Now())
		if step == 0 || step <= u.TOTPLastStep {
			return errWrongCode
		}
		// The conditional update makes two concurrent uses of one code
		// count once.
		res := tx.Model(&User{}).Where("id = ? AND totp_last_step < ?", u.ID, step).Update("totp_last_step", step)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return errWrongCode
		}
		u.TOTPLastStep = step
		return nil
	}
	res := tx.Model(&recoveryCode{}).Where("user_id = ? AND digest = ? AND used_at IS NULL", u.ID, codeDigest(code)).Update("used_at", s.Now())
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected != 1 {
		return errWrongCode
	}
	a := Actor{UserID: u.ID, Email: u.Email, Role: u.Role, Meta: meta}
	if u.AccountID != nil {
		a.AccountID = *u.AccountID
	}
	return s.appendAudit(tx, a, ActionRecoveryCodeUsed, a.AccountID, target("user", u.ID, u.Email), nil)
}

// secondFactorRules throttle codes like passwords: per (person, address),
// per person, per address, on counters of their own.
func (s *Store) secondFactorRules(email, ip string) []throttleRule {
	rules := s.loginRules("2fa\x00"+email, ip)
	rules[2].key = throttleKey("ip2fa", ip)
	return rules
}

// CompleteSignIn takes the code of a pending session (the password was
// right) and turns it into a full session; a wrong code is counted like a
// wrong password and audited.
func (s *Store) CompleteSignIn(ctx context.Context, token, code string, meta RequestMeta) (*Principal, error) {
	db := s.db.WithContext(ctx)
	var sess Session
	if err := db.Where("id_hash = ? AND pending = ?", sessionHash(token), true).Take(&sess).Error; err != nil || !s.Now().Before(sess.ExpiresAt) {
		return nil, ErrSessionInvalid
	}
	var u User
	if err := db.Take(&u, sess.UserID).Error; err != nil {
		return nil, ErrSessionInvalid
	}
	rules := s.secondFactorRules(u.Email, meta.IP)
	if err := s.reserve(ctx, rules); err != nil {
		return nil, err
	}
	p := &Principal{User: u}
	var wrong error
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := s.checkSecondFactor(tx, &p.User, code, meta); err != nil {
			if FieldErrors(err) == nil {
				return err
			}
			wrong = err
			return nil
		}
		now := s.Now()
		if err := tx.Model(&Session{}).Where("id_hash = ?", sess.IDHash).Updates(map[string]any{
			"pending": false, "auth_at": now, "last_seen_at": now, "expires_at": now.Add(s.maxAge)}).Error; err != nil {
			return err
		}
		sess.Pending, sess.AuthAt, sess.LastSeenAt, sess.ExpiresAt = false, now, now, now.Add(s.maxAge)
		p.Session = sess
		if sess.AccountID != nil && !u.Role.IsStaff() {
			if err := s.bindMember(tx, p, *sess.AccountID); err != nil {
				return err
			}
		}
		if err := s.releaseIn(tx, rules, true); err != nil {
			return err
		}
		return s.signedIn(tx, p, meta)
	})
	if err != nil {
		return nil, wrapOp("second factor", err)
	}
	if wrong != nil {
		// The reservation stands as the failure.
		err := s.tx(ctx, func(tx *gorm.DB) error {
			a := Actor{UserID: u.ID, Email: u.Email, Role: u.Role, Meta: meta}
			if sess.AccountID != nil {
				a.AccountID = *sess.AccountID
			}
			return s.appendAudit(tx, a, ActionSecondFactorFailed, a.AccountID, target("user", u.ID, u.Email), nil)
		})
		if err != nil {
			return nil, wrapOp("second factor", err)
		}
		return nil, wrong
	}
	return p, nil
}

// DisableTOTP turns two-factor sign-in off for the signed-in person: their
// password alone opens the account again. It needs sudo, which for a
// person with two-factor sign-in means the password and a code within the
// last SudoWindow (sign-in or the sudo prompt), as every sensitive action
// does; the recovery codes go with it. Refused where two-factor sign-in is
// required (the account's rule, or --staff-2fa for staff). a is p acting
// (ensureSudo's actor, fresh from the sudo prompt when it was asked).
func (s *Store) DisableTOTP(ctx context.Context, p *Principal, a Actor) error {
	if err := s.requireSudo(a); err != nil {
		return err
	}
	if !p.User.Has2FA() {
		return nil
	}
	if s.Requires2FA(p) {
		return &ValidationError{Fields: map[string]string{"form": "Two-factor sign-in is required here; it cannot be turned off."}}
	}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Model(&User{}).Where("id = ?", p.User.ID).Updates(map[string]any{
			"totp_secret": "", "totp_pending": "", "totp_enabled_at": nil, "totp_last_step": 0}).Error; err != nil {
			return err
		}
		if err := tx.Where("user_id = ?", p.User.ID).Delete(&recoveryCode{}).Error; err != nil {
			return err
		}
		return s.appendAudit(tx, a, ActionTOTPDisabled, a.AccountID, target("user", p.User.ID, p.User.Email), nil)
	})
	if err != nil {
		return wrapOp("disable 2FA", err)
	}
	p.User.TOTPEnabledAt, p.User.TOTPSecret = nil, ""
	return nil
}

// Requires2FA reports whether two-factor sign-in is required of the person
// where they work now: the account requires it of every member, or they are
// staff and --staff-2fa is on.
func (s *Store) Requires2FA(p *Principal) bool {
	return (p.Account != nil && p.Account.Require2FA) || (p.User.Role.IsStaff() && s.staff2FA)
}
