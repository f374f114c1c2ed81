package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"keydesk/models"
	kdsmtp "keydesk/smtp"
	"keydesk/web"
)

// teamFixture is an account with two sub-accounts and one person of each
// role, each with a signed-in client.
type teamFixture struct {
	a                  *app
	ownerActor         models.Actor
	accountID          uint
	newsAcct, billAcct uint
	masterKey          uint
	newsKey, billKey   uint
	clients            map[string]*client
	emails             map[string]string
	victim             uint // a member for the remove route
	invitation         uint // a pending invitation for the revoke route
}

// join makes email a member (invitation accepted through the models) and
// returns a signed-in client.
func (f *teamFixture) join(email, role string, scope models.ScopeInput) *client {
	f.a.t.Helper()
	_, tok, err := f.a.store.Invite(context.Background(), f.ownerActor, email, role, scope)
	if err != nil {
		f.a.t.Fatalf("invite %s: %v", email, err)
	}
	if _, _, err := f.a.store.AcceptInvitationNew(context.Background(), tok, testPassword, "", models.RequestMeta{}); err != nil {
		f.a.t.Fatalf("accept %s: %v", email, err)
	}
	c := f.a.client()
	if r := c.login(email, testPassword); r.status != http.StatusSeeOther {
		f.a.t.Fatalf("login %s: %d", email, r.status)
	}
	return c
}

func newTeamFixture(t *testing.T) *teamFixture {
	t.Helper()
	a := newApp(t)
	ctx := context.Background()
	f := &teamFixture{a: a, clients: map[string]*client{}, emails: map[string]string{}}
	owner, accountID, apiKey, _ := a.owner("Acme Mail", "owner@acme.example")
	f.accountID = accountID
	a.store.DB().Table("accounts").Where("id = ?", accountID).Update("subaccount_limit", 10)
	var ownerID uint
	a.store.DB().Table("users").Where("email = ?", "owner@acme.example").Pluck("id", &ownerID)
	f.ownerActor = models.Actor{UserID: ownerID, Email: "owner@acme.example", Role: models.RoleOwner, AccountID: accountID, AuthAt: a.clock.Now()}
	news, _, err := a.store.CreateSubaccount(ctx, f.ownerActor, "newsletters", "")
	if err != nil {
		t.Fatal(err)
	}
	bill, _, err := a.store.CreateSubaccount(ctx, f.ownerActor, "billing", "")
	if err != nil {
		t.Fatal(err)
	}
	f.newsAcct, f.billAcct, f.newsKey, f.billKey = news.Account.ID, bill.Account.ID, news.Key.ID, bill.Key.ID
	a.store.DB().Table("api_keys").Where("api_key = ?", apiKey).Pluck("id", &f.masterKey)
	all := models.ScopeInput{All: true}
	onlyNews := models.ScopeInput{Subaccounts: []uint{f.newsAcct}}
	f.clients["owner"] = owner
	f.clients["admin"] = f.join("admin@acme.example", "admin", all)
	f.clients["developer"] = f.join("dev@acme.example", "developer", all)
	f.clients["developer-scoped"] = f.join("devscoped@agency.example", "developer", onlyNews)
	f.clients["viewer"] = f.join("viewer@acme.example", "viewer", all)
	f.clients["viewer-scoped"] = f.join("viewscoped@agency.example", "viewer", onlyNews)
	f.clients["support"] = a.staff(models.RoleSupport, "support@keydesk.example")
	f.clients["auditor"] = a.staff(models.RoleAuditor, "auditor@keydesk.example")
	for role := range f.clients {
		f.emails[role] = map[string]string{"owner": "owner@acme.example", "admin": "admin@acme.example", "developer": "dev@acme.example",
			"developer-scoped": "devscoped@agency.example", "viewer": "viewer@acme.example", "viewer-scoped": "viewscoped@agency.example",
			"support": "support@keydesk.example", "auditor": "auditor@keydesk.example"}[role]
	}
	f.join("victim@acme.example", "viewer", all)
	a.store.DB().Raw(`SELECT m.id FROM members m JOIN users u ON u.id = m.user_id WHERE u.email = ?`, "victim@acme.example").Scan(&f.victim)
	inv, _, err := a.store.Invite(ctx, f.ownerActor, "pending@acme.example", "viewer", all)
	if err != nil {
		t.Fatal(err)
	}
	f.invitation = inv.ID
	return f
}

