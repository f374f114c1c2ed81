package models

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Member is a person's place in one account: their role there and the
// sub-accounts they may see (all, or the listed ones). An account has
// exactly one owner member (a unique index says so too).
type Member struct {
	ID        uint `gorm:"primaryKey"`
	AccountID uint // always a main account
	UserID    uint
	Role      Role
	ScopeAll  bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

type memberScope struct {
	MemberID     uint `gorm:"primaryKey"`
	SubaccountID uint `gorm:"primaryKey"`
}

func (memberScope) TableName() string { return "member_scopes" }

// Membership is one account a person belongs to (the account switcher).
type Membership struct {
	AccountID   uint
	AccountName string
	Role        Role
}

// Permission is something a member role may do. The rules of who may do
// what are here and nowhere else; the route table names the role sets
// below and every operation checks its permission again.
type Permission int

const (
	PermKeysView         Permission = iota // keys table, a key's usage
	PermKeysManage                         // reset, rename, deactivate, activate in scope
	PermMasterReset                        // reset the master key's secret
	PermSubaccountCreate                   // create a sub-account (and its key)
	PermLimitRequest                       // ask support for more sub-accounts
	PermAuditView                          // the account's audit entries (in scope)
	PermAuditReview                        // mark the account's log reviewed
	PermTeamManage                         // /team: invite, change, remove, require 2FA
)

var memberPerms = map[Role][]Permission{
	RoleOwner:     {PermKeysView, PermKeysManage, PermMasterReset, PermSubaccountCreate, PermLimitRequest, PermAuditView, PermAuditReview, PermTeamManage},
	RoleAdmin:     {PermKeysView, PermKeysManage, PermMasterReset, PermSubaccountCreate, PermLimitRequest, PermAuditView, PermAuditReview, PermTeamManage},
	RoleDeveloper: {PermKeysView, PermKeysManage, PermSubaccountCreate, PermAuditView},
	RoleViewer:    {PermKeysView, PermAuditView},
}

// Can reports whether a member role has permission p. Staff roles have
// none of these: their rights are their own (support.go, auditlog.go).
func (r Role) Can(p Permission) bool { return slices.Contains(memberPerms[r], p) }

// IsMemberRole reports a role held through a membership.
func (r Role) IsMemberRole() bool { _, ok := memberPerms[r]; return ok }

// RolesWith lists the roles that have p, in a fixed order.
func RolesWith(p Permission) []Role {
	var out []Role
	for _, r := range []Role{RoleOwner, RoleAdmin, RoleDeveloper, RoleViewer} {
		if r.Can(p) {
			out = append(out, r)
		}
	}
	return out
}

// Role sets the route table names (handlers/routes.go).
var (
	KeyViewers         = RolesWith(PermKeysView)
	KeyManagers        = RolesWith(PermKeysManage)
	SubaccountCreators = RolesWith(PermSubaccountCreate)
	LimitRequesters    = RolesWith(PermLimitRequest)
	TeamManagers       = RolesWith(PermTeamManage)
	AuditReaders       = append(RolesWith(PermAuditView), RoleSupport, RoleAuditor)
	AuditReviewers     = append(RolesWith(PermAuditReview), RoleAuditor)
	PeopleRoles        = []Role{RoleOwner, RoleAdmin, RoleDeveloper, RoleViewer}
)

// InvitableRoles are the roles an invitation or a change may give: never
// owner (an account has exactly one, made at sign-up).
var InvitableRoles = []Role{RoleAdmin, RoleDeveloper, RoleViewer}

// ParseMemberRole validates a role chosen in a form.
func ParseMemberRole(s string) (Role, bool) {
	r := Role(strings.ToLower(strings.TrimSpace(s)))
	return r, slices.Contains(InvitableRoles, r)
}

// Can reports whether the actor's role has p.
func (a Actor) Can(p Permission) bool { return a.Role.Can(p) }

// MayReviewAudit reports whether the actor may mark the audit log
// reviewed: an auditor the whole log, the people whose role has
// PermAuditReview (owner, admin) their account's. AuditReviewers are the
// same roles, for the route table.
func (a Actor) MayReviewAudit() bool {
	return a.Role == RoleAuditor || (a.AccountID != 0 && a.Can(PermAuditReview))
}

// InScope reports whether the actor may see account id: the main account
// itself only with scope "all", a sub-account when the scope is all or
// lists it. Staff and API keys have no member scope (nil: everything
// their own rules allow).
func (a Actor) InScope(id uint) bool {
	if !a.Scoped {
		return true
	}
	return slices.Contains(a.Scope, id)
}

// scopeWhere narrows a query on a table with an account_id column to the
// actor's scope (no-op for an unscoped actor). An empty scope matches no row.
func (a Actor) scopeWhere(db *gorm.DB, column string) *gorm.DB {
	if !a.Scoped {
		return db
	}
	if len(a.Scope) == 0 {
		return db.Where("1 = 0")
	}
	return db.Where(column+" IN ?", a.Scope)
}

// loadMemberships reads every membership of a user with its account's
// name, main accounts only, by account name.
func loadMemberships(db *gorm.DB, userID uint) ([]Membership, error) {
	var ms []Membership
	err := db.Raw(`SELECT m.account_id, a.name AS account_name, m.role FROM members m JOIN accounts a ON a.id = m.account_id
		WHERE m.user_id = ? ORDER BY a.name, m.account_id`, userID).Scan(&ms).Error
	return ms, err
}

// bindMember fills the principal's membership for accountID: role, scope
// and account. ErrSessionInvalid when the user is not (or no longer) a
// member there.
func (s *Store) bindMember(db *gorm.DB, p *Principal, accountID uint) error {
	var m Member
	if err := db.Where("account_id = ? AND user_id = ?", accountID, p.User.ID).Take(&m).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return ErrSessionInvalid
		}
		return err
	}
	var acc Account
	if err := db.Take(&acc, accountID).Error; err != nil {
		return notFound(err)
	}
	p.Member, p.Account, p.Scope = &m, &acc, nil
	if !m.ScopeAll {
		p.Scope = []uint{}
		if err := db.Model(&memberScope{}).Where("member_id = ?", m.ID).Order("subaccount_id").Pluck("subaccount_id", &p.Scope).Error; err != nil {
			return err
		}
	}
	ms, err := loadMemberships(db, p.User.ID)
	if err != nil {
		return err
	}
	p.Memberships = ms
	return nil
}

