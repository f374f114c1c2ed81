package handlers_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"keydesk/models"
	"keydesk/models/testdb"
)

// The people screens (issue 15) in the same layout and accessibility walk
// as every other page: at 375, 768 and 1280 px nothing is cut off, covered
// or only reachable sideways, and axe finds no violation. Signed out: the
// forgot-password and reset pages, an invitation and the pages of links
// that no longer work. The owner: the team page with a member and a
// pending invitation, the invitation's one-time link, changing and
// removing a member, setting up two-factor sign-in. A member with
// two-factor sign-in: the code step, the 2FA page and new recovery codes.
// And a person whose account is suspended.
func TestBrowserLayoutPeoplePagesEveryWidth(t *testing.T) {
	b := newBrowser(t)
	b.newDeadline()
	f := newPeopleLayoutFixture(b)
	b.logOutViaMenu()

	b.newDeadline()
	b.runLayoutSteps("signed out", []layoutStep{
		{name: "forgot password", path: "/password/forgot"},
		{name: "forgot password, sent", path: "/password/forgot?sent=1"},
		{name: "choose a new password", path: "/password/reset?t=" + f.resetToken},
		{name: "reset link that does not work", path: "/password/reset?t=not-a-reset-link"},
		{name: "invitation", path: "/invite?t=" + f.inviteToken},
		{name: "invitation link that does not work", path: "/invite?t=not-an-invitation"},
	})

	b.newDeadline()
	b.logInAs(layoutOwner, "/keys")
	member := "/team/members/" + strconv.Itoa(int(f.memberID))
	noPendingTOTP := func(b *browserT) {
		testdb.Must(b.t, b.app.store.DB().Exec("UPDATE users SET totp_pending = '' WHERE email = ?", layoutOwner))
	}
	b.runLayoutSteps("owner", []layoutStep{
		{name: "team", path: "/team"},
		{name: "team, invitation link revealed", path: "/team", then: func(b *browserT) {
			// A new address at each width: the same one twice is refused.
			b.fill(`[data-testid="invite-email"]`, fmt.Sprintf("someone.with.a.long.address+%d@eu-agency.example", eval[int](b, "innerWidth")))
			b.navigate("send the invitation", chromedp.Click(chromedp.CSS(`[data-testid="invite-submit"]`)))
			b.visible(`[data-testid="invite-link"]`)
		}},
		{name: "team, change a member", path: member},
		{name: "team, remove a member", path: member + "/remove"},
		{name: "two-factor sign-in, start", path: "/account/2fa", before: noPendingTOTP, then: func(b *browserT) {
			b.visible(`[data-testid="2fa-setup"]`)
		}},
		{name: "two-factor sign-in, QR code", path: "/account/2fa", before: noPendingTOTP, then: func(b *browserT) {
			b.navigate("set up", chromedp.Click(chromedp.CSS(`[data-testid="2fa-setup"]`)))
			b.visible(`[data-testid="totp-qr"]`)
		}},
	})
	b.logOutViaMenu()

	// The member signs in with a code: the clock moves past the step the
	// enrolment used, so the code is not a replay.
	b.newDeadline()
	b.app.clock.Advance(time.Minute)
	b.logInAs(layoutMember, "/login/code")
	b.runLayoutSteps("member, second step", []layoutStep{{name: "code step", path: "/login/code"}})
	b.navigate("back to the code step", chromedp.Navigate(b.app.srv.URL+"/login/code"))
	b.fill(`[data-testid="login-code"]`, models.TOTPCode(f.memberSeed, b.app.clock.Now()))
	b.navigate("send the code", chromedp.Click(chromedp.CSS(`form[action="/login/code"] button[type="submit"]`)))
	b.wantPath("/keys")
	b.runLayoutSteps("member with 2FA", []layoutStep{
		{name: "two-factor sign-in on", path: "/account/2fa", then: func(b *browserT) { b.visible(`[data-testid="2fa-on"]`) }},
		{name: "new recovery codes", path: "/account/2fa", then: func(b *browserT) {
			b.navigate("new recovery codes", chromedp.Click(chromedp.CSS(`form[action="/account/2fa/recovery-codes"] button[type="submit"]`)))
			b.visible(`[data-testid="recovery-code-list"]`)
		}},
	})
	b.logOutViaMenu()

	b.newDeadline()
	b.logInAs(layoutSuspended, "/keys")
	b.runLayoutSteps("suspended", []layoutStep{{name: "account suspended", path: "/keys", then: func(b *browserT) {
		b.visible(`[data-testid="suspended-page"]`)
	}}})
}

const (
	layoutMember    = "developer.with.a.long.address@eu-agency.example"
	layoutSuspended = "owner@umbrella.example"
)

type peopleLayoutFixture struct {
	memberID    uint
	memberSeed  string // the member's TOTP seed
	inviteToken string // a pending invitation's link token
	resetToken  string // the owner's password-reset link token
}

func newPeopleLayoutFixture(b *browserT) peopleLayoutFixture {
	b.t.Helper()
	t, a, ctx := b.t, b.app, context.Background()
	var f peopleLayoutFixture
	b.signUp("Acme Mail", layoutOwner)
	b.finishReveal()
	owner := a.actorOf(layoutOwner)
	a.setPlan(owner.AccountID, models.PlanEssential)
	var subs []uint
	for _, n := range []string{"newsletters", layoutLongName} {
		sub, _, err := a.store.CreateSubaccount(ctx, owner, n, "")
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub.Account.ID)
	}

	// A developer scoped to both sub-accounts, with two-factor sign-in on.
	_, token, err := a.store.Invite(ctx, owner, layoutMember, string(models.RoleDeveloper), models.ScopeInput{Subaccounts: subs})
	if err != nil {
		t.Fatal(err)
	}
	_, p, err := a.store.AcceptInvitationNew(ctx, token, testPassword, "", models.RequestMeta{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := a.store.BeginTOTP(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.store.ConfirmTOTP(ctx, p, models.TOTPCode(e.Secret, a.clock.Now()), models.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	f.memberSeed = e.Secret
	team, err := a.store.Team(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range team.Members {
		if m.Email == layoutMember {
			f.memberID = m.MemberID
		}
	}
	if f.memberID == 0 {
		t.Fatalf("the member is not on the team: %+v", team.Members)
	}

	// A pending invitation: its row on /team, its link for the signed-out walk.
	if _, f.inviteToken, err = a.store.Invite(ctx, owner, "viewer@acme.example", string(models.RoleViewer), models.ScopeInput{All: true}); err != nil {
		t.Fatal(err)
	}
	if f.resetToken, err = a.store.ResetLinkFor(ctx, layoutOwner, models.SystemActor()); err != nil {
		t.Fatal(err)
	}

	// Another owner, whose account support suspended.
	if _, err := a.store.CreateAccount(ctx, models.SignUpInput{AccountName: "Umbrella Mail", Email: layoutSuspended, Password: testPassword, Plan: models.PlanFree}, models.Actor{}, models.ActionSignup); err != nil {
		t.Fatal(err)
	}
	a.staffUser(models.RoleSupport, layoutSupport)
	if err := a.store.SuspendAccount(ctx, a.actorOf(layoutSupport), a.actorOf(layoutSuspended).AccountID, "chargeback on the last three invoices"); err != nil {
		t.Fatal(err)
	}
	return f
}
