package handlers_test

import (
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"keydesk/models"
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
	return pages
}

func acceptLanguage(v string) func(*client) *client {
	return func(c *client) *client { return c.with("Accept-Language", v) }
}

// Every page, signed out or in, speaks French to a French browser: lang
// is fr and no English text of the catalog is left on it.
func TestPagesInFrenchWithAcceptLanguage(t *testing.T) {
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
	for _, p := range i18nPages(t, a, fr) {
		check(p.who, p.path, p.c.get(p.path))
	}
}

// Without Accept-Language (or with a language keydesk does not have) the
// console is in English, with no French text.
func TestPagesInEnglishByDefault(t *testing.T) {
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