// defaultAccount is the account a person works in after signing in: their
// own (the one they signed up with or joined first) while they are still a
// member of it, else their first membership. 0 when they belong nowhere.
func defaultAccount(db *gorm.DB, u *User) (uint, error) {
	var ids []uint
	q := db.Model(&Member{}).Where("user_id = ?", u.ID)
	if u.AccountID != nil {
		q = q.Order(gorm.Expr("CASE WHEN account_id = ? THEN 0 ELSE 1 END", *u.AccountID))
	}
	if err := q.Order("id").Limit(1).Pluck("account_id", &ids).Error; err != nil {
		return 0, err
	}
	if len(ids) == 0 {
		return 0, nil
	}
	return ids[0], nil
}

// TeamMember is one row of /team.
type TeamMember struct {
	MemberID    uint
	UserID      uint
	Email       string
	Role        Role
	ScopeAll    bool
	Scope       []Subaccount // names of the listed sub-accounts (Account only)
	Has2FA      bool
	LastLoginAt *time.Time
}

// TeamView is what /team shows.
type TeamView struct {
	Members     []TeamMember
	Invitations []Invitation // pending (not accepted, revoked or expired)
	Subaccounts []Account    // every sub-account, for the scope pickers
	Require2FA  bool
}

// Team loads the account's members, pending invitations and sub-accounts.
func (s *Store) Team(ctx context.Context, actor Actor) (*TeamView, error) {
	if !actor.Can(PermTeamManage) || actor.AccountID == 0 {
		return nil, ErrForbidden
	}
	db := s.db.WithContext(ctx)
	v := &TeamView{}
	var rows []struct {
		Member
		Email         string
		TOTPEnabledAt *time.Time `gorm:"column:totp_enabled_at"`
		LastLoginAt   *time.Time
	}
	err := db.Raw(`SELECT m.*, u.email, u.totp_enabled_at, u.last_login_at FROM members m JOIN users u ON u.id = m.user_id
		WHERE m.account_id = ? ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 WHEN 'developer' THEN 2 ELSE 3 END, u.email`, actor.AccountID).Scan(&rows).Error
	if err != nil {
		return nil, wrapOp("team", err)
	}
	if err := db.Where("parent_id = ?", actor.AccountID).Order("LOWER(name)").Order("id").Find(&v.Subaccounts).Error; err != nil {
		return nil, wrapOp("team", err)
	}
	names := map[uint]Account{}
	for _, a := range v.Subaccounts {
		names[a.ID] = a
	}
	var scopes []memberScope
	ids := make([]uint, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	if len(ids) > 0 {
		if err := db.Where("member_id IN ?", ids).Find(&scopes).Error; err != nil {
			return nil, wrapOp("team", err)
		}
	}
	for _, r := range rows {
		tm := TeamMember{MemberID: r.ID, UserID: r.UserID, Email: r.Email, Role: r.Role, ScopeAll: r.ScopeAll, Has2FA: r.TOTPEnabledAt != nil, LastLoginAt: r.LastLoginAt}
		for _, sc := range scopes {
			if sc.MemberID == r.ID {
				tm.Scope = append(tm.Scope, Subaccount{Account: names[sc.SubaccountID]})
			}
		}
		sort.Slice(tm.Scope, func(i, j int) bool {
			return strings.ToLower(tm.Scope[i].Account.Name) < strings.ToLower(tm.Scope[j].Account.Name)
		})
		v.Members = append(v.Members, tm)
	}
	if err := db.Where("account_id = ? AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ?", actor.AccountID, s.Now()).
		Order("id DESC").Find(&v.Invitations).Error; err != nil {
		return nil, wrapOp("team", err)
	}
	var acc Account
	if err := db.Select("require_2fa").Take(&acc, actor.AccountID).Error; err != nil {
		return nil, wrapOp("team", err)
	}
	v.Require2FA = acc.Require2FA
	return v, nil
}

// ScopeInput is a member's access as a form gives it.
type ScopeInput struct {
	All         bool
	Subaccounts []uint
}

// checkScope validates a chosen scope against the account's sub-accounts:
// a list must name at least one, and only sub-accounts of this account
// (another tree's ID is refused as unknown).
func checkScope(tx *gorm.DB, accountID uint, in ScopeInput) ([]uint, error) {
	if in.All {
		return nil, nil
	}
	ids := slices.Compact(slices.Sorted(slices.Values(in.Subaccounts)))
	if len(ids) == 0 {
		return nil, &ValidationError{Fields: map[string]string{"scope": "Choose at least one sub-account, or all of them."}}
	}
	var n int64
	if err := tx.Model(&Account{}).Where("id IN ? AND parent_id = ?", ids, accountID).Count(&n).Error; err != nil {
		return nil, err
	}
	if int(n) != len(ids) {
		return nil, &ValidationError{Fields: map[string]string{"scope": "Choose sub-accounts of this account."}}
	}
	return ids, nil
}

func scopeDetail(all bool, ids []uint) any {
	if all {
		return "all"
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = strconv.FormatUint(uint64(id), 10)
	}
	return strings.Join(out, ",")
}

// lockMember reads a member of the actor's account for update (another
// account's member is ErrNotFound).
func (s *Store) lockMember(tx *gorm.DB, actor Actor, memberID uint) (*Member, *User, error) {
	if _, err := s.lockAccount(tx, actor.AccountID); err != nil {
		return nil, nil, err
	}
	var m Member
	if err := tx.Where("id = ? AND account_id = ?", memberID, actor.AccountID).Take(&m).Error; err != nil {
		return nil, nil, notFound(err)
	}
	var u User
	if err := tx.Take(&u, m.UserID).Error; err != nil {
		return nil, nil, err
	}
	return &m, &u, nil
}

// ChangeMember sets a member's role and scope. The owner cannot be
// changed (nor made by a change); nobody changes their own membership.
// A narrowed scope or a lower role applies from the member's next request:
// every request reads them again.
func (s *Store) ChangeMember(ctx context.Context, actor Actor, memberID uint, rawRole string, scope ScopeInput) (*Member, error) {
	if !actor.Can(PermTeamManage) {
		return nil, ErrForbidden
	}
	role, ok := ParseMemberRole(rawRole)
	if !ok {
		return nil, &ValidationError{Fields: map[string]string{"role": "Choose admin, developer or viewer."}}
	}
	var m *Member
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var u *User
		var err error
		m, u, err = s.lockMember(tx, actor, memberID)
		if err != nil {
			return err
		}
		if m.Role == RoleOwner {
			return &ValidationError{Fields: map[string]string{"role": "The owner's role cannot be changed."}}
		}
		if m.UserID == actor.UserID {
			return &ValidationError{Fields: map[string]string{"role": "Ask another owner or admin to change your own access."}}
		}
		ids, err := checkScope(tx, actor.AccountID, scope)
		if err != nil {
			return err
		}
		from := map[string]any{"role": m.Role}
		if err := tx.Model(&Member{}).Where("id = ?", m.ID).Updates(map[string]any{"role": role, "scope_all": scope.All}).Error; err != nil {
			return err
		}
		if err := tx.Where("member_id = ?", m.ID).Delete(&memberScope{}).Error; err != nil {
			return err
		}
		for _, id := range ids {
			if err := tx.Create(&memberScope{MemberID: m.ID, SubaccountID: id}).Error; err != nil {
				return err
			}
		}
		m.Role, m.ScopeAll = role, scope.All
		return s.appendAudit(tx, actor, ActionMemberChanged, actor.AccountID, target("user", u.ID, u.Email),
			map[string]any{"from": from, "role": role, "scope": scopeDetail(scope.All, ids)})
	})
	if err != nil {
		return nil, wrapOp("change member", err)
	}
	return m, nil
}

