package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"keydesk/models"
)

// verifies reports whether models accepts the API key + secret pair now.
func (a *app) verifies(apiKey, secret string) bool {
	_, err := a.store.Verify(context.Background(), apiKey, secret)
	return err == nil
}

// keyRow reads a key straight from the database, through the pair that
// authenticates it.
func (a *app) keyRow(apiKey, secret string) *models.APIKey {
	a.t.Helper()
	p, err := a.store.Verify(context.Background(), apiKey, secret)
	if err != nil {
		a.t.Fatalf("verify %s: %v", apiKey, err)
	}
	owner := p.AccountID // the owner of a sub-account key is its parent account
	if p.ParentID != 0 {
		owner = p.ParentID
	}
	k, err := a.store.KeyByID(context.Background(), models.Actor{AccountID: owner, Role: models.RoleOwner}, p.KeyID)
	if err != nil {
		a.t.Fatalf("load key %d: %v", p.KeyID, err)
	}
	return k
}

// hint is the masked form of a secret the keys page may show.
func hint(secret string) string {
	return models.SecretPrefix + "…" + secret[len(secret)-4:]
}

// reset posts the reset form of key id with the token from /keys.
func (c *client) reset(id string, form url.Values) *resp {
	c.t.Helper()
	return c.submit("/keys", "/keys/"+id+"/reset", form)
}

func assertNoStore(t *testing.T, what string, r *resp) {
	t.Helper()
	if cc := r.header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Fatalf("%s: Cache-Control %q, want no-store", what, cc)
	}
}

// ---- Sign-up reveal and the keys page ----

func TestSignupRevealIsNoStoreAndKeysPageShowsOnlyTheHint(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	r, apiKey, secret := c.signupResp("Acme Mail", "owner@acme.example")
	assertNoStore(t, "sign-up reveal", r)
	if !strings.Contains(r.body, secret) {
		t.Fatal("sign-up response lacks the secret")
	}
	if len(apiKey) != 32 || strings.Trim(apiKey, "0123456789abcdef") != "" {
		t.Fatalf("API key %q is not 32 lowercase hex", apiKey)
	}
	if !strings.HasPrefix(secret, models.SecretPrefix) || !models.ValidSecretFormat(secret) {
		t.Fatalf("secret %q has not the keydesk format", secret)
	}
	if !a.verifies(apiKey, secret) {
		t.Fatal("the revealed master secret does not verify")
	}
	if !r.has(`[data-testid="reveal-modal"] [data-testid="stored-checkbox"]`) || !strings.Contains(r.body, "only time") {
		t.Fatal("the reveal modal lacks the stored checkbox or the shown-once warning")
	}
	for k, vs := range r.header {
		for _, v := range vs {
			if strings.Contains(v, secret) {
				t.Fatalf("response header %s carries the secret", k)
			}
		}
	}

	page := c.get("/keys")
	if page.status != http.StatusOK {
		t.Fatalf("GET /keys: %d", page.status)
	}
	if strings.Contains(page.body, secret) || strings.Contains(page.body, secret[len(models.SecretPrefix):len(secret)-4]) {
		t.Fatal("GET /keys after the reveal contains the secret")
	}
	if page.has(`[data-testid="reveal-secret"]`) {
		t.Fatal("GET /keys shows a reveal modal")
	}
	if got := page.text(`[data-testid="master-card"] [data-testid="secret-hint"]`); got != hint(secret) {
		t.Fatalf("masked hint %q, want %q", got, hint(secret))
	}
	if got := page.text(`[data-testid="master-card"] [data-testid="api-key"]`); got != apiKey {
		t.Fatalf("API key on the page %q, want %q", got, apiKey)
	}
	if got := page.text(`[data-testid="master-card"] [data-testid="key-name"]`); got != "Acme Mail" {
		t.Fatalf("master key name %q", got)
	}
	if got := page.text(`[data-testid="master-card"] [data-testid="last-used"]`); got != "never" {
		t.Fatalf("last used %q, want never", got)
	}
	if !strings.Contains(page.body, "smtp.test.example") {
		t.Fatal("keys page has no SMTP settings")
	}
}

// ---- Reset Secret Key ----

func TestResetWithoutCSRFTokenIsRejected(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	apiKey, secret := c.signup("Acme Mail", "owner@acme.example")
	id := c.masterID()
	r := c.post("/keys/"+id+"/reset", url.Values{"grace": {"0"}})
	assertBlocked(t, r, "reset without token")
	if _, s := r.revealed(); s != "" {
		t.Fatal("a rejected reset revealed a secret")
	}
	r = c.with("Sec-Fetch-Site", "cross-site").post("/keys/"+id+"/reset", url.Values{"_csrf": {c.csrf("/keys")}, "grace": {"0"}})
	assertBlocked(t, r, "cross-site reset")
	if !a.verifies(apiKey, secret) {
		t.Fatal("the secret changed after rejected resets")
	}
}

