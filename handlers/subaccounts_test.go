package handlers_test

// Handler tests for the owner's side of sub-accounts (issue 4): creating
// one (reveal, validation, sudo mode, the plan limit), asking for more, and
// the sub-account key's own gear-menu actions and tenancy.

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"keydesk/models"
	"keydesk/models/testdb"
)

// ---- helpers shared with support_test.go ----

// createSub posts the create form (token from /subaccounts) with name.
func (c *client) createSub(name string, extra ...string) *resp {
	c.t.Helper()
	form := url.Values{"name": {name}}
	for i := 0; i+1 < len(extra); i += 2 {
		form.Set(extra[i], extra[i+1])
	}
	return c.submit("/subaccounts", "/subaccounts", form)
}

// mustCreateSub creates a sub-account and returns its revealed credentials.
func (c *client) mustCreateSub(name string) (apiKey, secret string) {
	c.t.Helper()
	r := c.createSub(name)
	if r.status != http.StatusCreated {
		c.t.Fatalf("create sub-account %q: status %d, want 201", name, r.status)
	}
	apiKey, secret = r.revealed()
	if apiKey == "" || secret == "" {
		c.t.Fatalf("create sub-account %q: no reveal", name)
	}
	return apiKey, secret
}

// requestMore posts the "request more sub-accounts" form.
func (c *client) requestMore(extra, reason string) *resp {
	c.t.Helper()
	return c.submit("/subaccounts", "/subaccounts/requests", url.Values{"extra": {extra}, "reason": {reason}})
}

// principal verifies a credential pair and returns who it authenticates.
func (a *app) principal(apiKey, secret string) models.KeyPrincipal {
	a.t.Helper()
	p, err := a.store.Verify(context.Background(), apiKey, secret)
	if err != nil {
		a.t.Fatalf("verify %s: %v", apiKey, err)
	}
	return p
}

// subCount is the number of sub-accounts of a main account in the database.
func (a *app) subCount(parentID uint) int64 {
	a.t.Helper()
	var n int64
	if err := a.store.DB().Table("accounts").Where("parent_id = ?", parentID).Count(&n).Error; err != nil {
		a.t.Fatalf("count sub-accounts: %v", err)
	}
	return n
}

// requestCount is the number of limit requests of an account in the database.
func (a *app) requestCount(accountID uint) int64 {
	a.t.Helper()
	var n int64
	if err := a.store.DB().Table("limit_requests").Where("account_id = ?", accountID).Count(&n).Error; err != nil {
		a.t.Fatalf("count limit requests: %v", err)
	}
	return n
}

// auditCount counts audit entries with action (and, when given, target name).
func (a *app) auditCount(action string, targetName ...string) int64 {
	a.t.Helper()
	q := a.store.DB().Table("audit_entries").Where("action = ?", action)
	if len(targetName) > 0 {
		q = q.Where("target_name = ?", targetName[0])
	}
	var n int64
	if err := q.Count(&n).Error; err != nil {
		a.t.Fatalf("count audit entries: %v", err)
	}
	return n
}

// owner signs up an account and returns the client, its account ID and the
// master credentials.
func (a *app) owner(account, email string) (c *client, accountID uint, apiKey, secret string) {
	a.t.Helper()
	c = a.client()
	apiKey, secret = c.signup(account, email)
	return c, a.principal(apiKey, secret).AccountID, apiKey, secret
}

// keyRowSel finds the keys-table row of the key named name on r.
func keyRowSel(r *resp, name string) *goquery.Selection {
	return r.doc.Find(`[data-testid="key-row"]`).FilterFunction(func(_ int, s *goquery.Selection) bool {
		return strings.TrimSpace(s.Find(`[data-testid="key-name"]`).Text()) == name
	})
}

// ---- Creating a sub-account ----

