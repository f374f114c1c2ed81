package models

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// PlanSubaccountLimits are the default sub-account limits of each plan. A
// per-account override set by support (Account.SubaccountLimit) wins.
var PlanSubaccountLimits = map[Plan]int{
	PlanFree:      1,
	PlanEssential: 5,
	PlanPremium:   25,
}

// MaxSubaccountLimit bounds what support can grant in one account.
const MaxSubaccountLimit = 10000

// SubaccountLimit is the number of sub-accounts this account may have.
func (a *Account) SubaccountLimitValue() int {
	if a.SubaccountLimit != nil {
		return *a.SubaccountLimit
	}
	return PlanSubaccountLimits[a.Plan]
}

// Subaccount is a sub-account with its key, as owners and support see it.
type Subaccount struct {
	Account Account
	Key     APIKey
}

// SubaccountQuota is how many sub-accounts an account has and may have.
type SubaccountQuota struct {
	Used  int
	Limit int
}

// Full reports whether no more sub-accounts may be created.
func (u SubaccountQuota) Full() bool { return u.Used >= u.Limit }

// validateDescription checks an optional free-text description.
func validateDescription(raw string) (string, string) {
	d := strings.TrimSpace(raw)
	if utf8.RuneCountInString(d) > 280 {
		return "", "Use at most 280 characters."
	}
	for _, r := range d {
		if r < 0x20 && r != '\n' || r == 0x7f {
			return "", "The description cannot contain control characters."
		}
	}
	return d, ""
}

// lockAccount reads the main account for update inside tx, serialising
// every limit-sensitive change to it: PostgreSQL locks the row, SQLite's
// immediate transaction already holds the database's write lock.
func (s *Store) lockAccount(tx *gorm.DB, id uint) (*Account, error) {
	q := tx.Where("id = ? AND parent_id IS NULL", id)
	if s.engine == Postgres {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	var a Account
	if err := q.Take(&a).Error; err != nil {
		return nil, notFound(err)
	}
	return &a, nil
}

// countSubaccounts reads the parent's sub-account counter, kept in the
// same transaction as every creation (with the parent row locked), so no
// request counts a thousand rows.
func countSubaccounts(tx *gorm.DB, parentID uint) (int, error) {
	var n []int
	err := tx.Model(&Account{}).Where("id = ?", parentID).Pluck("subaccount_count", &n).Error
	if err != nil || len(n) == 0 {
		return 0, err
	}
	return n[0], nil
}

// SubaccountQuota reports the owner's sub-accounts used and allowed.
func (s *Store) SubaccountQuota(ctx context.Context, actor Actor) (SubaccountQuota, error) {
	return s.quota(s.db.WithContext(ctx), actor.AccountID)
}

func (s *Store) quota(db *gorm.DB, accountID uint) (SubaccountQuota, error) {
	var a Account
	if err := db.Where("id = ? AND parent_id IS NULL", accountID).Take(&a).Error; err != nil {
		return SubaccountQuota{}, notFound(err)
	}
	return SubaccountQuota{Used: a.SubaccountCount, Limit: a.SubaccountLimitValue()}, nil
}

// CreateSubaccount creates a sub-account of the owner's account and its API
// key, returning the secret once. The plan limit is checked with the parent
// row locked, so concurrent requests can never exceed it.
func (s *Store) CreateSubaccount(ctx context.Context, actor Actor, rawName, rawDescription string) (*Subaccount, Revealed, error) {
	if !actor.Can(PermSubaccountCreate) || actor.AccountID == 0 {
		return nil, Revealed{}, ErrForbidden
	}
	v := &ValidationError{}
	name, msg := ValidateName(rawName)
	if msg != "" {
		v.Add("name", msg)
	}
	desc, msg := validateDescription(rawDescription)
	if msg != "" {
		v.Add("description", msg)
	}
	if err := v.OrNil(); err != nil {
		return nil, Revealed{}, err
	}
	if err := s.requireSudo(actor); err != nil {
		return nil, Revealed{}, err
	}
	return s.createSubaccount(ctx, actor, name, desc)
}

// createSubaccount does the work once the caller's rights are checked
// (an owner in sudo mode, or a master API key).
func (s *Store) createSubaccount(ctx context.Context, actor Actor, rawName, desc string) (*Subaccount, Revealed, error) {
	var sub *Subaccount
	var secret Revealed
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		sub, secret, err = s.createSubaccountTx(tx, actor, rawName, desc)
		return err
	})
	if err != nil {
		return nil, Revealed{}, wrapOp("create sub-account", err)
	}
	s.invalidateTree(*sub.Account.ParentID)
	return sub, secret, nil
}

