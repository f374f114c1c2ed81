package models_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"keydesk/models"
	"keydesk/models/testdb"
)

// team is an account with two sub-accounts, newsletters and billing.
type team struct {
	owner      models.Actor
	res        *models.SignUpResult
	news, bill *models.Subaccount
	newsSecret models.Revealed
	billSecret models.Revealed
}

func newTeam(t *testing.T, s *models.Store) *team {
	t.Helper()
	setLimit := func(id uint) {
		if err := s.DB().Table("accounts").Where("id = ?", id).Update("subaccount_limit", 10).Error; err != nil {
			t.Fatal(err)
		}
	}
	tm := &team{}
	tm.owner, tm.res = owner(t, s, "Acme", "owner@acme.example")
	setLimit(tm.res.Account.ID)
	var err error
	if tm.news, tm.newsSecret, err = s.CreateSubaccount(ctx, tm.owner, "newsletters", ""); err != nil {
		t.Fatal(err)
	}
	if tm.bill, tm.billSecret, err = s.CreateSubaccount(ctx, tm.owner, "billing", ""); err != nil {
		t.Fatal(err)
	}
	return tm
}

// join invites email with role and scope and accepts as a new person,
// returning the signed-in principal's actor (inside the sudo window).
func (tm *team) join(t *testing.T, s *models.Store, email, role string, scope models.ScopeInput) (*models.Principal, models.Actor) {
	t.Helper()
	_, tok, err := s.Invite(ctx, tm.owner, email, role, scope)
	if err != nil {
		t.Fatalf("invite %s: %v", email, err)
	}
	sess, p, err := s.AcceptInvitationNew(ctx, tok, pw, "", meta)
	if err != nil {
		t.Fatalf("accept %s: %v", email, err)
	}
	p, err = s.ResolveSession(ctx, sess)
	if err != nil {
		t.Fatalf("resolve %s: %v", email, err)
	}
	return p, p.Actor(meta)
}

func TestRolePermissions(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		role models.Role
		perm models.Permission
		want bool
	}{
		{models.RoleOwner, models.PermTeamManage, true},
		{models.RoleAdmin, models.PermTeamManage, true},
		{models.RoleAdmin, models.PermMasterReset, true},
		{models.RoleDeveloper, models.PermKeysManage, true},
		{models.RoleDeveloper, models.PermMasterReset, false},
		{models.RoleDeveloper, models.PermTeamManage, false},
		{models.RoleDeveloper, models.PermLimitRequest, false},
		{models.RoleViewer, models.PermKeysView, true},
		{models.RoleViewer, models.PermAuditView, true},
		{models.RoleViewer, models.PermKeysManage, false},
		{models.RoleViewer, models.PermAuditReview, false},
		{models.RoleSupport, models.PermKeysView, false},
		{models.RoleAuditor, models.PermTeamManage, false},
	} {
		if got := c.role.Can(c.perm); got != c.want {
			t.Errorf("%s can %d = %v, want %v", c.role, c.perm, got, c.want)
		}
	}
}

func TestScopedDeveloperSeesAndManagesOnlyTheirSubaccounts(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	tm := newTeam(t, s)
	p, dev := tm.join(t, s, "dev@agency.example", "developer", models.ScopeInput{Subaccounts: []uint{tm.news.Account.ID}})
	if p.Role() != models.RoleDeveloper || p.Account.ID != tm.res.Account.ID || len(p.Scope) != 1 {
		t.Fatalf("principal: role %s account %v scope %v", p.Role(), p.Account, p.Scope)
	}
	keys, err := s.ListKeys(ctx, dev)
	if err != nil || len(keys) != 1 || keys[0].ID != tm.news.Key.ID {
		t.Fatalf("scoped developer lists %v (%v), want only newsletters", keys, err)
	}
	page, err := s.KeysPage(ctx, dev, "", 1)
	if err != nil || page.Master != nil || page.Total != 1 || len(page.Subaccounts) != 1 {
		t.Fatalf("keys page for a scoped developer: %+v %v", page, err)
	}
	// Out of scope is unknown, whatever the operation.
	for name, id := range map[string]uint{"billing": tm.bill.Key.ID, "master": tm.res.Key.ID} {
		if _, err := s.KeyByID(ctx, dev, id); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("KeyByID(%s) = %v, want ErrNotFound", name, err)
		}
		if _, _, err := s.ResetSecret(ctx, dev, id, 0); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("ResetSecret(%s) = %v, want ErrNotFound", name, err)
		}
		if _, err := s.UsageForKey(ctx, dev, id, 7); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("UsageForKey(%s) = %v, want ErrNotFound", name, err)
		}
	}
	if _, rev, err := s.ResetSecret(ctx, dev, tm.news.Key.ID, 0); err != nil || rev.Secret == "" {
		t.Fatalf("reset in scope: %v", err)
	}
	// What the developer creates stays in their reach.
	sub, _, err := s.CreateSubaccount(ctx, dev, "eu-client", "")
	if err != nil {
		t.Fatal(err)
	}
	p, _ = s.ResolveSession(ctx, tokenOf(t, s, p))
	if !p.Actor(meta).InScope(sub.Account.ID) {
		t.Fatalf("created sub-account not in the creator's scope: %v", p.Scope)
	}
	// Audit: only in-scope entries; a filter on another sub-account is 404.
	entries, err := s.AuditEntries(ctx, dev, models.AuditFilter{}, nil, nil)
	if err != nil || len(entries.Entries) == 0 {
		t.Fatalf("audit for a scoped developer: %v", err)
	}
	for _, e := range entries.Entries {
		if e.AccountID == nil || (*e.AccountID != tm.news.Account.ID && *e.AccountID != sub.Account.ID) {
			t.Fatalf("scoped developer sees entry %d %s of account %v", e.ID, e.Action, e.AccountID)
		}
	}
	for _, id := range []uint{tm.bill.Account.ID, tm.res.Account.ID, 999999} {
		if _, err := s.AuditEntries(ctx, dev, models.AuditFilter{AccountID: id}, nil, nil); !errors.Is(err, models.ErrNotFound) {
			t.Errorf("audit filter on account %d: %v, want ErrNotFound", id, err)
		}
	}
	if _, err := s.AuditEntries(ctx, dev, models.AuditFilter{AccountID: tm.news.Account.ID}, nil, nil); err != nil {
		t.Errorf("audit filter in scope: %v", err)
	}
	if _, err := s.Team(ctx, dev); !errors.Is(err, models.ErrForbidden) {
		t.Errorf("developer reads the team: %v", err)
	}
	if _, err := s.RequestMoreSubaccounts(ctx, dev, 1, "more"); !errors.Is(err, models.ErrForbidden) {
		t.Errorf("developer asks for more sub-accounts: %v", err)
	}
}