func TestCreateSubaccountRevealsWorkingCredentials(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c, accountID, masterKey, masterSecret := a.owner("Acme Mail", "owner@acme.example")

	form := c.get("/subaccounts/new")
	if form.status != http.StatusOK || !form.has(`[data-testid="create-dialog"] form[action="/subaccounts"] input[name="name"]`) {
		t.Fatalf("GET /subaccounts/new: status %d, or no create form", form.status)
	}
	if form.has(`[data-testid="create-dialog"] input[name="password"]`) {
		t.Fatal("the create dialog asks for the password inside the sudo window")
	}
	if got := form.text(`[data-testid="create-dialog"] [data-testid="usage"]`); got != "0 of 1 sub-accounts used" {
		t.Fatalf("create dialog usage %q, want 0 of 1", got)
	}

	r := c.createSub("Newsletters", "description", "EU newsletters")
	if r.status != http.StatusCreated {
		t.Fatalf("POST /subaccounts: status %d, want 201", r.status)
	}
	assertNoStore(t, "sub-account reveal", r)
	apiKey, secret := r.revealed()
	if !apiKeyFormat.MatchString(apiKey) || !secretFormat.MatchString(secret) {
		t.Fatalf("reveal: API key %q / secret %q do not look like credentials", apiKey, secret)
	}
	if apiKey == masterKey || secret == masterSecret {
		t.Fatal("the sub-account got the master key's credentials")
	}
	if title := r.text(`#reveal-modal-title`); !strings.Contains(title, "Newsletters") {
		t.Fatalf("reveal title %q does not name the sub-account", title)
	}
	if href, _ := r.doc.Find(`[data-testid="reveal-modal"] form[data-reveal-form]`).Attr("action"); href != "/subaccounts" {
		t.Fatalf("Done leads to %q, want /subaccounts (where the flow started)", href)
	}
	p := a.principal(apiKey, secret)
	if p.ParentID != accountID || p.AccountID == accountID || p.IsMaster {
		t.Fatalf("sub-account principal %+v: want ParentID %d, its own account, not master", p, accountID)
	}
	if a.auditCount(models.ActionSubaccountNew, "Newsletters") != 1 {
		t.Fatal("no subaccount.created audit entry")
	}

	// The keys page: its own row in the sub-account keys table (the master
	// key has its own card), its own gear menu.
	keys := c.get("/keys")
	row := keyRowSel(keys, "Newsletters")
	if row.Length() != 1 {
		t.Fatalf("/keys has %d rows named Newsletters, want 1", row.Length())
	}
	if row.Closest(`[data-testid="keys-table"]`).Length() != 1 || row.Closest(`[data-testid="master-card"]`).Length() != 0 {
		t.Fatal("the sub-account key is not a row of the sub-account keys table")
	}
	if got := strings.TrimSpace(row.Find(`code`).First().Text()); got != apiKey {
		t.Fatalf("API key in the row %q, want %q", got, apiKey)
	}
	subID := c.keyIDs()["Newsletters"]
	if subID == "" || subID == c.masterID() {
		t.Fatalf("sub-account key ID %q (master %s)", subID, c.masterID())
	}
	for _, item := range []string{"reset", "rename", "deactivate"} {
		href, _ := row.Find(`[data-testid="gear-menu"] [data-testid="menu-` + item + `"]`).Attr("href")
		if href != "/keys/"+subID+"/"+item {
			t.Errorf("gear menu %s link %q, want /keys/%s/%s", item, href, subID, item)
		}
	}
	if got := strings.TrimSpace(row.Find(`[data-testid="secret-hint"]`).Text()); got != hint(secret) {
		t.Errorf("secret hint %q, want %q", got, hint(secret))
	}
	if strings.Contains(keys.body, secret) {
		t.Fatal("/keys contains the sub-account's secret")
	}

	// The sub-accounts page: the row, the usage line, the limit notice.
	subs := c.get("/subaccounts")
	if got := subs.text(`[data-testid="usage"]`); got != "1 of 1 sub-accounts used" {
		t.Fatalf("usage %q, want 1 of 1 sub-accounts used", got)
	}
	rows := subs.doc.Find(`[data-testid="subaccount-row"]`)
	if rows.Length() != 1 || !strings.Contains(rows.Text(), "Newsletters") || !strings.Contains(rows.Text(), apiKey) || !strings.Contains(rows.Text(), "EU newsletters") {
		t.Fatalf("sub-accounts table: %d rows, text %q", rows.Length(), strings.Join(strings.Fields(rows.Text()), " "))
	}
	if !subs.has(`[data-testid="limit-reached"]`) || !subs.has(`[data-testid="request-more"]`) || subs.has(`[data-testid="create-subaccount"]`) {
		t.Fatal("at the limit /subaccounts does not replace Create with the explanation and Request more")
	}
	if strings.Contains(subs.body, secret) {
		t.Fatal("/subaccounts contains the secret")
	}
	// The master key is untouched.
	if !a.verifies(masterKey, masterSecret) {
		t.Fatal("creating a sub-account broke the master key")
	}
}

