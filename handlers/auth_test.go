package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"keydesk/models"
	"keydesk/web"
)

// ---- Landing, sign-up ----

func TestHomeSendsSignedOutVisitorToLoginWhichLinksToSignup(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	r := c.get("/")
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/login" {
		t.Fatalf("GET / signed out: status %d, Location %q; want 303 to /login", r.status, r.header.Get("Location"))
	}
	r = c.get("/login")
	if r.status != http.StatusOK {
		t.Fatalf("GET /login: %d", r.status)
	}
	if !r.has(`a[href="/signup"]`) {
		t.Fatal("login page has no link to /signup")
	}
	if !r.has(`form[action="/login"][method="post"] input[name="password"][type="password"]`) {
		t.Fatal("login page has no login form with a password field")
	}
}

func TestHomeSendsOwnerToKeys(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	c.signup("Acme Mail", "owner@acme.example")
	r := c.get("/")
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/keys" {
		t.Fatalf("GET / signed in: status %d, Location %q; want 303 to /keys", r.status, r.header.Get("Location"))
	}
	r = c.get("/keys")
	if r.text("h1") != "API Key Management" {
		t.Fatalf("keys page heading %q", r.text("h1"))
	}
	if got := r.text(`[data-testid="account-menu"]`); !strings.Contains(got, "Acme Mail") || !strings.Contains(got, "owner") {
		t.Fatalf("header account menu %q lacks account name and role", got)
	}
}

func TestSignupValidationErrorsRerenderInline(t *testing.T) {
	t.Parallel()
	const shortPw = "tiny-pw-1"
	cases := []struct {
		name, field, want string
		form              url.Values
		dup               bool
	}{
		{"short password", "password", "12", url.Values{"account_name": {"Acme"}, "email": {"a@acme.example"}, "password": {shortPw}}, false},
		{"bad e-mail", "email", "e-mail address", url.Values{"account_name": {"Acme"}, "email": {"not-an-address"}, "password": {testPassword}}, false},
		{"e-mail without domain dot", "email", "e-mail address", url.Values{"account_name": {"Acme"}, "email": {"a@localhost"}, "password": {testPassword}}, false},
		{"empty name", "account_name", "Enter a name", url.Values{"account_name": {"   "}, "email": {"a@acme.example"}, "password": {testPassword}}, false},
		{"duplicate e-mail", "email", "cannot be used", url.Values{"account_name": {"Acme Two"}, "email": {"Taken@Acme.example"}, "password": {testPassword}}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newApp(t)
			if tc.dup {
				a.client().signup("Acme", "taken@acme.example")
			}
			c := a.client()
			r := c.submit("/signup", "/signup", tc.form)
			if r.status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422", r.status)
			}
			msg := r.text("#e-" + tc.field)
			if !strings.Contains(msg, tc.want) {
				t.Fatalf("inline error for %s = %q, want it to mention %q", tc.field, msg, tc.want)
			}
			if v, _ := r.doc.Find("#f-" + tc.field).Attr("aria-invalid"); v != "true" {
				t.Fatalf("field %s not marked aria-invalid", tc.field)
			}
			if !r.has(`form[action="/signup"]`) {
				t.Fatal("the form is not re-rendered")
			}
			// What the person typed is kept, except the password.
			if v, _ := r.doc.Find(`#f-email`).Attr("value"); v != tc.form.Get("email") {
				t.Fatalf("e-mail value %q not kept (want %q)", v, tc.form.Get("email"))
			}
			pw := tc.form.Get("password")
			if strings.Contains(r.body, pw) {
				t.Fatal("the password is echoed back into the page")
			}
			if r.has(`[data-testid="reveal-secret"]`) || r.setCookie(sessionCookie) != nil {
				t.Fatal("a failed sign-up revealed a secret or started a session")
			}
			if c.signedIn() {
				t.Fatal("signed in after a failed sign-up")
			}
		})
	}
}

// ---- Login ----

func TestLoginSucceedsAndRedirectsToKeys(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.client().signup("Acme Mail", "owner@acme.example")
	c := a.client()
	r := c.login("  OWNER@acme.example ", testPassword)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/keys" {
		t.Fatalf("login: status %d, Location %q; want 303 to /keys", r.status, r.header.Get("Location"))
	}
	if !c.signedIn() {
		t.Fatal("not signed in after a successful login")
	}
}

