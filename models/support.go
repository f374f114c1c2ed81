package models

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// PendingRequest is a limit request in the support queue.
type PendingRequest struct {
	LimitRequest
	AccountName string
	Plan        Plan
	Usage       SubaccountQuota
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
		u, err := s.quota(db, a.ID)
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
	Usage      SubaccountQuota
}

// SearchAccounts finds main accounts by name, owner e-mail or API key
// (a sub-account's name or key finds its parent), at most searchResults of
// them, in account order.
//
// Every path is an index search (issue 13), on both engines:
//   - an API key matches whole (the unique index on api_key);
//   - a query with searchRun letters or digits in a row matches anywhere in
//     a name or e-mail, in any case: a trigram index (PostgreSQL's pg_trgm
//     GIN indexes on lower(name) and email, SQLite's FTS5 trigram tables,
//     migration 26);
//   - a shorter query ("ab", "a.b", "%") matches the start of a name or an
//     e-mail, in any case: a range of the lower(name) and email indexes (a
//     trigram index cannot find fewer than three characters).
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
	seen := map[uint]bool{}
	var ids []uint
	for _, sq := range s.searchQueries(strings.ToLower(q)) {
		var found []uint
		if err := db.Raw(sq.sql, sq.args...).Scan(&found).Error; err != nil {
			return nil, wrapOp("search accounts", err)
		}
		for _, id := range found {
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	ids = ids[:min(len(ids), searchResults)]
	if len(ids) == 0 {
		return nil, nil
	}
	// The accounts, their usage and owners in two queries (not three a
	// result: 150 round trips for a broad query).
	var accs []Account
	if err := db.Where("id IN ? AND parent_id IS NULL", ids).Order("id").Find(&accs).Error; err != nil {
		return nil, wrapOp("search accounts", err)
	}
	var owners []User
	if err := db.Select("id", "account_id", "email").Where("id IN (SELECT o.owner_id FROM ("+treeOwnersSQL+") o)", ids, RoleOwner).Find(&owners).Error; err != nil {
		return nil, wrapOp("search accounts", err)
	}
	ownerOf := make(map[uint]string, len(owners))
	for _, u := range owners {
		ownerOf[*u.AccountID] = u.Email
	}
	out := make([]AccountMatch, 0, len(accs))
	for _, a := range accs {
		out = append(out, AccountMatch{Account: a, OwnerEmail: ownerOf[a.ID], Usage: SubaccountQuota{Used: a.SubaccountCount, Limit: a.SubaccountLimitValue()}})
	}
	return out, nil
}

const (
	// searchResults is how many accounts a search lists.
	searchResults = 50
	// searchMatches bounds the rows each name or e-mail query reads (many
	// sub-accounts of one parent may match a broad query).
	searchMatches = 500
	// searchRun is how many letters or digits in a row a query needs to
	// match inside names and e-mails (a trigram).
	searchRun = 3
)

// searchQueries are SearchAccounts' queries for the lower-cased q: each
// returns main account IDs.
func (s *Store) searchQueries(q string) []sqlCond {
	lim := " LIMIT " + strconv.Itoa(searchMatches)
	qs := []sqlCond{{"SELECT tree_id FROM api_keys WHERE api_key = ?", []any{q}}}
	switch {
	case !hasRun(q, searchRun):
		// From the start: a range of the lower(name) and email indexes.
		name, email := s.lowerExpr("name"), "email"
		if s.engine == Postgres {
			email = `(email COLLATE "C")`
		}
		rng := func(expr string) (string, []any) {
			if end := prefixEnd(q); end != "" {
				return expr + " >= ? AND " + expr + " < ?", []any{q, end}
			}
			return expr + " >= ?", []any{q}
		}
		w, args := rng(name)
		qs = append(qs, sqlCond{"SELECT COALESCE(parent_id, id) FROM accounts WHERE " + w + lim, args})
		w, args = rng(email)
		qs = append(qs, sqlCond{"SELECT account_id FROM users WHERE " + w + " AND account_id IS NOT NULL" + lim, args})
	case s.engine == Postgres:
		// Anywhere: pg_trgm's GIN indexes answer LIKE '%…%'.
		like := "%" + strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(q) + "%"
		qs = append(qs,
			sqlCond{`SELECT COALESCE(parent_id, id) FROM accounts WHERE lower(name) LIKE ? ESCAPE '\'` + lim, []any{like}},
			sqlCond{`SELECT account_id FROM users WHERE email LIKE ? ESCAPE '\' AND account_id IS NOT NULL` + lim, []any{like}})
	default:
		// Anywhere: a phrase of the FTS5 trigram tables is a substring.
		phrase := `"` + strings.ReplaceAll(q, `"`, `""`) + `"`
		qs = append(qs,
			sqlCond{"SELECT COALESCE(a.parent_id, a.id) FROM accounts_search JOIN accounts a ON a.id = accounts_search.rowid WHERE accounts_search MATCH ?" + lim, []any{phrase}},
			sqlCond{"SELECT u.account_id FROM users_search JOIN users u ON u.id = users_search.rowid WHERE users_search MATCH ? AND u.account_id IS NOT NULL" + lim, []any{phrase}})
	}
	return qs
}

// hasRun reports whether q holds n letters or digits in a row.
func hasRun(q string, n int) bool {
	run := 0
	for _, r := range q {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if run++; run >= n {
				return true
			}
		} else {
			run = 0
		}
	}
	return false
}

// SupportAccountView is everything support sees of one account: never a
// secret, never a digest (the keys' digests are cleared before returning).
type SupportAccountView struct {
	Account     Account
	Owners      []User
	Usage       SubaccountQuota
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
	if v.Usage, err = s.quota(db, id); err != nil {
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
	return wrapOp("set sub-account limit", err)
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
	if err := tx.Model(&Account{}).Where("id = ?", a.ID).Updates(map[string]any{"subaccount_limit": newLimit}).Error; err != nil {
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

// UnreadableLimit stands for a limit the form could not read as a number:
// DecideLimitRequest reports it as out of range, beside the other fields'
// messages.
const UnreadableLimit = -1

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
	return wrapOp("decide limit request", err)
}