var (
	people     = []string{"owner", "admin", "developer", "developer-scoped", "viewer", "viewer-scoped"}
	managers   = []string{"owner", "admin", "developer", "developer-scoped"}
	teamAdmins = []string{"owner", "admin"}
	everyone   = append(append([]string{}, people...), "support", "auditor")
)

// routeRoles is who may use each console route: the expectation the
// matrix test holds the route table to. A route missing here fails it.
var routeRoles = map[string][]string{
	"GET /keys":                              people,
	"GET /keys/:id/reset":                    managers,
	"POST /keys/:id/reset":                   managers,
	"GET /keys/:id/old-secrets/:secret/end":  managers,
	"POST /keys/:id/old-secrets/:secret/end": managers,
	"GET /keys/:id/rename":                   managers,
	"POST /keys/:id/rename":                  managers,
	"GET /keys/:id/deactivate":               managers,
	"POST /keys/:id/deactivate":              managers,
	"POST /keys/:id/activate":                managers,
	"GET /keys/:id/usage":                    people,
	"GET /subaccounts":                       people,
	"GET /subaccounts/new":                   managers,
	"POST /subaccounts":                      managers,
	"POST /subaccounts/requests":             teamAdmins,
	"GET /team":                              teamAdmins,
	"POST /team/invitations":                 teamAdmins,
	"POST /team/invitations/:id/revoke":      teamAdmins,
	"GET /team/members/:id":                  teamAdmins,
	"POST /team/members/:id":                 teamAdmins,
	"GET /team/members/:id/remove":           teamAdmins,
	"POST /team/members/:id/remove":          teamAdmins,
	"POST /team/require-2fa":                 teamAdmins,
	"GET /support":                           {"support"},
	"GET /support/accounts/:id":              {"support"},
	"POST /support/accounts/:id/limit":       {"support"},
	"POST /support/accounts/:id/suspend":     {"support"},
	"POST /support/accounts/:id/reinstate":   {"support"},
	"POST /support/requests/:id/approve":     {"support"},
	"POST /support/requests/:id/deny":        {"support"},
	"GET /audit":                             everyone,
	"POST /audit/export":                     everyone,
	"GET /audit/heads/:seq":                  everyone,
	"POST /audit/reviews":                    {"owner", "admin", "auditor"},
	"GET /account/password":                  everyone,
	"POST /account/password":                 everyone,
	"GET /account/2fa":                       everyone,
	"POST /account/2fa":                      everyone,
	"POST /account/2fa/setup":                everyone,
	"POST /account/2fa/recovery-codes":       everyone,
	"POST /account/2fa/off":                  everyone,
	"POST /account/switch":                   everyone,
	"POST /account/language":                 everyone,
	"GET /account/time-zone":                 everyone,
	"POST /account/time-zone":                everyone,
	"POST /logout":                           everyone,
}

// publicRoutes need no session (signing in, links, probes).
var publicRoutes = map[string]bool{
	"GET /": true, "GET /login": true, "POST /login": true, "GET /signup": true, "POST /signup": true,
	"GET /login/code": true, "POST /login/code": true, "GET /invite": true, "POST /invite": true,
	"GET /password/forgot": true, "POST /password/forgot": true, "GET /password/reset": true, "POST /password/reset": true,
	"GET /healthz": true, "GET /readyz": true, "GET /static/:version/*": true,
}

// path fills a route's parameters with IDs in the caller's scope.
func (f *teamFixture) path(route string, key uint) string {
	r := strings.NewReplacer(":secret", "999999", ":seq", "1").Replace(route)
	switch {
	case strings.HasPrefix(r, "/keys/"):
		r = strings.Replace(r, ":id", fmt.Sprint(key), 1)
	case strings.HasPrefix(r, "/team/members/"):
		r = strings.Replace(r, ":id", fmt.Sprint(f.victim), 1)
	case strings.HasPrefix(r, "/team/invitations/"):
		r = strings.Replace(r, ":id", fmt.Sprint(f.invitation), 1)
	case strings.HasPrefix(r, "/support/accounts/"):
		r = strings.Replace(r, ":id", fmt.Sprint(f.accountID), 1)
	case strings.HasPrefix(r, "/support/requests/"):
		r = strings.Replace(r, ":id", "999999", 1)
	}
	return r
}

func (f *teamFixture) request(c *client, method, path string, htmx bool) *resp {
	f.a.t.Helper()
	if htmx {
		c = c.with("HX-Request", "true")
	}
	if method == http.MethodGet {
		return c.get(path)
	}
	return c.post(path, url.Values{"_csrf": {c.csrf("/account/password")}})
}