func TestCreateSubaccountFromKeysThroughHTMX(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c, _, _, _ := a.owner("Acme Mail", "owner@acme.example")
	hx := c.with("HX-Request", "true")
	frag := hx.get("/subaccounts/new?from=keys")
	if frag.status != http.StatusOK || strings.Contains(strings.ToLower(frag.body), "<html") {
		t.Fatalf("htmx GET /subaccounts/new: status %d, or a whole page", frag.status)
	}
	if v, _ := frag.doc.Find(`[data-testid="create-dialog"] input[name="from"]`).Attr("value"); v != "keys" {
		t.Fatalf("create dialog from=%q, want keys", v)
	}
	// An unknown "from" can never send Done elsewhere.
	bad := c.get("/subaccounts/new?from=https://evil.example")
	if v, _ := bad.doc.Find(`[data-testid="create-dialog"] input[name="from"]`).Attr("value"); v != "subaccounts" {
		t.Fatalf("from=evil rendered as %q, want subaccounts", v)
	}
	r := hx.submit("/keys", "/subaccounts", url.Values{"name": {"Transactional"}, "from": {"keys"}})
	if r.status != http.StatusCreated || strings.Contains(strings.ToLower(r.body), "<html") {
		t.Fatalf("htmx create: status %d, or a whole page", r.status)
	}
	assertNoStore(t, "htmx sub-account reveal", r)
	apiKey, secret := r.revealed()
	if !a.verifies(apiKey, secret) {
		t.Fatal("the htmx reveal's credentials do not verify")
	}
	if href, _ := r.doc.Find(`form[data-reveal-form]`).Attr("action"); href != "/keys" {
		t.Fatalf("Done leads to %q, want /keys", href)
	}
}

func TestCreateSubaccountNameValidation(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, value, want string }{
		{"empty", "", "Enter a name"},
		{"only spaces", "   ", "Enter a name"},
		{"65 characters", strings.Repeat("a", 65), "64"},
		{"duplicate, other case", "NEWSLETTERS", "already"},
		{"duplicate of the main account", "acme mail", "already"},
		{"control character", "bad\x07name", "control"},
		{"line break", "two\nlines", "control"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newApp(t)
			c, accountID, _, _ := a.owner("Acme Mail", "owner@acme.example")
			a.setPlan(accountID, models.PlanEssential)
			c.mustCreateSub("Newsletters")
			r := c.createSub(tc.value, "description", "kept")
			if r.status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422", r.status)
			}
			msg := r.text(`[data-testid="create-dialog"] #e-name`)
			if !strings.Contains(msg, tc.want) {
				t.Fatalf("inline error %q, want it to mention %q", msg, tc.want)
			}
			if v, _ := r.doc.Find(`[data-testid="create-dialog"] #f-name`).Attr("aria-invalid"); v != "true" {
				t.Fatal("name field not marked aria-invalid")
			}
			if got := r.text(`[data-testid="create-dialog"] #f-description`); got != "kept" {
				t.Fatalf("description not kept in the re-rendered form: %q", got)
			}
			if _, s := r.revealed(); s != "" {
				t.Fatal("a refused create revealed a secret")
			}
			if n := a.subCount(accountID); n != 1 {
				t.Fatalf("%d sub-accounts after a refused create, want 1", n)
			}
		})
	}
}

