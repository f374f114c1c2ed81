package handlers_test

import (
	"net/http"
	"net/url"
	"testing"
)

// Issue 9, finding 9: the CSRF token is bound to the server-side session,
// not to a cookie the browser can be made to carry.

// A planted CSRF cookie and a token equal to it (the double-submit
// pattern's weakness) are refused, with or without same-site fetch
// metadata.
func TestPlantedCSRFCookieIsRejected(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	c.signup("Acme Mail", "owner@acme.example")
	for _, name := range []string{"keydesk_csrf", "keydesk_presession", "__Host-keydesk_presession"} {
		c.setCookie(name, "a")
	}
	r := c.with("Sec-Fetch-Site", "same-site").post("/logout", url.Values{"_csrf": {"a"}})
	assertBlocked(t, r, "same-site POST /logout with a planted cookie and a one-character token")
	r = c.post("/logout", url.Values{"_csrf": {"a"}})
	assertBlocked(t, r, "POST /logout with a planted cookie and a matching token")
	if !c.signedIn() {
		t.Fatal("a forged POST /logout signed the user out")
	}
}

// A token taken from another session (another person's, or this
// browser's previous one) is refused.
func TestCSRFTokenFromAnotherSessionIsRejected(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	alice := a.client()
	alice.signup("Acme Mail", "owner@acme.example")
	bob := a.client()
	bob.signup("Bob Mail", "bob@bob.example")
	aliceTok := alice.csrf("/keys")
	r := bob.post("/logout", url.Values{"_csrf": {aliceTok}})
	assertBlocked(t, r, "Bob's POST /logout with Alice's token")
	if !bob.signedIn() {
		t.Fatal("Alice's token signed Bob out")
	}

	// The same browser, signed out and in again: the old session's token
	// no longer works, the new one does.
	old := alice.csrf("/keys")
	if r := alice.post("/logout", url.Values{"_csrf": {old}}); r.status != http.StatusSeeOther {
		t.Fatalf("logout with the session's own token: %d", r.status)
	}
	if r := alice.login("owner@acme.example", testPassword); r.status != http.StatusSeeOther {
		t.Fatalf("login: %d", r.status)
	}
	r = alice.post("/logout", url.Values{"_csrf": {old}})
	assertBlocked(t, r, "POST /logout with the previous session's token")
	if !alice.signedIn() {
		t.Fatal("the previous session's token signed the user out")
	}
	if r := alice.post("/logout", url.Values{"_csrf": {alice.csrf("/keys")}}); r.status != http.StatusSeeOther || alice.signedIn() {
		t.Fatalf("logout with the current token: %d", r.status)
	}
}

// The token a signed-out page carries (login form) stops working once
// the browser is signed in: a token an attacker can obtain for a cookie
// they planted never authorises a signed-in action.
func TestPreSessionTokenDoesNotWorkSignedIn(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	a.client().signup("Acme Mail", "owner@acme.example")
	c := a.client()
	pre := c.csrf("/login")
	if r := c.post("/login", url.Values{"_csrf": {pre}, "email": {"owner@acme.example"}, "password": {testPassword}}); r.status != http.StatusSeeOther {
		t.Fatalf("login with the login form's token: %d", r.status)
	}
	r := c.post("/logout", url.Values{"_csrf": {pre}})
	assertBlocked(t, r, "POST /logout with the login form's token")
	if !c.signedIn() {
		t.Fatal("the pre-session token signed the user out")
	}
	// A session-bound token travels in the header htmx uses, too.
	tok := c.csrf("/keys")
	req, _ := http.NewRequest(http.MethodPost, a.srv.URL+"/logout", nil)
	req.Header.Set("X-CSRF-Token", tok)
	req.Header.Set("HX-Request", "true")
	if r := c.do(req); r.status >= 400 || c.signedIn() {
		t.Fatalf("htmx POST /logout with the token in X-CSRF-Token: %d", r.status)
	}
}

// Sign-up and login forms work with the token of the page that carried
// them; the sign-up page's reveal carries a token of the new session.
func TestSignupRevealCarriesTheNewSessionsToken(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	r, _, _ := c.signupResp("Acme Mail", "owner@acme.example")
	tok, _ := r.doc.Find(`input[name="_csrf"]`).First().Attr("value")
	if tok == "" {
		t.Fatal("no CSRF token on the sign-up response")
	}
	if r := c.post("/logout", url.Values{"_csrf": {tok}}); r.status != http.StatusSeeOther {
		t.Fatalf("logout with the token of the sign-up response: %d", r.status)
	}
}