func denied(r *resp) bool {
	return r.status == http.StatusForbidden || r.status == http.StatusUnauthorized ||
		(r.status == http.StatusSeeOther && strings.HasPrefix(r.header.Get("Location"), "/login") && r.header.Get("Location") != "/login?done=logout")
}

// Every console route × every role: the roles the table names get through
// (whatever the answer to an empty form is), every other role gets 403;
// and for the scoped members, another sub-account's IDs answer 404 in
// pages, htmx partials, exports and audit filters.
func TestRouteRoleScopeMatrix(t *testing.T) {
	t.Parallel()
	f := newTeamFixture(t)
	var routes []string
	for _, rt := range f.a.web.Echo.Routes() {
		if strings.HasPrefix(rt.Path, "/v3") || rt.Method == "echo_route_not_found" {
			continue
		}
		key := rt.Method + " " + rt.Path
		if publicRoutes[key] {
			continue
		}
		if _, ok := routeRoles[key]; !ok {
			t.Errorf("route %s has no row in routeRoles", key)
			continue
		}
		routes = append(routes, key)
	}
	// Logging out ends the session: last, for each role.
	sort.Slice(routes, func(i, j int) bool {
		return routes[j] == "POST /logout" || routes[i] < routes[j] && routes[i] != "POST /logout"
	})
	for role, c := range f.clients {
		key := f.newsKey
		for _, route := range routes {
			method, path, _ := strings.Cut(route, " ")
			allowed := false
			for _, r := range routeRoles[route] {
				allowed = allowed || r == role
			}
			r := f.request(c, method, f.path(path, key), false)
			switch {
			case allowed && denied(r):
				t.Errorf("%s: %s refused (%d %s), want allowed", role, route, r.status, r.header.Get("Location"))
			case !allowed && r.status != http.StatusForbidden:
				t.Errorf("%s: %s answered %d, want 403", role, route, r.status)
			}
			if allowed && r.status >= 500 {
				t.Errorf("%s: %s answered %d", role, route, r.status)
			}
		}
	}
	// Out of scope: another sub-account's key, and the master key, for
	// the scoped members, on every /keys route their role allows.
	for _, role := range []string{"developer-scoped", "viewer-scoped"} {
		c := f.a.client()
		if r := c.login(f.emails[role], testPassword); r.status != http.StatusSeeOther {
			t.Fatalf("login %s: %d", role, r.status)
		}
		for _, route := range routes {
			method, path, _ := strings.Cut(route, " ")
			if !strings.Contains(path, "/keys/:id") {
				continue
			}
			allowed := false
			for _, r := range routeRoles[route] {
				allowed = allowed || r == role
			}
			if !allowed {
				continue
			}
			for _, k := range []uint{f.billKey, f.masterKey} {
				for _, htmx := range []bool{false, true} {
					if r := f.request(c, method, f.path(path, k), htmx); r.status != http.StatusNotFound {
						t.Errorf("%s: %s on key %d (htmx %v) answered %d, want 404", role, route, k, htmx, r.status)
					}
				}
			}
		}
		for _, q := range []string{fmt.Sprint(f.billAcct), fmt.Sprint(f.accountID)} {
			if r := c.get("/audit?account=" + q); r.status != http.StatusNotFound {
				t.Errorf("%s: audit filter on account %s answered %d, want 404", role, q, r.status)
			}
			if r := c.post("/audit/export?format=csv&account="+q, url.Values{"_csrf": {c.csrf("/account/password")}}); r.status != http.StatusNotFound {
				t.Errorf("%s: audit export on account %s answered %d, want 404", role, q, r.status)
			}
		}
		if r := c.get(fmt.Sprintf("/audit?account=%d", f.newsAcct)); r.status != http.StatusOK {
			t.Errorf("%s: audit filter in scope answered %d", role, r.status)
		}
		page := c.get("/keys")
		if page.status != http.StatusOK || page.has(`[data-testid="master-card"]`) || strings.Contains(page.body, "billing") || !strings.Contains(page.body, "newsletters") {
			t.Errorf("%s: /keys shows more than their scope (status %d)", role, page.status)
		}
	}
	// A developer with every sub-account sees the master key but never
	// resets it.
	dev := f.a.client()
	dev.login("dev@acme.example", testPassword)
	if r := dev.post(fmt.Sprintf("/keys/%d/reset", f.masterKey), url.Values{"_csrf": {dev.csrf("/account/password")}}); r.status != http.StatusForbidden {
		t.Errorf("developer resets the master: %d, want 403", r.status)
	}
	if page := dev.get("/keys"); page.has(`[data-testid="master-card"] [data-testid="menu-reset"]`) {
		t.Error("the developer's master card offers a reset")
	}
	viewer := f.a.client()
	viewer.login("viewer@acme.example", testPassword)
	if page := viewer.get("/keys"); page.has(`[data-testid="menu-reset"]`) || page.has(`[data-testid="create-subaccount"]`) {
		t.Error("a viewer is offered a reset or a creation")
	}
}

