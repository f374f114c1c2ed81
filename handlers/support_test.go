package handlers_test

// Handler tests for the support console (issue 4): who may reach it, the
// queue, the search, the account page (never a secret or digest), limit
// changes and request decisions.

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"keydesk/models"
	"keydesk/models/testdb"
)

const supportEmail = "ana@support.example"

// supportClient is a signed-in support user.
func (a *app) supportClient() *client {
	a.t.Helper()
	return a.staff(models.RoleSupport, supportEmail)
}

// accountLimit is the account's stored override (nil when none).
func (a *app) accountLimit(accountID uint) *int {
	a.t.Helper()
	var acct models.Account
	if err := a.store.DB().Where("id = ?", accountID).Take(&acct).Error; err != nil {
		a.t.Fatalf("load account %d: %v", accountID, err)
	}
	return acct.SubaccountLimit
}

// limitRequest loads one limit request from the database.
func (a *app) limitRequest(id uint) models.LimitRequest {
	a.t.Helper()
	var r models.LimitRequest
	if err := a.store.DB().Where("id = ?", id).Take(&r).Error; err != nil {
		a.t.Fatalf("load limit request %d: %v", id, err)
	}
	return r
}

// pendingOwner is an owner at the free limit (one sub-account) with a
// pending request for extra more; it returns the request's ID.
func (a *app) pendingOwner(account, email string, extra int, reason string) (c *client, accountID, requestID uint) {
	a.t.Helper()
	c, accountID, _, _ = a.owner(account, email)
	c.mustCreateSub(account + " sub")
	if r := c.requestMore(fmt.Sprint(extra), reason); r.status != http.StatusSeeOther {
		a.t.Fatalf("%s asks for more: status %d", account, r.status)
	}
	var id uint
	if err := a.store.DB().Table("limit_requests").Where("account_id = ?", accountID).Order("id DESC").Limit(1).Pluck("id", &id).Error; err != nil || id == 0 {
		a.t.Fatalf("find %s's request: %v", account, err)
	}
	return c, accountID, id
}

func accountPath(id uint) string { return fmt.Sprintf("/support/accounts/%d", id) }

// ---- Who may reach /support ----

func TestSupportRoutesRefuseOwnersAndAuditorsWithAudited403(t *testing.T) {
	t.Parallel()
	for _, role := range []models.Role{models.RoleOwner, models.RoleAuditor} {
		t.Run(string(role), func(t *testing.T) {
			a := newApp(t)
			owner, accountID, reqID := a.pendingOwner("Acme Mail", "owner@acme.example", 2, "Two secret-project clients")
			c, tokenPage := owner, "/keys"
			if role == models.RoleAuditor {
				c, tokenPage = a.staff(models.RoleAuditor, "audrey@keydesk.example"), "/account/password"
			}
			routes := []struct {
				method, path string
				form         url.Values
			}{
				{"GET", "/support", nil},
				{"GET", "/support?q=acme", nil},
				{"GET", accountPath(accountID), nil},
				{"POST", accountPath(accountID) + "/limit", url.Values{"limit": {"50"}, "reason": {"I want more"}}},
				{"POST", fmt.Sprintf("/support/requests/%d/approve", reqID), url.Values{"limit": {"50"}, "note": {"self-approved"}, "account_id": {fmt.Sprint(accountID)}}},
				{"POST", fmt.Sprintf("/support/requests/%d/deny", reqID), url.Values{"note": {"self-denied"}, "account_id": {fmt.Sprint(accountID)}}},
			}
			for _, rt := range routes {
				path := strings.SplitN(rt.path, "?", 2)[0]
				// Repeats of one route within a minute are aggregated
				// (denials_test.go): each attempt here is in its own minute.
				a.clock.Advance(time.Minute)
				before := a.auditCount(models.ActionAccessDenied, path)
				var r *resp
				if rt.method == "GET" {
					r = c.get(rt.path)
				} else {
					r = c.submit(tokenPage, rt.path, rt.form)
				}
				if r.status != http.StatusForbidden {
					t.Fatalf("%s %s %s: status %d, want 403", role, rt.method, rt.path, r.status)
				}
				if !r.has(`[data-testid="error-page"]`) || strings.Contains(r.body, "secret-project") || r.has(`[data-testid="queue"]`) || r.has(`[data-testid="support-keys"]`) {
					t.Fatalf("%s %s %s: not a bare 403 page", role, rt.method, rt.path)
				}
				if got := a.auditCount(models.ActionAccessDenied, path); got != before+1 {
					t.Fatalf("%s %s %s: %d access.denied entries for the path, want %d", role, rt.method, rt.path, got, before+1)
				}
			}
			// The denials name who tried.
			var labels []string
			testdb.Must(t, a.store.DB().Table("audit_entries").Where("action = ?", models.ActionAccessDenied).Distinct().Pluck("actor_label", &labels))
			wantLabel := "owner@acme.example"
			if role == models.RoleAuditor {
				wantLabel = "audrey@keydesk.example"
			}
			if len(labels) != 1 || labels[0] != wantLabel {
				t.Fatalf("access.denied actors %v, want [%s]", labels, wantLabel)
			}
			// Nothing changed.
			if l := a.accountLimit(accountID); l != nil {
				t.Fatalf("a refused caller changed the limit to %d", *l)
			}
			if req := a.limitRequest(reqID); req.Status != models.RequestPending || req.Note != "" {
				t.Fatalf("a refused caller decided the request: %+v", req)
			}
		})
	}
}

