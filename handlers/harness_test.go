package handlers_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"keydesk/handlers"
	"keydesk/models"
	"keydesk/models/testdb"
	"keydesk/views"
	"keydesk/web"
)

// app is the real router (web.New + handlers.Register) on a fresh database,
// served by httptest on a loopback port.
type app struct {
	t     testing.TB
	srv   *httptest.Server
	store *models.Store
	clock *testdb.Clock
	web   *web.Server
}

var testSessionKeys = [][]byte{
	[]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
	[]byte("0123456789abcdef0123456789abcdef"),
}

func newApp(t testing.TB, tweak ...func(*web.Config)) *app {
	t.Helper()
	store, clock := testdb.Open(t)
	return newAppOn(t, store, clock, tweak...)
}

// newAppOn is newApp on a store the test opened itself (other Options).
func newAppOn(t testing.TB, store *models.Store, clock *testdb.Clock, tweak ...func(*web.Config)) *app {
	t.Helper()
	cfg := web.Config{
		BaseURL: "http://127.0.0.1", SessionKeys: testSessionKeys, SignupEnabled: true,
		SMTP:   views.SMTPInfo{Host: "smtp.test.example", Port: 2525, TLSMode: "STARTTLS"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, f := range tweak {
		f(&cfg)
	}
	w, err := web.New(cfg, store)
	if err != nil {
		t.Fatalf("web.New: %v", err)
	}
	handlers.Register(w)
	srv := httptest.NewServer(w.Echo)
	t.Cleanup(srv.Close)
	return &app{t: t, srv: srv, store: store, clock: clock, web: w}
}

// client is one browser: a cookie jar, no automatic redirects.
type client struct {
	t    testing.TB
	app  *app
	http *http.Client
	// header is added to every request (e.g. Sec-Fetch-Site, HX-Request).
	header http.Header
}

func (a *app) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: a.t, app: a, header: http.Header{}, http: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type resp struct {
	status  int
	header  http.Header
	trailer http.Header // HTTP trailers, known once the body is read
	body    string
	doc     *goquery.Document
}

func (c *client) do(req *http.Request) *resp {
	c.t.Helper()
	for k, v := range c.header {
		req.Header[k] = v
	}
	res, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read the body: %v", req.Method, req.URL.Path, err)
	}
	doc, _ := goquery.NewDocumentFromReader(strings.NewReader(string(b)))
	return &resp{status: res.StatusCode, header: res.Header, trailer: res.Trailer, body: string(b), doc: doc}
}

func (c *client) get(path string) *resp {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.app.srv.URL+path, nil)
	return c.do(req)
}