// startMailRelay is a go-smtp server keydesk's own mail goes through.
func startMailRelay(t *testing.T) (*testRelay, func(*web.Config)) {
	t.Helper()
	relay := startTestRelay(t)
	fr, err := kdsmtp.NewForwardRelay("smtp://" + relay.addr)
	if err != nil {
		t.Fatal(err)
	}
	return relay, func(c *web.Config) { c.MailRelay, c.MailFrom = fr, "keydesk@test.example" }
}

// linkIn finds the one-time link in a relayed message's plain-text part
// (quoted-printable soft breaks undone).
func linkIn(t *testing.T, data, prefix string) string {
	t.Helper()
	plain := strings.ReplaceAll(data, "=\r\n", "")
	plain = strings.ReplaceAll(plain, "=3D", "=")
	i := strings.Index(plain, prefix)
	if i < 0 {
		t.Fatalf("no %s link in the message:\n%s", prefix, data)
	}
	end := strings.IndexAny(plain[i:], "\r\n\"<")
	return plain[i : i+end]
}

func TestInvitationByMailThroughTheRelayAndAccept(t *testing.T) {
	t.Parallel()
	relay, withMail := startMailRelay(t)
	a := newApp(t, withMail)
	owner, _, _, _ := a.owner("Acme Mail", "owner@acme.example")
	r := owner.submit("/team", "/team/invitations", url.Values{"email": {"new@agency.example"}, "role": {"viewer"}, "scope": {"all"}})
	if r.status != http.StatusCreated || !r.has(`[data-testid="invite-reveal"]`) {
		t.Fatalf("invite: %d", r.status)
	}
	revealed := r.text(`[data-testid="invite-link"]`)
	if r.header.Get("Cache-Control") != "no-store" || !strings.Contains(revealed, "/invite?t=") {
		t.Fatalf("reveal: %q, Cache-Control %q", revealed, r.header.Get("Cache-Control"))
	}
	if owner.get("/team").has(`[data-testid="invite-link"]`) {
		t.Fatal("the link is shown again on reload")
	}
	msgs := relay.got()
	if len(msgs) != 1 || msgs[0].to[0] != "new@agency.example" || msgs[0].from != "keydesk@test.example" {
		t.Fatalf("relayed: %+v", msgs)
	}
	data := msgs[0].data
	for _, want := range []string{"MIME-Version: 1.0", "multipart/alternative", "Content-Type: text/plain; charset=utf-8", "Content-Type: text/html; charset=utf-8", "Subject: "} {
		if !strings.Contains(data, want) {
			t.Errorf("message lacks %q", want)
		}
	}
	link := linkIn(t, data, a.web.Config.BaseURL+"/invite?t=")
	if link != revealed {
		t.Fatalf("mailed link %q differs from the revealed %q", link, revealed)
	}
	// The link works: a new person chooses a password and is in.
	path := strings.TrimPrefix(link, a.web.Config.BaseURL)
	guest := a.client()
	page := guest.get(path)
	if page.status != http.StatusOK || !page.has(`[data-testid="accept-password"]`) {
		t.Fatalf("invitation page: %d", page.status)
	}
	tok, _ := url.Parse(path)
	if r := guest.submit(path, "/invite", url.Values{"t": {tok.Query().Get("t")}, "password": {"short"}}); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("weak password: %d", r.status)
	}
	if r := guest.submit(path, "/invite", url.Values{"t": {tok.Query().Get("t")}, "password": {testPassword}}); r.status != http.StatusSeeOther {
		t.Fatalf("accept: %d %s", r.status, r.body)
	}
	keys := guest.get("/keys")
	if keys.status != http.StatusOK || keys.text(`[data-testid="account-role"]`) != "viewer" {
		t.Fatalf("member's /keys: %d role %q", keys.status, keys.text(`[data-testid="account-role"]`))
	}
	// Used: a clear page, 410.
	again := a.client().get(path)
	if again.status != http.StatusGone || !strings.Contains(again.text(`[data-testid="invitation-state"]`), "already used") {
		t.Fatalf("used link: %d %q", again.status, again.text(`[data-testid="invitation-state"]`))
	}
	if r := a.client().get("/invite?t=nonsense"); r.status != http.StatusNotFound {
		t.Fatalf("unknown link: %d", r.status)
	}
}