func TestLoginFailureIsTheSameForUnknownEmailAndWrongPassword(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.client().signup("Acme Mail", "owner@acme.example")
	c := a.client()
	wrong := c.login("owner@acme.example", "not the right password")
	unknown := c.login("nobody@acme.example", "not the right password")
	if wrong.status != http.StatusUnauthorized && wrong.status != http.StatusUnprocessableEntity {
		t.Fatalf("wrong password: status %d, want a 4xx form error", wrong.status)
	}
	if wrong.status != unknown.status {
		t.Fatalf("wrong password answers %d, unknown e-mail %d: enumeration", wrong.status, unknown.status)
	}
	wm, um := wrong.text(`[data-testid="login-error"]`), unknown.text(`[data-testid="login-error"]`)
	if wm == "" || wm != um {
		t.Fatalf("messages differ or are empty: wrong password %q, unknown e-mail %q", wm, um)
	}
	if v, _ := wrong.doc.Find("#f-email").Attr("value"); v != "owner@acme.example" {
		t.Fatalf("e-mail not kept in the form: %q", v)
	}
	if strings.Contains(wrong.body, "not the right password") {
		t.Fatal("the password is echoed back")
	}
	if wrong.setCookie(sessionCookie) != nil && wrong.setCookie(sessionCookie).MaxAge >= 0 {
		t.Fatal("a failed login set a session cookie")
	}
	if c.signedIn() {
		t.Fatal("signed in after failed logins")
	}
}

// retryAfter checks r is the throttled login page and returns Retry-After.
func assertThrottled(t *testing.T, r *resp) int {
	t.Helper()
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429", r.status)
	}
	ra, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || ra <= 0 || ra > int(models.DefaultThrottle.Lockout/time.Second) {
		t.Fatalf("Retry-After %q: want seconds in (0, lockout]", r.header.Get("Retry-After"))
	}
	if msg := r.text(`[data-testid="login-error"]`); !strings.Contains(msg, "Too many failed attempts") || !strings.Contains(msg, "Try again in") {
		t.Fatalf("throttled page message %q is not clear", msg)
	}
	if r.setCookie(sessionCookie) != nil && r.setCookie(sessionCookie).MaxAge >= 0 {
		t.Fatal("a throttled login set a session cookie")
	}
	return ra
}

func TestLoginThrottledPerAccount(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.client().signup("Acme Mail", "owner@acme.example")
	a.client().signup("Other", "other@acme.example")
	c := a.client()
	for i := 0; i < models.DefaultThrottle.PerPair-1; i++ {
		if r := c.login("owner@acme.example", "wrong password "+strconv.Itoa(i)); r.status != http.StatusUnauthorized {
			t.Fatalf("failure %d: status %d, want 401", i+1, r.status)
		}
	}
	if r := c.login("owner@acme.example", "wrong password again"); r.status != http.StatusUnauthorized && r.status != http.StatusTooManyRequests {
		t.Fatalf("last failure: status %d", r.status)
	}
	// Locked: even the right password is refused.
	assertThrottled(t, c.login("owner@acme.example", testPassword))
	if c.signedIn() {
		t.Fatal("signed in while locked out")
	}
	// Per account: another account from the same IP is not affected.
	if r := a.client().login("other@acme.example", testPassword); r.status != http.StatusSeeOther {
		t.Fatalf("other account locked out too: status %d", r.status)
	}
	// After the lockout the right password works again.
	a.clock.Advance(models.DefaultThrottle.Lockout + time.Second)
	if r := c.login("owner@acme.example", testPassword); r.status != http.StatusSeeOther || r.header.Get("Location") != "/keys" {
		t.Fatalf("after the lockout: status %d, want 303 to /keys", r.status)
	}
	if !c.signedIn() {
		t.Fatal("not signed in after the lockout ended")
	}
}

func TestLoginThrottledPerIPAcrossManyEmails(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.client().signup("Acme Mail", "owner@acme.example")
	c := a.client()
	for i := 0; i < models.DefaultThrottle.PerIP; i++ {
		r := c.login("unknown"+strconv.Itoa(i)+"@acme.example", "wrong password")
		if i < models.DefaultThrottle.PerIP-1 && r.status != http.StatusUnauthorized {
			t.Fatalf("failure %d: status %d, want 401", i+1, r.status)
		}
	}
	// This account never failed, but the IP is locked.
	assertThrottled(t, c.login("owner@acme.example", testPassword))
	a.clock.Advance(models.DefaultThrottle.Lockout + time.Second)
	if r := c.login("owner@acme.example", testPassword); r.status != http.StatusSeeOther {
		t.Fatalf("after the lockout: status %d, want 303", r.status)
	}
}