func TestSupportRoutesSendSignedOutVisitorsToLogin(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	_, accountID, reqID := a.pendingOwner("Acme Mail", "owner@acme.example", 2, "Two new clients")
	c := a.client()
	for _, p := range []string{"/support", "/support?q=acme", accountPath(accountID)} {
		r := c.get(p)
		if want := "/login?next=" + url.QueryEscape(p); r.status != http.StatusSeeOther || r.header.Get("Location") != want {
			t.Fatalf("signed-out GET %s: status %d, Location %q, want 303 to %s", p, r.status, r.header.Get("Location"), want)
		}
	}
	for p, form := range map[string]url.Values{
		accountPath(accountID) + "/limit":                  {"limit": {"9"}, "reason": {"x"}},
		fmt.Sprintf("/support/requests/%d/approve", reqID): {"limit": {"9"}, "note": {"x"}},
		fmt.Sprintf("/support/requests/%d/deny", reqID):    {"note": {"x"}},
	} {
		r := c.submit("/login", p, form)
		if r.status != http.StatusUnauthorized {
			t.Fatalf("signed-out POST %s: status %d, want 401", p, r.status)
		}
	}
	if a.accountLimit(accountID) != nil || a.limitRequest(reqID).Status != models.RequestPending {
		t.Fatal("a signed-out POST changed the limit or decided the request")
	}
}

func TestSupportLogsInToSupportAndCannotActAsOwner(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	owner, accountID, _, _ := a.owner("Acme Mail", "owner@acme.example")
	masterID := owner.masterID()
	a.staffUser(models.RoleSupport, supportEmail)
	c := a.client()
	r := c.login(supportEmail, testPassword)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/support" {
		t.Fatalf("support login: status %d, Location %q, want 303 to /support", r.status, r.header.Get("Location"))
	}
	if r := c.get("/"); r.header.Get("Location") != "/support" {
		t.Fatalf("GET / as support: Location %q, want /support", r.header.Get("Location"))
	}
	home := c.get("/support")
	if home.status != http.StatusOK || home.text("main h1") != "Support" {
		t.Fatalf("GET /support: status %d, heading %q", home.status, home.text("main h1"))
	}
	if !home.has(`[data-testid="support-search"]`) || !home.has(`[data-testid="queue-empty"]`) {
		t.Fatal("/support lacks the search or the (empty) queue")
	}
	if home.has(`nav a[href="/keys"]`) || !home.has(`nav a[href="/support"][aria-current="page"]`) {
		t.Fatal("support's navigation offers /keys, or does not mark Support")
	}

	// Support cannot use the owner's pages or act as one.
	for _, p := range []string{"/keys", "/subaccounts", "/subaccounts/new", "/keys/" + masterID + "/reset"} {
		if r := c.get(p); r.status != http.StatusForbidden {
			t.Fatalf("support GET %s: status %d, want 403", p, r.status)
		}
	}
	posts := map[string]url.Values{
		"/subaccounts":                 {"name": {"Support made this"}},
		"/subaccounts/requests":        {"extra": {"5"}, "reason": {"because"}},
		"/keys/" + masterID + "/reset": {"grace": {"0"}},
	}
	for p, form := range posts {
		r := c.submit("/support", p, form)
		if r.status != http.StatusForbidden {
			t.Fatalf("support POST %s: status %d, want 403", p, r.status)
		}
		if _, s := r.revealed(); s != "" {
			t.Fatalf("support POST %s revealed a secret", p)
		}
	}
	if a.subCount(accountID) != 0 || a.requestCount(accountID) != 0 {
		t.Fatal("support created a sub-account or a request")
	}
	var keys int64
	testdb.Must(t, a.store.DB().Table("api_keys").Count(&keys))
	if keys != 1 {
		t.Fatalf("%d keys in the database, want only the master", keys)
	}
}