func TestInviteWithoutRelayStillRevealsTheLink(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	owner, _, _, _ := a.owner("Acme Mail", "owner@acme.example")
	r := owner.submit("/team", "/team/invitations", url.Values{"email": {"x@agency.example"}, "role": {"developer"}, "scope": {"list"}})
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, "at least one sub-account") {
		t.Fatalf("empty scope list: %d", r.status)
	}
	r = owner.submit("/team", "/team/invitations", url.Values{"email": {"x@agency.example"}, "role": {"developer"}, "scope": {"all"}})
	if r.status != http.StatusCreated || !strings.Contains(r.text(`[data-testid="invite-link"]`), "/invite?t=") {
		t.Fatalf("invite: %d", r.status)
	}
	if r := owner.submit("/team", "/team/invitations", url.Values{"email": {"y@agency.example"}, "role": {"owner"}, "scope": {"all"}}); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("invite as owner: %d", r.status)
	}
}

func TestForgotPasswordSameAnswerAndResetThroughTheRelay(t *testing.T) {
	t.Parallel()
	relay, withMail := startMailRelay(t)
	a := newApp(t, withMail)
	owner, _, _, _ := a.owner("Acme Mail", "owner@acme.example")
	known := a.client().submit("/password/forgot", "/password/forgot", url.Values{"email": {"owner@acme.example"}})
	unknown := a.client().submit("/password/forgot", "/password/forgot", url.Values{"email": {"nobody@acme.example"}})
	if known.status != unknown.status || known.header.Get("Location") != unknown.header.Get("Location") || known.status != http.StatusSeeOther {
		t.Fatalf("known %d %q, unknown %d %q", known.status, known.header.Get("Location"), unknown.status, unknown.header.Get("Location"))
	}
	msgs := relay.got()
	if len(msgs) != 1 || msgs[0].to[0] != "owner@acme.example" {
		t.Fatalf("relayed %d messages", len(msgs))
	}
	link := strings.TrimPrefix(linkIn(t, msgs[0].data, a.web.Config.BaseURL+"/password/reset?t="), a.web.Config.BaseURL)
	u, _ := url.Parse(link)
	guest := a.client()
	if r := guest.get(link); r.status != http.StatusOK {
		t.Fatalf("reset page: %d", r.status)
	}
	r := guest.submit(link, "/password/reset", url.Values{"t": {u.Query().Get("t")}, "password": {"a brand new passphrase"}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/login?done=reset" {
		t.Fatalf("reset: %d %q", r.status, r.header.Get("Location"))
	}
	if owner.signedIn() {
		t.Fatal("the owner's session survived the reset")
	}
	if r := guest.get(link); r.status != http.StatusGone || !strings.Contains(r.text(`[data-testid="reset-state"]`), "already used") {
		t.Fatalf("used link: %d", r.status)
	}
	if r := a.client().login("owner@acme.example", "a brand new passphrase"); r.status != http.StatusSeeOther {
		t.Fatalf("login with the new password: %d", r.status)
	}
}

// enrolClient turns 2FA on for a signed-in client through the pages and
// returns the seed.
func enrolClient(t *testing.T, a *app, c *client) (string, []string) {
	t.Helper()
	if r := c.submit("/account/2fa", "/account/2fa/setup", nil); r.status != http.StatusSeeOther {
		t.Fatalf("setup: %d", r.status)
	}
	page := c.get("/account/2fa")
	seed := page.text(`[data-testid="totp-secret"]`)
	qr, _ := page.doc.Find(`[data-testid="totp-qr"]`).Attr("src")
	if seed == "" || !strings.HasPrefix(qr, "data:image/png;base64,") {
		t.Fatalf("enrolment page: seed %q qr %.30q", seed, qr)
	}
	if r := c.submit("/account/2fa", "/account/2fa", url.Values{"code": {"000000"}}); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("wrong code: %d", r.status)
	}
	r := c.submit("/account/2fa", "/account/2fa", url.Values{"code": {models.TOTPCode(seed, a.clock.Now())}})
	codes := r.doc.Find(`[data-testid="recovery-code-list"] li`)
	if r.status != http.StatusOK || codes.Length() != models.RecoveryCodeCount {
		t.Fatalf("confirm: %d, %d codes", r.status, codes.Length())
	}
	var list []string
	codes.Each(func(_ int, s *goquery.Selection) { list = append(list, strings.TrimSpace(s.Text())) })
	return seed, list
}

