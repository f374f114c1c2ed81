package models

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// PendingRequest is a limit request in the support queue.
type PendingRequest struct {
	LimitRequest
	AccountName string
	Plan        Plan
	Usage       Usage
}

func requireStaff(actor Actor, roles ...Role) error {
	for _, r := range roles {
		if actor.Role == r && actor.UserID != 0 {
			return nil
		}
	}
	return ErrForbidden
}

// PendingLimitRequests is the support queue, oldest first.
func (s *Store) PendingLimitRequests(ctx context.Context, actor Actor) ([]PendingRequest, error) {
	if err := requireStaff(actor, RoleSupport); err != nil {
		return nil, err
	}
	db := s.db.WithContext(ctx)
	var reqs []LimitRequest
	if err := db.Where("status = ?", RequestPending).Order("id").Limit(200).Find(&reqs).Error; err != nil {
		return nil, wrapOp("pending requests", err)
	}
	out := make([]PendingRequest, 0, len(reqs))
	for _, r := range reqs {
		var a Account
		if err := db.Take(&a, r.AccountID).Error; err != nil {
			return nil, wrapOp("pending requests", err)
		}
		u, err := s.usage(db, a.ID)
		if err != nil {
			return nil, wrapOp("pending requests", err)
		}
		out = append(out, PendingRequest{LimitRequest: r, AccountName: a.Name, Plan: a.Plan, Usage: u})
	}
	return out, nil
}

// AccountMatch is one search result for support.
type AccountMatch struct {
	Account    Account
	OwnerEmail string
	Usage      Usage
}

// SearchAccounts finds main accounts by name, owner e-mail or API key
// (a sub-account's key finds its parent).
func (s *Store) SearchAccounts(ctx context.Context, actor Actor, raw string) ([]AccountMatch, error) {
	if err := requireStaff(actor, RoleSupport, RoleAuditor); err != nil {
		return nil, err
	}
	q := strings.TrimSpace(raw)
	if q == "" {
		return nil, nil
	}
	if len(q) > 254 {
		q = q[:254]
	}
	db := s.db.WithContext(ctx)
	like := "%" + strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(strings.ToLower(q)) + "%"
	var ids []uint
	err := db.Raw(`SELECT DISTINCT COALESCE(a.parent_id, a.id) FROM accounts a
		LEFT JOIN users u ON u.account_id = a.id
		LEFT JOIN api_keys k ON k.account_id = a.id
		WHERE LOWER(a.name) LIKE ? ESCAPE '\' OR u.email LIKE ? ESCAPE '\' OR k.api_key = ?
		LIMIT 50`, like, like, strings.ToLower(q)).Scan(&ids).Error
	if err != nil {
		return nil, wrapOp("search accounts", err)
	}
	out := make([]AccountMatch, 0, len(ids))
	for _, id := range ids {
		var a Account
		if err := db.Take(&a, id).Error; err != nil {
			return nil, wrapOp("search accounts", err)
		}
		m := AccountMatch{Account: a}
		db.Model(&User{}).Where("account_id = ? AND role = ?", id, RoleOwner).Order("id").Limit(1).Pluck("email", &m.OwnerEmail)
		if m.Usage, err = s.usage(db, id); err != nil {
			return nil, wrapOp("search accounts", err)
		}
		out = append(out, m)
	}
	return out, nil
}

// SupportAccountView is everything support sees of one account: never a
// secret, never a digest (the keys' digests are cleared before returning).
type SupportAccountView struct {
	Account     Account
	Owners      []User
	Usage       Usage
	Keys        []APIKey
	Requests    []LimitRequest
	RecentAudit []AuditEntry
}

// SupportAccount loads one main account for support.
func (s *Store) SupportAccount(ctx context.Context, actor Actor, id uint) (*SupportAccountView, error) {
	if err := requireStaff(actor, RoleSupport); err != nil {
		return nil, err
	}
	db := s.db.WithContext(ctx)
	v := &SupportAccountView{}
	if err := db.Where("id = ? AND parent_id IS NULL", id).Take(&v.Account).Error; err != nil {
		return nil, notFound(err)
	}
	if err := db.Where("account_id = ?", id).Order("id").Find(&v.Owners).Error; err != nil {
		return nil, wrapOp("support account", err)
	}
	for i := range v.Owners {
		v.Owners[i].PasswordHash = ""
	}
	var err error
	if v.Usage, err = s.usage(db, id); err != nil {
		return nil, wrapOp("support account", err)
	}
	// Only display columns: digests never leave the database here.
	if err := db.Model(&APIKey{}).Select("id", "account_id", "name", "api_key", "secret_hint", "secret_set_at",
		"is_master", "is_active", "last_used_at", "last_used_ip", "created_at", "updated_at", "tree_id").
		Where("tree_id = ?", id).
		Order("is_master DESC").Order("name").Find(&v.Keys).Error; err != nil {
		return nil, wrapOp("support account", err)
	}
	keys := make([]*APIKey, len(v.Keys))
	for i := range v.Keys {
		keys[i] = &v.Keys[i]
	}
	if err := attachOldSecrets(db, s.Now(), keys...); err != nil {
		return nil, wrapOp("support account", err)
	}
	if err := db.Where("account_id = ?", id).Order("id DESC").Limit(20).Find(&v.Requests).Error; err != nil {
		return nil, wrapOp("support account", err)
	}
	if err := db.Where("account_id = ?", id).Order("id DESC").Limit(15).Find(&v.RecentAudit).Error; err != nil {
		return nil, wrapOp("support account", err)
	}
	return v, nil
}

