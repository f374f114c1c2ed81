package handlers_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"keydesk/models"
)

// signedInPaths is every GET route of the route table with its parameters
// filled in, except the ones that are not behind sign-in.
func signedInPaths(t *testing.T, a *app, keyID string) []string {
	t.Helper()
	var paths []string
	for _, r := range a.web.Echo.Routes() {
		if r.Method != http.MethodGet {
			continue
		}
		switch {
		case r.Path == "/" || r.Path == "/login" || r.Path == "/signup" || r.Path == "/healthz" || r.Path == "/readyz",
			strings.HasPrefix(r.Path, "/static/"), strings.HasPrefix(r.Path, "/v3/"):
			continue
		}
		p := strings.NewReplacer(":id", keyID, ":secret", "1").Replace(r.Path)
		paths = append(paths, p)
	}
	if len(paths) < 8 {
		t.Fatalf("only %d signed-in GET routes found: %v", len(paths), paths)
	}
	return paths
}

// Every response to a signed-in person is no-store with Vary: Cookie, so
// Back after logout and shared caches find no private page: owner, support
// and auditor, on every GET route (pages they may not see answer 403/404,
// no-store as well).
func TestEverySignedInResponseIsNoStore(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	owner := a.client()
	owner.signup("Acme Mail", "owner@acme.example")
	id := owner.masterID()
	owner.reset(id, url.Values{"grace": {"24h"}}) // an old secret, so End now has a page
	clients := map[string]*client{
		"owner":   owner,
		"support": a.staff(models.RoleSupport, "support@keydesk.example"),
		"auditor": a.staff(models.RoleAuditor, "auditor@keydesk.example"),
	}
	for who, c := range clients {
		for _, p := range signedInPaths(t, a, id) {
			r := c.get(p)
			if r.status >= 500 {
				t.Errorf("%s GET %s: %d", who, p, r.status)
			}
			if cc := r.header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
				t.Errorf("%s GET %s (%d): Cache-Control %q, want no-store", who, p, r.status, cc)
			}
			if v := strings.Join(r.header.Values("Vary"), ","); !strings.Contains(v, "Cookie") {
				t.Errorf("%s GET %s: Vary %q, want Cookie", who, p, v)
			}
		}
	}
	// After logout the same pages send the visitor to sign in.
	r := owner.submit("/keys", "/logout", nil)
	if r.status != http.StatusSeeOther {
		t.Fatalf("logout: %d", r.status)
	}
	if r := owner.get("/keys"); r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/login") {
		t.Fatalf("GET /keys after logout: %d %q", r.status, r.header.Get("Location"))
	}
}

// A deep link survives sign-in: the login page says why it is shown, and
// the login goes back to the page asked for, query included.
func TestDeepLinkReturnsToThePageAfterLogin(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	c.signup("Acme Mail", "owner@acme.example")
	c.submit("/keys", "/logout", nil)

	r := c.get("/subaccounts?q=client")
	want := "/login?next=" + url.QueryEscape("/subaccounts?q=client")
	if r.status != http.StatusSeeOther || r.header.Get("Location") != want {
		t.Fatalf("signed-out deep link: %d → %q, want 303 → %q", r.status, r.header.Get("Location"), want)
	}
	page := c.get(want)
	if !strings.Contains(page.text(`[data-testid="login-continue"]`), "Sign in to continue") {
		t.Fatal("the login page does not say why it is shown")
	}
	if v, _ := page.doc.Find(`form[action="/login"] input[name="next"]`).Attr("value"); v != "/subaccounts?q=client" {
		t.Fatalf("login form carries next=%q", v)
	}
	r = c.submit(want, "/login", url.Values{"email": {"owner@acme.example"}, "password": {testPassword}, "next": {"/subaccounts?q=client"}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/subaccounts?q=client" {
		t.Fatalf("login: %d → %q, want the deep link", r.status, r.header.Get("Location"))
	}
	// A wrong password keeps the return path in the form.
	c.submit("/keys", "/logout", nil)
	r = c.submit(want, "/login", url.Values{"email": {"owner@acme.example"}, "password": {"wrong"}, "next": {"/subaccounts?q=client"}})
	if v, _ := r.doc.Find(`input[name="next"]`).Attr("value"); r.status != http.StatusUnauthorized || v != "/subaccounts?q=client" {
		t.Fatalf("failed login: %d, next=%q", r.status, v)
	}
}

// Only same-site paths are honoured: anything else lands on the role's home.
func TestLoginRefusesOffSiteReturnURLs(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	c.signup("Acme Mail", "owner@acme.example")
	for _, next := range []string{
		"//evil.example", "//evil.example/keys", "https://evil.example/", "http:evil.example", "/\\evil.example",
		"\\\\evil.example", "/\\/evil.example", "javascript:alert(1)", "evil.example", "/keys\r\nSet-Cookie: x=1",
		"/%2F%2Fevil.example", "/login", "/logout", "///evil.example", " //evil.example", "/\tevil.example",
	} {
		c.submit("/keys", "/logout", nil)
		page := c.get("/login?next=" + url.QueryEscape(next))
		if page.has(`input[name="next"]`) {
			t.Errorf("next=%q: the login form carries it", next)
		}
		r := c.submit("/login", "/login", url.Values{"email": {"owner@acme.example"}, "password": {testPassword}, "next": {next}})
		loc := r.header.Get("Location")
		if r.status != http.StatusSeeOther {
			t.Fatalf("next=%q: login %d", next, r.status)
		}
		if loc != "/keys" {
			t.Errorf("next=%q: Location %q, want /keys", next, loc)
		}
	}
	// Signed in, /login?next= goes straight there (same rules).
	if r := c.get("/login?next=" + url.QueryEscape("/audit?action=key.renamed")); r.header.Get("Location") != "/audit?action=key.renamed" {
		t.Fatalf("signed-in /login?next: %q", r.header.Get("Location"))
	}
	if r := c.get("/login?next=" + url.QueryEscape("//evil.example")); r.header.Get("Location") != "/keys" {
		t.Fatalf("signed-in /login?next=//evil: %q", r.header.Get("Location"))
	}
}

// Filter and search URLs carry no empty parameters: a form that submits
// every field is redirected to the short URL.
func TestListURLsDropEmptyParameters(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	c.signup("Acme Mail", "owner@acme.example")
	for from, want := range map[string]string{
		"/keys?q=":                    "/keys",
		"/keys?q=&page=2":             "/keys?page=2",
		"/subaccounts?q=client&page=": "/subaccounts?q=client",
		"/audit?from=&to=&actor=&action=key.renamed&target=&ip=": "/audit?action=key.renamed",
	} {
		r := c.get(from)
		if r.status != http.StatusSeeOther || r.header.Get("Location") != want {
			t.Errorf("GET %s: %d → %q, want 303 → %q", from, r.status, r.header.Get("Location"), want)
		}
	}
	if r := c.get("/audit?action=key.renamed"); r.status != http.StatusOK {
		t.Fatalf("a clean URL is served: %d", r.status)
	}
}
