package models

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// APIKey is a public API key and the digest of its secret. Every account
// (main or sub-account) has one; the main account's is the master key.
type APIKey struct {
	ID           uint `gorm:"primaryKey"`
	AccountID    uint
	TreeID       uint // the main account: AccountID or its parent
	Name         string
	APIKey       string `gorm:"column:api_key"`
	SecretDigest []byte `json:"-"`
	SecretHint   string
	SecretSetAt  time.Time
	IsMaster     bool
	IsActive     bool
	LastUsedAt   *time.Time
	LastUsedIP   string
	CreatedAt    time.Time
	UpdatedAt    time.Time
	// OldSecrets are the replaced secrets still inside their grace periods,
	// latest deadline first, without digests (filled by the reads that
	// display keys; rows of the old_secrets table).
	OldSecrets []OldSecret `gorm:"-"`
}

func (APIKey) TableName() string { return "api_keys" }

// SecretAgeDays is how many whole days the current secret has existed.
func (k *APIKey) SecretAgeDays(now time.Time) int {
	return int(now.Sub(k.SecretSetAt) / (24 * time.Hour))
}

// RotationDue reports whether the secret is older than the policy.
func (k *APIKey) RotationDue(now time.Time, policyDays int) bool {
	return now.Sub(k.SecretSetAt) > time.Duration(policyDays)*24*time.Hour
}

// GraceOptions are the grace periods an owner may choose when resetting.
var GraceOptions = []struct {
	Value string
	Label string
	D     time.Duration
}{
	{"0", "Immediately", 0},
	{"1h", "In 1 hour", time.Hour},
	{"24h", "In 24 hours", 24 * time.Hour},
	{"7d", "In 7 days", 7 * 24 * time.Hour},
}

// ParseGrace maps a form value to a grace period.
func ParseGrace(v string) (time.Duration, bool) {
	if v == "" {
		return 0, true
	}
	for _, g := range GraceOptions {
		if g.Value == v {
			return g.D, true
		}
	}
	return 0, false
}

// createKey makes a key and its secret inside tx and records both the
// creation and the (single) reveal.
func (s *Store) createKey(tx *gorm.DB, actor Actor, accountID uint, name string, master bool) (*APIKey, Revealed, error) {
	secret, err := newSecret()
	if err != nil {
		return nil, Revealed{}, err
	}
	root, err := treeOf(tx, accountID)
	if err != nil {
		return nil, Revealed{}, err
	}
	var k *APIKey
	for attempt := 0; ; attempt++ {
		apiKey, err := newAPIKey()
		if err != nil {
			return nil, Revealed{}, err
		}
		d := digestSecret(secret)
		now := s.Now()
		k = &APIKey{AccountID: accountID, TreeID: root, Name: name, APIKey: apiKey, SecretDigest: d[:], SecretHint: secretHint(secret),
			SecretSetAt: now, IsMaster: master, IsActive: true}
		err = tx.Create(k).Error
		if err == nil {
			break
		}
		if !errors.Is(err, gorm.ErrDuplicatedKey) || attempt > 3 {
			return nil, Revealed{}, fmt.Errorf("models: create key: %w", err)
		}
	}
	t := target("apikey", k.ID, name)
	if err := s.appendAudit(tx, actor, ActionKeyCreated, accountID, t, map[string]any{"api_key": k.APIKey, "master": master}); err != nil {
		return nil, Revealed{}, err
	}
	if err := s.appendAudit(tx, actor, ActionSecretRevealed, accountID, t, map[string]any{"api_key": k.APIKey, "reason": "created"}); err != nil {
		return nil, Revealed{}, err
	}
	return k, Revealed{APIKey: k.APIKey, Secret: secret}, nil
}

// ownedKeys scopes a query to the keys actor may manage: the keys of the
// owner's account and of its sub-accounts. Tenancy lives in the WHERE
// clause, so no handler can forget it.
func (s *Store) ownedKeys(db *gorm.DB, actor Actor) *gorm.DB {
	if actor.Role.IsStaff() {
		return db
	}
	// tree_id is the key's main account: one indexed equality. A member
	// with a listed scope reaches only those sub-accounts' keys (never the
	// master's): another sub-account's key is as unknown as another tree's.
	return actor.scopeWhere(db.Where("api_keys.tree_id = ?", actor.AccountID), "api_keys.account_id")
}

