package handlers_test

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"keydesk/web"
)

// ---- CSRF ----

// assertBlocked checks r is a 403 page that explains nothing internal.
func assertBlocked(t *testing.T, r *resp, what string) {
	t.Helper()
	if r.status != http.StatusForbidden {
		t.Fatalf("%s: status %d, want 403", what, r.status)
	}
	if !r.has(`[data-testid="error-page"]`) {
		t.Fatalf("%s: no error page", what)
	}
	for _, leak := range []string{"code=", "message=", "blocked by CSRF", "missing csrf token"} {
		if strings.Contains(r.body, leak) {
			t.Fatalf("%s: page shows internal error text %q", what, leak)
		}
	}
}

func TestCrossSitePostIsRejectedEvenWithToken(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	c.signup("Acme Mail", "owner@acme.example")
	tok := c.csrf("/keys")
	r := c.with("Sec-Fetch-Site", "cross-site").post("/logout", url.Values{"_csrf": {tok}})
	assertBlocked(t, r, "cross-site POST /logout")
	if !c.signedIn() {
		t.Fatal("a cross-site POST /logout signed the user out")
	}
	r = c.with("Sec-Fetch-Site", "cross-site").post("/login", url.Values{"_csrf": {tok}, "email": {"owner@acme.example"}, "password": {testPassword}})
	assertBlocked(t, r, "cross-site POST /login")
}

func TestPostWithoutOrWithWrongCSRFTokenIsRejected(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.client().signup("Acme Mail", "owner@acme.example")
	c := a.client()
	c.get("/login") // the browser has the CSRF cookie, the form lacks the token
	r := c.post("/login", url.Values{"email": {"owner@acme.example"}, "password": {testPassword}})
	assertBlocked(t, r, "POST /login without token")
	r = c.post("/login", url.Values{"_csrf": {"forged-token"}, "email": {"owner@acme.example"}, "password": {testPassword}})
	assertBlocked(t, r, "POST /login with a wrong token")
	r = c.with("Sec-Fetch-Site", "same-site").post("/login", url.Values{"email": {"owner@acme.example"}, "password": {testPassword}})
	assertBlocked(t, r, "same-site POST /login without token")
	if c.signedIn() {
		t.Fatal("signed in through a POST without a valid CSRF token")
	}
	r = c.post("/signup", url.Values{"account_name": {"Evil"}, "email": {"evil@acme.example"}, "password": {testPassword}})
	assertBlocked(t, r, "POST /signup without token")
	if r := a.client().login("evil@acme.example", testPassword); r.status == http.StatusSeeOther {
		t.Fatal("a sign-up without CSRF token created the account")
	}
}

func TestSameOriginPostWithoutTokenIsAllowed(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.client().signup("Acme Mail", "owner@acme.example")
	c := a.client().with("Sec-Fetch-Site", "same-origin")
	r := c.post("/login", url.Values{"email": {"owner@acme.example"}, "password": {testPassword}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/keys" {
		t.Fatalf("same-origin POST /login without token: status %d, Location %q", r.status, r.header.Get("Location"))
	}
	if !c.signedIn() {
		t.Fatal("not signed in after a same-origin login")
	}
}

// ---- Security headers ----

var nonceRE = regexp.MustCompile(`'nonce-([^']+)'`)

// assertSecurityHeaders checks every header keydesk promises on a response.
func assertSecurityHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	directives := map[string]string{}
	for _, d := range strings.Split(csp, ";") {
		f := strings.Fields(d)
		if len(f) > 0 {
			directives[f[0]] = strings.Join(f[1:], " ")
		}
	}
	for name, want := range map[string]string{
		"default-src": "'self'", "object-src": "'none'", "base-uri": "'none'", "frame-ancestors": "'none'",
	} {
		if directives[name] != want {
			t.Errorf("%s: CSP %s = %q, want %q (CSP %q)", what, name, directives[name], want, csp)
		}
	}
	if !nonceRE.MatchString(directives["script-src"]) {
		t.Errorf("%s: CSP script-src %q has no nonce", what, directives["script-src"])
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("%s: CSP allows unsafe-inline/eval: %q", what, csp)
	}
	if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options = %q", what, got)
	}
	if got := h.Get("Referrer-Policy"); got != "strict-origin-when-cross-origin" {
		t.Errorf("%s: Referrer-Policy = %q", what, got)
	}
}

