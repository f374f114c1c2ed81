package models

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gorm.io/gorm"
)

// Role is what a user may see and do.
type Role string

const (
	RoleOwner   Role = "owner"
	RoleSupport Role = "support"
	RoleAuditor Role = "auditor"
	// Member roles (members.go): what an invited person may do in one
	// account. A user's own Role is RoleMember when everything they may do
	// comes from their memberships.
	RoleAdmin     Role = "admin"
	RoleDeveloper Role = "developer"
	RoleViewer    Role = "viewer"
	RoleMember    Role = "member"
)

// IsStaff reports whether the role works across accounts.
func (r Role) IsStaff() bool { return r == RoleSupport || r == RoleAuditor }

// Plan names a commercial plan; it sets the default sub-account limit.
type Plan string

const (
	PlanFree      Plan = "free"
	PlanEssential Plan = "essential"
	PlanPremium   Plan = "premium"
)

// ParsePlan validates a plan name.
func ParsePlan(s string) (Plan, bool) {
	switch p := Plan(strings.ToLower(strings.TrimSpace(s))); p {
	case PlanFree, PlanEssential, PlanPremium:
		return p, true
	}
	return "", false
}

// Account is a customer account. A sub-account has ParentID set.
type Account struct {
	ID              uint `gorm:"primaryKey"`
	ParentID        *uint
	Name            string
	Plan            Plan
	SubaccountLimit *int // support's override; nil means the plan's default
	SubaccountCount int  // maintained with every creation, under the parent's lock
	Description     string
	IsActive        bool // false while suspended: every key of the tree fails Verify
	Require2FA      bool `gorm:"column:require_2fa"` // the owner's choice for every member
	SuspendedAt     *time.Time
	SuspendedReason string
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// User is a person who signs in: an account owner or a staff member.
type User struct {
	ID           uint `gorm:"primaryKey"`
	AccountID    *uint
	Email        string
	PasswordHash string `json:"-"`
	Role         Role
	IsActive     bool
	// Language is the console language the person chose ("en", "fr"), or
	// "" to follow the browser's Accept-Language.
	Language string
	// TimeZone is the IANA zone the console shows times in ("Europe/Paris";
	// "UTC" until the person chooses one).
	TimeZone          string `gorm:"default:UTC"`
	PasswordChangedAt time.Time
	LastLoginAt       *time.Time
	// Two-factor sign-in (totp.go): the seed is kept encrypted (it cannot
	// be a digest: codes are computed from it); TOTPPending is a seed
	// being enrolled, not yet confirmed by a code.
	TOTPSecret    string     `gorm:"column:totp_secret" json:"-"`
	TOTPPending   string     `gorm:"column:totp_pending" json:"-"`
	TOTPEnabledAt *time.Time `gorm:"column:totp_enabled_at"`
	TOTPLastStep  int64      `gorm:"column:totp_last_step" json:"-"`
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Has2FA reports whether two-factor sign-in is on for the user.
func (u *User) Has2FA() bool { return u.TOTPEnabledAt != nil }

// NormalizeEmail trims and lower-cases an address.
func NormalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func validateEmail(v *ValidationError, field, email string) {
	switch {
	case email == "":
		v.Add(field, "Enter your e-mail address.")
	case len(email) > 254:
		v.Add(field, "That e-mail address is too long.")
	default:
		a, err := mail.ParseAddress(email)
		if err != nil || a.Address != email || !strings.Contains(email[strings.LastIndex(email, "@"):], ".") {
			v.Add(field, "Enter an e-mail address like name@example.com.")
		}
	}
}

// ValidateName checks a display name: 1–64 characters after trimming, no
// control, bidi-control or invisible characters (names.go). It returns the
// trimmed name or a message.
func ValidateName(raw string) (string, string) {
	name := strings.TrimSpace(raw)
	switch {
	case name == "":
		return "", "Enter a name."
	case !utf8.ValidString(name):
		return "", "The name contains invalid characters."
	case utf8.RuneCountInString(name) > 64:
		return "", "Use at most 64 characters."
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return "", "The name cannot contain control characters (such as line breaks or tabs)."
		}
	}
	if msg := nameCharProblem(name); msg != "" { // names.go
		return "", msg
	}
	return name, ""
}

// SignUpInput is what the sign-up form (or the CLI) provides.
type SignUpInput struct {
	AccountName string
	Email       string
	Password    string
	Plan        Plan
}

// SignUpResult is a new account, its owner and its master key, with the
// secret in plaintext for the single response that shows it.
type SignUpResult struct {
	Account Account
	User    User
	Key     APIKey
	Secret  Revealed
}

// CreateAccount creates an account, its owner and its master API key in one
// transaction, audited as action (sign-up from the web or creation by an
// operator). The master secret is returned once.
func (s *Store) CreateAccount(ctx context.Context, in SignUpInput, actor Actor, action string) (*SignUpResult, error) {
	return s.createAccount(ctx, in, actor, action, nil)
}

// SignedUp is a self sign-up: the new account with its master secret (for
// the one response that shows it), and the owner signed in.
type SignedUp struct {
	SignUpResult
	Token     string     // the new session's opaque ID, for the cookie
	Principal *Principal // the owner, as the page rendered with the secret shows them
}

// SignUp is self sign-up from the web: the account, its owner and master
// key, and the owner's first session, in one transaction (no second
// password check: they have just chosen it). oldToken, the session the
// browser had, ends (no fixation).
func (s *Store) SignUp(ctx context.Context, in SignUpInput, oldToken string, meta RequestMeta) (*SignedUp, error) {
	out := &SignedUp{}
	res, err := s.createAccount(ctx, in, Actor{Meta: meta}, ActionSignup, func(tx *gorm.DB, res *SignUpResult) error {
		p := &Principal{User: res.User}
		if err := s.bindMember(tx, p, res.Account.ID); err != nil {
			return err
		}
		token, err := s.openSession(tx, p, oldToken, false, meta)
		if err != nil {
			return err
		}
		out.Token, out.Principal = token, p
		return nil
	})
	if err != nil {
		return nil, err
	}
	out.SignUpResult = *res
	return out, nil
}

// createAccount is CreateAccount, with then run inside its transaction
// once the account, owner and key exist.
func (s *Store) createAccount(ctx context.Context, in SignUpInput, actor Actor, action string, then func(tx *gorm.DB, res *SignUpResult) error) (*SignUpResult, error) {
	v := &ValidationError{}
	name, msg := ValidateName(in.AccountName)
	if msg != "" {
		v.Add("account_name", msg)
	}
	email := NormalizeEmail(in.Email)
	validateEmail(v, "email", email)
	if msg := CheckPasswordPolicy(in.Password); msg != "" {
		v.Add("password", msg)
	}
	if in.Plan == "" {
		in.Plan = PlanFree
	}
	if _, ok := ParsePlan(string(in.Plan)); !ok {
		v.Add("plan", "Choose free, essential or premium.")
	}
	if err := v.OrNil(); err != nil {
		return nil, err
	}
	// Self sign-up from the web is limited per client address, charged
	// before the hash; operators (CLI) are not limited.
	var rules []throttleRule
	if actor.UserID == 0 && actor.Role != RoleSystem && actor.Meta.IP != "" {
		rules = []throttleRule{{throttleKey("signup", actor.Meta.IP), s.signup.PerIP, s.signup.Window, s.signup.Window}}
		if err := s.reserve(ctx, rules); err != nil {
			return nil, err
		}
	}
	hash, err := s.hashPassword(ctx, in.Password) // slow: outside the transaction
	if err != nil {
		if rules != nil {
			s.release(rules) // not evaluated: no attempt
		}
		return nil, err
	}
	res := &SignUpResult{}
	err = s.tx(ctx, func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&User{}).Where("email = ?", email).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return &ValidationError{Fields: map[string]string{"email": "This e-mail address cannot be used to sign up. If it is yours, log in instead."}}
		}
		now := s.Now()
		res.Account = Account{Name: name, Plan: in.Plan, IsActive: true}
		if err := tx.Create(&res.Account).Error; err != nil {
			return err
		}
		res.User = User{AccountID: &res.Account.ID, Email: email, PasswordHash: hash, Role: RoleOwner, IsActive: true, PasswordChangedAt: now}
		if err := tx.Create(&res.User).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return &ValidationError{Fields: map[string]string{"email": "This e-mail address cannot be used to sign up. If it is yours, log in instead."}}
			}
			return err
		}
		if _, err := addMember(tx, res.Account.ID, res.User.ID, RoleOwner, true, nil); err != nil {
			return err
		}
		if actor.UserID == 0 && actor.Role != RoleSystem {
			// Self sign-up: the new owner is the actor.
			actor = Actor{UserID: res.User.ID, Email: email, Role: RoleOwner, AccountID: res.Account.ID, Meta: actor.Meta}
		}
		if err := s.appendAudit(tx, actor, action, res.Account.ID, target("account", res.Account.ID, name), map[string]any{"plan": in.Plan, "owner": email}); err != nil {
			return err
		}
		key, secret, err := s.createKey(tx, actor, res.Account.ID, name, true)
		if err != nil {
			return err
		}
		res.Key, res.Secret = *key, secret
		if then != nil {
			return then(tx, res)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("models: create account: %w", err)
	}
	return res, nil
}