// SetSubaccountLimit sets an account's override. A reason (ticket or text)
// is required; lowering below current usage is refused.
func (s *Store) SetSubaccountLimit(ctx context.Context, actor Actor, accountID uint, newLimit int, rawReason string) error {
	if err := requireStaff(actor, RoleSupport); err != nil {
		return err
	}
	reason, msg := validateReason("reason", rawReason, true)
	v := &ValidationError{}
	if msg != "" {
		v.Add("reason", msg)
	}
	if newLimit < 0 || newLimit > MaxSubaccountLimit {
		v.Add("limit", "Enter a limit between 0 and 10000.")
	}
	if err := v.OrNil(); err != nil {
		return err
	}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		a, err := s.lockAccount(tx, accountID)
		if err != nil {
			return err
		}
		return s.changeLimit(tx, actor, a, newLimit, reason, nil)
	})
	return wrapOpNil("set sub-account limit", err)
}

func (s *Store) changeLimit(tx *gorm.DB, actor Actor, a *Account, newLimit int, reason string, requestID *uint) error {
	used, err := countSubaccounts(tx, a.ID)
	if err != nil {
		return err
	}
	if newLimit < used {
		return &ValidationError{Fields: map[string]string{"limit": fmt.Sprintf(
			// The view picks the singular or plural form from the count (catalog: msg.limit_below_use).
			"The account already uses %d sub-accounts; the limit cannot be lower than that.", used)}}
	}
	old := a.SubaccountLimitValue()
	if err := tx.Model(&Account{}).Where("id = ?", a.ID).Updates(map[string]any{"subaccount_limit": newLimit, "updated_at": s.Now()}).Error; err != nil {
		return err
	}
	details := map[string]any{"from": old, "to": newLimit, "reason": reason}
	if requestID != nil {
		details["request_id"] = *requestID
	}
	return s.appendAudit(tx, actor, ActionLimitChanged, a.ID, target("account", a.ID, a.Name), details)
}

// ErrRequestDecided refuses a decision on a request that is no longer pending.
var ErrRequestDecided = &ValidationError{Fields: map[string]string{"form": "This request was already decided."}}

// DecideLimitRequest approves (with the new limit) or denies a pending
// request; the note is required and shown to the owner.
func (s *Store) DecideLimitRequest(ctx context.Context, actor Actor, requestID uint, approve bool, newLimit int, rawNote string) error {
	if err := requireStaff(actor, RoleSupport); err != nil {
		return err
	}
	note, msg := validateReason("note", rawNote, true)
	v := &ValidationError{}
	if msg != "" {
		v.Add("note", msg)
	}
	if approve && (newLimit < 0 || newLimit > MaxSubaccountLimit) {
		v.Add("limit", "Enter a limit between 0 and 10000.")
	}
	if err := v.OrNil(); err != nil {
		return err
	}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var req LimitRequest
		q := tx.Where("id = ?", requestID)
		if s.engine == Postgres {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		if err := q.Take(&req).Error; err != nil {
			return notFound(err)
		}
		if req.Status != RequestPending {
			return ErrRequestDecided
		}
		a, err := s.lockAccount(tx, req.AccountID)
		if err != nil {
			return err
		}
		now := s.Now()
		uid := actor.UserID
		updates := map[string]any{"decided_by": uid, "decider_email": actor.Email, "note": note, "decided_at": now}
		action := ActionLimitDenied
		if approve {
			if err := s.changeLimit(tx, actor, a, newLimit, note, &req.ID); err != nil {
				return err
			}
			updates["status"], updates["new_limit"] = RequestApproved, newLimit
			action = ActionLimitApproved
		} else {
			updates["status"] = RequestDenied
		}
		if err := tx.Model(&LimitRequest{}).Where("id = ?", req.ID).Updates(updates).Error; err != nil {
			return err
		}
		details := map[string]any{"note": note, "extra": req.Extra}
		if approve {
			details["new_limit"] = newLimit
		}
		return s.appendAudit(tx, actor, action, a.ID, target("limit_request", req.ID, a.Name), details)
	})
	return wrapOpNil("decide limit request", err)
}

func wrapOpNil(op string, err error) error {
	if err == nil {
		return nil
	}
	var ve *ValidationError
	if errors.As(err, &ve) {
		return err
	}
	return wrapOp(op, err)
}