func TestLoginIPThrottleIsPerClientBehindTrustedProxy(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(cfg *web.Config) { cfg.TrustProxy = true })
	a.client().signup("Acme Mail", "owner@acme.example")
	attacker := a.client().with("X-Forwarded-For", "203.0.113.7")
	for i := 0; i < models.DefaultThrottle.PerIP; i++ {
		attacker.login("unknown"+strconv.Itoa(i)+"@acme.example", "wrong password")
	}
	assertThrottled(t, attacker.login("owner@acme.example", testPassword))
	other := a.client().with("X-Forwarded-For", "198.51.100.9")
	if r := other.login("owner@acme.example", testPassword); r.status != http.StatusSeeOther {
		t.Fatalf("a different client IP is locked out too: status %d", r.status)
	}
}

func TestLoginIPThrottleIgnoresSpoofedForwardedFor(t *testing.T) {
	t.Parallel()
	a := newApp(t) // TrustProxy off: X-Forwarded-For must not pick the IP
	a.client().signup("Acme Mail", "owner@acme.example")
	for i := 0; i < models.DefaultThrottle.PerIP; i++ {
		a.client().with("X-Forwarded-For", "203.0.113."+strconv.Itoa(i+1)).login("unknown"+strconv.Itoa(i)+"@acme.example", "wrong password")
	}
	assertThrottled(t, a.client().with("X-Forwarded-For", "198.51.100.9").login("owner@acme.example", testPassword))
}

// ---- Sessions ----

func TestLogoutDeletesSessionSoReplayedCookieIsRejected(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	c.signup("Acme Mail", "owner@acme.example")
	old := c.cookie(sessionCookie)
	if old == "" {
		t.Fatal("no session cookie after sign-up")
	}
	// The cookie works in another browser before logout (so the replay test below means something).
	before := a.client()
	before.setCookie(sessionCookie, old)
	if !before.signedIn() {
		t.Fatal("copied session cookie does not work before logout")
	}
	r := c.submit("/keys", "/logout", nil)
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/login") {
		t.Fatalf("logout: status %d, Location %q; want 303 to /login", r.status, r.header.Get("Location"))
	}
	if ck := r.setCookie(sessionCookie); ck == nil || ck.MaxAge >= 0 {
		t.Fatal("logout does not expire the session cookie")
	}
	if page := c.get(r.header.Get("Location")); !strings.Contains(page.body, "You are logged out.") {
		t.Fatal("login page after logout does not say so")
	}
	if c.signedIn() {
		t.Fatal("still signed in after logout")
	}
	replay := a.client()
	replay.setCookie(sessionCookie, old)
	if replay.signedIn() {
		t.Fatal("replayed cookie still opens /keys after logout")
	}
}

func TestLogoutNeedsPostAndSession(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	c.signup("Acme Mail", "owner@acme.example")
	if r := c.get("/logout"); r.status != http.StatusMethodNotAllowed && r.status != http.StatusNotFound {
		t.Fatalf("GET /logout: status %d, want 405 or 404", r.status)
	}
	if !c.signedIn() {
		t.Fatal("GET /logout signed the user out (GET must not change state)")
	}
}