func TestCreateSubaccountDescriptionValidation(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c, accountID, _, _ := a.owner("Acme Mail", "owner@acme.example")
	r := c.createSub("Newsletters", "description", strings.Repeat("d", 281))
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.text(`[data-testid="create-dialog"] .field-error`), "280") {
		t.Fatalf("281-character description: status %d, error %q", r.status, r.text(`.field-error`))
	}
	if a.subCount(accountID) != 0 {
		t.Fatal("a refused create made a sub-account")
	}
}

func TestCreateSubaccountOutsideSudoModeAsksForPassword(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c, accountID, _, _ := a.owner("Acme Mail", "owner@acme.example")
	a.clock.Advance(16 * time.Minute)

	form := c.get("/subaccounts/new")
	if !form.has(`[data-testid="create-dialog"] input[name="password"][type="password"]`) {
		t.Fatal("outside sudo mode the create dialog has no password field")
	}

	r := c.createSub("Newsletters")
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("no password: status %d, want 422", r.status)
	}
	if msg := r.text(`[data-testid="create-dialog"] #e-password`); !strings.Contains(msg, "password") {
		t.Fatalf("no password: inline error %q", msg)
	}
	r = c.createSub("Newsletters", "password", "not my password")
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("wrong password: status %d, want 422", r.status)
	}
	if msg := r.text(`[data-testid="create-dialog"] #e-password`); !strings.Contains(msg, "not correct") {
		t.Fatalf("wrong password: inline error %q", msg)
	}
	if v, _ := r.doc.Find(`[data-testid="create-dialog"] #f-name`).Attr("value"); v != "Newsletters" {
		t.Fatalf("wrong password: the name was not kept (%q)", v)
	}
	if _, s := r.revealed(); s != "" || a.subCount(accountID) != 0 {
		t.Fatal("a create without the right password made a sub-account")
	}

	r = c.createSub("Newsletters", "password", testPassword)
	if r.status != http.StatusCreated {
		t.Fatalf("right password: status %d, want 201", r.status)
	}
	assertNoStore(t, "reveal after re-authentication", r)
	if apiKey, secret := r.revealed(); !a.verifies(apiKey, secret) {
		t.Fatal("the sub-account created after re-authentication does not verify")
	}
	if a.subCount(accountID) != 1 {
		t.Fatal("no sub-account after the right password")
	}
}

// ---- The plan limit and requests for more ----

func TestAtTheLimitCreateShowsTheRequestForm(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c, accountID, _, _ := a.owner("Acme Mail", "owner@acme.example")
	c.mustCreateSub("Newsletters")

	for _, path := range []string{"/subaccounts/new", "/subaccounts/new?from=keys"} {
		r := c.get(path)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s at the limit: %d", path, r.status)
		}
		if r.has(`[data-testid="create-dialog"]`) {
			t.Fatalf("GET %s at the limit still offers the create form", path)
		}
		if !r.has(`[data-testid="limit-dialog"] form[action="/subaccounts/requests"] input[name="extra"]`) ||
			!r.has(`[data-testid="limit-dialog"] textarea[name="reason"]`) {
			t.Fatalf("GET %s at the limit: no request form (how many, why)", path)
		}
		if !strings.Contains(r.text(`[data-testid="limit-dialog"]`), "allows 1 sub-account and all are in use") {
			t.Fatalf("GET %s: the limit dialog does not explain the limit", path)
		}
	}

	r := c.createSub("Billing")
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("POST /subaccounts at the limit: status %d, want 422", r.status)
	}
	if !r.has(`[data-testid="limit-dialog"]`) || !strings.Contains(r.text(`[data-testid="limit-dialog"] [role="alert"]`), "limit") {
		t.Fatal("POST /subaccounts at the limit: no limit dialog with the explanation")
	}
	if _, s := r.revealed(); s != "" {
		t.Fatal("POST /subaccounts at the limit revealed a secret")
	}
	if n := a.subCount(accountID); n != 1 {
		t.Fatalf("%d sub-accounts after creating over the limit, want 1", n)
	}
	if _, ok := c.keyIDs()["Billing"]; ok {
		t.Fatal("the refused sub-account is on /keys")
	}
}