// ListKeys returns the keys actor may see, master first, then by name.
func (s *Store) ListKeys(ctx context.Context, actor Actor) ([]APIKey, error) {
	if actor.AccountID == 0 {
		return nil, ErrForbidden
	}
	var keys []APIKey
	db := s.db.WithContext(ctx)
	err := s.ownedKeys(db.Model(&APIKey{}), actor).Order("is_master DESC").Order("name").Order("id").Find(&keys).Error
	if err != nil {
		return nil, fmt.Errorf("models: list keys: %w", err)
	}
	return keys, nil
}

// KeyByID loads one key the owner may manage, else ErrNotFound.
func (s *Store) KeyByID(ctx context.Context, actor Actor, id uint) (*APIKey, error) {
	if actor.AccountID == 0 {
		return nil, ErrNotFound
	}
	var k APIKey
	db := s.db.WithContext(ctx)
	if err := s.ownedKeys(db.Model(&APIKey{}), actor).Where("id = ?", id).Take(&k).Error; err != nil {
		return nil, notFound(err)
	}
	if err := attachOldSecrets(db, s.Now(), &k); err != nil {
		return nil, wrapOp("key", err)
	}
	return &k, nil
}

// lockOwnedKey reads a key for update inside tx, scoped to the owner.
func (s *Store) lockOwnedKey(tx *gorm.DB, actor Actor, id uint) (*APIKey, error) {
	if actor.AccountID == 0 || actor.Role.IsStaff() {
		// Staff never manage customers' keys, and answering 404 leaks nothing.
		return nil, ErrNotFound
	}
	if actor.Role != RoleAPIKey && !actor.Can(PermKeysManage) {
		return nil, ErrForbidden // a viewer: read only
	}
	q := s.ownedKeys(tx.Model(&APIKey{}), actor).Where("id = ?", id)
	if s.engine == Postgres {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	var k APIKey
	if err := q.Take(&k).Error; err != nil {
		return nil, notFound(err)
	}
	return &k, nil
}

func (s *Store) requireSudo(actor Actor) error {
	if actor.AuthAt.IsZero() || s.Now().Sub(actor.AuthAt) > SudoWindow {
		return ErrReauthRequired
	}
	return nil
}

// ResetSecret replaces a key's secret and returns the new one, once. With a
// grace period the replaced secret keeps working until it ends; without one
// it is dead when this returns. Older secrets keep their own deadlines, up
// to MaxLiveSecrets live secrets: beyond that the one whose deadline comes
// first ends now (APIKey.CapVictim says which, before the reset). Concurrent
// resets are serialised on the key row. Everything the response needs is
// read inside the transaction, so the caller answers from memory after the
// commit and never loses the only copy of the secret to a later read.
func (s *Store) ResetSecret(ctx context.Context, actor Actor, keyID uint, grace time.Duration) (*APIKey, Revealed, error) {
	if err := s.requireSudo(actor); err != nil {
		return nil, Revealed{}, err
	}
	secret, err := newSecret()
	if err != nil {
		return nil, Revealed{}, err
	}
	k, err := s.withOwnedKey(ctx, actor, keyID, "reset secret", func(tx *gorm.DB, k *APIKey) error {
		if k.IsMaster && actor.Role != RoleAPIKey && !actor.Can(PermMasterReset) {
			return ErrForbidden // developers never reset the master key
		}
		now := s.Now()
		// Dead old secrets are of no use to anyone: drop them here, where
		// the key row is locked anyway.
		if err := tx.Where("key_id = ? AND expires_at <= ?", k.ID, now).Delete(&OldSecret{}).Error; err != nil {
			return err
		}
		if err := attachOldSecrets(tx, now, k); err != nil {
			return err
		}
		t := target("apikey", k.ID, k.Name)
		details := map[string]any{"api_key": k.APIKey, "grace": graceLabel(grace)}
		if grace > 0 {
			if victim := k.CapVictim(now); victim != nil {
				if err := tx.Where("id = ?", victim.ID).Delete(&OldSecret{}).Error; err != nil {
					return err
				}
				details["ended_early"] = map[string]any{"secret_hint": victim.Hint, "was_valid_until": victim.ExpiresAt.UTC().Format(time.RFC3339)}
			}
			old := OldSecret{KeyID: k.ID, Digest: k.SecretDigest, Hint: k.SecretHint, RetiredAt: now, ExpiresAt: now.Add(grace)}
			if err := tx.Create(&old).Error; err != nil {
				return err
			}
			details["old_secret_valid_until"] = old.ExpiresAt.Format(time.RFC3339)
		}
		d := digestSecret(secret)
		if err := tx.Model(k).Updates(map[string]any{"secret_digest": d[:], "secret_hint": secretHint(secret), "secret_set_at": now}).Error; err != nil {
			return err
		}
		k.SecretDigest, k.SecretHint, k.SecretSetAt = d[:], secretHint(secret), now
		if err := attachOldSecrets(tx, now, k); err != nil {
			return err
		}
		if err := s.appendAudit(tx, actor, ActionSecretReset, k.AccountID, t, details); err != nil {
			return err
		}
		if err := s.appendAudit(tx, actor, ActionSecretRevealed, k.AccountID, t, map[string]any{"api_key": k.APIKey, "reason": "reset"}); err != nil {
			return err
		}
		return s.notifyKeyChanged(tx, k.APIKey)
	})
	if err != nil {
		return nil, Revealed{}, err
	}
	return k, Revealed{APIKey: k.APIKey, Secret: secret}, nil
}

func graceLabel(d time.Duration) string {
	for _, g := range GraceOptions {
		if g.D == d {
			return g.Label
		}
	}
	return d.String()
}

// withOwnedKey runs fn in one transaction on key keyID, read for update
// and scoped to what actor may manage (another tenant's key: ErrNotFound),
// then drops the key from this process's verification and tree caches.
// The key returned is as fn left it: callers answer from it and read
// nothing after the commit.
func (s *Store) withOwnedKey(ctx context.Context, actor Actor, keyID uint, op string, fn func(tx *gorm.DB, k *APIKey) error) (*APIKey, error) {
	var k *APIKey
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if k, err = s.lockOwnedKey(tx, actor, keyID); err != nil {
			return err
		}
		return fn(tx, k)
	})
	if err != nil {
		return nil, wrapOp(op, err)
	}
	s.invalidate(k.APIKey)
	s.invalidateTree(k.TreeID)
	return k, nil
}