// CreateStaffUser creates a support or auditor user (CLI only).
func (s *Store) CreateStaffUser(ctx context.Context, email, password string, role Role, actor Actor) (*User, error) {
	v := &ValidationError{}
	email = NormalizeEmail(email)
	validateEmail(v, "email", email)
	if msg := CheckPasswordPolicy(password); msg != "" {
		v.Add("password", msg)
	}
	if !role.IsStaff() {
		v.Add("role", "Choose support or auditor.")
	}
	if err := v.OrNil(); err != nil {
		return nil, err
	}
	hash, err := s.hashPassword(ctx, password)
	if err != nil {
		return nil, err
	}
	u := &User{Email: email, PasswordHash: hash, Role: role, IsActive: true, PasswordChangedAt: s.Now()}
	err = s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(u).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return &ValidationError{Fields: map[string]string{"email": "A user with this e-mail address already exists."}}
			}
			return err
		}
		return s.appendAudit(tx, actor, ActionUserCreated, 0, target("user", u.ID, email), map[string]any{"role": role})
	})
	if err != nil {
		return nil, fmt.Errorf("models: create user: %w", err)
	}
	return u, nil
}

// AccountByID loads an account visible to actor: owners see their own tree,
// staff see every account. Anything else is ErrNotFound.
func (s *Store) AccountByID(ctx context.Context, actor Actor, id uint) (*Account, error) {
	var a Account
	q := s.db.WithContext(ctx).Where("id = ?", id)
	if !actor.Role.IsStaff() {
		// Tenancy in the WHERE clause: an owner's query cannot name another tree.
		q = q.Where("id = ? OR parent_id = ?", actor.AccountID, actor.AccountID)
	}
	if err := q.Take(&a).Error; err != nil {
		return nil, notFound(err)
	}
	return &a, nil
}