func TestLimitRequestValidation(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, extra, reason, field, want string }{
		{"zero", "0", "two new clients", "extra", "between 1 and 100"},
		{"101", "101", "two new clients", "extra", "between 1 and 100"},
		{"negative", "-3", "two new clients", "extra", "between 1 and 100"},
		{"not a number", "lots", "two new clients", "extra", "whole number"},
		{"decimal", "2.5", "two new clients", "extra", "whole number"},
		{"empty number", "", "two new clients", "extra", "whole number"},
		{"empty reason", "2", "", "reason", "reason is required"},
		{"blank reason", "2", "   ", "reason", "reason is required"},
		{"501-character reason", "2", strings.Repeat("r", 501), "reason", "500"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newApp(t)
			c, accountID, _, _ := a.owner("Acme Mail", "owner@acme.example")
			c.mustCreateSub("Newsletters")
			r := c.requestMore(tc.extra, tc.reason)
			if r.status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422", r.status)
			}
			var msg string
			if tc.field == "extra" {
				msg = r.text(`[data-testid="limit-dialog"] #e-extra`)
			} else {
				msg = r.text(`[data-testid="limit-dialog"] textarea[name="reason"] + .field-error`)
			}
			if !strings.Contains(msg, tc.want) {
				t.Fatalf("inline %s error %q, want it to mention %q", tc.field, msg, tc.want)
			}
			if !r.has(`[data-testid="limit-dialog"] form[action="/subaccounts/requests"]`) {
				t.Fatal("the refused request does not show the form again")
			}
			if n := a.requestCount(accountID); n != 0 {
				t.Fatalf("%d limit requests after a refused one, want 0", n)
			}
		})
	}
}

func TestLimitRequestIsPendingAndOnlyOneAtATime(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c, accountID, _, _ := a.owner("Acme Mail", "owner@acme.example")
	c.mustCreateSub("Newsletters")

	r := c.requestMore("3", "Three new EU clients next month")
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/subaccounts?done=requested" {
		t.Fatalf("request: status %d, Location %q", r.status, r.header.Get("Location"))
	}
	page := c.get(r.header.Get("Location"))
	if got := page.text(`main [role="status"].alert-success`); !strings.Contains(got, "sent to support") {
		t.Fatalf("after the request: notice %q", got)
	}
	reqs := page.doc.Find(`[data-testid="limit-request"]`)
	if reqs.Length() != 1 {
		t.Fatalf("%d requests on /subaccounts, want 1", reqs.Length())
	}
	text := strings.Join(strings.Fields(reqs.Text()), " ")
	if !strings.Contains(text, "+3 sub-accounts") || !strings.Contains(text, "Three new EU clients next month") {
		t.Fatalf("request line %q lacks the number or the reason", text)
	}
	if got := strings.TrimSpace(reqs.Find(`[data-testid="request-status"]`).Text()); got != "Pending" {
		t.Fatalf("request status %q, want Pending", got)
	}
	if a.auditCount(models.ActionLimitRequested) != 1 {
		t.Fatal("no limit_request.created audit entry")
	}

	// While it is pending the dialog says so, and a second one is refused.
	dlg := c.get("/subaccounts/new")
	if !strings.Contains(dlg.text(`[data-testid="pending-request"]`), "request for 3 more") || dlg.has(`[data-testid="limit-dialog"] form`) {
		t.Fatal("with a pending request the dialog does not say it is waiting (or still offers the form)")
	}
	r = c.requestMore("5", "Actually five")
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("second request: status %d, want 422", r.status)
	}
	if msg := r.text(`[data-testid="limit-dialog"] [role="alert"]`); !strings.Contains(msg, "already have a pending request") {
		t.Fatalf("second request: message %q", msg)
	}
	if n := a.requestCount(accountID); n != 1 {
		t.Fatalf("%d limit requests, want 1", n)
	}
}

