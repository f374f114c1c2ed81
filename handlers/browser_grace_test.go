package handlers_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// resetWithGrace resets the master secret through the gear menu with the
// given grace option and returns the revealed secret (after Done).
func (b *browserT) resetWithGrace(grace string) string {
	b.t.Helper()
	b.click(masterGear)
	b.click(masterCard + ` [data-testid="menu-reset"]`)
	b.visible(`[data-testid="reset-dialog"]`)
	b.click(`#reset-dialog input[name="grace"][value="` + grace + `"]`)
	b.click(`[data-testid="confirm-reset"]`)
	b.visible(revealModal)
	secret := b.text(revealSecret)
	b.finishReveal()
	// Issue 11 item 9: a notice says what happened.
	if got := b.normText(`main [role="status"]`); !strings.Contains(got, "The secret key was reset") {
		b.t.Errorf("notice after a reset: %q", got)
	}
	return secret
}

// Issue 11 item 9: Done after sign-up lands on a clean /keys, and Back
// returns to the sign-up form, never to the POST that showed the secret.
func TestBrowserDoneAfterSignupLeavesNoResubmission(t *testing.T) {
	b := newBrowser(t)
	b.signUp("Acme Mail", "owner@acme.example")
	b.finishReveal()
	if got := eval[string](b, `location.search`); got != "" {
		t.Fatalf("Done after sign-up landed on /keys%s, want /keys", got)
	}
	// Back twice: the sign-up form (which sends a signed-in owner to
	// /keys), then the login page (likewise); never the POST's result,
	// whose reload would ask to resubmit the form.
	for i := 1; i <= 2; i++ {
		b.do(fmt.Sprintf("Back #%d", i), chromedp.Evaluate[chromedp.Void](`window.__keydeskBefore = true; history.back()`))
		b.waitForNewPage(fmt.Sprintf("Back #%d shows a page", i))
		if n := eval[int](b, `document.querySelectorAll(`+js(revealModal)+`).length`); n != 0 {
			t.Fatalf("Back #%d shows the reveal again", i)
		}
	}
}

// Issue 11, item 1: reset with 7 days, then with 24 hours: both old
// secrets still work over REST, the keys page lists both with their
// deadlines, the reset dialog warns about the cap, and End now ends one.
func TestBrowserStackedGraceAndEndNow(t *testing.T) {
	b := newBrowser(t)
	a := b.app
	apiKey, first := b.signUp("Acme Mail", "owner@acme.example")
	b.finishReveal()
	second := b.resetWithGrace("7d")
	third := b.resetWithGrace("24h")
	if second == "" || third == "" || second == first || third == second {
		t.Fatalf("resets revealed %q, %q", second, third)
	}
	for name, s := range map[string]string{"first (7 days)": first, "second (24 hours)": second, "current": third} {
		if st, _, _ := restDo(t, a, "GET", "/v3/REST/apikey", apiKey, s, ""); st != 200 {
			t.Fatalf("REST with the %s secret after two resets: %d", name, st)
		}
	}
	b.navigate("reload /keys", chromedp.Reload())
	olds := masterCard + ` [data-testid="old-secret"]`
	if n := eval[int](b, `document.querySelectorAll(`+js(olds)+`).length`); n != 2 {
		t.Fatalf("%d old secrets on the master card, want 2", n)
	}
	firstItem := olds + `:nth-child(1)`
	if got := b.normText(firstItem); !strings.Contains(got, hint(first)) || !strings.Contains(got, "works until 2026-12-03") || !strings.Contains(got, "End now") {
		t.Fatalf("first old secret line %q", got)
	}
	if got := b.normText(olds + `:nth-child(2)`); !strings.Contains(got, hint(second)) || !strings.Contains(got, "works until 2026-11-27") {
		t.Fatalf("second old secret line %q", got)
	}

	// The reset dialog says a reset with grace would end the 24 h secret
	// early (the cap of 3 live secrets); cancel.
	b.click(masterGear)
	b.click(masterCard + ` [data-testid="menu-reset"]`)
	b.visible(`[data-testid="cap-notice"]`)
	if got := b.normText(`[data-testid="cap-notice"]`); !strings.Contains(got, hint(second)) || !strings.Contains(got, "2026-11-27") {
		t.Fatalf("cap notice %q, want the 24 h secret and its deadline", got)
	}
	b.press("\x1b") // Escape closes the confirm dialog
	b.waitFor("the reset dialog closes", `!document.querySelector('[data-testid="reset-dialog"]')`)

	// End now on the first (7-day) secret: a confirm dialog, then the page.
	b.click(firstItem + ` [data-testid="end-old-secret"]`)
	b.visible(`[data-testid="end-secret-dialog"]`)
	if got := b.normText(`[data-testid="end-secret-dialog"]`); !strings.Contains(got, hint(first)) {
		t.Fatalf("End now dialog %q does not name the secret", got)
	}
	b.navigate("confirm End now", chromedp.Click(chromedp.CSS(`[data-testid="confirm-end-secret"]`)))
	b.wantPath("/keys")
	b.visible(masterCard)
	if got := b.normText(`main [role="status"]`); !strings.Contains(got, "ended") {
		t.Errorf("notice after End now: %q", got)
	}
	if n := eval[int](b, `document.querySelectorAll(`+js(olds)+`).length`); n != 1 {
		t.Fatalf("%d old secrets after End now, want 1", n)
	}
	if st, _, _ := restDo(t, a, "GET", "/v3/REST/apikey", apiKey, first, ""); st != 401 {
		t.Fatalf("REST with the ended secret: %d, want 401", st)
	}
	for name, s := range map[string]string{"second (24 hours)": second, "current": third} {
		if st, _, _ := restDo(t, a, "GET", "/v3/REST/apikey", apiKey, s, ""); st != 200 {
			t.Fatalf("REST with the %s secret after End now: %d", name, st)
		}
	}
}