// ---- The queue and the search ----

func TestSupportQueueListsPendingRequestsOldestFirst(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	// Names in non-alphabetical order, so neither name nor reverse order
	// passes by chance.
	var ids []uint
	var accounts []uint
	for i, name := range []string{"Zeta Co", "Alpha Co", "Mid Co"} {
		_, acct, id := a.pendingOwner(name, fmt.Sprintf("owner%d@acme.example", i), i+1, "Reason of "+name)
		ids, accounts = append(ids, id), append(accounts, acct)
		a.clock.Advance(time.Hour)
	}
	// A decided request is not in the queue.
	_, _, decided := a.pendingOwner("Done Co", "done@acme.example", 1, "Already handled")
	sup := a.supportClient()
	if r := sup.submit("/support", fmt.Sprintf("/support/requests/%d/deny", decided), url.Values{"note": {"No"}}); r.status != http.StatusSeeOther {
		t.Fatalf("deny from the queue: status %d", r.status)
	}

	page := sup.get("/support")
	rows := page.doc.Find(`[data-testid="queue-row"]`)
	if rows.Length() != 3 {
		t.Fatalf("queue has %d rows, want 3 (pending only)", rows.Length())
	}
	want := []string{"Zeta Co", "Alpha Co", "Mid Co"}
	for i := range want {
		row := rows.Eq(i)
		if got := strings.TrimSpace(row.Find("td").Eq(1).Text()); got != want[i] {
			t.Fatalf("queue row %d: account %q, want %q (oldest first)", i, got, want[i])
		}
		text := norm(row.Text())
		if !strings.Contains(text, fmt.Sprintf("+%d", i+1)) || !strings.Contains(text, "Reason of "+want[i]) || !strings.Contains(text, "1/1") || !strings.Contains(text, "free") {
			t.Fatalf("queue row %d %q lacks the number, reason, usage or plan", i, text)
		}
		href, _ := row.Find("a").Attr("href")
		if wantHref := fmt.Sprintf("%s#request-%d", accountPath(accounts[i]), ids[i]); href != wantHref {
			t.Fatalf("queue row %d links to %q, want %q", i, href, wantHref)
		}
	}
	if !strings.Contains(page.text("#pending-heading"), "(3)") {
		t.Fatalf("queue heading %q, want the count 3", page.text("#pending-heading"))
	}
	if strings.Contains(page.body, "Already handled") {
		t.Fatal("the queue shows a decided request")
	}
}

