package handlers_test

// The sub-accounts story of issue 4 in Chromium, end to end: an owner on
// the free plan creates a sub-account from /keys, hits the limit, asks for
// more; support approves with a new limit and a note; the owner sees the
// decision and creates another sub-account, whose secret is shown once.

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"keydesk/models"
)

// logInAs signs in through the login form and expects to land on want.
func (b *browserT) logInAs(email, want string) {
	b.t.Helper()
	b.navigate("open /login", chromedp.Navigate(b.app.srv.URL+"/login"))
	b.wantPath("/login")
	b.fill("#f-email", email)
	b.fill("#f-password", testPassword)
	b.navigate("log in as "+email, chromedp.Click(chromedp.CSS(`form[action="/login"] button[type="submit"]`)))
	b.wantPath(want)
}

// logOutViaMenu logs out through the account menu.
func (b *browserT) logOutViaMenu() {
	b.t.Helper()
	b.click(`[data-testid="account-menu"]`)
	b.visible(`[data-testid="logout"]`)
	b.navigate("log out", chromedp.Click(chromedp.CSS(`[data-testid="logout"]`)))
	b.wantPath("/login")
}

// markPage sets a flag a full page load would clear.
func (b *browserT) markPage() {
	b.t.Helper()
	b.do("mark the page", chromedp.Evaluate[chromedp.Void](`window.__keydeskNoReload = true`))
}

func (b *browserT) wantNoReload(what string) {
	b.t.Helper()
	if !eval[bool](b, `window.__keydeskNoReload === true`) {
		b.t.Fatalf("%s reloaded the page (expected an htmx swap)", what)
	}
}

// normText is the element's text with whitespace collapsed.
func (b *browserT) normText(sel string) string {
	b.t.Helper()
	return strings.Join(strings.Fields(b.text(sel)), " ")
}