// tokenOf is a fresh session token for p's user (Login).
func tokenOf(t *testing.T, s *models.Store, p *models.Principal) string {
	t.Helper()
	tok, _, err := s.Login(ctx, p.User.Email, pw, "", meta)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestDeveloperWithAllScopeNeverResetsTheMaster(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	tm := newTeam(t, s)
	_, dev := tm.join(t, s, "dev@agency.example", "developer", models.ScopeInput{All: true})
	page, err := s.KeysPage(ctx, dev, "", 1)
	if err != nil || page.Master == nil || page.Total != 2 {
		t.Fatalf("keys page: %+v %v", page, err)
	}
	if _, _, err := s.ResetSecret(ctx, dev, tm.res.Key.ID, 0); !errors.Is(err, models.ErrForbidden) {
		t.Fatalf("developer resets the master: %v", err)
	}
	if _, _, err := s.ResetSecret(ctx, dev, tm.bill.Key.ID, 0); err != nil {
		t.Fatalf("developer resets a sub-account key: %v", err)
	}
	_, admin := tm.join(t, s, "admin@acme.example", "admin", models.ScopeInput{All: true})
	if _, _, err := s.ResetSecret(ctx, admin, tm.res.Key.ID, 0); err != nil {
		t.Fatalf("admin resets the master: %v", err)
	}
}

func TestViewerIsReadOnly(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	tm := newTeam(t, s)
	_, viewer := tm.join(t, s, "view@acme.example", "viewer", models.ScopeInput{All: true})
	if keys, err := s.ListKeys(ctx, viewer); err != nil || len(keys) != 3 {
		t.Fatalf("viewer lists %d keys: %v", len(keys), err)
	}
	if _, err := s.UsageForKey(ctx, viewer, tm.news.Key.ID, 7); err != nil {
		t.Fatalf("viewer usage: %v", err)
	}
	if _, _, err := s.ResetSecret(ctx, viewer, tm.news.Key.ID, 0); !errors.Is(err, models.ErrForbidden) {
		t.Errorf("viewer resets: %v", err)
	}
	if _, err := s.RenameKey(ctx, viewer, tm.news.Key.ID, "x"); !errors.Is(err, models.ErrForbidden) {
		t.Errorf("viewer renames: %v", err)
	}
	if _, err := s.SetKeyActive(ctx, viewer, tm.news.Key.ID, false); !errors.Is(err, models.ErrForbidden) {
		t.Errorf("viewer deactivates: %v", err)
	}
	if _, _, err := s.CreateSubaccount(ctx, viewer, "x", ""); !errors.Is(err, models.ErrForbidden) {
		t.Errorf("viewer creates: %v", err)
	}
	if _, err := s.AuditEntries(ctx, viewer, models.AuditFilter{}, nil, nil); err != nil {
		t.Errorf("viewer reads the audit: %v", err)
	}
	if _, err := s.MarkReviewed(ctx, viewer, 1, ""); !errors.Is(err, models.ErrForbidden) {
		t.Errorf("viewer reviews: %v", err)
	}
}

func TestExactlyOneOwner(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	tm := newTeam(t, s)
	_, admin := tm.join(t, s, "admin@acme.example", "admin", models.ScopeInput{All: true})
	if _, _, err := s.Invite(ctx, admin, "x@acme.example", "owner", models.ScopeInput{All: true}); models.FieldErrors(err)["role"] == "" {
		t.Errorf("invite as owner: %v", err)
	}
	view, err := s.Team(ctx, admin)
	if err != nil || len(view.Members) != 2 || view.Members[0].Role != models.RoleOwner {
		t.Fatalf("team: %+v %v", view, err)
	}
	ownerID := view.Members[0].MemberID
	if _, err := s.ChangeMember(ctx, admin, ownerID, "viewer", models.ScopeInput{All: true}); models.FieldErrors(err)["role"] == "" {
		t.Errorf("admin demotes the owner: %v", err)
	}
	if _, err := s.ChangeMember(ctx, tm.owner, view.Members[1].MemberID, "owner", models.ScopeInput{All: true}); models.FieldErrors(err)["role"] == "" {
		t.Errorf("a second owner by change: %v", err)
	}
	if err := s.RemoveMember(ctx, admin, ownerID); models.FieldErrors(err)["member"] == "" {
		t.Errorf("admin removes the owner: %v", err)
	}
	// The database holds the rule too.
	err = s.DB().Exec("INSERT INTO members (account_id, user_id, role, scope_all, created_at, updated_at) VALUES (?, ?, 'owner', TRUE, ?, ?)",
		tm.res.Account.ID, admin.UserID, s.Now(), s.Now()).Error
	if err == nil {
		t.Fatal("a second owner row was accepted")
	}
	// Another account's member is unknown.
	other, _ := owner(t, s, "Other", "other@other.example")
	if _, err := s.ChangeMember(ctx, other, view.Members[1].MemberID, "viewer", models.ScopeInput{All: true}); !errors.Is(err, models.ErrNotFound) {
		t.Errorf("change another account's member: %v", err)
	}
	if err := s.RemoveMember(ctx, other, view.Members[1].MemberID); !errors.Is(err, models.ErrNotFound) {
		t.Errorf("remove another account's member: %v", err)
	}
	// A scope naming another account's sub-account is refused.
	otherSub, _, err := s.CreateSubaccount(ctx, other, "theirs", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Invite(ctx, tm.owner, "y@acme.example", "developer", models.ScopeInput{Subaccounts: []uint{otherSub.Account.ID}}); models.FieldErrors(err)["scope"] == "" {
		t.Errorf("scope on another account's sub-account: %v", err)
	}
	if _, _, err := s.Invite(ctx, tm.owner, "y@acme.example", "developer", models.ScopeInput{}); models.FieldErrors(err)["scope"] == "" {
		t.Errorf("empty scope list: %v", err)
	}
}

func TestRemovingAndNarrowingTakeEffectAtOnce(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	tm := newTeam(t, s)
	p, _ := tm.join(t, s, "dev@agency.example", "developer", models.ScopeInput{All: true})
	tok := tokenOf(t, s, p)
	view, _ := s.Team(ctx, tm.owner)
	var memberID uint
	for _, m := range view.Members {
		if m.Email == "dev@agency.example" {
			memberID = m.MemberID
			if m.LastLoginAt == nil || m.Has2FA || !m.ScopeAll {
				t.Errorf("team row: %+v", m)
			}
		}
	}
	if _, err := s.ChangeMember(ctx, tm.owner, memberID, "viewer", models.ScopeInput{Subaccounts: []uint{tm.bill.Account.ID}}); err != nil {
		t.Fatal(err)
	}
	p, err := s.ResolveSession(ctx, tok)
	if err != nil || p.Role() != models.RoleViewer || len(p.Scope) != 1 || p.Scope[0] != tm.bill.Account.ID {
		t.Fatalf("after narrowing: %v %+v", err, p)
	}
	if err := s.RemoveMember(ctx, tm.owner, memberID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ResolveSession(ctx, tok); !errors.Is(err, models.ErrSessionInvalid) {
		t.Fatalf("removed member's session: %v", err)
	}
	if _, _, err := s.Login(ctx, "dev@agency.example", pw, "", meta); !errors.Is(err, models.ErrInvalidCredentials) {
		t.Fatalf("a person in no account signs in: %v", err)
	}
	var n int64
	s.DB().Table("audit_entries").Where("action IN ?", []string{models.ActionMemberChanged, models.ActionMemberRemoved}).Where("actor_user_id = ?", tm.owner.UserID).Count(&n)
	if n != 2 {
		t.Fatalf("%d member audit entries by the owner, want 2", n)
	}
}

func TestSeveralAccountsAndSwitching(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	tm := newTeam(t, s)
	other, otherRes := owner(t, s, "Other", "other@other.example")
	_, tok, err := s.Invite(ctx, tm.owner, "other@other.example", "viewer", models.ScopeInput{All: true})
	if err != nil {
		t.Fatal(err)
	}
	sess, p, err := s.AcceptInvitationExisting(ctx, tok, pw, "", "", meta)
	if err != nil || p.Account.ID != tm.res.Account.ID || p.Role() != models.RoleViewer {
		t.Fatalf("existing user joins: %v %+v", err, p)
	}
	p, _ = s.ResolveSession(ctx, sess)
	if len(p.Memberships) != 2 {
		t.Fatalf("memberships %+v", p.Memberships)
	}
	if err := s.SwitchAccount(ctx, p, otherRes.Account.ID, meta); err != nil {
		t.Fatal(err)
	}
	p, _ = s.ResolveSession(ctx, sess)
	if p.Account.ID != otherRes.Account.ID || p.Role() != models.RoleOwner {
		t.Fatalf("after switching: %d %s", p.Account.ID, p.Role())
	}
	if err := s.SwitchAccount(ctx, p, 999999, meta); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("switch to a foreign account: %v", err)
	}
	_ = other
}

func TestInvitationLifecycle(t *testing.T) {
	t.Parallel()
	s, clock := testdb.Open(t)
	tm := newTeam(t, s)
	inv, tok, err := s.Invite(ctx, tm.owner, " New@Agency.Example ", "developer", models.ScopeInput{Subaccounts: []uint{tm.news.Account.ID}})
	if err != nil || inv.Email != "new@agency.example" || len(tok) < 40 {
		t.Fatalf("invite: %v %+v", err, inv)
	}
	var stored []string
	s.DB().Table("invitations").Pluck("token_digest", &stored)
	if len(stored) != 1 || stored[0] == tok || strings.Contains(stored[0], tok) {
		t.Fatal("the invitation token is stored as it is")
	}
	if _, _, err := s.Invite(ctx, tm.owner, "new@agency.example", "viewer", models.ScopeInput{All: true}); models.FieldErrors(err)["email"] == "" {
		t.Errorf("second pending invitation: %v", err)
	}
	v, err := s.InvitationByToken(ctx, tok)
	if err != nil || v.AccountName != "Acme" || v.Existing {
		t.Fatalf("view: %+v %v", v, err)
	}
	if _, _, err := s.AcceptInvitationNew(ctx, tok, "short", "", meta); models.FieldErrors(err)["password"] == "" {
		t.Fatalf("weak password accepted: %v", err)
	}
	if _, _, err := s.AcceptInvitationNew(ctx, tok, pw, "", meta); err != nil {
		t.Fatal(err)
	}
	var ie *models.InvitationError
	if _, _, err := s.AcceptInvitationNew(ctx, tok, pw, "", meta); !errors.As(err, &ie) || ie.State != models.InvitationUsed {
		t.Fatalf("second use: %v", err)
	}
	if _, err := s.InvitationByToken(ctx, "not-a-token"); !errors.As(err, &ie) || ie.State != models.InvitationUnknown {
		t.Fatalf("unknown token: %v", err)
	}
	// Revoked.
	inv2, tok2, err := s.Invite(ctx, tm.owner, "two@agency.example", "viewer", models.ScopeInput{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeInvitation(ctx, tm.owner, inv2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.InvitationByToken(ctx, tok2); !errors.As(err, &ie) || ie.State != models.InvitationRevoked {
		t.Fatalf("revoked: %v", err)
	}
	other, _ := owner(t, s, "Other", "other@other.example")
	if err := s.RevokeInvitation(ctx, other, inv2.ID); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("another account revokes: %v", err)
	}
	// Expired after 7 days.
	_, tok3, err := s.Invite(ctx, tm.owner, "three@agency.example", "viewer", models.ScopeInput{All: true})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(models.InvitationTTL - time.Second)
	if _, err := s.InvitationByToken(ctx, tok3); err != nil {
		t.Fatalf("one second before expiry: %v", err)
	}
	clock.Advance(time.Second)
	if _, _, err := s.AcceptInvitationNew(ctx, tok3, pw, "", meta); !errors.As(err, &ie) || ie.State != models.InvitationExpired {
		t.Fatalf("expired: %v", err)
	}
	var n int64
	s.DB().Table("audit_entries").Where("action IN ?", []string{models.ActionMemberInvited, models.ActionInvitationAccepted, models.ActionInvitationRevoked}).Count(&n)
	if n != 5 {
		t.Fatalf("%d invitation audit entries, want 5", n)
	}
}

func TestPasswordResetLifecycle(t *testing.T) {
	t.Parallel()
	s, clock := testdb.Open(t)
	tm := newTeam(t, s)
	sess, _, err := s.Login(ctx, "owner@acme.example", pw, "", meta)
	if err != nil {
		t.Fatal(err)
	}
	if tok, u, err := s.RequestPasswordReset(ctx, "nobody@acme.example", meta); err != nil || tok != "" || u != nil {
		t.Fatalf("unknown address: %q %v %v", tok, u, err)
	}
	tok, u, err := s.RequestPasswordReset(ctx, "OWNER@acme.example", meta)
	if err != nil || tok == "" || u.ID != tm.owner.UserID {
		t.Fatalf("known address: %v", err)
	}
	var stored []string
	s.DB().Table("password_resets").Pluck("token_digest", &stored)
	if len(stored) != 1 || stored[0] == tok {
		t.Fatal("the reset token is stored as it is")
	}
	if err := s.ResetPassword(ctx, tok, "short", meta); models.FieldErrors(err)["password"] == "" {
		t.Fatalf("weak password: %v", err)
	}
	const next = "a brand new passphrase"
	if err := s.ResetPassword(ctx, tok, next, meta); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ResolveSession(ctx, sess); !errors.Is(err, models.ErrSessionInvalid) {
		t.Fatalf("a session survived the reset: %v", err)
	}
	if _, _, err := s.Login(ctx, "owner@acme.example", next, "", meta); err != nil {
		t.Fatalf("login with the new password: %v", err)
	}
	var re *models.ResetLinkError
	if err := s.ResetPassword(ctx, tok, "yet another passphrase", meta); !errors.As(err, &re) || re.State != models.InvitationUsed {
		t.Fatalf("second use: %v", err)
	}
	tok2, err := s.ResetLinkFor(ctx, "owner@acme.example", models.SystemActor())
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(models.PasswordResetTTL)
	if err := s.CheckResetLink(ctx, tok2); !errors.As(err, &re) || re.State != models.InvitationExpired {
		t.Fatalf("after 30 minutes: %v", err)
	}
	if _, err := s.ResetLinkFor(ctx, "nobody@acme.example", models.SystemActor()); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("operator link for nobody: %v", err)
	}
	var n int64
	s.DB().Table("audit_entries").Where("action = ?", models.ActionPasswordReset).Count(&n)
	if n != 1 {
		t.Fatalf("%d password.reset entries", n)
	}
}

// enrol turns 2FA on for the owner and returns the seed and recovery codes.
func enrol(t *testing.T, s *models.Store, email string) (string, []string) {
	t.Helper()
	tok, _, err := s.Login(ctx, email, pw, "", meta)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.ResolveSession(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.BeginTOTP(ctx, p)
	if err != nil || !strings.HasPrefix(e.URL, "otpauth://totp/") {
		t.Fatalf("begin: %v %+v", err, e)
	}
	var pending []string
	s.DB().Table("users").Where("id = ?", p.User.ID).Pluck("totp_pending", &pending)
	if len(pending) != 1 || strings.Contains(pending[0], e.Secret) {
		t.Fatal("the TOTP seed is stored in the clear")
	}
	if _, err := s.ConfirmTOTP(ctx, p, "000000", meta); models.FieldErrors(err)["code"] == "" {
		t.Fatalf("wrong code confirmed: %v", err)
	}
	again, err := s.PendingTOTP(p)
	if err != nil || again.Secret != e.Secret {
		t.Fatalf("pending seed: %v", err)
	}
	codes, err := s.ConfirmTOTP(ctx, p, models.TOTPCode(e.Secret, s.Now()), meta)
	if err != nil || len(codes) != models.RecoveryCodeCount {
		t.Fatalf("confirm: %v %d", err, len(codes))
	}
	return e.Secret, codes
}

func TestTOTPSignIn(t *testing.T) {
	t.Parallel()
	s, clock := testdb.Open(t)
	newTeam(t, s)
	seed, codes := enrol(t, s, "owner@acme.example")
	clock.Advance(90 * time.Second) // past the step used to confirm
	tok, p, err := s.Login(ctx, "owner@acme.example", pw, "", meta)
	if err != nil || !p.Session.Pending {
		t.Fatalf("password of a 2FA user: %v pending=%v", err, p != nil && p.Session.Pending)
	}
	pp, err := s.ResolveSession(ctx, tok)
	if err != nil || !pp.Session.Pending || pp.Account != nil {
		t.Fatalf("a pending session resolves to more than its user: %v %+v", err, pp)
	}
	if _, err := s.CompleteSignIn(ctx, tok, "123456", meta); models.FieldErrors(err)["code"] == "" {
		t.Fatalf("wrong code: %v", err)
	}
	// The previous step's code is accepted (clock drift)...
	prev := models.TOTPCode(seed, s.Now().Add(-30*time.Second))
	p, err = s.CompleteSignIn(ctx, tok, prev, meta)
	if err != nil || p.Session.Pending || p.Account == nil {
		t.Fatalf("previous window: %v", err)
	}
	if p, err = s.ResolveSession(ctx, tok); err != nil || p.Session.Pending {
		t.Fatalf("completed session: %v", err)
	}
	// ...once: a replay is refused, and so is an older step.
	tok2, _, _ := s.Login(ctx, "owner@acme.example", pw, "", meta)
	if _, err := s.CompleteSignIn(ctx, tok2, prev, meta); models.FieldErrors(err)["code"] == "" {
		t.Fatalf("replayed code: %v", err)
	}
	if _, err := s.CompleteSignIn(ctx, tok2, models.TOTPCode(seed, s.Now().Add(-60*time.Second)), meta); models.FieldErrors(err)["code"] == "" {
		t.Fatalf("code two steps old: %v", err)
	}
	// The next step's code works.
	if _, err := s.CompleteSignIn(ctx, tok2, models.TOTPCode(seed, s.Now().Add(30*time.Second)), meta); err != nil {
		t.Fatalf("next window: %v", err)
	}
	// Recovery codes: single use, dash optional, any case.
	tok3, _, _ := s.Login(ctx, "owner@acme.example", pw, "", meta)
	if _, err := s.CompleteSignIn(ctx, tok3, strings.ToUpper(strings.ReplaceAll(codes[0], "-", "")), meta); err != nil {
		t.Fatalf("recovery code: %v", err)
	}
	tok4, _, _ := s.Login(ctx, "owner@acme.example", pw, "", meta)
	if _, err := s.CompleteSignIn(ctx, tok4, codes[0], meta); models.FieldErrors(err)["code"] == "" {
		t.Fatalf("recovery code used twice: %v", err)
	}
	if left, _ := s.RecoveryCodesLeft(ctx, p.User.ID); left != models.RecoveryCodeCount-1 {
		t.Fatalf("%d recovery codes left", left)
	}
	// A pending session expires.
	tok5, _, _ := s.Login(ctx, "owner@acme.example", pw, "", meta)
	clock.Advance(models.PendingSecondFactorTTL + time.Second)
	if _, err := s.CompleteSignIn(ctx, tok5, models.TOTPCode(seed, s.Now()), meta); !errors.Is(err, models.ErrSessionInvalid) {
		t.Fatalf("stale pending session: %v", err)
	}
	// Sudo asks for the code too.
	clock.Advance(time.Minute)
	p, _ = s.ResolveSession(ctx, tok)
	if _, err := s.ReauthenticateWithCode(ctx, p, pw, "", meta); models.FieldErrors(err)["code"] == "" {
		t.Fatalf("sudo without a code: %v", err)
	}
	sudo, err := s.ReauthenticateWithCode(ctx, p, pw, models.TOTPCode(seed, s.Now()), meta)
	if err != nil {
		t.Fatalf("sudo with a code: %v", err)
	}
	fresh, err := s.RegenerateRecoveryCodes(ctx, sudo)
	if err != nil || len(fresh) != models.RecoveryCodeCount {
		t.Fatalf("regenerate: %v", err)
	}
	tok6, _, _ := s.Login(ctx, "owner@acme.example", pw, "", meta)
	if _, err := s.CompleteSignIn(ctx, tok6, codes[1], meta); models.FieldErrors(err)["code"] == "" {
		t.Fatalf("an old recovery code works after regeneration: %v", err)
	}
}

func TestSecondFactorIsThrottled(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	newTeam(t, s)
	seed, _ := enrol(t, s, "owner@acme.example")
	tok, _, _ := s.Login(ctx, "owner@acme.example", pw, "", meta)
	for i := 0; i < models.DefaultThrottle.PerPair; i++ {
		if _, err := s.CompleteSignIn(ctx, tok, "000000", meta); models.FieldErrors(err)["code"] == "" {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	var te *models.ThrottledError
	if _, err := s.CompleteSignIn(ctx, tok, models.TOTPCode(seed, s.Now().Add(30*time.Second)), meta); !errors.As(err, &te) {
		t.Fatalf("after %d wrong codes: %v, want a throttle", models.DefaultThrottle.PerPair, err)
	}
}

func TestRequire2FASendsMembersToEnrolment(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	tm := newTeam(t, s)
	p, _ := tm.join(t, s, "dev@agency.example", "developer", models.ScopeInput{All: true})
	tok := tokenOf(t, s, p)
	if err := s.SetRequire2FA(ctx, tm.owner, true); err != nil {
		t.Fatal(err)
	}
	p, err := s.ResolveSession(ctx, tok)
	if err != nil || !p.MustEnrol2FA {
		t.Fatalf("member without 2FA in a requiring account: %v %v", err, p.MustEnrol2FA)
	}
	_, dev := tm.join(t, s, "dev2@agency.example", "developer", models.ScopeInput{All: true})
	if err := s.SetRequire2FA(ctx, dev, false); !errors.Is(err, models.ErrForbidden) {
		t.Fatalf("developer changes the rule: %v", err)
	}
}

func TestSuspensionStopsKeysAndSessions(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	tm := newTeam(t, s)
	staff := support(t, s)
	sess, _, err := s.Login(ctx, "owner@acme.example", pw, "", meta)
	if err != nil {
		t.Fatal(err)
	}
	// Warm the cache: suspension must reach cached keys too.
	for _, r := range []models.Revealed{tm.res.Secret, tm.newsSecret} {
		if _, err := s.Verify(ctx, r.APIKey, r.Secret); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SuspendAccount(ctx, staff, tm.res.Account.ID, ""); models.FieldErrors(err)["reason"] == "" {
		t.Fatalf("suspension without a reason: %v", err)
	}
	if err := s.SuspendAccount(ctx, tm.owner, tm.res.Account.ID, "fraud"); !errors.Is(err, models.ErrForbidden) {
		t.Fatalf("an owner suspends: %v", err)
	}
	if err := s.SuspendAccount(ctx, staff, tm.news.Account.ID, "fraud"); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("suspend a sub-account: %v", err)
	}
	if err := s.SuspendAccount(ctx, staff, tm.res.Account.ID, "chargebacks"); err != nil {
		t.Fatal(err)
	}
	for _, r := range []models.Revealed{tm.res.Secret, tm.newsSecret, tm.billSecret} {
		if _, err := s.Verify(ctx, r.APIKey, r.Secret); !errors.Is(err, models.ErrVerifyFailed) {
			t.Fatalf("key %s of a suspended account verified: %v", r.APIKey, err)
		}
	}
	if _, err := s.ResolveSession(ctx, sess); !errors.Is(err, models.ErrSessionInvalid) {
		t.Fatalf("session of a suspended account: %v", err)
	}
	tok, p, err := s.Login(ctx, "owner@acme.example", pw, "", meta)
	if err != nil || !p.Suspended() {
		t.Fatalf("people of a suspended account sign in to the suspended page: %v", err)
	}
	if p, err = s.ResolveSession(ctx, tok); err != nil || !p.Suspended() || p.Account.SuspendedReason != "chargebacks" {
		t.Fatalf("resolved: %v", err)
	}
	if err := s.ReinstateAccount(ctx, staff, tm.res.Account.ID, "paid"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(ctx, tm.newsSecret.APIKey, tm.newsSecret.Secret); err != nil {
		t.Fatalf("after reinstatement: %v", err)
	}
	var n int64
	s.DB().Table("audit_entries").Where("action IN ? AND actor_user_id = ?", []string{models.ActionAccountSuspended, models.ActionAccountReinstated}, staff.UserID).Count(&n)
	if n != 2 {
		t.Fatalf("%d suspension entries", n)
	}
}

// Suspension reaches every instance at once, through the NOTIFY path
// deactivation uses: a key cached as valid on instance B is refused as
// soon as instance A commits the suspension.
func TestSuspensionReachesOtherInstances(t *testing.T) {
	t.Parallel()
	if testdb.Engine() != models.Postgres {
		t.Skip("multi-instance cache invalidation runs in the PostgreSQL suite (KEYDESK_TEST_DB); a SQLite file has one instance")
	}
	dsn := testdb.DSN(t)
	clock := testdb.NewClock()
	a := testdb.OpenDSN(t, dsn, testdb.Options(clock))
	b := testdb.OpenDSN(t, dsn, testdb.Options(clock))
	waitCache(t, a, b)
	tm := newTeam(t, a)
	staff := support(t, a)
	for _, r := range []models.Revealed{tm.res.Secret, tm.newsSecret} {
		if _, err := b.Verify(ctx, r.APIKey, r.Secret); err != nil {
			t.Fatalf("instance B: %v", err)
		}
	}
	if err := a.SuspendAccount(ctx, staff, tm.res.Account.ID, "fraud"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for _, r := range []models.Revealed{tm.res.Secret, tm.newsSecret} {
		d := waitRejected(t, b, r.APIKey, r.Secret, start)
		t.Logf("instance B refused %s %v after the suspension", r.APIKey, d)
	}
}

// Turning two-factor sign-in off takes sudo (the password and a code, or
// a sign-in with them, within SudoWindow), drops the recovery codes, is
// audited, and leaves the password alone enough to sign in. Where the
// account requires it, it cannot be turned off.
func TestDisableTOTP(t *testing.T) {
	t.Parallel()
	s, clock := testdb.Open(t)
	tm := newTeam(t, s)
	seed, _ := enrol(t, s, "owner@acme.example")
	clock.Advance(90 * time.Second)
	tok, _, err := s.Login(ctx, "owner@acme.example", pw, "", meta)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.CompleteSignIn(ctx, tok, models.TOTPCode(seed, s.Now()), meta)
	if err != nil {
		t.Fatal(err)
	}

	// Required by the account: refused, 2FA stays on.
	if err := s.SetRequire2FA(ctx, p.Actor(meta), true); err != nil {
		t.Fatal(err)
	}
	if p, err = s.ResolveSession(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := s.DisableTOTP(ctx, p, p.Actor(meta)); models.FieldErrors(err)["form"] == "" {
		t.Fatalf("turned off where it is required: %v", err)
	}
	if err := s.SetRequire2FA(ctx, p.Actor(meta), false); err != nil {
		t.Fatal(err)
	}

	// Outside the sudo window: refused until the prompt is answered.
	clock.Advance(models.SudoWindow + time.Minute)
	if p, err = s.ResolveSession(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := s.DisableTOTP(ctx, p, p.Actor(meta)); !errors.Is(err, models.ErrReauthRequired) {
		t.Fatalf("outside sudo: %v", err)
	}
	if !p.User.Has2FA() {
		t.Fatal("2FA went off outside sudo")
	}
	sudo, err := s.ReauthenticateWithCode(ctx, p, pw, models.TOTPCode(seed, s.Now()), meta)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DisableTOTP(ctx, p, sudo); err != nil {
		t.Fatalf("in sudo: %v", err)
	}
	if left, _ := s.RecoveryCodesLeft(ctx, p.User.ID); left != 0 {
		t.Fatalf("%d recovery codes left after turning 2FA off", left)
	}
	var entries int64
	testdb.Must(t, s.DB().Table("audit_entries").Where("action = ? AND account_id = ?", models.ActionTOTPDisabled, tm.res.Account.ID).Count(&entries))
	if entries != 1 {
		t.Fatalf("%d %s entries", entries, models.ActionTOTPDisabled)
	}
	// The password alone signs in again.
	if _, lp, err := s.Login(ctx, "owner@acme.example", pw, "", meta); err != nil || lp.Session.Pending {
		t.Fatalf("sign-in after turning 2FA off: %v pending=%v", err, lp != nil && lp.Session.Pending)
	}
	// Twice is harmless.
	if err := s.DisableTOTP(ctx, p, sudo); err != nil {
		t.Fatalf("again: %v", err)
	}
}

// Reviewing the account's audit log is the owner's and the admins' (the
// role table's PermAuditReview): an admin's review is the account's, a
// developer may not review, and no member takes an auditor's review of
// the whole log for their account's.
func TestAdminsReviewTheAccountsAuditLog(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	tm := newTeam(t, s)
	_, admin := tm.join(t, s, "admin@acme.example", "admin", models.ScopeInput{All: true})
	_, dev := tm.join(t, s, "dev@acme.example", "developer", models.ScopeInput{All: true})
	aud, err := s.CreateStaffUser(ctx, "aud@keydesk.example", pw, models.RoleAuditor, models.SystemActor())
	if err != nil {
		t.Fatal(err)
	}
	auditor := models.Actor{UserID: aud.ID, Email: aud.Email, Role: models.RoleAuditor}
	st, err := s.AuditStatusFor(ctx, auditor)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.MarkReviewed(ctx, auditor, st.Head, "whole log"); err != nil {
		t.Fatal(err)
	}
	for name, who := range map[string]models.Actor{"owner": tm.owner, "admin": admin, "developer": dev} {
		if st, err := s.AuditStatusFor(ctx, who); err != nil || st.LastReview != nil {
			t.Errorf("%s: the auditor's review of the whole log shows as the account's (%v)", name, err)
		}
	}
	if st, err = s.AuditStatusFor(ctx, admin); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MarkReviewed(ctx, admin, st.Head, "admin check"); err != nil {
		t.Fatalf("admin reviews the account's log: %v", err)
	}
	if st, err := s.AuditStatusFor(ctx, tm.owner); err != nil || st.LastReview == nil || st.LastReview.Note != "admin check" {
		t.Fatalf("the owner does not see the admin's review: %+v %v", st.LastReview, err)
	}
	if _, err := s.MarkReviewed(ctx, dev, st.Head, ""); !errors.Is(err, models.ErrForbidden) {
		t.Fatalf("developer reviews: %v", err)
	}
	support := models.Actor{UserID: 99, Role: models.RoleSupport}
	for name, tc := range map[string]struct {
		a    models.Actor
		want bool
	}{"owner": {tm.owner, true}, "admin": {admin, true}, "developer": {dev, false}, "auditor": {auditor, true}, "support": {support, false}} {
		if got := tc.a.MayReviewAudit(); got != tc.want {
			t.Errorf("%s may review: %v, want %v", name, got, tc.want)
		}
	}
}

// With --staff-2fa, staff without two-factor sign-in must enrol first, and
// once enrolled cannot turn it off; an owner of the same deployment is
// free to (the account does not require it).
func TestStaffRequire2FA(t *testing.T) {
	t.Parallel()
	clock := testdb.NewClock()
	opt := testdb.Options(clock)
	opt.StaffRequire2FA = true
	s := testdb.OpenDSN(t, testdb.MigratedDSN(t), opt)
	staff := support(t, s)
	tok, _, err := s.Login(ctx, staff.Email, pw, "", meta)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.ResolveSession(ctx, tok)
	if err != nil || !p.MustEnrol2FA {
		t.Fatalf("staff without 2FA under --staff-2fa: must enrol = %v (%v)", p != nil && p.MustEnrol2FA, err)
	}
	seed, _ := enrol(t, s, staff.Email)
	clock.Advance(90 * time.Second)
	tok, _, err = s.Login(ctx, staff.Email, pw, "", meta)
	if err != nil {
		t.Fatal(err)
	}
	if p, err = s.CompleteSignIn(ctx, tok, models.TOTPCode(seed, s.Now()), meta); err != nil || p.MustEnrol2FA {
		t.Fatalf("enrolled staff: %v must enrol = %v", err, p != nil && p.MustEnrol2FA)
	}
	if err := s.DisableTOTP(ctx, p, p.Actor(meta)); models.FieldErrors(err)["form"] == "" {
		t.Fatalf("staff turned 2FA off under --staff-2fa: %v", err)
	}
	owner(t, s, "Acme", "owner@acme.example")
	otok, _, err := s.Login(ctx, "owner@acme.example", pw, "", meta)
	if err != nil {
		t.Fatal(err)
	}
	if op, err := s.ResolveSession(ctx, otok); err != nil || op.MustEnrol2FA {
		t.Fatalf("an owner under --staff-2fa: must enrol = %v (%v)", op != nil && op.MustEnrol2FA, err)
	}
}