func TestSupportSearchFindsAccountByNameEmailAndAPIKey(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	alice, aliceID, aliceMaster, _ := a.owner("Alice Mail", "alice@alice.example")
	subKey, _ := alice.mustCreateSub("Alice Newsletters")
	_, bobID, _, _ := a.owner("Bob Sends", "bob@bob.example")
	sup := a.supportClient()

	find := func(q string) []string {
		t.Helper()
		r := sup.get("/support?q=" + url.QueryEscape(q))
		if r.status != http.StatusOK {
			t.Fatalf("search %q: status %d", q, r.status)
		}
		if v, _ := r.doc.Find(`[data-testid="support-search"]`).Attr("value"); v != q {
			t.Fatalf("search %q: the box shows %q", q, v)
		}
		var hrefs []string
		r.doc.Find(`[data-testid="search-results"] a`).Each(func(_ int, s *goquery.Selection) {
			href, _ := s.Attr("href")
			hrefs = append(hrefs, href)
		})
		if len(hrefs) == 0 && !r.has(`[data-testid="no-results"]`) {
			t.Fatalf("search %q: neither results nor a no-results message", q)
		}
		return hrefs
	}
	alicePath, bobPath := accountPath(aliceID), accountPath(bobID)
	cases := []struct {
		q    string
		want []string
	}{
		{"Alice Mail", []string{alicePath}},
		{"alice mail", []string{alicePath}},
		{"Newsletters", []string{alicePath}}, // a sub-account's name finds its parent
		{"bob@bob.example", []string{bobPath}},
		{"BOB@BOB", []string{bobPath}},
		{subKey, []string{alicePath}}, // a sub-account's key finds its parent
		{aliceMaster, []string{alicePath}},
		{"nobody-matches-this", nil},
		{"%", nil},         // LIKE wildcards are literal
		{subKey[:10], nil}, // keys match whole, not by prefix
	}
	for _, tc := range cases {
		got := find(tc.q)
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("search %q: results %v, want %v", tc.q, got, tc.want)
		}
	}
	r := sup.get("/support?q=" + url.QueryEscape(subKey))
	if text := norm(r.text(`[data-testid="search-results"]`)); !strings.Contains(text, "alice@alice.example") || !strings.Contains(text, "1/1 sub-accounts") {
		t.Fatalf("search result %q lacks the owner e-mail or usage", text)
	}
}

// ---- The account page ----

func TestSupportAccountPageShowsNoSecretOrDigest(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	owner, accountID, masterKey, masterOld := a.owner("Acme Mail", "owner@acme.example")
	subKey, subSecret := owner.mustCreateSub("Newsletters")
	// A reset with a grace period: the key now has a previous digest too.
	r := owner.reset(owner.masterID(), url.Values{"grace": {"24h"}})
	_, masterNew := r.revealed()
	if masterNew == "" {
		t.Fatal("the master reset revealed nothing")
	}
	owner.requestMore("2", "Two new clients")

	sup := a.supportClient()
	page := sup.get(accountPath(accountID))
	if page.status != http.StatusOK {
		t.Fatalf("support account page: status %d", page.status)
	}
	// What support needs is there.
	if page.text(`[data-testid="account-name"]`) != "Acme Mail" {
		t.Fatalf("account name %q", page.text(`[data-testid="account-name"]`))
	}
	for _, want := range []string{"owner@acme.example", masterKey, subKey, "Newsletters", "Two new clients", "free"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("support account page lacks %q", want)
		}
	}
	if got := norm(page.text(`[data-testid="support-usage"]`)); got != "1 used of 1" {
		t.Errorf("usage %q, want 1 used of 1", got)
	}
	if n := page.doc.Find(`[data-testid="support-keys"] tbody tr`).Length(); n != 2 {
		t.Errorf("%d key rows, want 2", n)
	}

	// No secret and no digest, in any encoding, anywhere in the HTML.
	var rows []models.APIKey
	testdb.Must(t, a.store.DB().Where("api_key IN ?", []string{masterKey, subKey}).Find(&rows))
	if len(rows) != 2 || len(rows[0].SecretDigest) == 0 {
		t.Fatalf("could not load the stored digests (%d rows)", len(rows))
	}
	var digests [][]byte
	for _, k := range rows {
		digests = append(digests, k.SecretDigest)
	}
	var old []models.OldSecret
	a.store.DB().Find(&old)
	for _, o := range old {
		digests = append(digests, o.Digest)
	}
	if len(digests) != 3 {
		t.Fatalf("%d stored digests, want 3 (two current, one previous)", len(digests))
	}
	for _, s := range []string{masterOld, masterNew, subSecret} {
		sum := sha256.Sum256([]byte(s))
		digests = append(digests, sum[:])
		assertNotIn(t, page.body, "a secret", s)
		assertNotIn(t, page.body, "the random part of a secret", strings.TrimPrefix(s, models.SecretPrefix))
	}
	for _, d := range digests {
		assertNotIn(t, page.body, "a hex digest", hex.EncodeToString(d))
		assertNotIn(t, page.body, "a HEX digest", strings.ToUpper(hex.EncodeToString(d)))
		assertNotIn(t, page.body, "a base64 digest", base64.StdEncoding.EncodeToString(d))
		assertNotIn(t, page.body, "a base64url digest", base64.RawURLEncoding.EncodeToString(d))
	}
	for _, word := range []string{"secret_digest", "SecretDigest", "prev_secret_digest", "password_hash", "PasswordHash", "$argon2"} {
		assertNotIn(t, page.body, "an internal field", word)
	}
	// The search and the queue show none either.
	for _, p := range []string{"/support", "/support?q=" + subKey, "/support?q=acme"} {
		body := sup.get(p).body
		for _, s := range []string{masterOld, masterNew, subSecret} {
			assertNotIn(t, body, p+": a secret", s)
		}
		for _, d := range digests {
			assertNotIn(t, body, p+": a digest", hex.EncodeToString(d))
		}
	}
}