// Issue 11, items 2 and 3: after logout Back shows nothing private, and a
// deep link asked for while signed out is where the login lands.
func TestBrowserDeepLinkReturnAndBackAfterLogout(t *testing.T) {
	b := newBrowser(t)
	b.signUp("Acme Mail", "owner@acme.example")
	b.finishReveal()
	b.logOutViaMenu()
	b.navigate("Back after logout", chromedp.NavigateBack())
	b.waitFor("Back shows the login page, not the keys", `location.pathname === "/login"`)
	if strings.Contains(b.html(), "master-card") {
		t.Fatal("Back after logout shows the keys page")
	}

	b.navigate("open a deep link signed out", chromedp.Navigate(b.app.srv.URL+"/subaccounts?q=client"))
	b.wantPath("/login")
	if got := b.normText(`[data-testid="login-continue"]`); !strings.Contains(got, "Sign in to continue") {
		t.Fatalf("login notice %q", got)
	}
	b.fill("#f-email", "owner@acme.example")
	b.fill("#f-password", testPassword)
	b.navigate("log in", chromedp.Click(chromedp.CSS(`form[action="/login"] button[type="submit"]`)))
	b.wantPath("/subaccounts")
	if got := eval[string](b, `location.search`); got != "?q=client" {
		t.Fatalf("after login: query %q, want ?q=client", got)
	}
}

// Issue 11, item 6: a refused form puts focus on its first invalid field,
// in the dialog (reset without the password) and on a page (login).
func TestBrowserFormErrorsFocusTheFirstInvalidField(t *testing.T) {
	b := newBrowser(t)
	b.signUp("Acme Mail", "owner@acme.example")
	b.finishReveal()
	b.app.clock.Advance(16 * time.Minute) // sudo lapsed: the reset asks for the password
	b.click(masterGear)
	b.click(masterCard + ` [data-testid="menu-reset"]`)
	b.visible(`#reset-dialog #f-password`)
	b.click(`[data-testid="confirm-reset"]`) // empty password: novalidate, so the server answers
	b.visible(`#reset-dialog #e-password`)
	if got := b.text(`#reset-dialog #e-password`); !strings.Contains(got, "password") {
		t.Fatalf("inline error %q", got)
	}
	b.waitFor("focus on the password", focusIs(`#reset-dialog #f-password`))

	b.press("\x1b")
	b.logOutViaMenu()
	b.fill("#f-email", "owner@acme.example")
	b.fill("#f-password", "not it")
	b.navigate("log in with a wrong password", chromedp.Click(chromedp.CSS(`form[action="/login"] button[type="submit"]`)))
	b.visible(`[data-testid="login-error"]`)
	b.waitFor("focus on the password after a failed login", focusIs(`#f-password`))
}

// waitForNewPage polls, through the navigation (whose context swaps make
// single evaluations fail), until a page without the marker set before
// the navigation shows its heading.
func (b *browserT) waitForNewPage(step string) {
	b.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`!window.__keydeskBefore && !!document.querySelector("main h1")`))
		if err == nil && ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.t.Fatalf("%s: no new page within %v", step, waitTimeout)
}
