package handlers_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"keydesk/models"
)

// Two-factor sign-in can be turned off from the Security page: outside the
// sudo window only with the password and a code, then the password alone
// signs in again. Where the account requires it, the page offers no way
// off and the request is refused.
func TestTurnOffTwoFactorFromTheSecurityPage(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	owner, _, _, _ := a.owner("Acme Mail", "owner@acme.example")
	seed, _ := enrolClient(t, a, owner)
	a.clock.Advance(models.SudoWindow + time.Minute)

	page := owner.get("/account/2fa")
	if !page.has(`[data-testid="2fa-off-form"] input[name="password"]`) || !page.has(`[data-testid="2fa-off-form"] input[name="code"]`) {
		t.Fatalf("the turn-off form outside sudo does not ask for the password and a code:\n%s", page.body)
	}
	r := owner.submit("/account/2fa", "/account/2fa/off", url.Values{"password": {testPassword}})
	if r.status != http.StatusUnprocessableEntity || !r.has(`[data-testid="2fa-off-form"] .field-error`) {
		t.Fatalf("without a code: %d", r.status)
	}
	if r.has(`form[action="/account/2fa/recovery-codes"] .field-error`) {
		t.Fatal("the error shows on the recovery-codes form too")
	}
	r = owner.submit("/account/2fa", "/account/2fa/off", url.Values{"password": {testPassword}, "code": {models.TOTPCode(seed, a.clock.Now())}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/account/2fa?done=off" {
		t.Fatalf("with the password and a code: %d %q", r.status, r.header.Get("Location"))
	}
	done := owner.get("/account/2fa?done=off")
	if !done.has(`[data-testid="2fa-setup"]`) || !strings.Contains(done.text(`[role="status"]`), "Two-factor sign-in is off") {
		t.Fatalf("after turning off: %d\n%s", done.status, done.body)
	}
	again := a.client()
	if r := again.login("owner@acme.example", testPassword); r.status != http.StatusSeeOther || r.header.Get("Location") != "/keys" {
		t.Fatalf("password alone after turning 2FA off: %d %q", r.status, r.header.Get("Location"))
	}
	var entries int64
	if err := a.store.DB().Table("audit_entries").Where("action = ?", models.ActionTOTPDisabled).Count(&entries).Error; err != nil || entries != 1 {
		t.Fatalf("%d %s entries (%v)", entries, models.ActionTOTPDisabled, err)
	}
}

func TestTwoFactorCannotBeTurnedOffWhereRequired(t *testing.T) {
	t.Parallel()
	f := newTeamFixture(t)
	owner := f.clients["owner"]
	enrolClient(t, f.a, owner)
	if r := owner.submit("/team", "/team/require-2fa", url.Values{"required": {"true"}}); r.status != http.StatusSeeOther {
		t.Fatalf("require: %d", r.status)
	}
	if page := owner.get("/account/2fa"); page.status != http.StatusOK || page.has(`[data-testid="2fa-off-form"]`) {
		t.Fatalf("the page offers to turn off what the account requires (%d)", page.status)
	}
	r := owner.submit("/account/2fa", "/account/2fa/off", nil)
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, "required here") {
		t.Fatalf("turning off where required: %d", r.status)
	}
	if page := owner.get("/account/2fa"); !page.has(`[data-testid="2fa-on"]`) {
		t.Fatal("two-factor sign-in went off where it is required")
	}
}