func assertNotIn(t *testing.T, body, what, s string) {
	t.Helper()
	if s != "" && strings.Contains(body, s) {
		t.Fatalf("the page contains %s (%q)", what, s)
	}
}

// ---- Changing the limit ----

func TestSupportChangeLimitValidation(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	owner, accountID, _, _ := a.owner("Acme Mail", "owner@acme.example")
	owner.mustCreateSub("Newsletters")
	sup := a.supportClient()
	path := accountPath(accountID)
	cases := []struct {
		name, limit, reason, field, want string
	}{
		{"no reason", "5", "", "reason", "reason is required"},
		{"blank reason", "5", "   ", "reason", "reason is required"},
		{"below usage", "0", "TICKET-1", "limit", "already uses 1"},
		{"negative", "-1", "TICKET-1", "limit", "between 0 and 10000"},
		{"too big", "10001", "TICKET-1", "limit", "between 0 and 10000"},
		{"not a number", "lots", "TICKET-1", "limit", "whole number"},
		{"empty", "", "TICKET-1", "limit", "whole number"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := sup.submit(path, path+"/limit", url.Values{"limit": {tc.limit}, "reason": {tc.reason}})
			if r.status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422", r.status)
			}
			if msg := r.text("#e-" + tc.field); !strings.Contains(msg, tc.want) {
				t.Fatalf("inline %s error %q, want it to mention %q", tc.field, msg, tc.want)
			}
			if v, _ := r.doc.Find("#f-limit").Attr("value"); v != tc.limit {
				t.Fatalf("the limit field was not kept: %q", v)
			}
			if r.text(`[data-testid="account-name"]`) != "Acme Mail" {
				t.Fatal("the 422 is not the account page")
			}
			if l := a.accountLimit(accountID); l != nil {
				t.Fatalf("a refused change set the limit to %d", *l)
			}
		})
	}
	if n := a.auditCount(models.ActionLimitChanged); n != 0 {
		t.Fatalf("%d limit.changed entries after refused changes", n)
	}
}