// RenameKey changes a key's display name (and a sub-account's name with it).
func (s *Store) RenameKey(ctx context.Context, actor Actor, keyID uint, raw string) (*APIKey, error) {
	name, err := keyName(raw)
	if err != nil {
		return nil, err
	}
	return s.withOwnedKey(ctx, actor, keyID, "rename key", func(tx *gorm.DB, k *APIKey) error {
		return s.renameKey(tx, actor, k, name)
	})
}

// keyName validates a key's new name.
func keyName(raw string) (string, error) {
	name, msg := ValidateName(raw)
	if msg != "" {
		return "", &ValidationError{Fields: map[string]string{"name": msg}}
	}
	return name, nil
}

// renameKey renames the locked key k inside tx (name already validated).
func (s *Store) renameKey(tx *gorm.DB, actor Actor, k *APIKey, name string) error {
	old := k.Name
	if old == name {
		return nil
	}
	// The name rules of creation (names.go): unique in the tree.
	if err := s.lockTreeRoot(tx, k.TreeID); err != nil {
		return err
	}
	if err := ensureNameFree(tx, k.TreeID, k.AccountID, name); err != nil {
		return err
	}
	k.Name = name
	if err := tx.Model(k).Update("name", name).Error; err != nil {
		return err
	}
	if !k.IsMaster {
		// A sub-account is known by its key's name; the main account's
		// name is the owner's business name and stays as it is.
		if err := tx.Model(&Account{ID: k.AccountID}).Update("name", name).Error; err != nil {
			return err
		}
	}
	if err := s.notifyTreeChanged(tx, k.TreeID); err != nil {
		return err
	}
	return s.appendAudit(tx, actor, ActionKeyRenamed, k.AccountID, target("apikey", k.ID, name), map[string]any{"from": old, "to": name})
}

// ErrMasterKeyDeactivation explains why the owner cannot deactivate the master key.
var ErrMasterKeyDeactivation = &ValidationError{Fields: map[string]string{
	"active": "The master key cannot be deactivated: it is how your main account authenticates. Reset its secret instead if it may have leaked.",
}}

// SetKeyActive deactivates (stops all authentication, keeping the secret)
// or re-activates a key.
func (s *Store) SetKeyActive(ctx context.Context, actor Actor, keyID uint, active bool) (*APIKey, error) {
	return s.withOwnedKey(ctx, actor, keyID, "set key active", func(tx *gorm.DB, k *APIKey) error {
		return s.setKeyActive(tx, actor, k, active)
	})
}