// SetLanguage saves the console language a person chose: a lower-case
// language tag of two or three letters ("fr"), or "" to follow the
// browser. Which languages exist is the catalog's business (views); the
// handler checks that first. The change is audited like other settings.
func (s *Store) SetLanguage(ctx context.Context, p *Principal, lang string, meta RequestMeta) error {
	if lang != "" {
		if n := len(lang); n < 2 || n > 3 || strings.Trim(lang, "abcdefghijklmnopqrstuvwxyz") != "" {
			return &ValidationError{Fields: map[string]string{"language": "Choose a language from the list."}}
		}
	}
	if lang == p.User.Language {
		return nil
	}
	if err := s.savePreference(ctx, p, meta, "language", ActionLanguageChanged, p.User.Language, lang); err != nil {
		return fmt.Errorf("models: set language: %w", err)
	}
	p.User.Language = lang
	return nil
}

// savePreference saves one of the signed-in person's own settings (a
// users column) and audits the change from one value to the other, in
// one transaction.
func (s *Store) savePreference(ctx context.Context, p *Principal, meta RequestMeta, column, action, from, to string) error {
	a := p.Actor(meta)
	return s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Model(&User{}).Where("id = ?", p.User.ID).Update(column, to).Error; err != nil {
			return err
		}
		return s.appendAudit(tx, a, action, a.AccountID, target("user", p.User.ID, p.User.Email), map[string]any{"from": from, "to": to})
	})
}