func TestOtherAccountsKeyAnswers404(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	alice := a.client()
	aliceKey, aliceSecret := alice.signup("Alice Co", "alice@acme.example")
	aliceID := alice.masterID()
	bob := a.client()
	bob.signup("Bob Co", "bob@acme.example")
	if bob.masterID() == aliceID {
		t.Fatal("both accounts got the same key ID")
	}
	for _, p := range []string{"reset", "rename", "deactivate"} {
		r := bob.get("/keys/" + aliceID + "/" + p)
		if r.status != http.StatusNotFound {
			t.Fatalf("GET another account's /%s: %d, want 404", p, r.status)
		}
		if strings.Contains(r.body, "Alice Co") || strings.Contains(r.body, aliceKey) {
			t.Fatalf("404 for /%s leaks the other account's key", p)
		}
	}
	posts := map[string]url.Values{
		"reset": {"grace": {"0"}}, "rename": {"name": {"Stolen"}}, "deactivate": nil, "activate": nil,
	}
	for p, form := range posts {
		r := bob.submit("/keys", "/keys/"+aliceID+"/"+p, form)
		if r.status != http.StatusNotFound {
			t.Fatalf("POST another account's /%s: %d, want 404", p, r.status)
		}
		if _, s := r.revealed(); s != "" {
			t.Fatalf("POST another account's /%s revealed a secret", p)
		}
	}
	if !a.verifies(aliceKey, aliceSecret) {
		t.Fatal("Alice's secret stopped working")
	}
	if k := a.keyRow(aliceKey, aliceSecret); k.Name != "Alice Co" || !k.IsActive {
		t.Fatalf("Alice's key was changed: name %q active %v", k.Name, k.IsActive)
	}
}

func TestMalformedOrUnknownKeyIDAnswers404(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	c.signup("Acme Mail", "owner@acme.example")
	for _, id := range []string{"abc", "0", "-1", "1.5", "4294967296", "99999999999999999999999", "999999", "1%20"} {
		if r := c.get("/keys/" + id + "/reset"); r.status != http.StatusNotFound {
			t.Errorf("GET /keys/%s/reset: %d, want 404", id, r.status)
		}
		if r := c.submit("/keys", "/keys/"+id+"/rename", url.Values{"name": {"x"}}); r.status != http.StatusNotFound {
			t.Errorf("POST /keys/%s/rename: %d, want 404", id, r.status)
		}
	}
}

func TestGetResetFormChangesNothing(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	apiKey, secret := c.signup("Acme Mail", "owner@acme.example")
	id := c.masterID()
	r := c.get("/keys/" + id + "/reset")
	if r.status != http.StatusOK || !r.has(`[data-testid="reset-dialog"]`) {
		t.Fatalf("GET reset form: %d", r.status)
	}
	if !strings.Contains(r.body, "must be updated") {
		t.Fatal("the reset dialog does not say every client must be updated")
	}
	for _, g := range []string{"0", "1h", "24h", "7d"} {
		if !r.has(`input[name="grace"][value="` + g + `"]`) {
			t.Fatalf("no grace option %q", g)
		}
	}
	if v, _ := r.doc.Find(`input[name="grace"][checked]`).Attr("value"); v != "0" {
		t.Fatalf("default grace %q, want immediately", v)
	}
	if r.has(`#reset-dialog input[name="password"]`) {
		t.Fatal("password asked inside the sudo window")
	}
	if _, s := r.revealed(); s != "" || !a.verifies(apiKey, secret) {
		t.Fatal("GET of the reset form changed the secret")
	}
}

func TestResetInSudoModeRevealsNewSecretAndKillsOldOne(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	apiKey, old := c.signup("Acme Mail", "owner@acme.example")
	id := c.masterID()
	r := c.reset(id, url.Values{"grace": {"0"}})
	if r.status != http.StatusOK {
		t.Fatalf("reset: status %d", r.status)
	}
	assertNoStore(t, "reset reveal", r)
	gotKey, fresh := r.revealed()
	if gotKey != apiKey {
		t.Fatalf("reveal shows API key %q, want %q (the API key does not change)", gotKey, apiKey)
	}
	if fresh == "" || fresh == old {
		t.Fatalf("new secret %q is empty or equal to the old one", fresh)
	}
	if !a.verifies(apiKey, fresh) {
		t.Fatal("the new secret does not verify")
	}
	if a.verifies(apiKey, old) {
		t.Fatal("the old secret still verifies after an immediate reset")
	}
	page := c.get("/keys")
	if strings.Contains(page.body, fresh) || strings.Contains(page.body, old) {
		t.Fatal("GET /keys after the reset reveal contains a secret")
	}
	if got := page.text(`[data-testid="master-card"] [data-testid="secret-hint"]`); got != hint(fresh) {
		t.Fatalf("hint after reset %q, want %q", got, hint(fresh))
	}
	if page.has(`[data-testid="grace"]`) {
		t.Fatal("an immediate reset shows a grace period")
	}
}