func TestTwoFactorSignInAndStolenPasswordAlone(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	owner, _, _, _ := a.owner("Acme Mail", "owner@acme.example")
	seed, _ := enrolClient(t, a, owner)
	a.clock.Advance(time.Minute)
	thief := a.client()
	r := thief.login("owner@acme.example", testPassword)
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/login/code") {
		t.Fatalf("password step: %d %q", r.status, r.header.Get("Location"))
	}
	// The password alone opens nothing.
	for _, p := range []string{"/keys", "/audit", "/account/2fa", "/team"} {
		if r := thief.get(p); r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/login") {
			t.Errorf("GET %s with the password only: %d %q", p, r.status, r.header.Get("Location"))
		}
	}
	if r := thief.submit("/login/code", "/login/code", url.Values{"code": {"123456"}}); r.status != http.StatusUnauthorized {
		t.Fatalf("wrong code: %d", r.status)
	}
	if r := thief.submit("/login/code", "/login/code", url.Values{"code": {models.TOTPCode(seed, a.clock.Now())}}); r.status != http.StatusSeeOther || r.header.Get("Location") != "/keys" {
		t.Fatalf("right code: %d %q", r.status, r.header.Get("Location"))
	}
	if !thief.signedIn() {
		t.Fatal("not signed in after the code")
	}
	// The sudo prompt asks for the code too.
	a.clock.Advance(models.SudoWindow + time.Minute)
	id := thief.masterID()
	dialog := thief.get("/keys/" + id + "/reset")
	if !dialog.has(`input[name="code"]`) {
		t.Fatal("the sudo prompt does not ask for the code")
	}
	if r := thief.submit("/keys", "/keys/"+id+"/reset", url.Values{"password": {testPassword}}); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("sudo without a code: %d", r.status)
	}
	if r := thief.submit("/keys", "/keys/"+id+"/reset", url.Values{"password": {testPassword}, "code": {models.TOTPCode(seed, a.clock.Now())}}); r.status != http.StatusOK {
		t.Fatalf("sudo with a code: %d", r.status)
	}
}

func TestRequire2FASendsMembersToEnrolmentFirst(t *testing.T) {
	t.Parallel()
	f := newTeamFixture(t)
	owner := f.clients["owner"]
	if r := owner.submit("/team", "/team/require-2fa", url.Values{"required": {"true"}}); r.status != http.StatusSeeOther {
		t.Fatalf("require: %d", r.status)
	}
	dev := f.clients["developer"]
	if r := dev.get("/keys"); r.status != http.StatusSeeOther || r.header.Get("Location") != "/account/2fa" {
		t.Fatalf("member without 2FA: %d %q", r.status, r.header.Get("Location"))
	}
	if r := dev.get("/account/2fa"); r.status != http.StatusOK || !r.has(`[data-testid="2fa-required"]`) {
		t.Fatalf("enrolment page: %d", r.status)
	}
	enrolClient(t, f.a, dev)
	if r := dev.get("/keys"); r.status != http.StatusOK {
		t.Fatalf("after enrolment: %d", r.status)
	}
}

func TestSuspensionFromTheSupportPage(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	owner, accountID, apiKey, secret := a.owner("Acme Mail", "owner@acme.example")
	support := a.supportClient()
	page := accountPath(accountID)
	if r := support.submit(page, page+"/suspend", url.Values{"suspend_reason": {""}}); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("suspend without a reason: %d", r.status)
	}
	if r := support.submit(page, page+"/suspend", url.Values{"suspend_reason": {"chargebacks"}}); r.status != http.StatusSeeOther {
		t.Fatalf("suspend: %d", r.status)
	}
	if st, _, _ := restDo(t, a, "GET", "/v3/REST/apikey", apiKey, secret, ""); st != http.StatusUnauthorized {
		t.Fatalf("REST with a suspended account's key: %d", st)
	}
	if r := owner.get("/keys"); r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/login") {
		t.Fatalf("owner's open session: %d", r.status)
	}
	again := a.client()
	again.login("owner@acme.example", testPassword)
	if r := again.get("/keys"); r.status != http.StatusForbidden || !r.has(`[data-testid="suspended-page"]`) {
		t.Fatalf("owner after suspension: %d", r.status)
	}
	if r := support.submit(page, page+"/reinstate", url.Values{"suspend_reason": {"paid"}}); r.status != http.StatusSeeOther {
		t.Fatalf("reinstate: %d", r.status)
	}
	if st, _, _ := restDo(t, a, "GET", "/v3/REST/apikey", apiKey, secret, ""); st != http.StatusOK {
		t.Fatalf("REST after reinstatement: %d", st)
	}
}