// post sends a form as is (no CSRF token added).
func (c *client) post(path string, form url.Values) *resp {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.app.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

// csrf loads page and returns the CSRF token its forms carry.
func (c *client) csrf(page string) string {
	c.t.Helper()
	r := c.get(page)
	tok, ok := r.doc.Find(`input[name="_csrf"]`).First().Attr("value")
	if !ok || tok == "" {
		c.t.Fatalf("no CSRF token on %s (status %d)", page, r.status)
	}
	return tok
}

// submit posts form to action with the CSRF token taken from page.
func (c *client) submit(page, action string, form url.Values) *resp {
	c.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("_csrf", c.csrf(page))
	return c.post(action, form)
}

const testPassword = "correct horse battery staple"

// signup creates an account through the form and returns the revealed
// master API key and secret.
func (c *client) signup(account, email string) (apiKey, secret string) {
	c.t.Helper()
	_, apiKey, secret = c.signupResp(account, email)
	return apiKey, secret
}

// signupResp is signup that also returns the response with the reveal.
func (c *client) signupResp(account, email string) (r *resp, apiKey, secret string) {
	c.t.Helper()
	r = c.submit("/login", "/signup", url.Values{"account_name": {account}, "email": {email}, "password": {testPassword}})
	if r.status != http.StatusCreated {
		c.t.Fatalf("signup %s: status %d", email, r.status)
	}
	apiKey, secret = r.revealed()
	if apiKey == "" || secret == "" {
		c.t.Fatalf("signup %s: no reveal in response", email)
	}
	return r, apiKey, secret
}

// revealed reads the API key and secret of a reveal modal in r ("" when absent).
func (r *resp) revealed() (apiKey, secret string) {
	apiKey = strings.TrimSpace(r.doc.Find(`[data-testid="reveal-apikey"]`).Text())
	secret = strings.TrimSpace(r.doc.Find(`[data-testid="reveal-secret"]`).Text())
	return apiKey, secret
}

// text is the trimmed text of the first element matching sel.
func (r *resp) text(sel string) string {
	return strings.TrimSpace(r.doc.Find(sel).First().Text())
}

// has reports whether an element matches sel.
func (r *resp) has(sel string) bool {
	return r.doc.Find(sel).Length() > 0
}

// cookies are the cookies r sets.
func (r *resp) cookies() []*http.Cookie {
	return (&http.Response{Header: r.header}).Cookies()
}

// setCookie is the cookie named name that r sets, or nil.
func (r *resp) setCookie(name string) *http.Cookie {
	for _, ck := range r.cookies() {
		if ck.Name == name {
			return ck
		}
	}
	return nil
}

// with is the same browser (same cookie jar) sending an extra header.
func (c *client) with(key, value string) *client {
	h := c.header.Clone()
	h.Set(key, value)
	cp := *c
	cp.header = h
	return &cp
}

// cookie is the value of the named cookie in the jar, or "".
func (c *client) cookie(name string) string {
	u, _ := url.Parse(c.app.srv.URL)
	for _, ck := range c.http.Jar.Cookies(u) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

// setCookie puts a cookie in the jar, as a replaying attacker would.
func (c *client) setCookie(name, value string) {
	u, _ := url.Parse(c.app.srv.URL)
	c.http.Jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

// sessionCookie is the name of keydesk's session cookie.
const sessionCookie = "keydesk_session"

// signedIn reports whether the client's session opens /keys (an owner page).
func (c *client) signedIn() bool {
	c.t.Helper()
	r := c.get("/keys")
	switch {
	case r.status == http.StatusOK:
		return true
	case r.status == http.StatusSeeOther && strings.HasPrefix(r.header.Get("Location"), "/login"):
		return false
	}
	c.t.Fatalf("GET /keys: unexpected status %d (Location %q)", r.status, r.header.Get("Location"))
	return false
}

// masterID is the ID of the master key of the client's account.
func (c *client) masterID() string {
	c.t.Helper()
	r := c.get("/keys")
	href, ok := r.doc.Find(`[data-testid="master-card"] [data-testid="menu-reset"]`).Attr("href")
	if !ok {
		c.t.Fatalf("no master key on /keys (status %d)", r.status)
	}
	return strings.TrimSuffix(strings.TrimPrefix(href, "/keys/"), "/reset")
}

// login posts the login form.
func (c *client) login(email, password string) *resp {
	c.t.Helper()
	return c.submit("/login", "/login", url.Values{"email": {email}, "password": {password}})
}

// masterKeyID reads the master key's ID from the keys page.
func (c *client) keyIDs() map[string]string {
	c.t.Helper()
	r := c.get("/keys")
	ids := map[string]string{}
	r.doc.Find(`[data-testid="gear-menu"]`).Each(func(_ int, s *goquery.Selection) {
		href, _ := s.Find(`[data-testid="menu-reset"]`).Attr("href")
		name, _ := s.Find("summary").Attr("aria-label")
		ids[strings.TrimPrefix(name, "Actions for ")] = strings.TrimSuffix(strings.TrimPrefix(href, "/keys/"), "/reset")
	})
	return ids
}

// norm collapses runs of white space, as a reader sees text.
func norm(s string) string { return strings.Join(strings.Fields(s), " ") }

// actorOf is the actor of the user signed up (or created) with email, for
// store calls that set a test up without the browser; it is inside the
// sudo window.
func (a *app) actorOf(email string) models.Actor {
	a.t.Helper()
	var u models.User
	testdb.Must(a.t, a.store.DB().Where("email = ?", email).Take(&u))
	actor := models.Actor{UserID: u.ID, Email: u.Email, Role: u.Role, AuthAt: a.store.Now()}
	if u.AccountID != nil {
		actor.AccountID = *u.AccountID
	}
	return actor
}

// setPlan changes an account's plan straight in the database.
func (a *app) setPlan(accountID uint, plan models.Plan) {
	a.t.Helper()
	testdb.Must(a.t, a.store.DB().Table("accounts").Where("id = ?", accountID).Update("plan", plan))
}

// setSubaccountLimit gives an account its own sub-account limit, as
// support's approval does.
func (a *app) setSubaccountLimit(accountID uint, n int) {
	a.t.Helper()
	testdb.Must(a.t, a.store.DB().Table("accounts").Where("id = ?", accountID).Update("subaccount_limit", n))
}

// staffUser creates a staff user with role.
func (a *app) staffUser(role models.Role, email string) {
	a.t.Helper()
	if _, err := a.store.CreateStaffUser(context.Background(), email, testPassword, role, models.SystemActor()); err != nil {
		a.t.Fatalf("create %s user %s: %v", role, email, err)
	}
}

// staff creates a staff user with role and returns a client signed in as it.
func (a *app) staff(role models.Role, email string) *client {
	a.t.Helper()
	a.staffUser(role, email)
	c := a.client()
	if r := c.login(email, testPassword); r.status != http.StatusSeeOther {
		a.t.Fatalf("%s login: status %d", role, r.status)
	}
	return c
}