func TestResetWithGraceKeepsOldSecretUntilItEnds(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	apiKey, old := c.signup("Acme Mail", "owner@acme.example")
	id := c.masterID()
	r := c.reset(id, url.Values{"grace": {"1h"}})
	if r.status != http.StatusOK {
		t.Fatalf("reset with grace: %d", r.status)
	}
	_, fresh := r.revealed()
	if fresh == "" || fresh == old {
		t.Fatal("no new secret revealed")
	}
	if !a.verifies(apiKey, old) || !a.verifies(apiKey, fresh) {
		t.Fatal("during the grace period both secrets must work")
	}
	page := c.get("/keys")
	grace := page.text(`[data-testid="master-card"] [data-testid="grace"]`)
	if !strings.Contains(grace, "works until") || !strings.Contains(grace, "13:00") {
		t.Fatalf("grace line %q, want 'works until … 13:00 UTC'", grace)
	}
	a.clock.Advance(time.Hour + time.Second)
	if a.verifies(apiKey, old) {
		t.Fatal("the old secret still works after its grace period")
	}
	if !a.verifies(apiKey, fresh) {
		t.Fatal("the new secret stopped working")
	}
}

func TestResetWithInvalidGraceIs422(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	apiKey, secret := c.signup("Acme Mail", "owner@acme.example")
	id := c.masterID()
	for _, g := range []string{"2h", "1d", "-1", "forever"} {
		r := c.reset(id, url.Values{"grace": {g}})
		if r.status != http.StatusUnprocessableEntity {
			t.Fatalf("grace %q: status %d, want 422", g, r.status)
		}
		if !r.has(`[data-testid="reset-dialog"] .field-error`) {
			t.Fatalf("grace %q: no inline error in the dialog", g)
		}
		if _, s := r.revealed(); s != "" {
			t.Fatalf("grace %q revealed a secret", g)
		}
	}
	if !a.verifies(apiKey, secret) {
		t.Fatal("an invalid grace value still reset the secret")
	}
}

func TestResetOutsideSudoModeAsksForPassword(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	apiKey, old := c.signup("Acme Mail", "owner@acme.example")
	id := c.masterID()
	a.clock.Advance(16 * time.Minute)

	form := c.get("/keys/" + id + "/reset")
	if !form.has(`[data-testid="reset-dialog"] input[name="password"][type="password"]`) {
		t.Fatal("outside sudo mode the reset dialog has no password field")
	}
	// The label says how long sudo mode lasts, from models.SudoWindow.
	if got := form.text(`[data-testid="reset-dialog"] label[for="f-password"]`); !strings.Contains(got, "15 minutes") {
		t.Fatalf("password label %q does not give the sudo window", got)
	}

	r := c.reset(id, url.Values{"grace": {"0"}})
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("no password: status %d, want 422", r.status)
	}
	if msg := r.text(`[data-testid="reset-dialog"] #e-password`); !strings.Contains(msg, "password") {
		t.Fatalf("no password: inline error %q", msg)
	}

	r = c.reset(id, url.Values{"grace": {"0"}, "password": {"not my password"}})
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("wrong password: status %d, want 422", r.status)
	}
	if msg := r.text(`[data-testid="reset-dialog"] #e-password`); !strings.Contains(msg, "not correct") {
		t.Fatalf("wrong password: inline error %q", msg)
	}
	if _, s := r.revealed(); s != "" || !a.verifies(apiKey, old) {
		t.Fatal("a reset without the right password changed the secret")
	}

	r = c.reset(id, url.Values{"grace": {"0"}, "password": {testPassword}})
	if r.status != http.StatusOK {
		t.Fatalf("right password: status %d", r.status)
	}
	assertNoStore(t, "reveal after re-authentication", r)
	_, fresh := r.revealed()
	if fresh == "" || fresh == old || !a.verifies(apiKey, fresh) || a.verifies(apiKey, old) {
		t.Fatal("re-authenticated reset did not replace the secret")
	}
	// The password restarted the sudo window.
	if c.get("/keys/" + id + "/reset").has(`input[name="password"]`) {
		t.Fatal("password asked again right after re-authenticating")
	}
}