func TestSessionIDChangesAtLogin(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	c.signup("Acme Mail", "owner@acme.example")
	first := c.cookie(sessionCookie)
	// Log in again from the signed-in browser.
	r := c.submit("/keys", "/login", url.Values{"email": {"owner@acme.example"}, "password": {testPassword}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("second login: status %d", r.status)
	}
	second := c.cookie(sessionCookie)
	if second == "" || second == first {
		t.Fatal("session cookie did not change at login")
	}
	if !c.signedIn() {
		t.Fatal("not signed in with the new session")
	}
	stale := a.client()
	stale.setCookie(sessionCookie, first)
	if stale.signedIn() {
		t.Fatal("the pre-login session still works: the session ID did not change server-side")
	}
}

func TestSessionIdleTimeout(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	c.signup("Acme Mail", "owner@acme.example")
	a.clock.Advance(29 * time.Minute)
	if !c.signedIn() {
		t.Fatal("signed out after 29 idle minutes (timeout is 30)")
	}
	a.clock.Advance(31 * time.Minute)
	if c.signedIn() {
		t.Fatal("still signed in after 31 idle minutes")
	}
}

func TestSessionAbsoluteLifetime(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	c.signup("Acme Mail", "owner@acme.example")
	const step = 25 * time.Minute
	var elapsed time.Duration
	for elapsed+step < 12*time.Hour {
		a.clock.Advance(step)
		elapsed += step
		if !c.signedIn() {
			t.Fatalf("an active session ended after %s (lifetime is 12 h)", elapsed)
		}
	}
	a.clock.Advance(step)
	if c.signedIn() {
		t.Fatalf("an active session outlived the absolute lifetime (%s)", elapsed+step)
	}
}

// ---- Change password ----

func TestChangePasswordEndsOtherSessionsButKeepsThisOne(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	c.signup("Acme Mail", "owner@acme.example")
	other := a.client()
	if r := other.login("owner@acme.example", testPassword); r.status != http.StatusSeeOther {
		t.Fatalf("second browser login: %d", r.status)
	}
	const next = "a brand new long passphrase"
	r := c.submit("/account/password", "/account/password", url.Values{"current": {testPassword}, "new": {next}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("change password: status %d, want 303", r.status)
	}
	if page := c.get(r.header.Get("Location")); !strings.Contains(page.body, "Every other session was signed out") {
		t.Fatal("no confirmation after the password change")
	}
	if !c.signedIn() {
		t.Fatal("the session that changed the password was ended")
	}
	if other.signedIn() {
		t.Fatal("the other session survived the password change")
	}
	if r := a.client().login("owner@acme.example", testPassword); r.status == http.StatusSeeOther {
		t.Fatal("the old password still logs in")
	}
	if r := a.client().login("owner@acme.example", next); r.status != http.StatusSeeOther {
		t.Fatalf("the new password does not log in: %d", r.status)
	}
}

func TestChangePasswordValidation(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	c.signup("Acme Mail", "owner@acme.example")
	other := a.client()
	other.login("owner@acme.example", testPassword)

	r := c.submit("/account/password", "/account/password", url.Values{"current": {"not my password"}, "new": {"a brand new long passphrase"}})
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("wrong current password: status %d, want 422", r.status)
	}
	if msg := r.text("#e-current"); !strings.Contains(msg, "current password") {
		t.Fatalf("inline error for current = %q", msg)
	}
	r = c.submit("/account/password", "/account/password", url.Values{"current": {testPassword}, "new": {"short"}})
	if r.status != http.StatusUnprocessableEntity || r.text("#e-new") == "" {
		t.Fatalf("too short new password: status %d, inline error %q", r.status, r.text("#e-new"))
	}
	// Nothing changed: the old password works and the other session lives.
	if r := a.client().login("owner@acme.example", testPassword); r.status != http.StatusSeeOther {
		t.Fatalf("old password stopped working after rejected changes: %d", r.status)
	}
	if !other.signedIn() {
		t.Fatal("a rejected password change ended another session")
	}
}

func TestChangePasswordNeedsSignIn(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	if r := c.get("/account/password"); r.status != http.StatusSeeOther || r.header.Get("Location") != "/login?next=%2Faccount%2Fpassword" {
		t.Fatalf("GET /account/password signed out: %d %q", r.status, r.header.Get("Location"))
	}
	r := c.submit("/login", "/account/password", url.Values{"current": {testPassword}, "new": {"a brand new long passphrase"}})
	if r.status != http.StatusUnauthorized && r.status != http.StatusSeeOther {
		t.Fatalf("POST /account/password signed out: status %d", r.status)
	}
}

// ---- Sign-up switched off ----

func TestSignupDisabled(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(cfg *web.Config) { cfg.SignupEnabled = false })
	c := a.client()
	r := c.get("/signup")
	if !strings.Contains(r.text(`[data-testid="signup-closed"]`), "Sign-up is closed") {
		t.Fatalf("GET /signup does not say sign-up is closed (status %d)", r.status)
	}
	if r.has(`form[action="/signup"]`) {
		t.Fatal("the closed sign-up page still shows the form")
	}
	r = c.submit("/login", "/signup", url.Values{"account_name": {"Acme"}, "email": {"owner@acme.example"}, "password": {testPassword}})
	if r.status != http.StatusForbidden {
		t.Fatalf("POST /signup when closed: status %d, want 403", r.status)
	}
	if r.has(`[data-testid="reveal-secret"]`) {
		t.Fatal("a closed sign-up revealed a secret")
	}
	if c.signedIn() {
		t.Fatal("signed in after a refused sign-up")
	}
	// No user was created.
	if _, _, err := a.store.Login(context.Background(), "owner@acme.example", testPassword, "", models.RequestMeta{IP: "192.0.2.1"}); err == nil {
		t.Fatal("POST /signup created a user while sign-up is closed")
	}
}