func TestSupportChangeLimitLetsOwnerCreateMore(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	owner, accountID, _, _ := a.owner("Acme Mail", "owner@acme.example")
	owner.mustCreateSub("Newsletters")
	if r := owner.createSub("Billing"); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("second sub-account on free: status %d, want 422", r.status)
	}
	sup := a.supportClient()
	path := accountPath(accountID)
	r := sup.submit(path, path+"/limit", url.Values{"limit": {" 3 "}, "reason": {"TICKET-42 growth"}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != path+"?done=limit" {
		t.Fatalf("change limit: status %d, Location %q", r.status, r.header.Get("Location"))
	}
	page := sup.get(r.header.Get("Location"))
	if got := page.text(`main [role="status"].alert-success`); got != "The sub-account limit was changed." {
		t.Fatalf("notice %q", got)
	}
	if got := norm(page.text(`[data-testid="support-usage"]`)); !strings.HasPrefix(got, "1 used of 3") || !strings.Contains(got, "plan default 1") {
		t.Fatalf("usage after the change %q", got)
	}
	if l := a.accountLimit(accountID); l == nil || *l != 3 {
		t.Fatalf("stored limit %v, want 3", l)
	}
	var entry models.AuditEntry
	if err := a.store.DB().Where("action = ?", models.ActionLimitChanged).Take(&entry).Error; err != nil {
		t.Fatalf("no limit.changed audit entry: %v", err)
	}
	if entry.ActorLabel != supportEmail || entry.ActorRole != string(models.RoleSupport) ||
		!strings.Contains(entry.Details, "TICKET-42 growth") || !strings.Contains(entry.Details, `"to":3`) {
		t.Fatalf("limit.changed entry: actor %q/%q details %s", entry.ActorLabel, entry.ActorRole, entry.Details)
	}

	if got := owner.get("/subaccounts").text(`[data-testid="usage"]`); got != "1 of 3 sub-accounts used" {
		t.Fatalf("owner's usage %q, want 1 of 3", got)
	}
	if apiKey, secret := owner.mustCreateSub("Billing"); !a.verifies(apiKey, secret) {
		t.Fatal("the sub-account created after the raise does not verify")
	}

	// Lowering to exactly the usage is allowed; below it is not.
	if r := sup.submit(path, path+"/limit", url.Values{"limit": {"2"}, "reason": {"back to usage"}}); r.status != http.StatusSeeOther {
		t.Fatalf("lower to usage: status %d", r.status)
	}
	if r := sup.submit(path, path+"/limit", url.Values{"limit": {"1"}, "reason": {"shrink"}}); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("lower below usage: status %d, want 422", r.status)
	}
	if l := a.accountLimit(accountID); l == nil || *l != 2 {
		t.Fatalf("stored limit %v, want 2", l)
	}
}

// ---- Deciding requests ----

func TestSupportApproveRequestRaisesLimitAndOwnerSeesNote(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	owner, accountID, reqID := a.pendingOwner("Acme Mail", "owner@acme.example", 2, "Two new EU clients")
	sup := a.supportClient()
	path := accountPath(accountID)
	form := fmt.Sprintf("request-%d", reqID)
	action := fmt.Sprintf("/support/requests/%d/approve", reqID)

	page := sup.get(path)
	req := page.doc.Find("#" + form)
	if req.Length() != 1 || !strings.Contains(norm(req.Text()), "+2 sub-accounts") || !strings.Contains(req.Text(), "owner@acme.example") {
		t.Fatalf("the account page does not show the request: %q", norm(req.Text()))
	}
	if v, _ := req.Find("#" + form + "-limit").Attr("value"); v != "3" {
		t.Fatalf("suggested new limit %q, want 3 (1 + 2)", v)
	}
	if fa, _ := req.Find(`[data-testid="approve"]`).Attr("formaction"); fa != action+"#"+form {
		t.Fatalf("approve button posts to %q, want %q", fa, action+"#"+form)
	}

	// The note is required.
	r := sup.submit(path, action, url.Values{"limit": {"3"}, "note": {""}, "account_id": {fmt.Sprint(accountID)}})
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("approve without a note: status %d, want 422", r.status)
	}
	if msg := r.text("#" + form + " .field-error"); !strings.Contains(msg, "required") {
		t.Fatalf("approve without a note: inline error %q", msg)
	}
	if v, _ := r.doc.Find("#" + form + "-limit").Attr("value"); v != "3" {
		t.Fatalf("approve without a note: limit not kept (%q)", v)
	}
	if a.limitRequest(reqID).Status != models.RequestPending || a.accountLimit(accountID) != nil {
		t.Fatal("a refused approval decided the request or changed the limit")
	}
	// A limit that is not a number is refused too.
	if r := sup.submit(path, action, url.Values{"limit": {"many"}, "note": {"ok"}, "account_id": {fmt.Sprint(accountID)}}); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("approve with limit=many: status %d, want 422", r.status)
	}

	r = sup.submit(path, action, url.Values{"limit": {"3"}, "note": {"Approved per ticket 7"}, "account_id": {fmt.Sprint(accountID)}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != path+"?done=approved" {
		t.Fatalf("approve: status %d, Location %q", r.status, r.header.Get("Location"))
	}
	after := sup.get(r.header.Get("Location"))
	if got := after.text(`main [role="status"].alert-success`); !strings.Contains(got, "approved") {
		t.Fatalf("notice after approving %q", got)
	}
	if got := norm(after.text("#" + form + ` [data-testid="request-status"]`)); got != "Approved · limit 3" {
		t.Fatalf("support sees status %q", got)
	}
	if after.has("#" + form + " form") {
		t.Fatal("the decided request still has the decision form")
	}
	if l := a.accountLimit(accountID); l == nil || *l != 3 {
		t.Fatalf("stored limit %v, want 3", l)
	}
	var entry models.AuditEntry
	if err := a.store.DB().Where("action = ?", models.ActionLimitApproved).Take(&entry).Error; err != nil {
		t.Fatalf("no limit_request.approved entry: %v", err)
	}
	if entry.ActorLabel != supportEmail || !strings.Contains(entry.Details, "Approved per ticket 7") {
		t.Fatalf("approval entry: actor %q details %s", entry.ActorLabel, entry.Details)
	}
	if q := sup.get("/support"); q.has(`[data-testid="queue-row"]`) {
		t.Fatal("the approved request is still in the queue")
	}

	// The owner sees the decision and the note, and can create two more.
	subs := owner.get("/subaccounts")
	line := subs.doc.Find(`[data-testid="limit-request"]`)
	if got := norm(line.Find(`[data-testid="request-status"]`).Text()); got != "Approved · limit 3" {
		t.Fatalf("owner sees status %q", got)
	}
	if text := norm(line.Text()); !strings.Contains(text, "Approved per ticket 7") || !strings.Contains(text, supportEmail) {
		t.Fatalf("owner's request line %q lacks the note or who decided", text)
	}
	if got := subs.text(`[data-testid="usage"]`); got != "1 of 3 sub-accounts used" {
		t.Fatalf("owner's usage %q", got)
	}
	owner.mustCreateSub("Second")
	owner.mustCreateSub("Third")
	if r := owner.createSub("Fourth"); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("fourth sub-account over the new limit: status %d, want 422", r.status)
	}
}