// RemoveMember takes a person out of the account and ends, at once, every
// session they have in it. The owner cannot be removed; nobody removes
// themselves.
func (s *Store) RemoveMember(ctx context.Context, actor Actor, memberID uint) error {
	if !actor.Can(PermTeamManage) {
		return ErrForbidden
	}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		m, u, err := s.lockMember(tx, actor, memberID)
		if err != nil {
			return err
		}
		if m.Role == RoleOwner {
			return &ValidationError{Fields: map[string]string{"member": "The owner cannot be removed."}}
		}
		if m.UserID == actor.UserID {
			return &ValidationError{Fields: map[string]string{"member": "You cannot remove yourself; ask another owner or admin."}}
		}
		if err := tx.Where("member_id = ?", m.ID).Delete(&memberScope{}).Error; err != nil {
			return err
		}
		if err := tx.Delete(&Member{}, m.ID).Error; err != nil {
			return err
		}
		// Sessions working in this account end now. A session with no
		// account bound (older than members) resolves to the user's home
		// account: ended too when that is this one.
		q := tx.Where("user_id = ? AND account_id = ?", u.ID, actor.AccountID)
		if u.AccountID != nil && *u.AccountID == actor.AccountID {
			q = tx.Where("user_id = ? AND (account_id = ? OR account_id IS NULL)", u.ID, actor.AccountID)
		}
		res := q.Delete(&Session{})
		if res.Error != nil {
			return res.Error
		}
		return s.appendAudit(tx, actor, ActionMemberRemoved, actor.AccountID, target("user", u.ID, u.Email),
			map[string]any{"role": m.Role, "sessions_ended": res.RowsAffected})
	})
	if err != nil {
		return wrapOp("remove member", err)
	}
	return nil
}