func TestSecurityHeadersOnEveryKindOfResponse(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	css, _ := c.get("/login").doc.Find(`link[rel="stylesheet"]`).Attr("href")
	if css == "" {
		t.Fatal("no stylesheet link on /login")
	}
	big := url.Values{"_csrf": {c.csrf("/login")}, "email": {strings.Repeat("x", 1<<20+10)}}
	checks := []struct {
		what   string
		r      *resp
		status int
	}{
		{"HTML page", c.get("/login"), http.StatusOK},
		{"redirect", c.get("/"), http.StatusSeeOther},
		{"404 page", c.get("/no/such/page"), http.StatusNotFound},
		{"static file", c.get(css), http.StatusOK},
		{"probe", c.get("/healthz"), http.StatusOK},
		{"403 page", c.post("/login", url.Values{"email": {"x@acme.example"}}), http.StatusForbidden},
		{"413 page", c.post("/login", big), http.StatusRequestEntityTooLarge},
	}
	for _, ck := range checks {
		if ck.r.status != ck.status {
			t.Errorf("%s: status %d, want %d", ck.what, ck.r.status, ck.status)
		}
		assertSecurityHeaders(t, ck.what, ck.r.header)
		if ck.r.header.Get("Strict-Transport-Security") != "" {
			t.Errorf("%s: HSTS sent over plain http", ck.what)
		}
	}
}

func TestSecurityHeadersOnSignedInPagesAndReveal(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	r, _, _ := c.signupResp("Acme Mail", "owner@acme.example")
	assertSecurityHeaders(t, "sign-up reveal", r.header)
	assertSecurityHeaders(t, "keys page", c.get("/keys").header)
	assertSecurityHeaders(t, "signed-in 404", c.get("/keys/999999/reset").header)
}

func TestCSPNonceIsPerRequestAndMatchesScriptTags(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	nonceOf := func(r *resp) string {
		t.Helper()
		m := nonceRE.FindStringSubmatch(r.header.Get("Content-Security-Policy"))
		if m == nil {
			t.Fatalf("no nonce in CSP %q", r.header.Get("Content-Security-Policy"))
		}
		scripts := r.doc.Find("script")
		if scripts.Length() == 0 {
			t.Fatal("page has no script tags")
		}
		for i := range scripts.Nodes {
			n, _ := scripts.Eq(i).Attr("nonce")
			if n != m[1] {
				t.Fatalf("script %d nonce %q, CSP nonce %q", i, n, m[1])
			}
		}
		if len(m[1]) < 16 {
			t.Fatalf("nonce %q is too short to be unguessable", m[1])
		}
		return m[1]
	}
	n1, n2 := nonceOf(c.get("/login")), nonceOf(c.get("/login"))
	if n1 == n2 {
		t.Fatalf("two requests got the same nonce %q", n1)
	}
	c.signup("Acme Mail", "owner@acme.example")
	if n3 := nonceOf(c.get("/keys")); n3 == n1 || n3 == n2 {
		t.Fatal("nonce reused on the keys page")
	}
	if strings.Contains(c.get("/keys").body, "<script>") {
		t.Fatal("the keys page has an inline script without nonce")
	}
}

func TestHSTSAndSecureCookieOnlyUnderHTTPS(t *testing.T) {
	t.Parallel()
	t.Run("http", func(t *testing.T) {
		a := newApp(t)
		c := a.client()
		r, _, _ := c.signupResp("Acme Mail", "owner@acme.example")
		if h := r.header.Get("Strict-Transport-Security"); h != "" {
			t.Fatalf("HSTS over http: %q", h)
		}
		ck := r.setCookie(sessionCookie)
		if ck == nil {
			t.Fatal("no session cookie")
		}
		if ck.Secure {
			t.Fatal("session cookie Secure over plain http (it would never come back)")
		}
	})
	t.Run("https", func(t *testing.T) {
		a := newApp(t, func(cfg *web.Config) { cfg.BaseURL = "https://keys.example" })
		// The Secure CSRF cookie cannot return over the test's plain http,
		// so the browser proves same-origin with Fetch metadata.
		c := a.client().with("Sec-Fetch-Site", "same-origin")
		login := c.get("/login")
		if h := login.header.Get("Strict-Transport-Security"); !strings.Contains(h, "max-age=") || strings.Contains(h, "max-age=0") {
			t.Fatalf("HSTS under https = %q", h)
		}
		r, _, _ := c.signupResp("Acme Mail", "owner@acme.example")
		if h := r.header.Get("Strict-Transport-Security"); h == "" {
			t.Fatal("no HSTS on the sign-up response")
		}
		ck := r.setCookie(sessionCookie)
		if ck == nil || !ck.Secure {
			t.Fatalf("session cookie under https is not Secure: %+v", ck)
		}
		if h := c.get("/nope").header.Get("Strict-Transport-Security"); h == "" {
			t.Fatal("no HSTS on a 404")
		}
		for _, k := range r.cookies() {
			if !k.Secure {
				t.Fatalf("cookie %s not Secure under https", k.Name)
			}
		}
	})
}

