package handlers_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"keydesk/models"
)

// postsWithoutRedirect are the POST routes whose success is not a
// redirect, and why: a secret (or a download) is in exactly one response,
// which a redirect would lose. Their Done leaves with history.replace.
var postsWithoutRedirect = map[string]string{
	"/signup":         "reveals the master secret",
	"/keys/:id/reset": "reveals the new secret",
	"/subaccounts":    "reveals the sub-account's secret",
	"/audit/export":   "a download",
	"/v3/REST/apikey": "REST API (JSON)",
	"/v3.1/send":      "Send API (JSON)",
	"/v3/send":        "Send API (JSON)",
	// People (people_test.go): one-time reveals.
	"/team/invitations":           "reveals the invitation link",
	"/account/2fa":                "reveals the recovery codes",
	"/account/2fa/recovery-codes": "reveals the recovery codes",
}

// Every successful console POST answers 303 to a page (PRG), so reloading
// the result never re-posts. The table covers every POST route of the
// route table; a new route without a case here fails the test.
func TestEverySuccessfulPOSTRedirects(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	owner, accountID, _, _ := a.owner("Acme Mail", "owner@acme.example")
	id := owner.masterID()
	sub := "newsletters"
	owner.mustCreateSub(sub)
	subID := owner.keyIDs()[sub]
	owner.reset(id, url.Values{"grace": {"24h"}})
	oldHref, _ := owner.get("/keys").doc.Find(`[data-testid="end-old-secret"]`).Attr("href")
	if oldHref == "" {
		t.Fatal("no End now link")
	}
	support := a.staff(models.RoleSupport, "support@keydesk.example")
	// A second owner at the limit with two pending-able requests.
	_, acct2, req1 := a.pendingOwner("Beta Mail", "beta@example.com", 2, "Two new clients")

	cases := []struct {
		route, page, action string
		c                   *client
		form                url.Values
		want                string
	}{
		{"/keys/:id/rename", "/keys", "/keys/" + id + "/rename", owner, url.Values{"name": {"Renamed"}}, "/keys?done=renamed"},
		{"/keys/:id/deactivate", "/keys", "/keys/" + subID + "/deactivate", owner, nil, "/keys?done=deactivated"},
		{"/keys/:id/activate", "/keys", "/keys/" + subID + "/activate", owner, nil, "/keys?done=activated"},
		{"/keys/:id/old-secrets/:secret/end", "/keys", oldHref, owner, nil, "/keys?done=ended"},
		{"/subaccounts/requests", "/subaccounts", "/subaccounts/requests", owner, url.Values{"extra": {"2"}, "reason": {"More clients"}}, "/subaccounts?done=requested"},
		{"/support/accounts/:id/limit", accountPath(accountID), accountPath(accountID) + "/limit", support, url.Values{"limit": {"9"}, "reason": {"ticket 1"}}, accountPath(accountID) + "?done=limit"},
		{"/support/requests/:id/approve", accountPath(acct2), fmt.Sprintf("/support/requests/%d/approve", req1), support,
			url.Values{"limit": {"5"}, "note": {"ok"}, "account_id": {fmt.Sprint(acct2)}}, accountPath(acct2) + "?done=approved"},
		{"/account/password", "/account/password", "/account/password", owner, url.Values{"current": {testPassword}, "new": {"a brand new long passphrase"}}, ""},
		{"/account/language", "/subaccounts", "/account/language", owner, url.Values{"language": {"fr"}, "next": {"/subaccounts"}}, "/subaccounts"},
		{"/account/time-zone", "/audit", "/account/time-zone", owner, url.Values{"time_zone": {"Europe/Paris"}, "next": {"/audit"}}, "/audit"},
		{"/logout", "/audit", "/logout", a.staff(models.RoleAuditor, "auditor@keydesk.example"), nil, "/login?done=logout"},
		{"/login", "/login", "/login", a.client(), url.Values{"email": {"support@keydesk.example"}, "password": {testPassword}}, "/support"},
	}
	covered := map[string]bool{}
	for _, tc := range cases {
		covered[tc.route] = true
		r := tc.c.submit(tc.page, tc.action, tc.form)
		if r.status != http.StatusSeeOther {
			t.Errorf("POST %s: status %d, want 303 (PRG)", tc.action, r.status)
			continue
		}
		if tc.want != "" && r.header.Get("Location") != tc.want {
			t.Errorf("POST %s: Location %q, want %q", tc.action, r.header.Get("Location"), tc.want)
		}
	}
	// Deny is the other decision; a fresh request to deny.
	_, acct3, req3 := a.pendingOwner("Gamma Mail", "gamma@example.com", 1, "One more")
	r := support.submit(accountPath(acct3), fmt.Sprintf("/support/requests/%d/deny", req3), url.Values{"note": {"not now"}, "account_id": {fmt.Sprint(acct3)}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != accountPath(acct3)+"?done=denied" {
		t.Errorf("POST deny: %d %q", r.status, r.header.Get("Location"))
	}
	covered["/support/requests/:id/deny"] = true
	// Audit review: owner marks the log reviewed.
	through := owner.get("/audit").doc.Find(`input[name="through"]`).First().AttrOr("value", "")
	if through == "" {
		t.Fatal("no review form on /audit")
	}
	if r := owner.submit("/audit", "/audit/reviews", url.Values{"through": {through}}); r.status != http.StatusSeeOther {
		t.Errorf("POST /audit/reviews: %d", r.status)
	}
	covered["/audit/reviews"] = true
	for _, route := range peoplePRG(t) {
		covered[route] = true
	}

	for _, rt := range a.web.Echo.Routes() {
		if rt.Method != http.MethodPost || covered[rt.Path] {
			continue
		}
		if _, ok := postsWithoutRedirect[rt.Path]; ok {
			continue
		}
		if strings.HasPrefix(rt.Path, "/v3") {
			continue
		}
		t.Errorf("POST %s has no PRG case in this test", rt.Path)
	}
}

// htmx forms get HX-Redirect (a full page load of the result), the same PRG.
func TestHTMXPostsRedirectWithHXRedirect(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	_, acct, req := a.pendingOwner("Acme Mail", "owner@acme.example", 2, "Two new clients")
	support := a.supportClient()
	tok := support.csrf(accountPath(acct))
	hx := support.with("HX-Request", "true")
	r := hx.post(fmt.Sprintf("/support/requests/%d/approve", req), url.Values{"_csrf": {tok}, "limit": {"5"}, "note": {"ok"}, "account_id": {fmt.Sprint(acct)}})
	if r.status != http.StatusOK || r.header.Get("HX-Redirect") != accountPath(acct)+"?done=approved" {
		t.Fatalf("htmx approve: %d, HX-Redirect %q", r.status, r.header.Get("HX-Redirect"))
	}
}

// Approve or deny without a note: the error comes back on the account
// page, at the request (fragment in the form action, hx-select for htmx),
// with the note marked invalid so focus goes there.
func TestSupportDecisionWithoutNoteShowsErrorAtTheRequest(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	_, acct, req := a.pendingOwner("Acme Mail", "owner@acme.example", 2, "Two new clients")
	support := a.supportClient()
	page := support.get(accountPath(acct))
	reqSel := fmt.Sprintf("#request-%d", req)
	for _, what := range []string{"approve", "deny"} {
		btn := page.doc.Find(reqSel + fmt.Sprintf(` [data-testid="%s"]`, what))
		action, _ := btn.Attr("formaction")
		if !strings.HasSuffix(action, reqSel) {
			t.Errorf("%s formaction %q: want the fragment %s", what, action, reqSel)
		}
		if sel, _ := btn.Attr("hx-select"); sel != reqSel {
			t.Errorf("%s hx-select %q, want %s", what, sel, reqSel)
		}
		r := support.submit(accountPath(acct), fmt.Sprintf("/support/requests/%d/%s", req, what), url.Values{"limit": {"5"}, "note": {""}, "account_id": {fmt.Sprint(acct)}})
		if r.status != http.StatusUnprocessableEntity {
			t.Fatalf("%s without a note: %d, want 422", what, r.status)
		}
		note := r.doc.Find(reqSel + ` [data-testid="decision-note"]`)
		if v, _ := note.Attr("aria-invalid"); v != "true" {
			t.Errorf("%s without a note: the note field is not marked invalid", what)
		}
		if desc, _ := note.Attr("aria-describedby"); desc == "" || r.doc.Find("#"+desc).Length() != 1 {
			t.Errorf("%s without a note: the error is not tied to the field (%q)", what, desc)
		}
	}
	if a.limitRequest(req).Status != models.RequestPending {
		t.Fatal("a refused decision changed the request")
	}
}

// The reset form validates on the server (novalidate), so an empty
// password shows the inline error instead of the browser's bubble.
func TestResetFormIsNovalidate(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	c.signup("Acme Mail", "owner@acme.example")
	id := c.masterID()
	if !c.get("/keys/" + id + "/reset").has(`#reset-dialog form[novalidate]`) {
		t.Fatal("the reset form lacks novalidate")
	}
}