func TestResetPasswordPromptIsThrottled(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	apiKey, old := c.signup("Acme Mail", "owner@acme.example")
	id := c.masterID()
	a.clock.Advance(16 * time.Minute)
	for i := 0; i < models.DefaultThrottle.PerPair; i++ {
		c.reset(id, url.Values{"grace": {"0"}, "password": {"guess number " + string(rune('a'+i))}})
	}
	r := c.reset(id, url.Values{"grace": {"0"}, "password": {testPassword}})
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("after %d wrong passwords: status %d, want 429", models.DefaultThrottle.PerPair, r.status)
	}
	if r.header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	if _, s := r.revealed(); s != "" || !a.verifies(apiKey, old) {
		t.Fatal("a throttled re-authentication still reset the secret")
	}
}

// ---- htmx ----

func TestHTMXGetsDialogFragmentsAndRedirectHeader(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	apiKey, secret := c.signup("Acme Mail", "owner@acme.example")
	id := c.masterID()
	hx := c.with("HX-Request", "true")

	frag := hx.get("/keys/" + id + "/reset")
	if frag.status != http.StatusOK {
		t.Fatalf("htmx GET reset: %d", frag.status)
	}
	if strings.Contains(strings.ToLower(frag.body), "<html") || strings.Contains(frag.body, "<header") {
		t.Fatal("htmx GET reset returned a whole page")
	}
	if !frag.has(`[data-testid="reset-dialog"] form[hx-post="/keys/` + id + `/reset"] input[name="_csrf"]`) {
		t.Fatal("htmx fragment lacks the reset form with its token")
	}
	full := c.get("/keys/" + id + "/reset")
	if !strings.Contains(strings.ToLower(full.body), "<html") || !full.has(`[data-testid="master-card"]`) || !full.has(`[data-testid="reset-dialog"]`) {
		t.Fatal("without htmx the reset URL is not the keys page with the dialog open")
	}

	r := hx.reset(id, url.Values{"grace": {"0"}})
	if r.status != http.StatusOK || strings.Contains(strings.ToLower(r.body), "<html") {
		t.Fatalf("htmx reset: status %d, or a whole page", r.status)
	}
	assertNoStore(t, "htmx reveal", r)
	if _, fresh := r.revealed(); fresh == "" || fresh == secret || !a.verifies(apiKey, fresh) {
		t.Fatal("htmx reset did not reveal a working new secret")
	}

	r = hx.submit("/keys", "/keys/"+id+"/rename", url.Values{"name": {"Renamed by htmx"}})
	if r.status != http.StatusOK {
		t.Fatalf("htmx rename: status %d", r.status)
	}
	if loc := r.header.Get("HX-Redirect"); loc != "/keys?done=renamed" {
		t.Fatalf("htmx rename: HX-Redirect %q", loc)
	}
	if got := c.get("/keys").text(`[data-testid="master-card"] [data-testid="key-name"]`); got != "Renamed by htmx" {
		t.Fatalf("name after htmx rename %q", got)
	}

	bad := hx.submit("/keys", "/keys/"+id+"/rename", url.Values{"name": {""}})
	if bad.status != http.StatusUnprocessableEntity || strings.Contains(strings.ToLower(bad.body), "<html") || !bad.has("#e-name") {
		t.Fatalf("htmx rename error: status %d, want a 422 fragment with the inline error", bad.status)
	}
}

// ---- Rename ----

func TestRenameValidation(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, value, want string }{
		{"empty", "", "Enter a name"},
		{"only spaces", "   ", "Enter a name"},
		{"65 characters", strings.Repeat("a", 65), "64"},
		{"65 runes", strings.Repeat("é", 65), "64"},
		{"control character", "bad\x07name", "control"},
		{"line break", "two\nlines", "control"},
		{"tab", "tab\tname", "control"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newApp(t)
			c := a.client()
			apiKey, secret := c.signup("Acme Mail", "owner@acme.example")
			id := c.masterID()
			r := c.submit("/keys", "/keys/"+id+"/rename", url.Values{"name": {tc.value}})
			if r.status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422", r.status)
			}
			msg := r.text(`[data-testid="rename-dialog"] #e-name`)
			if !strings.Contains(msg, tc.want) {
				t.Fatalf("inline error %q, want it to mention %q", msg, tc.want)
			}
			if v, _ := r.doc.Find(`[data-testid="rename-dialog"] #f-name`).Attr("aria-invalid"); v != "true" {
				t.Fatal("name field not marked aria-invalid")
			}
			if k := a.keyRow(apiKey, secret); k.Name != "Acme Mail" {
				t.Fatalf("name in the database changed to %q", k.Name)
			}
		})
	}
}