func TestSessionCookieFlagsAndContents(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	const email = "owner@acme.example"
	r, apiKey, secret := c.signupResp("Acme Mail", email)
	ck := r.setCookie(sessionCookie)
	if ck == nil {
		t.Fatal("sign-up set no session cookie")
	}
	if !ck.HttpOnly {
		t.Error("session cookie is not HttpOnly")
	}
	if ck.SameSite != http.SameSiteLaxMode {
		t.Errorf("session cookie SameSite = %v, want Lax", ck.SameSite)
	}
	if ck.Path != "/" {
		t.Errorf("session cookie Path = %q", ck.Path)
	}
	raw := ck.Value
	decoded := raw
	if b, err := base64.URLEncoding.DecodeString(raw); err == nil {
		decoded = string(b)
	}
	for _, s := range []string{email, "owner", "Acme", apiKey, secret} {
		if strings.Contains(raw, s) || strings.Contains(decoded, s) {
			t.Errorf("session cookie carries %q", s)
		}
	}
	for _, k := range r.cookies() {
		if strings.Contains(k.Value, secret) || strings.Contains(k.Value, email) {
			t.Errorf("cookie %s carries the secret or e-mail", k.Name)
		}
	}
}

// ---- Probes, static files, errors, limits ----

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	for _, p := range []string{"/healthz", "/readyz"} {
		r := c.get(p)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d", p, r.status)
		}
		if !strings.Contains(r.body, `"status"`) {
			t.Fatalf("GET %s body %q", p, r.body)
		}
	}
	// Probes work for a signed-in browser too and never need CSRF.
	c.signup("Acme Mail", "owner@acme.example")
	if r := c.get("/readyz"); r.status != http.StatusOK {
		t.Fatalf("GET /readyz signed in: %d", r.status)
	}
}

func TestReadinessFailsWhenDatabaseIsGone(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	if err := a.store.Close(); err != nil {
		t.Fatalf("close store: %v", err)
	}
	c := a.client()
	if r := c.get("/readyz"); r.status != http.StatusServiceUnavailable {
		t.Fatalf("GET /readyz without database: %d, want 503", r.status)
	}
	if r := c.get("/healthz"); r.status != http.StatusOK {
		t.Fatalf("GET /healthz without database: %d, want 200 (the process is up)", r.status)
	}
}

func TestStaticAssetsAreVersionedAndCached(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	page := c.get("/login")
	css, _ := page.doc.Find(`link[rel="stylesheet"]`).Attr("href")
	js, _ := page.doc.Find(`script[src]`).First().Attr("src")
	for _, u := range []string{css, js} {
		if !strings.HasPrefix(u, "/static/") {
			t.Fatalf("asset URL %q is not under /static/", u)
		}
		r := c.get(u)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d", u, r.status)
		}
		cc := r.header.Get("Cache-Control")
		if !strings.Contains(cc, "immutable") || !strings.Contains(cc, "max-age=31536000") {
			t.Fatalf("GET %s: Cache-Control %q, want a year and immutable", u, cc)
		}
	}
	if ct := c.get(css).header.Get("Content-Type"); !strings.HasPrefix(ct, "text/css") {
		t.Fatalf("stylesheet Content-Type %q", ct)
	}
	if body := c.get(css).body; len(body) < 1000 {
		t.Fatalf("stylesheet is only %d bytes", len(body))
	}
	// A wrong version still serves the file but must not be cached for long.
	parts := strings.SplitN(strings.TrimPrefix(css, "/static/"), "/", 2)
	wrong := "/static/0000000000/" + parts[1]
	r := c.get(wrong)
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: %d", wrong, r.status)
	}
	if cc := r.header.Get("Cache-Control"); !strings.Contains(cc, "no-cache") || strings.Contains(cc, "immutable") {
		t.Fatalf("wrong version Cache-Control %q, want no-cache", cc)
	}
	for _, p := range []string{"/static/" + parts[0] + "/css/nope.css", "/static/" + parts[0] + "/embed.go", "/static/" + parts[0] + "/../go.mod"} {
		if r := c.get(p); r.status != http.StatusNotFound {
			t.Fatalf("GET %s: %d, want 404", p, r.status)
		}
	}
}