func TestLimitRequestThroughHTMXRedirects(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c, _, _, _ := a.owner("Acme Mail", "owner@acme.example")
	c.mustCreateSub("Newsletters")
	hx := c.with("HX-Request", "true")
	bad := hx.requestMore("0", "")
	if bad.status != http.StatusUnprocessableEntity || strings.Contains(strings.ToLower(bad.body), "<html") || !bad.has("#e-extra") {
		t.Fatalf("htmx request error: status %d, want a 422 fragment with the inline error", bad.status)
	}
	r := hx.requestMore("2", "Two new clients")
	if r.status != http.StatusOK || r.header.Get("HX-Redirect") != "/subaccounts?done=requested" {
		t.Fatalf("htmx request: status %d, HX-Redirect %q", r.status, r.header.Get("HX-Redirect"))
	}
}

// ---- The sub-account key's gear menu ----

func TestSubaccountKeyDeactivateAndActivate(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c, _, masterKey, masterSecret := a.owner("Acme Mail", "owner@acme.example")
	apiKey, secret := c.mustCreateSub("Newsletters")
	id := c.keyIDs()["Newsletters"]

	dlg := c.get("/keys/" + id + "/deactivate")
	if !dlg.has(`[data-testid="deactivate-dialog"] form[action="/keys/` + id + `/deactivate"]`) {
		t.Fatal("no deactivate dialog for the sub-account key")
	}
	if dlg.has(`[data-testid="deactivate-dialog"] [role="alert"]`) {
		t.Fatal("the sub-account's deactivate dialog shows the master-key refusal")
	}
	r := c.submit("/keys", "/keys/"+id+"/deactivate", nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/keys?done=deactivated" {
		t.Fatalf("deactivate: status %d, Location %q", r.status, r.header.Get("Location"))
	}
	if a.verifies(apiKey, secret) {
		t.Fatal("a deactivated sub-account key still verifies")
	}
	if !a.verifies(masterKey, masterSecret) {
		t.Fatal("deactivating the sub-account key broke the master key")
	}
	keys := c.get("/keys?done=deactivated")
	row := keyRowSel(keys, "Newsletters")
	if got := strings.TrimSpace(row.Find(`[data-testid="status"]`).Text()); !strings.Contains(got, "Inactive") {
		t.Fatalf("status after deactivation %q", got)
	}
	if row.Find(`[data-testid="menu-activate"]`).Length() != 1 || row.Find(`[data-testid="menu-deactivate"]`).Length() != 0 {
		t.Fatal("the inactive key's gear menu does not offer Activate (only)")
	}
	if got := c.get("/subaccounts").text(`[data-testid="subaccount-row"] [data-testid="status"]`); !strings.Contains(got, "Inactive") {
		t.Fatalf("/subaccounts status after deactivation %q", got)
	}

	r = c.submit("/keys", "/keys/"+id+"/activate", nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/keys?done=activated" {
		t.Fatalf("activate: status %d, Location %q", r.status, r.header.Get("Location"))
	}
	if !a.verifies(apiKey, secret) {
		t.Fatal("the activated sub-account key does not verify with its secret")
	}
	if got := strings.TrimSpace(keyRowSel(c.get("/keys"), "Newsletters").Find(`[data-testid="status"]`).Text()); strings.Contains(got, "Inactive") {
		t.Fatalf("status after activation %q", got)
	}
}