// setKeyActive does SetKeyActive's work on the locked key k inside tx.
func (s *Store) setKeyActive(tx *gorm.DB, actor Actor, k *APIKey, active bool) error {
	if k.IsMaster && !active {
		return ErrMasterKeyDeactivation
	}
	if k.IsActive == active {
		return nil
	}
	k.IsActive = active
	if err := tx.Model(k).Update("is_active", active).Error; err != nil {
		return err
	}
	action := ActionKeyDeactivated
	if active {
		action = ActionKeyActivated
	}
	if err := s.appendAudit(tx, actor, action, k.AccountID, target("apikey", k.ID, k.Name), map[string]any{"api_key": k.APIKey}); err != nil {
		return err
	}
	if err := s.notifyTreeChanged(tx, k.TreeID); err != nil {
		return err
	}
	return s.notifyKeyChanged(tx, k.APIKey)
}

// wrapOp names the operation in an error for the logs (nil stays nil).
// Typed errors stay typed through the wrap: the one place that maps them
// uses errors.Is/As.
func wrapOp(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("models: %s: %w", op, err)
}

// KeysPageSize is how many sub-account keys one page of /keys shows.
const KeysPageSize = 25

// KeysView is one page of the keys page: the master key, a page of
// sub-account keys (optionally filtered by name), and the keys overdue for
// rotation (at most 20, with the total).
type KeysView struct {
	Master       *APIKey
	Subaccounts  []APIKey
	Total        int // sub-account keys matching the search
	Page, Pages  int
	Overdue      []APIKey
	OverdueTotal int
}

// KeysPage loads one page of the owner's keys. The work is bounded by the
// page size, so 1,000 sub-accounts cost about what 10 do.
func (s *Store) KeysPage(ctx context.Context, actor Actor, search string, page int) (*KeysView, error) {
	if actor.AccountID == 0 {
		return nil, ErrForbidden
	}
	db := s.db.WithContext(ctx)
	v := &KeysView{Page: max(page, 1)}
	var master APIKey
	if actor.Scoped {
		// A member with a listed scope does not see the master key.
	} else if err := db.Where("account_id = ? AND is_master = ?", actor.AccountID, true).Take(&master).Error; err == nil {
		v.Master = &master
	} else if !errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, wrapOp("keys page", err)
	}
	subs := func() *gorm.DB {
		q := s.ownedKeys(db.Model(&APIKey{}), actor).Where("is_master = ?", false)
		if t := strings.TrimSpace(search); t != "" {
			q = q.Where(`LOWER(name) LIKE ? ESCAPE '\'`, likeEscape(t))
		}
		return q
	}
	if strings.TrimSpace(search) == "" && !actor.Scoped {
		// Every sub-account has one key: the counter is the total.
		n, err := countSubaccounts(db, actor.AccountID)
		if err != nil {
			return nil, wrapOp("keys page", err)
		}
		v.Total = n
	} else {
		var total int64
		if err := subs().Count(&total).Error; err != nil {
			return nil, wrapOp("keys page", err)
		}
		v.Total = int(total)
	}
	v.Pages = max(1, (v.Total+KeysPageSize-1)/KeysPageSize)
	v.Page = min(v.Page, v.Pages)
	if err := subs().Order("LOWER(name)").Order("id").Limit(KeysPageSize).Offset((v.Page - 1) * KeysPageSize).Find(&v.Subaccounts).Error; err != nil {
		return nil, wrapOp("keys page", err)
	}
	cutoff := s.Now().Add(-time.Duration(s.rotation) * 24 * time.Hour)
	overdue := func() *gorm.DB { return s.ownedKeys(db.Model(&APIKey{}), actor).Where("secret_set_at < ?", cutoff) }
	var n int64
	if err := overdue().Count(&n).Error; err != nil {
		return nil, wrapOp("keys page", err)
	}
	v.OverdueTotal = int(n)
	if n > 0 {
		if err := overdue().Order("secret_set_at").Limit(20).Find(&v.Overdue).Error; err != nil {
			return nil, wrapOp("keys page", err)
		}
	}
	var shown []*APIKey
	if v.Master != nil {
		shown = append(shown, v.Master)
	}
	for i := range v.Subaccounts {
		shown = append(shown, &v.Subaccounts[i])
	}
	if err := attachOldSecrets(db, s.Now(), shown...); err != nil {
		return nil, wrapOp("keys page", err)
	}
	return v, nil
}

func likeEscape(s string) string {
	return "%" + strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(strings.ToLower(strings.TrimSpace(s))) + "%"
}