func TestSupportDenyRequestShowsDeniedWithNote(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	owner, accountID, reqID := a.pendingOwner("Acme Mail", "owner@acme.example", 5, "Five more please")
	sup := a.supportClient()
	path := accountPath(accountID)
	action := fmt.Sprintf("/support/requests/%d/deny", reqID)

	if r := sup.submit(path, action, url.Values{"note": {"  "}, "account_id": {fmt.Sprint(accountID)}}); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("deny without a note: status %d, want 422", r.status)
	}
	r := sup.submit(path, action, url.Values{"note": {"Upgrade to essential for more"}, "account_id": {fmt.Sprint(accountID)}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != path+"?done=denied" {
		t.Fatalf("deny: status %d, Location %q", r.status, r.header.Get("Location"))
	}
	if got := sup.get(r.header.Get("Location")).text(`main [role="status"].alert-success`); !strings.Contains(got, "denied") {
		t.Fatalf("notice after denying %q", got)
	}
	if a.accountLimit(accountID) != nil {
		t.Fatal("denying changed the limit")
	}
	if req := a.limitRequest(reqID); req.Status != models.RequestDenied || req.Note != "Upgrade to essential for more" {
		t.Fatalf("stored request %+v", req)
	}
	if a.auditCount(models.ActionLimitDenied) != 1 {
		t.Fatal("no limit_request.denied entry")
	}
	line := owner.get("/subaccounts").doc.Find(`[data-testid="limit-request"]`)
	if got := norm(line.Find(`[data-testid="request-status"]`).Text()); got != "Denied" {
		t.Fatalf("owner sees status %q, want Denied", got)
	}
	if !strings.Contains(line.Text(), "Upgrade to essential for more") {
		t.Fatal("the owner does not see support's note")
	}
	// Still at the limit, and free to ask again now that nothing is pending.
	if r := owner.createSub("Billing"); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("create after a denial: status %d, want 422", r.status)
	}
	if r := owner.requestMore("1", "Just one then"); r.status != http.StatusSeeOther {
		t.Fatalf("a new request after a denial: status %d", r.status)
	}
}