func TestSubaccountKeyResetAndRename(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c, _, masterKey, masterSecret := a.owner("Acme Mail", "owner@acme.example")
	apiKey, old := c.mustCreateSub("Newsletters")
	id := c.keyIDs()["Newsletters"]

	r := c.reset(id, url.Values{"grace": {"0"}})
	if r.status != http.StatusOK {
		t.Fatalf("reset the sub-account key: status %d", r.status)
	}
	assertNoStore(t, "sub-account reset reveal", r)
	gotKey, fresh := r.revealed()
	if gotKey != apiKey {
		t.Fatalf("reset reveal API key %q, want the sub-account's %q", gotKey, apiKey)
	}
	if fresh == "" || fresh == old || !a.verifies(apiKey, fresh) || a.verifies(apiKey, old) {
		t.Fatal("the reset did not replace the sub-account's secret")
	}
	if !a.verifies(masterKey, masterSecret) {
		t.Fatal("resetting the sub-account key changed the master secret")
	}
	if got := strings.TrimSpace(keyRowSel(c.get("/keys"), "Newsletters").Find(`[data-testid="secret-hint"]`).Text()); got != hint(fresh) {
		t.Fatalf("hint after reset %q, want %q", got, hint(fresh))
	}

	r = c.submit("/keys", "/keys/"+id+"/rename", url.Values{"name": {"Newsletters EU"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("rename the sub-account key: status %d", r.status)
	}
	if _, ok := c.keyIDs()["Newsletters EU"]; !ok {
		t.Fatal("the renamed sub-account key is not on /keys under its new name")
	}
}

// ---- Tenancy ----

func TestOtherOwnersSubaccountKeyAnswers404(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	alice, aliceAccount, _, _ := a.owner("Alice Co", "alice@acme.example")
	a.setPlan(aliceAccount, models.PlanEssential)
	activeKey, activeSecret := alice.mustCreateSub("Alice Active")
	inactiveKey, inactiveSecret := alice.mustCreateSub("Alice Paused")
	ids := alice.keyIDs()
	activeID, inactiveID := ids["Alice Active"], ids["Alice Paused"]
	if r := alice.submit("/keys", "/keys/"+inactiveID+"/deactivate", nil); r.status != http.StatusSeeOther {
		t.Fatalf("alice deactivates her own key: %d", r.status)
	}

	bob, _, _, _ := a.owner("Bob Co", "bob@acme.example")
	for _, id := range []string{activeID, inactiveID} {
		for _, p := range []string{"reset", "rename", "deactivate"} {
			r := bob.get("/keys/" + id + "/" + p)
			if r.status != http.StatusNotFound {
				t.Fatalf("bob GET /keys/%s/%s: %d, want 404", id, p, r.status)
			}
			if strings.Contains(r.body, "Alice") || strings.Contains(r.body, activeKey) || strings.Contains(r.body, inactiveKey) {
				t.Fatalf("bob's 404 for /keys/%s/%s leaks Alice's key", id, p)
			}
		}
		posts := map[string]url.Values{
			"reset": {"grace": {"0"}}, "rename": {"name": {"Stolen"}}, "deactivate": nil, "activate": nil,
		}
		for p, form := range posts {
			r := bob.submit("/keys", "/keys/"+id+"/"+p, form)
			if r.status != http.StatusNotFound {
				t.Fatalf("bob POST /keys/%s/%s: %d, want 404", id, p, r.status)
			}
			if _, s := r.revealed(); s != "" {
				t.Fatalf("bob POST /keys/%s/%s revealed a secret", id, p)
			}
		}
	}

	// Nothing changed: the active key still verifies with its secret and
	// its name; the paused one is still inactive.
	if !a.verifies(activeKey, activeSecret) {
		t.Fatal("Alice's active sub-account key stopped working (reset or deactivated by Bob)")
	}
	if k := a.keyRow(activeKey, activeSecret); k.Name != "Alice Active" || !k.IsActive {
		t.Fatalf("Alice's active key changed: name %q active %v", k.Name, k.IsActive)
	}
	if a.verifies(inactiveKey, inactiveSecret) {
		t.Fatal("Bob activated Alice's paused sub-account key")
	}
	var names []string
	testdb.Must(t, a.store.DB().Table("api_keys").Where("api_key IN ?", []string{activeKey, inactiveKey}).Order("id").Pluck("name", &names))
	if strings.Join(names, ",") != "Alice Active,Alice Paused" {
		t.Fatalf("Alice's key names are now %v", names)
	}
	// Bob sees none of Alice's sub-accounts.
	if page := bob.get("/subaccounts"); strings.Contains(page.body, "Alice") || page.has(`[data-testid="subaccount-row"]`) {
		t.Fatal("Bob's /subaccounts shows Alice's sub-accounts")
	}
	if _, ok := bob.keyIDs()["Alice Active"]; ok {
		t.Fatal("Bob's /keys shows Alice's sub-account key")
	}
}