func TestBrowserSubaccountLimitRequestApprovalStory(t *testing.T) {
	b := newBrowser(t)
	const ownerEmail, staffEmail = "owner@acme.example", "ana@support.example"
	masterKey, masterSecret := b.signUp("Acme Mail", ownerEmail)
	b.finishReveal()
	ctx := context.Background()
	owner, err := b.app.store.Verify(ctx, masterKey, masterSecret)
	if err != nil {
		t.Fatalf("verify the master key: %v", err)
	}

	// ---- 1. Create sub-account from /keys, through htmx. ----
	b.markPage()
	b.click(`[data-testid="create-subaccount"]`)
	b.visible(`[data-testid="create-dialog"]`)
	b.wantNoReload("opening the create dialog")
	b.wantPath("/keys")
	if got := b.text(`[data-testid="create-dialog"] [data-testid="usage"]`); got != "0 of 1 sub-accounts used" {
		t.Errorf("create dialog usage %q, want 0 of 1", got)
	}
	b.waitFor("focus moves to the name field", focusIs(`#create-dialog #f-name`))
	b.fill(`#create-dialog #f-name`, "Newsletters")
	b.fill(`#create-dialog #f-description`, "EU newsletters")
	b.click(`[data-testid="confirm-create"]`)
	b.visible(revealModal)
	b.wantNoReload("creating the sub-account")
	if got := b.text(`#reveal-modal-title`); !strings.Contains(got, "Newsletters") {
		t.Errorf("reveal title %q does not name the sub-account", got)
	}
	subKey, subSecret := b.text(revealAPIKey), b.text(revealSecret)
	if !apiKeyFormat.MatchString(subKey) || !secretFormat.MatchString(subSecret) || subKey == masterKey {
		t.Fatalf("sub-account reveal: API key %q, secret %q", subKey, subSecret)
	}
	if !eval[bool](b, `document.querySelector(`+js(revealDone)+`).disabled`) {
		t.Error("Done is enabled before ticking in the sub-account reveal")
	}
	p, err := b.app.store.Verify(ctx, subKey, subSecret)
	if err != nil || p.ParentID != owner.AccountID || p.IsMaster {
		t.Fatalf("the sub-account's credentials: principal %+v, err %v (want parent %d)", p, err, owner.AccountID)
	}
	b.finishReveal()

	// In the keys table, as a sub-account with its own gear menu; no secret.
	row := `[data-testid="keys-table"] [data-testid="key-row"]`
	if n := eval[int](b, `document.querySelectorAll(`+js(row)+`).length`); n != 1 {
		t.Fatalf("%d rows in the keys table, want 1", n)
	}
	if got := b.text(row + ` [data-testid="key-name"]`); got != "Newsletters" {
		t.Errorf("keys table name %q", got)
	}
	if got := b.text(row + ` [data-testid="status"]`); !strings.Contains(got, "Active") {
		t.Errorf("keys table status %q, want Active", got)
	}
	b.visible(row + ` [data-testid="gear"]`)
	if got := b.text(row + ` code`); got != subKey {
		t.Errorf("keys table API key %q, want %q", got, subKey)
	}
	if strings.Contains(b.html(), subSecret) {
		t.Fatal("the keys page after Done contains the sub-account's secret")
	}

	// ---- 2. At the limit: Create gives way to Request more, and the
	// banner says why (the same state as on /subaccounts). ----
	b.visible(`[data-testid="limit-reached"]`)
	if n := eval[int](b, `document.querySelectorAll('[data-testid="create-subaccount"]').length`); n != 0 {
		t.Fatal("at the limit /keys still offers Create sub-account")
	}
	b.markPage()
	b.click(`[data-testid="request-more"]`)
	b.visible(`[data-testid="limit-dialog"]`)
	b.wantNoReload("opening the limit dialog")
	if n := eval[int](b, `document.querySelectorAll('[data-testid="create-dialog"]').length`); n != 0 {
		t.Fatal("at the limit the create form opened")
	}
	if got := b.normText(`[data-testid="limit-dialog"]`); !strings.Contains(got, "allows 1 sub-account and all are in use") {
		t.Errorf("limit dialog %q does not explain the limit", got)
	}
	b.fill(`#limit-dialog #f-extra`, "2")
	b.fill(`#limit-dialog #f-reason`, "Two new EU clients next month")
	b.navigate("send the request", chromedp.Click(chromedp.CSS(`[data-testid="send-request"]`)))
	b.wantPath("/subaccounts")
	if got := b.text(`main [role="status"].alert-success`); !strings.Contains(got, "sent to support") {
		t.Errorf("after the request: notice %q", got)
	}
	if got := b.text(`[data-testid="limit-request"] [data-testid="request-status"]`); got != "Pending" {
		t.Fatalf("request status %q, want Pending", got)
	}
	if got := b.normText(`[data-testid="limit-request"]`); !strings.Contains(got, "+2 sub-accounts") || !strings.Contains(got, "Two new EU clients next month") {
		t.Errorf("request line %q", got)
	}
	if got := b.text(`[data-testid="usage"]`); got != "1 of 1 sub-accounts used" {
		t.Errorf("usage %q, want 1 of 1", got)
	}
	// Request pending: the banner near the top says so, and neither page
	// offers to ask again or to create.
	for _, page := range []string{"/subaccounts", "/keys"} {
		b.navigate("open "+page, chromedp.Navigate(b.app.srv.URL+page))
		if got := b.normText(`[data-testid="limit-pending"]`); !strings.Contains(got, "request for 2 more sub-accounts") || !strings.Contains(got, "waiting for support") {
			t.Errorf("%s pending banner %q", page, got)
		}
		for _, gone := range []string{"request-more", "create-subaccount", "limit-reached"} {
			if n := eval[int](b, `document.querySelectorAll('[data-testid="`+gone+`"]').length`); n != 0 {
				t.Errorf("%s shows %s while the request is pending", page, gone)
			}
		}
	}
	b.logOutViaMenu()

	// ---- 3. Support approves with a new limit and a note. ----
	b.app.staffUser(models.RoleSupport, staffEmail)
	b.logInAs(staffEmail, "/support")
	if got := b.text("main h1"); got != "Support" {
		t.Fatalf("support lands on %q", got)
	}
	queueRow := `[data-testid="queue"] [data-testid="queue-row"]`
	if n := eval[int](b, `document.querySelectorAll(`+js(queueRow)+`).length`); n != 1 {
		t.Fatalf("%d rows in the support queue, want 1", n)
	}
	if got := b.normText(queueRow); !strings.Contains(got, "Acme Mail") || !strings.Contains(got, "+2") || !strings.Contains(got, "1/1") {
		t.Errorf("queue row %q", got)
	}
	b.navigate("open the request", chromedp.Click(chromedp.CSS(queueRow+` a`)))
	accountPage := b.path()
	if !strings.HasPrefix(accountPage, "/support/accounts/") {
		t.Fatalf("Open led to %s", accountPage)
	}
	reqID := eval[string](b, `document.querySelector('[data-testid="support-request"]').id`)
	if !strings.HasPrefix(reqID, "request-") {
		t.Fatalf("request element id %q", reqID)
	}
	if got := b.text(`#` + reqID + ` [data-testid="request-status"]`); got != "Pending" {
		t.Errorf("support sees status %q", got)
	}
	if got := b.normText(`[data-testid="support-usage"]`); got != "1 used of 1" {
		t.Errorf("support usage %q", got)
	}
	page := b.html()
	for name, s := range map[string]string{"master": masterSecret, "sub-account": subSecret} {
		if strings.Contains(page, s) {
			t.Fatalf("the support account page contains the %s secret", name)
		}
	}
	// Approve without a note: the error comes back in place (htmx swaps
	// only this request), focus on the note, no page load, no re-post.
	b.markPage()
	b.click(`#` + reqID + ` [data-testid="approve"]`)
	b.visible(`#` + reqID + `-note-error`)
	b.wantNoReload("a refused approval")
	b.wantPath(accountPage)
	b.waitFor("focus on the note", focusIs(`#`+reqID+`-note`))
	b.fill(`#`+reqID+`-limit`, "3")
	b.fill(`#`+reqID+`-note`, "Approved per ticket 7")
	b.navigate("approve", chromedp.Click(chromedp.CSS(`#`+reqID+` [data-testid="approve"]`)))
	b.wantPath(accountPage)
	if got := b.text(`main [role="status"].alert-success`); !strings.Contains(got, "approved") {
		t.Errorf("after approving: notice %q", got)
	}
	if got := b.normText(`#` + reqID + ` [data-testid="request-status"]`); got != "Approved · limit 3" {
		t.Errorf("after approving: status %q", got)
	}
	if got := b.normText(`[data-testid="support-usage"]`); !strings.HasPrefix(got, "1 used of 3") {
		t.Errorf("after approving: usage %q", got)
	}
	b.logOutViaMenu()

	// ---- 4. The owner sees Approved and creates another sub-account. ----
	b.logInAs(ownerEmail, "/keys")
	b.navigate("open Sub-accounts", chromedp.Click(chromedp.CSS(`nav a[href="/subaccounts"]`)))
	b.wantPath("/subaccounts")
	if got := b.normText(`[data-testid="limit-request"] [data-testid="request-status"]`); got != "Approved · limit 3" {
		t.Fatalf("owner sees status %q", got)
	}
	if got := b.normText(`[data-testid="limit-request"]`); !strings.Contains(got, "Approved per ticket 7") || !strings.Contains(got, staffEmail) {
		t.Errorf("owner's request line %q lacks the note or who decided", got)
	}
	if got := b.text(`[data-testid="usage"]`); got != "1 of 3 sub-accounts used" {
		t.Errorf("usage %q, want 1 of 3", got)
	}

	b.markPage()
	b.click(`[data-testid="create-subaccount"]`)
	b.visible(`[data-testid="create-dialog"]`)
	b.wantNoReload("opening the create dialog on /subaccounts")
	b.fill(`#create-dialog #f-name`, "Transactional")
	b.click(`[data-testid="confirm-create"]`)
	b.visible(revealModal)
	newKey, newSecret := b.text(revealAPIKey), b.text(revealSecret)
	if !secretFormat.MatchString(newSecret) || newSecret == subSecret || newKey == subKey {
		t.Fatalf("second sub-account reveal: API key %q, secret %q", newKey, newSecret)
	}
	if p, err := b.app.store.Verify(ctx, newKey, newSecret); err != nil || p.ParentID != owner.AccountID {
		t.Fatalf("the second sub-account's credentials: %+v, %v", p, err)
	}
	b.click(storedBox)
	b.waitFor("Done is enabled after ticking", `!document.querySelector(`+js(revealDone)+`).disabled`)
	b.navigate("press Done", chromedp.Click(chromedp.CSS(revealDone)))
	b.wantPath("/subaccounts")

	// Shown once: neither page has the secret any more.
	if n := eval[int](b, `document.querySelectorAll('[data-testid="subaccount-row"]').length`); n != 2 {
		t.Fatalf("%d sub-accounts listed, want 2", n)
	}
	if got := b.text(`[data-testid="usage"]`); got != "2 of 3 sub-accounts used" {
		t.Errorf("usage %q, want 2 of 3", got)
	}
	for _, path := range []string{"/subaccounts", "/keys"} {
		b.navigate("open "+path, chromedp.Navigate(b.app.srv.URL+path))
		html := b.html()
		if strings.Contains(html, newSecret) || strings.Contains(html, subSecret) {
			t.Fatalf("%s contains a sub-account secret after Done", path)
		}
		if strings.Contains(html, `data-testid="reveal-modal"`) {
			t.Fatalf("%s still shows a reveal", path)
		}
		if !strings.Contains(html, newKey) {
			t.Errorf("%s does not list the new sub-account's API key", path)
		}
	}
}