func TestSupportDecidingTwiceIs422(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	_, accountID, reqID := a.pendingOwner("Acme Mail", "owner@acme.example", 2, "Two more")
	sup := a.supportClient()
	path := accountPath(accountID)
	approve := fmt.Sprintf("/support/requests/%d/approve", reqID)
	deny := fmt.Sprintf("/support/requests/%d/deny", reqID)
	acct := fmt.Sprint(accountID)
	if r := sup.submit(path, approve, url.Values{"limit": {"3"}, "note": {"first"}, "account_id": {acct}}); r.status != http.StatusSeeOther {
		t.Fatalf("first approval: status %d", r.status)
	}
	for _, tc := range []struct {
		action string
		form   url.Values
	}{
		{approve, url.Values{"limit": {"10"}, "note": {"second"}, "account_id": {acct}}},
		{deny, url.Values{"note": {"changed my mind"}, "account_id": {acct}}},
		{approve, url.Values{"limit": {"10"}, "note": {"second, from the queue"}}},
	} {
		r := sup.submit(path, tc.action, tc.form)
		if r.status != http.StatusUnprocessableEntity {
			t.Fatalf("second decision %s: status %d, want 422", tc.action, r.status)
		}
		if tc.form.Get("account_id") != "" {
			if msg := r.text(fmt.Sprintf(`#request-%d [role="alert"]`, reqID)); !strings.Contains(msg, "already decided") {
				t.Fatalf("second decision %s: message %q, want it to say the request was already decided", tc.action, msg)
			}
		}
	}
	req := a.limitRequest(reqID)
	if req.Status != models.RequestApproved || req.Note != "first" || req.NewLimit == nil || *req.NewLimit != 3 {
		t.Fatalf("the second decisions changed the request: %+v", req)
	}
	if l := a.accountLimit(accountID); l == nil || *l != 3 {
		t.Fatalf("the second decisions changed the limit to %v", l)
	}
	if n := a.auditCount(models.ActionLimitApproved) + a.auditCount(models.ActionLimitDenied); n != 1 {
		t.Fatalf("%d decision audit entries, want 1", n)
	}
}

func TestSupportUnknownOrMalformedIDsAre404(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	owner, accountID, reqID := a.pendingOwner("Acme Mail", "owner@acme.example", 2, "Two more")
	subKey, subSecret := func() (string, string) {
		a.setPlan(accountID, models.PlanEssential)
		return owner.mustCreateSub("Second")
	}()
	subAccountID := a.principal(subKey, subSecret).AccountID
	sup := a.supportClient()
	token := "/support"

	bad := []string{"abc", "0", "-1", "1.5", "4294967296", "99999999999999999999", "999999", "1%20"}
	// A sub-account is not a main account: support opens its parent.
	for _, id := range append(bad, fmt.Sprint(subAccountID)) {
		if r := sup.get("/support/accounts/" + id); r.status != http.StatusNotFound {
			t.Errorf("GET /support/accounts/%s: status %d, want 404", id, r.status)
		}
		if r := sup.submit(token, "/support/accounts/"+id+"/limit", url.Values{"limit": {"9"}, "reason": {"TICKET"}}); r.status != http.StatusNotFound {
			t.Errorf("POST /support/accounts/%s/limit: status %d, want 404", id, r.status)
		}
	}
	for _, id := range bad {
		for _, verb := range []string{"approve", "deny"} {
			r := sup.submit(token, "/support/requests/"+id+"/"+verb, url.Values{"limit": {"9"}, "note": {"ok"}, "account_id": {fmt.Sprint(accountID)}})
			if r.status != http.StatusNotFound {
				t.Errorf("POST /support/requests/%s/%s: status %d, want 404", id, verb, r.status)
			}
		}
	}
	if r := sup.get(fmt.Sprintf("/support/requests/%d/approve", reqID)); r.status != http.StatusNotFound && r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET of a decision URL: status %d, want 404 or 405", r.status)
	}
	if a.accountLimit(accountID) != nil || a.accountLimit(subAccountID) != nil {
		t.Fatal("a 404 request changed a limit")
	}
	if a.limitRequest(reqID).Status != models.RequestPending {
		t.Fatal("a 404 request decided the pending request")
	}
}