func TestRemovedMembersOpenTabLandsOnLogin(t *testing.T) {
	t.Parallel()
	f := newTeamFixture(t)
	dev := f.clients["developer-scoped"]
	var memberID uint
	f.a.store.DB().Raw(`SELECT m.id FROM members m JOIN users u ON u.id = m.user_id WHERE u.email = ?`, "devscoped@agency.example").Scan(&memberID)
	owner := f.clients["owner"]
	confirm := owner.get(fmt.Sprintf("/team/members/%d/remove", memberID))
	if !confirm.has(`[data-testid="member-remove-confirm"]`) {
		t.Fatalf("no confirmation: %d", confirm.status)
	}
	if r := owner.submit("/team", fmt.Sprintf("/team/members/%d/remove", memberID), nil); r.status != http.StatusSeeOther {
		t.Fatalf("remove: %d", r.status)
	}
	if r := dev.get("/keys"); r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/login") {
		t.Fatalf("removed member's next request: %d %q", r.status, r.header.Get("Location"))
	}
	// Another account's member: 404.
	other, _, _, _ := f.a.owner("Other", "other@other.example")
	if r := other.submit("/team", fmt.Sprintf("/team/members/%d/remove", f.victim), nil); r.status != http.StatusNotFound {
		t.Fatalf("another account's member: %d", r.status)
	}
}

func TestAccountSwitcher(t *testing.T) {
	t.Parallel()
	f := newTeamFixture(t)
	other, otherID, _, _ := f.a.owner("Other Mail", "other@other.example")
	_, tok, err := f.a.store.Invite(context.Background(), f.ownerActor, "other@other.example", "viewer", models.ScopeInput{All: true})
	if err != nil {
		t.Fatal(err)
	}
	link := "/invite?" + url.Values{"t": {tok}}.Encode()
	page := other.get(link)
	if page.status != http.StatusOK || !strings.Contains(page.body, "You are signed in as other@other.example") {
		t.Fatalf("invitation page for a signed-in invitee: %d", page.status)
	}
	if r := other.submit(link, "/invite", url.Values{"t": {tok}}); r.status != http.StatusSeeOther {
		t.Fatalf("one-click join: %d", r.status)
	}
	keys := other.get("/keys")
	if keys.text(`[data-testid="account-role"]`) != "viewer" || !keys.has(`[data-testid="account-switcher"]`) {
		t.Fatalf("after joining: role %q, switcher %v", keys.text(`[data-testid="account-role"]`), keys.has(`[data-testid="account-switcher"]`))
	}
	if r := other.submit("/keys", "/account/switch", url.Values{"account": {fmt.Sprint(otherID)}}); r.status != http.StatusSeeOther {
		t.Fatalf("switch: %d", r.status)
	}
	if r := other.get("/keys"); r.text(`[data-testid="account-role"]`) != "owner" {
		t.Fatalf("after switching back: %q", r.text(`[data-testid="account-role"]`))
	}
	if r := other.submit("/keys", "/account/switch", url.Values{"account": {fmt.Sprint(f.billAcct)}}); r.status != http.StatusNotFound {
		t.Fatalf("switch to an account one is not in: %d", r.status)
	}
	// Staff: the invitation refuses them clearly.
	_, tok2, _ := f.a.store.Invite(context.Background(), f.ownerActor, "support@keydesk.example", "viewer", models.ScopeInput{All: true})
	sup := f.clients["support"]
	l2 := "/invite?" + url.Values{"t": {tok2}}.Encode()
	if r := sup.submit(l2, "/invite", url.Values{"t": {tok2}}); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("staff joins a customer account: %d", r.status)
	}
}