func TestRenameSucceeds(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	apiKey, secret := c.signup("Acme Mail", "owner@acme.example")
	id := c.masterID()
	if r := c.get("/keys/" + id + "/rename"); !r.has(`[data-testid="rename-dialog"] input[name="name"][value="Acme Mail"]`) {
		t.Fatal("rename dialog not prefilled with the current name")
	}
	r := c.submit("/keys", "/keys/"+id+"/rename", url.Values{"name": {"  Production sender  "}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/keys?done=renamed" {
		t.Fatalf("rename: status %d, Location %q", r.status, r.header.Get("Location"))
	}
	page := c.get(r.header.Get("Location"))
	if got := page.text(`[data-testid="master-card"] [data-testid="key-name"]`); got != "Production sender" {
		t.Fatalf("name on the page %q (trimmed name expected)", got)
	}
	if !strings.Contains(page.body, "The key was renamed.") {
		t.Fatal("no confirmation after renaming")
	}
	if k := a.keyRow(apiKey, secret); k.Name != "Production sender" {
		t.Fatalf("name in the database %q", k.Name)
	}
	longest := strings.Repeat("é", 64)
	if r := c.submit("/keys", "/keys/"+id+"/rename", url.Values{"name": {longest}}); r.status != http.StatusSeeOther {
		t.Fatalf("64-character name: status %d, want 303", r.status)
	}
	if k := a.keyRow(apiKey, secret); k.Name != longest {
		t.Fatalf("64-character name stored as %q", k.Name)
	}
	if !a.verifies(apiKey, secret) {
		t.Fatal("renaming changed the credentials")
	}
}

// ---- Deactivate ----

func TestMasterKeyCannotBeDeactivated(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	apiKey, secret := c.signup("Acme Mail", "owner@acme.example")
	id := c.masterID()
	page := c.get("/keys")
	if page.has(`[data-testid="master-card"] [data-testid="menu-deactivate"]`) {
		t.Fatal("the master key's gear menu offers Deactivate")
	}
	form := c.get("/keys/" + id + "/deactivate")
	if !strings.Contains(form.body, "master key cannot be deactivated") {
		t.Fatal("the deactivate dialog does not explain why the master key cannot be deactivated")
	}
	r := c.submit("/keys", "/keys/"+id+"/deactivate", nil)
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("deactivate master: status %d, want 422", r.status)
	}
	if msg := r.text(`[data-testid="deactivate-dialog"] [role="alert"]`); !strings.Contains(msg, "master key cannot be deactivated") {
		t.Fatalf("deactivate master: explanation %q", msg)
	}
	if !a.verifies(apiKey, secret) {
		t.Fatal("the master key stopped authenticating")
	}
	if k := a.keyRow(apiKey, secret); !k.IsActive {
		t.Fatal("the master key is inactive in the database")
	}
	if got := c.get("/keys").text(`[data-testid="master-card"] [data-testid="status"]`); !strings.Contains(got, "Active") || strings.Contains(got, "Inactive") {
		t.Fatalf("master status on the page %q", got)
	}
}

// ---- Roles ----

func TestStaffGet403OnKeys(t *testing.T) {
	t.Parallel()
	for _, role := range []models.Role{models.RoleSupport, models.RoleAuditor} {
		t.Run(string(role), func(t *testing.T) {
			a := newApp(t)
			owner := a.client()
			owner.signup("Acme Mail", "owner@acme.example")
			id := owner.masterID()
			email := string(role) + "@keydesk.example"
			c := a.staff(role, email)
			for _, p := range []string{"/keys", "/keys/" + id + "/reset", "/keys/" + id + "/rename"} {
				r := c.get(p)
				if r.status != http.StatusForbidden {
					t.Fatalf("staff GET %s: %d, want 403", p, r.status)
				}
				if !r.has(`[data-testid="error-page"]`) || strings.Contains(r.body, "Acme Mail") {
					t.Fatalf("staff GET %s: not a bare 403 page", p)
				}
			}
			r := c.submit("/account/password", "/keys/"+id+"/reset", url.Values{"grace": {"0"}})
			if r.status != http.StatusForbidden {
				t.Fatalf("staff POST reset: %d, want 403", r.status)
			}
			if _, s := r.revealed(); s != "" {
				t.Fatal("staff reset revealed a secret")
			}
		})
	}
}