// SetRequire2FA turns on or off the rule that every member of the account
// uses two-factor sign-in. Members without it are sent to enrolment
// before anything else (Principal.MustEnrol2FA).
func (s *Store) SetRequire2FA(ctx context.Context, actor Actor, on bool) error {
	if !actor.Can(PermTeamManage) {
		return ErrForbidden
	}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		a, err := s.lockAccount(tx, actor.AccountID)
		if err != nil {
			return err
		}
		if a.Require2FA == on {
			return nil
		}
		if err := tx.Model(&Account{}).Where("id = ?", a.ID).Update("require_2fa", on).Error; err != nil {
			return err
		}
		return s.appendAudit(tx, actor, ActionRequire2FAChanged, a.ID, target("account", a.ID, a.Name), map[string]any{"required": on})
	})
	if err != nil {
		return wrapOp("require 2FA", err)
	}
	return nil
}

// SwitchAccount moves the session to another account the person belongs
// to (ErrNotFound for any other).
func (s *Store) SwitchAccount(ctx context.Context, p *Principal, accountID uint, meta RequestMeta) error {
	if p.User.Role.IsStaff() {
		return ErrNotFound
	}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&Member{}).Where("account_id = ? AND user_id = ?", accountID, p.User.ID).Count(&n).Error; err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		if err := tx.Model(&Session{}).Where("id_hash = ?", p.Session.IDHash).Update("account_id", accountID).Error; err != nil {
			return err
		}
		a := p.Actor(meta)
		return s.appendAudit(tx, a, ActionAccountSwitched, accountID, target("user", p.User.ID, p.User.Email), map[string]any{"from": a.AccountID})
	})
	if err != nil {
		return wrapOp("switch account", err)
	}
	return nil
}

// addMember makes a membership inside tx.
func addMember(tx *gorm.DB, accountID, userID uint, role Role, all bool, scope []uint) (*Member, error) {
	m := &Member{AccountID: accountID, UserID: userID, Role: role, ScopeAll: all}
	if err := tx.Create(m).Error; err != nil {
		if errors.Is(err, gorm.ErrDuplicatedKey) {
			return nil, &ValidationError{Fields: map[string]string{"email": "This person is already a member of the account."}}
		}
		return nil, fmt.Errorf("add member: %w", err)
	}
	for _, id := range scope {
		if err := tx.Create(&memberScope{MemberID: m.ID, SubaccountID: id}).Error; err != nil {
			return nil, err
		}
	}
	return m, nil
}