// createSubaccountTx creates the sub-account and its key inside tx; the
// caller drops the parent's tree cache after the commit.
func (s *Store) createSubaccountTx(tx *gorm.DB, actor Actor, rawName, desc string) (*Subaccount, Revealed, error) {
	name, msg := ValidateName(rawName)
	if msg != "" {
		return nil, Revealed{}, &ValidationError{Fields: map[string]string{"name": msg}}
	}
	var sub Subaccount
	parent, err := s.lockAccount(tx, actor.AccountID)
	if err != nil {
		return nil, Revealed{}, err
	}
	used, err := countSubaccounts(tx, parent.ID)
	if err != nil {
		return nil, Revealed{}, err
	}
	if used >= parent.SubaccountLimitValue() {
		return nil, Revealed{}, ErrLimitReached
	}
	if err := ensureNameFree(tx, parent.ID, 0, name); err != nil { // names.go
		return nil, Revealed{}, err
	}
	sub.Account = Account{ParentID: &parent.ID, Name: name, Description: desc, Plan: parent.Plan, IsActive: true}
	if err := tx.Create(&sub.Account).Error; err != nil {
		return nil, Revealed{}, err
	}
	if err := tx.Model(&Account{}).Where("id = ?", parent.ID).Update("subaccount_count", gorm.Expr("subaccount_count + 1")).Error; err != nil {
		return nil, Revealed{}, err
	}
	if err := s.appendAudit(tx, actor, ActionSubaccountNew, parent.ID, target("account", sub.Account.ID, name),
		map[string]any{"used": used + 1, "limit": parent.SubaccountLimitValue()}); err != nil {
		return nil, Revealed{}, err
	}
	k, secret, err := s.createKey(tx, actor, sub.Account.ID, name, false)
	if err != nil {
		return nil, Revealed{}, err
	}
	sub.Key = *k
	if actor.Scoped && actor.MemberID != 0 {
		// A developer with a listed scope keeps what they create in reach.
		if err := tx.Create(&memberScope{MemberID: actor.MemberID, SubaccountID: sub.Account.ID}).Error; err != nil {
			return nil, Revealed{}, err
		}
	}
	if err := s.notifyTreeChanged(tx, parent.ID); err != nil {
		return nil, Revealed{}, err
	}
	return &sub, secret, nil
}

// SubaccountList is one page of an owner's sub-accounts.
type SubaccountList struct {
	Items       []Subaccount
	Total       int // sub-accounts matching the search
	Page, Pages int
}

// ListSubaccounts returns one page (KeysPageSize) of the owner's
// sub-accounts with their keys, by name, optionally filtered by name.
func (s *Store) ListSubaccounts(ctx context.Context, actor Actor, search string, page int) (*SubaccountList, error) {
	v, err := s.KeysPage(ctx, actor, search, page)
	if err != nil {
		return nil, err
	}
	out := &SubaccountList{Total: v.Total, Page: v.Page, Pages: v.Pages}
	if len(v.Subaccounts) == 0 {
		return out, nil
	}
	ids := make([]uint, len(v.Subaccounts))
	for i, k := range v.Subaccounts {
		ids[i] = k.AccountID
	}
	var accounts []Account
	if err := s.db.WithContext(ctx).Where("id IN ? AND parent_id = ?", ids, actor.AccountID).Find(&accounts).Error; err != nil {
		return nil, fmt.Errorf("models: list sub-accounts: %w", err)
	}
	byID := make(map[uint]Account, len(accounts))
	for _, a := range accounts {
		byID[a.ID] = a
	}
	for _, k := range v.Subaccounts {
		out.Items = append(out.Items, Subaccount{Account: byID[k.AccountID], Key: k})
	}
	return out, nil
}