// The fonts named in app.css resolve under the stylesheet's version, not
// their own: they are served, as WOFF2, and revalidated by ETag (a 304,
// not the whole file again).
func TestFontsServedRelativeToTheStylesheet(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	css, _ := c.get("/login").doc.Find(`link[rel="stylesheet"]`).Attr("href")
	sheet := c.get(css).body
	for _, name := range []string{"inter-latin-wght-normal.woff2", "inter-latin-ext-wght-normal.woff2"} {
		if !strings.Contains(sheet, "url(../fonts/"+name+")") {
			t.Fatalf("app.css does not name ../fonts/%s", name)
		}
		u := strings.TrimSuffix(css, "css/app.css") + "fonts/" + name
		r := c.get(u)
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "font/woff2" || !strings.HasPrefix(r.body, "wOF2") {
			t.Fatalf("GET %s: %d %q, %d bytes: want a WOFF2 font", u, r.status, r.header.Get("Content-Type"), len(r.body))
		}
		etag := r.header.Get("ETag")
		if etag == "" || !strings.Contains(r.header.Get("Cache-Control"), "no-cache") {
			t.Fatalf("GET %s: ETag %q, Cache-Control %q: want an ETag and no-cache", u, etag, r.header.Get("Cache-Control"))
		}
		req, _ := http.NewRequest(http.MethodGet, a.srv.URL+u, nil)
		req.Header.Set("If-None-Match", etag)
		if r := c.do(req); r.status != http.StatusNotModified || r.body != "" {
			t.Fatalf("GET %s with If-None-Match: %d, %d bytes, want 304 and no body", u, r.status, len(r.body))
		}
	}
}

func TestUnknownRouteIs404PageWithoutGoErrorText(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	for _, p := range []string{"/no/such/page", "/keys/1/explode"} {
		r := c.get(p)
		if r.status != http.StatusNotFound {
			t.Fatalf("GET %s: status %d", p, r.status)
		}
		if !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
			t.Fatalf("GET %s: Content-Type %q", p, r.header.Get("Content-Type"))
		}
		if !r.has(`[data-testid="error-page"]`) || !r.has("html") || !strings.Contains(r.body, "Page not found") {
			t.Fatalf("GET %s: not the 404 page in the layout", p)
		}
		for _, leak := range []string{"code=404", "message=", "Not Found", "goroutine"} {
			if strings.Contains(r.body, leak) {
				t.Fatalf("GET %s: page contains %q", p, leak)
			}
		}
	}
}

func TestRequestBodyOver1MBIsRejected(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	c.signup("Acme Mail", "owner@acme.example")
	id := c.masterID()
	form := url.Values{"_csrf": {c.csrf("/keys")}, "name": {strings.Repeat("n", 1<<20)}}
	r := c.post("/keys/"+id+"/rename", form)
	if r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("1 MB body: status %d, want 413", r.status)
	}
	if !r.has(`[data-testid="error-page"]`) {
		t.Fatal("413 is not the error page")
	}
	// A normal-sized request still works afterwards.
	if r := c.submit("/keys", "/keys/"+id+"/rename", url.Values{"name": {"Fine"}}); r.status != http.StatusSeeOther {
		t.Fatalf("normal rename after the 413: %d", r.status)
	}
}

// The Mailjet API's answers, success or error, carry its own headers: a
// CSP under which a JSON answer can load, run and be framed by nothing,
// nosniff, a request ID, a Date for their second (formatted once a
// second, issue 13 #1), and no console cookie or HSTS over plain http.
func TestAPIAnswersHeaders(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	apiKey, secret := a.client().signup("Acme Mail", "owner@acme.example")
	for _, ck := range []struct {
		what, method, path, user, pass string
		status                         int
	}{
		{"list", http.MethodGet, "/v3/REST/apikey", apiKey, secret, http.StatusOK},
		{"wrong secret", http.MethodGet, "/v3/REST/apikey", apiKey, "kd_live_wrong", http.StatusUnauthorized},
		{"no such key", http.MethodGet, "/v3/REST/apikey/999999", apiKey, secret, http.StatusNotFound},
		{"bad JSON", http.MethodPost, "/v3/REST/apikey", apiKey, secret, http.StatusBadRequest},
	} {
		before := time.Now().Add(-time.Second)
		body := ""
		if ck.method == http.MethodPost {
			body = "{not json"
		}
		status, _, h := restDo(t, a, ck.method, ck.path, ck.user, ck.pass, body)
		after := time.Now().Add(time.Second)
		if status != ck.status {
			t.Errorf("%s: status %d, want %d", ck.what, status, ck.status)
		}
		if got := h.Get("Content-Security-Policy"); got != "default-src 'none'; frame-ancestors 'none'" {
			t.Errorf("%s: CSP %q", ck.what, got)
		}
		if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q", ck.what, got)
		}
		if h.Get("X-Request-Id") == "" {
			t.Errorf("%s: no X-Request-Id", ck.what)
		}
		if got := h.Values("Date"); len(got) != 1 {
			t.Errorf("%s: Date headers %q, want one", ck.what, got)
		} else if d, err := http.ParseTime(got[0]); err != nil || d.Before(before.Truncate(time.Second)) || d.After(after) {
			t.Errorf("%s: Date %q (%v), want between %v and %v", ck.what, got[0], err, before, after)
		}
		if h.Get("Set-Cookie") != "" || h.Get("Strict-Transport-Security") != "" {
			t.Errorf("%s: Set-Cookie %q, HSTS %q on a plain-http API answer", ck.what, h.Get("Set-Cookie"), h.Get("Strict-Transport-Security"))
		}
	}
}
