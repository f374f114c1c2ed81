package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"keydesk/models"
	"keydesk/models/testdb"
	"keydesk/views"
)

// catalogFragments are the pieces of one language's messages a page can
// show verbatim: each message split at its {{.Values}}, trimmed, kept
// when it has at least four letters and appears in no message of the
// other language (so "API", "SMTP", "Support" or "Actions", the same in
// both, are not a sign of the wrong language).
func catalogFragments(t *testing.T, lang, other string) []string {
	t.Helper()
	mine, err := views.Messages().Texts(lang)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := views.Messages().Texts(other)
	if err != nil {
		t.Fatal(err)
	}
	var otherAll strings.Builder
	for _, s := range theirs {
		otherAll.WriteString(s)
		otherAll.WriteString("\n")
	}
	skip := regexp.MustCompile(`^(number|date|language)\.`)
	value := regexp.MustCompile(`\{\{[^}]*\}\}`)
	letters := regexp.MustCompile(`\pL`)
	seen := map[string]bool{}
	var out []string
	for id, s := range mine {
		if skip.MatchString(id) {
			continue
		}
		for _, f := range value.Split(s, -1) {
			f = strings.Trim(f, " \u00a0\u202f.,;:!?()«»“”·+#←→✓⚠/-")
			if len(letters.FindAllString(f, -1)) < 4 || seen[f] || strings.Contains(otherAll.String(), f) {
				continue
			}
			seen[f] = true
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out
}

// pageWords is what a person reads or hears on a page: the title, the
// body's text, and the texts of attributes (labels, placeholders, tips,
// the copy button's states, the htmx error notices).
func pageWords(doc *goquery.Document) string {
	var b strings.Builder
	b.WriteString(doc.Find("title").Text())
	b.WriteString("\n")
	body := doc.Find("body").Clone()
	// The audit entries' details are the stored record (JSON as it was
	// written, hashed into the chain), not the console's words.
	body.Find("script, style, [data-testid=audit-details] pre").Remove()
	b.WriteString(body.Text())
	doc.Find("*").Each(func(_ int, s *goquery.Selection) {
		for _, a := range s.Nodes[0].Attr {
			switch {
			case a.Key == "placeholder", a.Key == "title", a.Key == "aria-label", a.Key == "data-label", strings.HasPrefix(a.Key, "data-text-"):
				b.WriteString("\n")
				b.WriteString(a.Val)
			}
		}
	})
	return b.String()
}

// wrongLanguage lists the fragments of the other language a page shows.
func wrongLanguage(words string, fragments []string) []string {
	var found []string
	for _, f := range fragments {
		// The same answer without the regexp when f is not there at all
		// (almost always): compiling one per fragment and page made this
		// the handlers package's slowest test under -race.
		if !strings.Contains(words, f) {
			continue
		}
		re := regexp.MustCompile(`(^|[^\pL])` + regexp.QuoteMeta(f) + `($|[^\pL])`)
		if re.MatchString(words) {
			found = append(found, f)
		}
	}
	return found
}

// i18nPages are the console's pages for each role, signed in, with the
// dialogs that open as pages without JavaScript.
func i18nPages(t *testing.T, a *app, header func(*client) *client) (pages []struct {
	who, path string
	c         *client
}) {
	t.Helper()
	owner, accountID, _, _ := a.owner("Acme Mail", "proprio@acme.example")
	owner.mustCreateSub("newsletters")
	ids := owner.keyIDs()
	master, sub := owner.masterID(), ids["newsletters"]
	owner.reset(sub, url.Values{"grace": {"24h"}})
	oldHref, _ := owner.get("/keys").doc.Find(`[data-testid="end-old-secret"]`).Attr("href")
	_, pendingAcct, _ := a.pendingOwner("Beta Mail", "beta@example.com", 2, "Two new clients")
	support := a.staff(models.RoleSupport, "support@keydesk.example")
	auditor := a.staff(models.RoleAuditor, "auditor@keydesk.example")
	add := func(who string, c *client, paths ...string) {
		for _, p := range paths {
			pages = append(pages, struct {
				who, path string
				c         *client
			}{who, p, header(c)})
		}
	}
	add("owner", owner, "/keys", "/keys?q=nothing-matches", "/subaccounts", "/subaccounts/new?from=keys", "/audit", "/account/password",
		"/keys/"+master+"/reset", "/keys/"+sub+"/rename", "/keys/"+sub+"/deactivate", "/keys/"+master+"/usage", oldHref, "/no-such-page")
	add("support", support, "/support", "/support?q=Acme", accountPath(accountID), accountPath(pendingAcct), "/audit")
	add("auditor", auditor, "/audit", "/support")
	pages = append(pages, peoplePages(t, a, header, owner)...)
	return pages
}

// peoplePages are the people screens (issue 15) in every state a person
// can meet them, and the limit screens: /team with a member and a pending
// invitation, a member's change and remove dialogs, two-factor enrolment
// (off, in progress, on), the code step after the password, invitation
// links (new person, existing sign-in, signed in, expired, used, revoked,
// unknown), forgot and reset password (valid, expired, used, unknown),
// the suspended-account page, and the at-limit and pending-request
// sub-account dialogs.
func peoplePages(t *testing.T, a *app, header func(*client) *client, owner *client) (pages []struct {
	who, path string
	c         *client
}) {
	t.Helper()
	ctx := context.Background()
	add := func(who string, c *client, paths ...string) {
		for _, p := range paths {
			pages = append(pages, struct {
				who, path string
				c         *client
			}{who, p, header(c)})
		}
	}
	ownerActor := a.actorOf("proprio@acme.example")
	invite := func(email, role string) string {
		t.Helper()
		_, tok, err := a.store.Invite(ctx, ownerActor, email, role, models.ScopeInput{All: true})
		if err != nil {
			t.Fatalf("invite %s: %v", email, err)
		}
		return "/invite?" + url.Values{"t": {tok}}.Encode()
	}
	// A member (a developer who turned on two-factor sign-in) and pending invitations.
	devLink := invite("dev@acme.example", "developer")
	dev := a.client()
	if r := dev.submit(devLink, "/invite", url.Values{"t": {strings.TrimPrefix(devLink, "/invite?t=")}, "password": {testPassword}}); r.status != http.StatusSeeOther {
		t.Fatalf("developer accepts: %d", r.status)
	}
	enrolClient(t, a, dev)
	var devMember uint
	testdb.Must(t, a.store.DB().Raw(`SELECT m.id FROM members m JOIN users u ON u.id = m.user_id WHERE u.email = ?`, "dev@acme.example").Scan(&devMember))
	newLink := invite("nouveau@agence.example", "viewer")
	add("owner", owner, "/team", fmt.Sprintf("/team/members/%d", devMember), fmt.Sprintf("/team/members/%d/remove", devMember),
		"/account/2fa", "/account/time-zone?next=/keys")
	add("developer", dev, "/account/2fa", "/keys")
	// Enrolment in progress (the QR code and the code field).
	if r := owner.submit("/account/2fa", "/account/2fa/setup", nil); r.status != http.StatusSeeOther {
		t.Fatalf("2FA setup: %d", r.status)
	}
	add("owner enrolling", owner, "/account/2fa")
	// The code step after the password.
	step := a.client()
	if r := step.login("dev@acme.example", testPassword); r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/login/code") {
		t.Fatalf("password step: %d %q", r.status, r.header.Get("Location"))
	}
	add("developer, code step", step, "/login/code")
	// Invitation links in each state.
	other, _, _, _ := a.owner("Autre", "autre@exemple.fr")
	existingLink := invite("autre@exemple.fr", "viewer")
	add("visitor", a.client(), newLink, existingLink, "/invite?t=nonsense")
	add("invitee signed in", other, existingLink)
	expired := invite("expire@agence.example", "viewer")
	testdb.Must(t, a.store.DB().Exec(`UPDATE invitations SET expires_at = ? WHERE email = ?`, a.clock.Now().Add(-time.Hour), "expire@agence.example"))
	revoked := invite("retire@agence.example", "viewer")
	var revokedID uint
	testdb.Must(t, a.store.DB().Raw(`SELECT id FROM invitations WHERE email = ?`, "retire@agence.example").Scan(&revokedID))
	if err := a.store.RevokeInvitation(ctx, ownerActor, revokedID); err != nil {
		t.Fatal(err)
	}
	add("visitor", a.client(), expired, revoked, devLink)
	// Forgot and reset password.
	reset := func(email string) string {
		t.Helper()
		tok, u, err := a.store.RequestPasswordReset(ctx, email, models.RequestMeta{IP: "192.0.2.1"})
		if err != nil || u == nil {
			t.Fatalf("reset link for %s: %v", email, err)
		}
		return "/password/reset?" + url.Values{"t": {tok}}.Encode()
	}
	valid := reset("autre@exemple.fr")
	old := reset("proprio@acme.example")
	testdb.Must(t, a.store.DB().Exec(`UPDATE password_resets SET expires_at = ? WHERE expires_at > ? AND user_id = (SELECT id FROM users WHERE email = ?)`,
		a.clock.Now().Add(-time.Minute), a.clock.Now(), "proprio@acme.example"))
	a.owner("Oubli", "oubli@exemple.fr")
	usedLink := reset("oubli@exemple.fr")
	if r := a.client().submit(usedLink, "/password/reset", url.Values{"t": {strings.TrimPrefix(usedLink, "/password/reset?t=")}, "password": {testPassword + " again"}}); r.status != http.StatusSeeOther {
		t.Fatalf("reset: %d", r.status)
	}
	add("visitor", a.client(), "/password/forgot", "/password/forgot?sent=1", valid, old, usedLink, "/password/reset?t=nonsense")
	// A suspended account's owner.
	suspendedOwner, suspendedID, _, _ := a.owner("Suspendue", "suspendu@exemple.fr")
	if err := a.store.SuspendAccount(ctx, a.actorOf("support@keydesk.example"), suspendedID, "impayés"); err != nil {
		t.Fatal(err)
	}
	suspendedOwner.login("suspendu@exemple.fr", testPassword)
	add("suspended owner", suspendedOwner, "/keys")
	// At the plan's limit, and with a pending request for more.
	full, fullID, _, _ := a.owner("Pleine", "plein@exemple.fr")
	a.setSubaccountLimit(fullID, 0)
	pending, _, _ := a.pendingOwner("Attente", "attente@exemple.fr", 2, "Deux nouveaux clients")
	add("owner at the limit", full, "/subaccounts/new?from=keys", "/subaccounts/new", "/subaccounts", "/keys")
	add("owner with a pending request", pending, "/subaccounts/new?from=keys", "/subaccounts")
	return pages
}

func acceptLanguage(v string) func(*client) *client {
	return func(c *client) *client { return c.with("Accept-Language", v) }
}

// Every page, signed out or in, speaks French to a French browser: lang
// is fr and no English text of the catalog is left on it.
func TestPagesInFrenchWithAcceptLanguage(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	english := catalogFragments(t, "en", "fr")
	fr := acceptLanguage("fr-FR,fr;q=0.9,en;q=0.5")
	check := func(who, path string, r *resp) {
		t.Helper()
		if lang, _ := r.doc.Find("html").Attr("lang"); lang != "fr" {
			t.Errorf("%s GET %s: html lang %q, want fr (status %d)", who, path, lang, r.status)
		}
		if left := wrongLanguage(pageWords(r.doc), english); len(left) > 0 {
			t.Errorf("%s GET %s: English left on the French page: %q", who, path, left)
		}
	}
	for _, p := range []string{"/login", "/signup", "/login?next=/keys", "/nowhere"} {
		check("visitor", p, fr(a.client()).get(p))
	}
	// A French sign-up: the keys page with the reveal, in French.
	c := fr(a.client())
	r := c.submit("/signup", "/signup", url.Values{"account_name": {"Société Exemple"}, "email": {"proprio@exemple.fr"}, "password": {testPassword}})
	if r.status != http.StatusCreated {
		t.Fatalf("French sign-up: %d", r.status)
	}
	check("new owner", "POST /signup", r)
	for _, want := range []string{"Gestion des clés API", "Clé API principale", "Réinitialiser la clé secrète", "Votre Clé API principale", "J’ai enregistré la clé secrète"} {
		if !strings.Contains(pageWords(r.doc), want) {
			t.Errorf("French sign-up page lacks %q", want)
		}
	}
	// Refused forms: French messages from models and handlers.
	r = c.submit("/account/password", "/account/password", url.Values{"current": {"wrong password!"}, "new": {"short"}})
	check("owner", "POST /account/password", r)
	if got := r.text(`#e-new`); got != "12 caractères au moins." {
		t.Errorf("password policy message in French: %q", got)
	}
	// People's refused forms.
	r = c.submit("/team", "/team/invitations", url.Values{"email": {"proprio@exemple.fr"}, "role": {"viewer"}, "scope": {"all"}})
	check("owner", "POST /team/invitations", r)
	if !strings.Contains(pageWords(r.doc), "Cette personne est déjà membre du compte.") {
		t.Errorf("inviting a member: %d, no French refusal", r.status)
	}
	c.submit("/account/2fa", "/account/2fa/setup", nil)
	r = c.submit("/account/2fa", "/account/2fa", url.Values{"code": {"000000"}})
	check("owner", "POST /account/2fa", r)
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(pageWords(r.doc), "Ce code est incorrect.") {
		t.Errorf("a wrong enrolment code: %d, no French refusal", r.status)
	}
	for _, p := range i18nPages(t, a, fr) {
		r := p.c.get(p.path)
		if r.status/100 == 3 {
			t.Errorf("%s GET %s: redirected to %q, not a page", p.who, p.path, r.header.Get("Location"))
			continue
		}
		check(p.who, p.path, r)
	}
}

// The audit page of a log that does not verify, with its finding, in
// French and in English (norm turns no-break spaces into spaces; the finding is written in English by the
// chain's check and shown in the reader's language).
func TestBrokenChainAuditPageInBothLanguages(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	owner, _, _, _ := a.owner("Acme Mail", "proprio@acme.example")
	owner.mustCreateSub("newsletters")
	auditor := a.staff(models.RoleAuditor, "auditor@keydesk.example")
	var newest uint64
	testdb.Must(t, a.store.DB().Raw(`SELECT MAX(id) FROM audit_entries`).Scan(&newest))
	testdb.AllowTampering(t, a.store)
	testdb.Must(t, a.store.DB().Exec("UPDATE audit_entries SET ip = ? WHERE id = ?", "10.6.6.6", newest))
	if rep, _, err := a.store.CheckAudit(context.Background()); err != nil || rep.OK {
		t.Fatalf("tampered log: %+v %v", rep, err)
	}
	for _, lang := range []struct{ header, lang, other, want string }{
		{"fr-FR", "fr", "en", fmt.Sprintf("La chaîne d’audit n’est pas vérifiée. l’entrée n° %d a été modifiée", newest)},
		{"en", "en", "fr", fmt.Sprintf("The audit chain does not verify. entry #%d was altered", newest)},
	} {
		foreign := catalogFragments(t, lang.other, lang.lang)
		for who, c := range map[string]*client{"owner": owner, "auditor": auditor} {
			r := c.with("Accept-Language", lang.header).get("/audit")
			if got, _ := r.doc.Find("html").Attr("lang"); got != lang.lang || r.status != http.StatusOK {
				t.Errorf("%s, %s: status %d, lang %q", who, lang.lang, r.status, got)
			}
			if got := norm(r.text(`[data-testid="chain-status"]`)); !strings.Contains(got, lang.want) {
				t.Errorf("%s, %s: chain status %q, want it to contain %q", who, lang.lang, got, lang.want)
			}
			if left := wrongLanguage(pageWords(r.doc), foreign); len(left) > 0 {
				t.Errorf("%s, %s: %s words on the page: %q", who, lang.lang, lang.other, left)
			}
		}
	}
}

// Without Accept-Language (or with a language keydesk does not have) the
// console is in English, with no French text.
func TestPagesInEnglishByDefault(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	french := catalogFragments(t, "fr", "en")
	for _, h := range []func(*client) *client{func(c *client) *client { return c }, acceptLanguage("de-DE,de;q=0.9")} {
		check := func(who, path string, r *resp) {
			t.Helper()
			if lang, _ := r.doc.Find("html").Attr("lang"); lang != "en" {
				t.Errorf("%s GET %s: html lang %q, want en", who, path, lang)
			}
			if left := wrongLanguage(pageWords(r.doc), french); len(left) > 0 {
				t.Errorf("%s GET %s: French on the English page: %q", who, path, left)
			}
		}
		for _, p := range []string{"/login", "/signup"} {
			check("visitor", p, h(a.client()).get(p))
		}
		b := newApp(t)
		for _, p := range i18nPages(t, b, h) {
			check(p.who, p.path, p.c.get(p.path))
		}
	}
}

// The language chosen in the account menu wins over the browser's, is
// kept across sign-ins, and "the browser's language" goes back to
// Accept-Language. The API stays English whatever the header.
func TestSavedLanguageWinsOverAcceptLanguage(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	owner, _, apiKey, secret := a.owner("Acme Mail", "owner@acme.example")
	en := owner.with("Accept-Language", "en-US,en;q=0.9")
	langOf := func(c *client, path string) string {
		t.Helper()
		r := c.get(path)
		lang, _ := r.doc.Find("html").Attr("lang")
		return lang
	}
	if got := langOf(en, "/keys"); got != "en" {
		t.Fatalf("before a choice: lang %q", got)
	}
	// The menu offers each language; choosing French comes back to the page.
	page := en.get("/subaccounts")
	if page.doc.Find(`[data-testid="language-menu"] button[value="fr"]`).Length() != 1 {
		t.Fatal("no Français in the account menu")
	}
	r := en.submit("/subaccounts", "/account/language", url.Values{"language": {"fr"}, "next": {"/subaccounts"}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/subaccounts" {
		t.Fatalf("POST /account/language: %d %q", r.status, r.header.Get("Location"))
	}
	if got := langOf(en, "/keys"); got != "fr" {
		t.Fatalf("saved French with an English browser: lang %q", got)
	}
	if cur, _ := en.get("/keys").doc.Find(`[data-testid="language-fr"]`).Attr("aria-checked"); cur != "true" {
		t.Errorf("the menu does not mark French as chosen: %q", cur)
	}
	// Kept on the user: a new session in another browser is French too.
	other := a.client().with("Accept-Language", "en")
	other.login("owner@acme.example", testPassword)
	if got := langOf(other, "/keys"); got != "fr" {
		t.Errorf("French not kept across sign-ins: lang %q", got)
	}
	// English chosen wins over a French browser.
	fr := owner.with("Accept-Language", "fr-FR")
	fr.submit("/keys", "/account/language", url.Values{"language": {"en"}, "next": {"/keys"}})
	if got := langOf(fr, "/keys"); got != "en" {
		t.Errorf("saved English with a French browser: lang %q", got)
	}
	// Back to the browser's language.
	fr.submit("/keys", "/account/language", url.Values{"language": {""}, "next": {"/keys"}})
	if got := langOf(fr, "/keys"); got != "fr" {
		t.Errorf("browser's language with a French browser: lang %q", got)
	}
	// An unknown language is refused (422), a foreign next is not followed.
	if r := fr.submit("/keys", "/account/language", url.Values{"language": {"xx"}}); r.status != http.StatusUnprocessableEntity {
		t.Errorf("language xx: status %d, want 422", r.status)
	}
	if r := fr.submit("/keys", "/account/language", url.Values{"language": {"fr"}, "next": {"//evil.example/"}}); r.header.Get("Location") != "/" {
		t.Errorf("next=//evil.example/: Location %q, want /", r.header.Get("Location"))
	}
	// Without the CSRF token the choice is refused.
	if r := fr.post("/account/language", url.Values{"language": {"en"}}); r.status != http.StatusForbidden {
		t.Errorf("language without CSRF: status %d, want 403", r.status)
	}
	// The REST API answers in Mailjet's English whatever the language.
	req, _ := http.NewRequest(http.MethodGet, a.srv.URL+"/v3/REST/apikey/999999", nil)
	req.SetBasicAuth(apiKey, secret)
	req.Header.Set("Accept-Language", "fr-FR")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.Header.Get("Content-Language") != "" {
		t.Errorf("the REST API says Content-Language %q", res.Header.Get("Content-Language"))
	}
}