// Limit request statuses.
const (
	RequestPending  = "pending"
	RequestApproved = "approved"
	RequestDenied   = "denied"
)

// LimitRequest is an owner's request for more sub-accounts.
type LimitRequest struct {
	ID             uint `gorm:"primaryKey"`
	AccountID      uint
	RequestedBy    uint
	RequesterEmail string
	Extra          int
	Reason         string
	Status         string
	LimitBefore    int
	NewLimit       *int
	DecidedBy      *uint
	DeciderEmail   string
	Note           string
	CreatedAt      time.Time
	DecidedAt      *time.Time
}

// ErrRequestPending refuses a second open request.
var ErrRequestPending = &ValidationError{Fields: map[string]string{"form": "You already have a pending request. Support will answer it before you can send another."}}

// validateReason checks free text such as a reason or a note; what names
// it in the message ("reason", "note").
func validateReason(what, raw string, required bool) (string, string) {
	r := strings.TrimSpace(raw)
	switch {
	case r == "" && required:
		return "", "A " + what + " is required."
	case utf8.RuneCountInString(r) > 500:
		return "", "Use at most 500 characters."
	}
	for _, c := range r {
		if c < 0x20 && c != '\n' || c == 0x7f {
			return "", "The text cannot contain control characters."
		}
	}
	return r, ""
}

// RequestMoreSubaccounts records an owner's request for extra sub-accounts.
func (s *Store) RequestMoreSubaccounts(ctx context.Context, actor Actor, extra int, rawReason string) (*LimitRequest, error) {
	if !actor.Can(PermLimitRequest) || actor.AccountID == 0 {
		return nil, ErrForbidden
	}
	v := &ValidationError{}
	if extra < 1 || extra > 100 {
		v.Add("extra", "Ask for between 1 and 100 more sub-accounts.")
	}
	reason, msg := validateReason("reason", rawReason, true)
	if msg != "" {
		v.Add("reason", msg)
	}
	if err := v.OrNil(); err != nil {
		return nil, err
	}
	var req LimitRequest
	err := s.tx(ctx, func(tx *gorm.DB) error {
		a, err := s.lockAccount(tx, actor.AccountID)
		if err != nil {
			return err
		}
		var pending int64
		if err := tx.Model(&LimitRequest{}).Where("account_id = ? AND status = ?", a.ID, RequestPending).Count(&pending).Error; err != nil {
			return err
		}
		if pending > 0 {
			return ErrRequestPending
		}
		req = LimitRequest{AccountID: a.ID, RequestedBy: actor.UserID, RequesterEmail: actor.Email, Extra: extra, Reason: reason,
			Status: RequestPending, LimitBefore: a.SubaccountLimitValue(), CreatedAt: s.Now()}
		if err := tx.Create(&req).Error; err != nil {
			return err
		}
		return s.appendAudit(tx, actor, ActionLimitRequested, a.ID, target("limit_request", req.ID, a.Name),
			map[string]any{"extra": extra, "reason": reason, "limit": req.LimitBefore})
	})
	if err != nil {
		return nil, wrapOp("request more sub-accounts", err)
	}
	return &req, nil
}

// LimitRequests lists the owner's requests, newest first.
func (s *Store) LimitRequests(ctx context.Context, actor Actor) ([]LimitRequest, error) {
	if actor.AccountID == 0 {
		return nil, ErrForbidden
	}
	var out []LimitRequest
	err := s.db.WithContext(ctx).Where("account_id = ?", actor.AccountID).Order("id DESC").Limit(50).Find(&out).Error
	return out, err
}