// peoplePRG posts every people route that answers with a redirect and
// checks it is a 303 (TestEverySuccessfulPOSTRedirects counts them).
func peoplePRG(t *testing.T) []string {
	t.Helper()
	f := newTeamFixture(t)
	a, owner := f.a, f.clients["owner"]
	support := f.clients["support"]
	dev := f.clients["developer"]
	_, tokJoin, err := a.store.Invite(context.Background(), f.ownerActor, "joiner@agency.example", "viewer", models.ScopeInput{All: true})
	if err != nil {
		t.Fatal(err)
	}
	resetTok, err := a.store.ResetLinkFor(context.Background(), "viewer@acme.example", models.SystemActor())
	if err != nil {
		t.Fatal(err)
	}
	type prg struct {
		route, page, action string
		c                   *client
		form                url.Values
		want                string
	}
	enrolClient(t, a, owner) // so that turning 2FA off changes something
	cases := []prg{
		{"/account/2fa/off", "/account/2fa", "/account/2fa/off", owner, nil, "/account/2fa?done=off"},
		{"/team/invitations/:id/revoke", "/team", fmt.Sprintf("/team/invitations/%d/revoke", f.invitation), owner, nil, "/team?done=revoked"},
		{"/team/members/:id", "/team", fmt.Sprintf("/team/members/%d", f.victim), owner, url.Values{"role": {"developer"}, "scope": {"all"}}, "/team?done=changed"},
		{"/team/members/:id/remove", "/team", fmt.Sprintf("/team/members/%d/remove", f.victim), owner, nil, "/team?done=removed"},
		{"/team/require-2fa", "/team", "/team/require-2fa", owner, url.Values{"required": {"false"}}, "/team?done=optional"},
		{"/account/2fa/setup", "/account/2fa", "/account/2fa/setup", dev, nil, "/account/2fa"},
		{"/support/accounts/:id/suspend", accountPath(f.accountID), accountPath(f.accountID) + "/suspend", support, url.Values{"suspend_reason": {"test"}}, accountPath(f.accountID) + "?done=suspended"},
		{"/support/accounts/:id/reinstate", accountPath(f.accountID), accountPath(f.accountID) + "/reinstate", support, url.Values{"suspend_reason": {"test"}}, accountPath(f.accountID) + "?done=reinstated"},
		{"/password/forgot", "/password/forgot", "/password/forgot", a.client(), url.Values{"email": {"owner@acme.example"}}, "/password/forgot?sent=1"},
		{"/password/reset", "/login", "/password/reset", a.client(), url.Values{"t": {resetTok}, "password": {"another long passphrase"}}, "/login?done=reset"},
		{"/invite", "/login", "/invite", a.client(), url.Values{"t": {tokJoin}, "password": {testPassword}}, "/keys"},
	}
	var routes []string
	for _, tc := range cases {
		routes = append(routes, tc.route)
		r := tc.c.submit(tc.page, tc.action, tc.form)
		if r.status != http.StatusSeeOther || r.header.Get("Location") != tc.want {
			t.Errorf("POST %s: %d %q, want 303 %q", tc.action, r.status, r.header.Get("Location"), tc.want)
		}
	}
	// The switcher (after the suspension above, which ended the sessions
	// working in the account): another owner joins, then switches back.
	other, _, _, _ := a.owner("Other Mail", "other@other.example")
	_, tokOther, err := a.store.Invite(context.Background(), f.ownerActor, "other@other.example", "viewer", models.ScopeInput{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if r := other.submit("/keys", "/invite", url.Values{"t": {tokOther}}); r.status != http.StatusSeeOther {
		t.Fatalf("join: %d", r.status)
	}
	var otherID uint
	a.store.DB().Table("accounts").Where("name = ?", "Other Mail").Pluck("id", &otherID)
	routes = append(routes, "/account/switch")
	if r := other.submit("/keys", "/account/switch", url.Values{"account": {fmt.Sprint(otherID)}}); r.status != http.StatusSeeOther || r.header.Get("Location") != "/keys" {
		t.Errorf("POST /account/switch: %d %q", r.status, r.header.Get("Location"))
	}
	// The code step of signing in (the suspension ended dev's session).
	dev = a.client()
	dev.login("dev@acme.example", testPassword)
	seed, _ := enrolClient(t, a, dev)
	a.clock.Advance(time.Minute)
	c := a.client()
	c.login("dev@acme.example", testPassword)
	if r := c.submit("/login/code", "/login/code", url.Values{"code": {models.TOTPCode(seed, a.clock.Now())}}); r.status != http.StatusSeeOther || r.header.Get("Location") != "/keys" {
		t.Errorf("POST /login/code: %d %q", r.status, r.header.Get("Location"))
	}
	return append(routes, "/login/code")
}
