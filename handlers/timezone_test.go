package handlers_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"keydesk/models"
)

// A person chooses a time zone in the account menu; every time the
// console shows is then in it and names it, and the audit filter's days
// are days in it. UTC until then (issue 14 #4).
func TestTimeZoneChosenInTheAccountMenu(t *testing.T) {
	a := newApp(t)
	// 23:30 UTC is 00:30 the next day in Paris (CET in winter, CEST in
	// summer: 01:30).
	now := a.clock.Now().UTC()
	late := time.Date(now.Year(), now.Month(), now.Day(), 23, 30, 0, 0, time.UTC)
	if !late.After(now) {
		late = late.AddDate(0, 0, 1)
	}
	a.clock.Advance(late.Sub(now))
	paris, _ := time.LoadLocation("Europe/Paris")
	owner, _, _, _ := a.owner("Acme Mail", "owner@acme.example")
	owner.mustCreateSub("newsletters")
	sub := owner.keyIDs()["newsletters"]
	owner.reset(sub, url.Values{"grace": {"24h"}})
	until := a.clock.Now().Add(24 * time.Hour)

	// UTC by default, and said.
	audit := owner.get("/audit")
	if got := audit.text(`[data-testid="audit-table"] th:nth-child(2)`); got != "Time (UTC)" {
		t.Errorf("audit column %q, want Time (UTC)", got)
	}
	if got := owner.get("/keys").text(`[data-testid="grace"]`); !strings.Contains(got, until.UTC().Format("2006-01-02 15:04")+" UTC") {
		t.Errorf("grace line %q, want it in UTC", got)
	}
	// The account menu says the zone and opens its page, which offers the
	// zones with UTC chosen and comes back to the page.
	item := audit.doc.Find(`[data-testid="menu-time-zone"]`)
	href, _ := item.Attr("href")
	if got := strings.TrimSpace(item.Text()); got != "Time zone: UTC" || href != "/account/time-zone?next=%2Faudit" {
		t.Fatalf("menu item %q → %q", got, href)
	}
	page := owner.get(href)
	form := page.doc.Find(`[data-testid="time-zone-form"]`)
	if page.status != http.StatusOK || form.Find(`option[value="Europe/Paris"]`).Length() != 1 || form.Find(`option[selected]`).AttrOr("value", "") != "UTC" ||
		form.Find(`input[name="next"]`).AttrOr("value", "") != "/audit" {
		t.Fatalf("time zone page: %d %q", page.status, form.Text())
	}
	r := owner.submit(href, "/account/time-zone", url.Values{"time_zone": {"Europe/Paris"}, "next": {"/audit"}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/audit" {
		t.Fatalf("POST /account/time-zone: %d %q", r.status, r.header.Get("Location"))
	}
	audit = owner.get("/audit")
	if got := audit.text(`[data-testid="audit-table"] th:nth-child(2)`); got != "Time (Europe/Paris)" {
		t.Errorf("audit column %q, want Time (Europe/Paris)", got)
	}
	if got := strings.TrimSpace(audit.text(`[data-testid="menu-time-zone"]`)); got != "Time zone: Europe/Paris" {
		t.Errorf("menu item %q", got)
	}
	if got := owner.get("/account/time-zone").doc.Find(`option[selected]`).AttrOr("value", ""); got != "Europe/Paris" {
		t.Errorf("the page selects %q, want Europe/Paris", got)
	}
	var newest models.AuditEntry
	if err := a.store.DB().Order("id DESC").Take(&newest).Error; err != nil {
		t.Fatal(err)
	}
	wantCell := newest.At.In(paris).Format("2006-01-02 15:04:05")
	if got := strings.TrimSpace(audit.doc.Find(`[data-testid="audit-row"] td:nth-child(2)`).First().Text()); got != wantCell {
		t.Errorf("newest entry at %q, want %q (Paris time)", got, wantCell)
	}
	if got, want := owner.get("/keys").text(`[data-testid="grace"]`), until.In(paris).Format("2006-01-02 15:04 MST"); !strings.Contains(got, want) {
		t.Errorf("grace line %q, want it to contain %q", got, want)
	}
	// In French too, and the audit filter's labels name the zone.
	fr := owner.with("Accept-Language", "fr-FR")
	frAudit := fr.get("/audit")
	if got := frAudit.text(`label[for="f-from"]`); got != "Du (Europe/Paris)" {
		t.Errorf("French filter label %q", got)
	}
	if got := frAudit.text(`[data-testid="audit-table"] th:nth-child(2)`); got != "Heure (Europe/Paris)" {
		t.Errorf("French audit column %q", got)
	}
	// The filter's days are Paris days: entries written at 23:30 UTC
	// belong to the next day.
	parisDay := a.clock.Now().In(paris).Format("2006-01-02")
	utcDay := a.clock.Now().UTC().Format("2006-01-02")
	if parisDay == utcDay {
		t.Fatalf("the test's clock is not across midnight: %s", parisDay)
	}
	rows := func(day string) int {
		t.Helper()
		r := owner.get("/audit?" + url.Values{"from": {day}, "to": {day}}.Encode())
		if r.status != http.StatusOK {
			t.Fatalf("filter %s: %d", day, r.status)
		}
		return r.doc.Find(`tbody tr[data-testid="audit-row"]`).Length()
	}
	if n := rows(parisDay); n == 0 {
		t.Errorf("filter on the Paris day %s: no entries", parisDay)
	}
	if n := rows(utcDay); n != 0 {
		t.Errorf("filter on the UTC day %s: %d entries, want none (they are the next day in Paris)", utcDay, n)
	}
	// Refused: an unknown zone (422, the page again with the message in
	// the reader's language), no CSRF token (403), a foreign next.
	if r := fr.submit("/account/time-zone", "/account/time-zone", url.Values{"time_zone": {"Mars/Olympus"}}); r.status != http.StatusUnprocessableEntity ||
		r.text(`#e-time_zone`) != "Choisissez un fuseau horaire dans la liste." {
		t.Errorf("unknown zone: %d %q, want 422 and the French message", r.status, r.text(`#e-time_zone`))
	}
	if r := owner.submit("/account/time-zone", "/account/time-zone", url.Values{"time_zone": {"UTC"}, "next": {"//evil.example/"}}); r.header.Get("Location") != "/" {
		t.Errorf("next=//evil.example/: Location %q, want /", r.header.Get("Location"))
	}
	owner.submit("/account/time-zone", "/account/time-zone", url.Values{"time_zone": {"Europe/Paris"}})
	if r := owner.post("/account/time-zone", url.Values{"time_zone": {"UTC"}}); r.status != http.StatusForbidden {
		t.Errorf("without CSRF: %d, want 403", r.status)
	}
	// Kept on the user: another sign-in sees Paris time.
	other := a.client()
	other.login("owner@acme.example", testPassword)
	if got := other.get("/audit").text(`[data-testid="audit-table"] th:nth-child(2)`); got != "Time (Europe/Paris)" {
		t.Errorf("a new session's column %q", got)
	}
}
