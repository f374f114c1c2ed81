package handlers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"keydesk/models"
)

// otherPerson is a second person in the same browser, in a browser context
// of their own (own cookies), on the same app.
func (b *browserT) otherPerson() *browserT {
	b.t.Helper()
	tab, cancelTab := chromedp.NewContext(b.tab, chromedp.WithNewBrowserContext())
	b.t.Cleanup(cancelTab)
	if err := chromedp.Do(tab); err != nil {
		b.t.Fatalf("open a second browser context: %v", err)
	}
	ctx, cancel := context.WithTimeout(tab, browserTimeout)
	b.t.Cleanup(cancel)
	o := &browserT{t: b.t, app: b.app, tab: tab, ctx: ctx}
	o.do("set the viewport", chromedp.EmulateViewport(1280, 900))
	return o
}

// Issue 15: two people share an account safely, end to end. The owner
// invites a developer scoped to one sub-account; the developer accepts,
// turns on two-factor sign-in, sees only that sub-account and resets its
// secret; the owner removes them, and their open tab's next request lands
// on the login page.
func TestBrowserTeamInviteScopedDeveloperTwoFactorRemove(t *testing.T) {
	b := newBrowser(t)
	b.signUp("Acme Mail", "owner@acme.example")
	b.finishReveal()
	store, ctx := b.app.store, context.Background()
	var owner struct{ ID, AccountID uint }
	store.DB().Raw("SELECT id, account_id FROM users WHERE email = ?", "owner@acme.example").Scan(&owner)
	store.DB().Table("accounts").Where("id = ?", owner.AccountID).Update("subaccount_limit", 5)
	actor := models.Actor{UserID: owner.ID, Email: "owner@acme.example", Role: models.RoleOwner, AccountID: owner.AccountID, AuthAt: b.app.clock.Now()}
	rows := map[string]string{} // the keys-table row of each sub-account
	for _, name := range []string{"newsletters", "billing"} {
		sub, _, err := store.CreateSubaccount(ctx, actor, name, "")
		if err != nil {
			t.Fatal(err)
		}
		rows[name] = fmt.Sprintf(`tr#key-%d[data-testid="key-row"]`, sub.Key.ID)
	}
	subRow := func(name string) string { return rows[name] }

	// The owner invites dev@ as a developer with access to newsletters only.
	b.navigate("open the team page", chromedp.Click(chromedp.CSS(`nav a[href="/team"]`)))
	b.wantPath("/team")
	b.fill(`[data-testid="invite-email"]`, "dev@agency.example")
	b.do("choose developer", chromedp.SetValue(chromedp.CSS(`#f-role`), "developer"))
	b.click(`[data-testid="invite-form"] [data-testid="scope-list"]`)
	b.click(`[data-testid="invite-form"] [data-testid="scope-newsletters"]`)
	b.navigate("send the invitation", chromedp.Click(chromedp.CSS(`[data-testid="invite-submit"]`)))
	link := b.text(`[data-testid="invite-link"]`)
	if !strings.HasPrefix(link, b.app.web.Config.BaseURL+"/invite?t=") {
		t.Fatalf("revealed link %q", link)
	}
	b.navigate("done with the link", chromedp.Click(chromedp.CSS(`[data-testid="invite-reveal"] a`)))
	if strings.Contains(b.html(), link) {
		t.Fatal("the invitation link is shown again")
	}

	// The developer, in a browser of their own, accepts.
	dev := b.otherPerson()
	dev.navigate("open the invitation", chromedp.Navigate(b.app.srv.URL+strings.TrimPrefix(link, b.app.web.Config.BaseURL)))
	if got := dev.normText(`[data-testid="invitation-page"] h1`); got != "Join Acme Mail on keydesk" {
		t.Fatalf("invitation page: %q", got)
	}
	dev.fill(`[data-testid="accept-password"]`, testPassword)
	dev.navigate("accept", chromedp.Click(chromedp.CSS(`[data-testid="accept-submit"]`)))
	dev.wantPath("/keys")

	// Two-factor sign-in from the account menu.
	dev.click(`[data-testid="account-menu"]`)
	dev.navigate("open Security", chromedp.Click(chromedp.CSS(`[data-testid="menu-security"]`)))
	dev.navigate("set up 2FA", chromedp.Click(chromedp.CSS(`[data-testid="2fa-setup"]`)))
	dev.visible(`[data-testid="totp-qr"]`)
	if !eval[bool](dev, `document.querySelector('[data-testid="totp-qr"]').complete && document.querySelector('[data-testid="totp-qr"]').naturalWidth > 0`) {
		t.Fatal("the QR code image did not load (CSP or data: URL)")
	}
	seed := dev.text(`[data-testid="totp-secret"]`)
	dev.fill(`[data-testid="enrol-code"]`, models.TOTPCode(seed, b.app.clock.Now()))
	dev.navigate("turn 2FA on", chromedp.Click(chromedp.CSS(`[data-testid="enrol-submit"]`)))
	if n := eval[int](dev, `document.querySelectorAll('[data-testid="recovery-code-list"] li').length`); n != models.RecoveryCodeCount {
		t.Fatalf("%d recovery codes shown", n)
	}
	dev.navigate("done with the codes", chromedp.Click(chromedp.CSS(`[data-testid="codes-done"]`)))
	dev.wantPath("/keys")

	// Only newsletters: no master key, no billing.
	if dev.has(masterCard) || dev.has(subRow("billing")) || !dev.has(subRow("newsletters")) {
		t.Fatalf("the developer's keys page shows more than their access:\n%s", dev.html())
	}
	// Reset its secret through the gear menu.
	dev.click(subRow("newsletters") + ` [data-testid="gear"]`)
	dev.click(subRow("newsletters") + ` [data-testid="menu-reset"]`)
	dev.visible(`[data-testid="reset-dialog"]`)
	dev.click(`[data-testid="confirm-reset"]`)
	dev.visible(revealModal)
	apiKey, secret := dev.text(revealAPIKey), dev.text(revealSecret)
	if _, err := store.Verify(ctx, apiKey, secret); err != nil {
		t.Fatalf("the developer's new secret does not verify: %v", err)
	}
	dev.click(storedBox)
	dev.waitFor("Done is enabled", `!document.querySelector(`+js(revealDone)+`).disabled`)
	dev.navigate("press Done", chromedp.Click(chromedp.CSS(revealDone)))
	dev.wantPath("/keys")

	// The owner sees the developer on /team (2FA on) and removes them.
	b.navigate("reload the team page", chromedp.Navigate(b.app.srv.URL+"/team"))
	row := `[data-testid="member-dev@agency.example"]`
	if got := b.normText(row); !strings.Contains(got, "developer") || !strings.Contains(got, "newsletters") || !strings.Contains(got, "on") {
		t.Fatalf("team row: %q", got)
	}
	b.navigate("remove", chromedp.Click(chromedp.CSS(row+` [data-testid="member-remove"]`)))
	b.navigate("confirm the removal", chromedp.Click(chromedp.CSS(`[data-testid="member-remove-submit"]`)))
	b.wantPath("/team")

	// The developer's open tab: the next request lands on the login page.
	dev.navigate("the developer clicks API keys", chromedp.Click(chromedp.CSS(`nav a[href="/keys"]`)))
	dev.wantPath("/login")
}

// has reports whether sel matches an element on the page.
func (b *browserT) has(sel string) bool {
	b.t.Helper()
	return eval[bool](b, `document.querySelector(`+js(sel)+`) !== null`)
}
