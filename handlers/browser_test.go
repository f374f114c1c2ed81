package handlers_test

// Browser tests: chromedp drives headless Debian Chromium against the real
// app (newApp) on a random loopback port. Each test gets its own browser
// with a fresh profile and a deadline; on failure it leaves a screenshot and
// the page HTML under testdata/failures/<TestName>/.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"keydesk/models"
)

// browserTimeout bounds each browser test. The machine is small and shared,
// and the suite runs with -race, so it is generous; a healthy run of one test
// takes a few seconds.
const browserTimeout = 90 * time.Second

// waitTimeout bounds one wait for something the page should do by itself
// (a swap, a focus move); the test deadline still applies.
const waitTimeout = 20 * time.Second

// chromiumPath finds Debian's chromium. Without it the test is skipped, or
// fails when CI=true, because CI must run the browser suite.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	const msg = "chromium not found on PATH or at /usr/bin/chromium (install Debian's chromium package)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; CI=true, so the browser tests must run")
	}
	t.Skip(msg + "; skipping the browser test")
	return ""
}

// browserT is one headless Chromium tab on a fresh app.
type browserT struct {
	t   *testing.T
	app *app
	tab context.Context // the tab, without the test deadline (for failure artifacts)
	ctx context.Context // the tab, bounded by browserTimeout
}

func newBrowser(t *testing.T) *browserT {
	t.Helper()
	path := chromiumPath(t)
	a := newApp(t)

	failDir := failureDir(t)
	_ = os.RemoveAll(failDir) // artifacts of an earlier run are stale

	profile, err := os.MkdirTemp("", "keydesk-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	// Registered before the allocator, so it runs after the browser is gone.
	t.Cleanup(func() { removeProfile(t, profile) })

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.UserDataDir(profile),
	)
	t.Cleanup(cancelAlloc) // waits for the browser process to exit
	tab, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelTab)

	// The first Run starts the browser and binds it to its context, so it
	// gets the tab context without a deadline (see chromedp.Run).
	startCtx, cancelStart := context.WithTimeout(context.Background(), browserTimeout)
	defer cancelStart()
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(tab) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start chromium (%s): %v", path, err)
		}
	case <-startCtx.Done():
		t.Fatalf("start chromium (%s): no answer within %s", path, browserTimeout)
	}

	ctx, cancel := context.WithTimeout(tab, browserTimeout)
	t.Cleanup(cancel)
	b := &browserT{t: t, app: a, tab: tab, ctx: ctx}
	t.Cleanup(func() { b.saveFailure(failDir) }) // runs first: the tab is still open
	b.do("set the viewport", chromedp.EmulateViewport(1280, 900))
	return b
}

func removeProfile(t *testing.T, dir string) {
	// Chromium's helper processes can write into the profile for a moment
	// after the browser exits.
	var err error
	for range 50 {
		if err = os.RemoveAll(dir); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("could not remove the browser profile %s: %v", dir, err)
}

var unsafePathChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func failureDir(t *testing.T) string {
	return filepath.Join("testdata", "failures", unsafePathChars.ReplaceAllString(t.Name(), "_"))
}

// saveFailure writes a screenshot and the page HTML of a failed test.
func (b *browserT) saveFailure(dir string) {
	if !b.t.Failed() {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Logf("failure artifacts: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(b.tab, 15*time.Second)
	defer cancel()
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err != nil {
		b.t.Logf("failure screenshot: %v", err)
	} else if err := os.WriteFile(filepath.Join(dir, "screenshot.png"), png, 0o644); err != nil {
		b.t.Logf("failure screenshot: %v", err)
	}
	// Through the DOM domain, so it works with scripts disabled too.
	html, err := chromedp.Run(ctx, domOuterHTML())
	if err != nil {
		b.t.Logf("failure HTML: %v", err)
	} else {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		html = "<!-- " + loc + " -->\n" + html
		if err := os.WriteFile(filepath.Join(dir, "page.html"), []byte(html), 0o644); err != nil {
			b.t.Logf("failure HTML: %v", err)
		}
	}
	abs, _ := filepath.Abs(dir)
	b.t.Logf("failure artifacts (screenshot.png, page.html) in %s", abs)
}

// domOuterHTML reads the whole document with the DOM domain (no page script).
func domOuterHTML() chromedp.Action[string] {
	return func(ctx context.Context, t *chromedp.Target) (string, error) {
		return chromedp.OuterHTML(chromedp.CSS("html"))(ctx, t)
	}
}

// ---- small helpers; each one fails the test with the step's name ----

func (b *browserT) do(step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", step, err)
	}
}

// navigate runs actions that cause a full page load and returns the
// response of the new document.
func (b *browserT) navigate(step string, actions ...chromedp.Action[chromedp.Void]) *network.Response {
	b.t.Helper()
	resp, err := chromedp.RunResponse(b.ctx, actions...)
	if err != nil {
		b.t.Fatalf("%s: %v", step, err)
	}
	if resp == nil {
		b.t.Fatalf("%s: no response for the new page", step)
	}
	return resp
}

func eval[T any](b *browserT, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor waits until the JavaScript condition holds.
func (b *browserT) waitFor(step, cond string) {
	b.t.Helper()
	_, err := chromedp.Run(b.ctx, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(waitTimeout)))
	if err != nil {
		focus, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.activeElement ? document.activeElement.outerHTML.slice(0, 200) : "none"`))
		b.t.Fatalf("%s: %v (waited for %s; focus on %s)", step, err, cond, focus)
	}
}

func (b *browserT) visible(sel string) {
	b.t.Helper()
	b.do("wait for "+sel+" to be visible", chromedp.WaitVisible(chromedp.CSS(sel)))
}

func (b *browserT) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

func (b *browserT) click(sel string) {
	b.t.Helper()
	b.do("click "+sel, chromedp.Click(chromedp.CSS(sel)))
}

// fill replaces the value of an input by typing.
func (b *browserT) fill(sel, value string) {
	b.t.Helper()
	b.clear(sel)
	b.do("fill "+sel, chromedp.SendKeys(chromedp.CSS(sel), value))
}

// clear empties an input (chromedp.SetValue refuses the empty string).
func (b *browserT) clear(sel string) {
	b.t.Helper()
	b.do("wait for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
	b.do("clear "+sel, chromedp.Evaluate[chromedp.Void](`document.querySelector(`+js(sel)+`).value = ""`))
}

func (b *browserT) press(key string, opts ...chromedp.KeyOption) {
	b.t.Helper()
	b.do(fmt.Sprintf("press %q", key), chromedp.KeyEvent(key, opts...))
}

func (b *browserT) path() string {
	b.t.Helper()
	return eval[string](b, `location.pathname`)
}

func (b *browserT) wantPath(want string) {
	b.t.Helper()
	if got := b.path(); got != want {
		b.t.Fatalf("location: got %s, want %s", got, want)
	}
}

func (b *browserT) html() string {
	b.t.Helper()
	h, err := chromedp.Run(b.ctx, domOuterHTML())
	if err != nil {
		b.t.Fatalf("read the page HTML: %v", err)
	}
	return h
}

// js quotes s as a JavaScript string literal.
func js(s string) string { return fmt.Sprintf("%q", s) }

// focusIs is a JavaScript condition: the focused element matches sel.
func focusIs(sel string) string {
	return fmt.Sprintf(`document.activeElement && document.activeElement.matches(%s)`, js(sel))
}

var (
	apiKeyFormat = regexp.MustCompile(`^[0-9a-f]{32}$`)
	secretFormat = regexp.MustCompile(`^kd_live_[A-Za-z0-9_-]{20,}$`)
)

const (
	revealModal  = `[data-testid="reveal-modal"]`
	revealSecret = `[data-testid="reveal-secret"]`
	revealAPIKey = `[data-testid="reveal-apikey"]`
	storedBox    = `[data-testid="stored-checkbox"]`
	revealDone   = `[data-testid="reveal-done"]`
	revealHint   = revealModal + ` [data-reveal-hint]`
	copyAPIKey   = revealModal + ` [data-copy="#reveal-apikey"]`
	copySecret   = revealModal + ` [data-copy="#reveal-secret"]`
	masterCard   = `[data-testid="master-card"]`
	masterGear   = masterCard + ` [data-testid="gear"]`
	masterMenu   = masterCard + ` details[data-menu]`
)

// wantAssets fails early, with a clear message, when the page's scripts or
// stylesheet did not load (every keyboard and htmx check depends on them).
func (b *browserT) wantAssets() {
	b.t.Helper()
	type assets struct {
		HTMX, App, CSS bool
		Srcs           []string
	}
	got := eval[assets](b, `({
		HTMX: typeof window.htmx === "object",
		App: [...document.scripts].some(s => /\/js\/app\.js$/.test(s.src)),
		CSS: [...document.styleSheets].some(s => { try { return s.cssRules.length > 0 } catch (e) { return false } }),
		Srcs: [...document.scripts].map(s => s.src).concat([...document.styleSheets].map(s => s.href)),
	})`)
	if !got.HTMX || !got.App || !got.CSS {
		b.t.Fatalf("static assets did not load (htmx %v, app.js tag %v, stylesheet %v): %v", got.HTMX, got.App, got.CSS, got.Srcs)
	}
	for _, src := range got.Srcs {
		resp, err := b.app.srv.Client().Get(src)
		if err != nil {
			b.t.Fatalf("GET %s: %v", src, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.t.Fatalf("GET %s: status %d", src, resp.StatusCode)
		}
	}
}

// signUp goes from / to the sign-up form, creates an account and returns
// the master API key and secret shown in the reveal modal (left open).
func (b *browserT) signUp(account, email string) (apiKey, secret string) {
	b.t.Helper()
	b.navigate("open /", chromedp.Navigate(b.app.srv.URL+"/"))
	b.wantPath("/login")
	b.wantAssets()
	if got := b.text(`a[href="/signup"]`); got != "Sign up" {
		b.t.Fatalf(`sign-up link on /login: text %q, want "Sign up"`, got)
	}
	b.navigate("follow the Sign up link", chromedp.Click(chromedp.CSS(`a[href="/signup"]`)))
	b.wantPath("/signup")
	b.fill("#f-account_name", account)
	b.fill("#f-email", email)
	b.fill("#f-password", testPassword)
	resp := b.navigate("submit the sign-up form", chromedp.Click(chromedp.CSS(`form[action="/signup"] button[type="submit"]`)))
	if resp.Status != 201 {
		b.t.Fatalf("sign-up response: status %d, want 201", resp.Status)
	}
	if cc := resp.Headers["Cache-Control"]; !strings.Contains(fmt.Sprint(cc), "no-store") {
		b.t.Errorf("sign-up response (shows the secret): Cache-Control %v, want no-store", cc)
	}
	b.visible(revealModal)
	apiKey, secret = b.text(revealAPIKey), b.text(revealSecret)
	if !apiKeyFormat.MatchString(apiKey) {
		b.t.Fatalf("revealed API key %q is not 32 lowercase hex", apiKey)
	}
	if !secretFormat.MatchString(secret) {
		b.t.Fatalf("revealed secret %q does not look like a kd_live_ secret", secret)
	}
	return apiKey, secret
}

// finishReveal ticks "I have stored the secret key", presses Done and
// expects the keys page.
func (b *browserT) finishReveal() {
	b.t.Helper()
	b.click(storedBox)
	b.waitFor("Done is enabled after ticking", `!document.querySelector(`+js(revealDone)+`).disabled`)
	b.navigate("press Done", chromedp.Click(chromedp.CSS(revealDone)))
	b.wantPath("/keys")
	b.visible(masterCard)
	if n := eval[int](b, `document.querySelectorAll(`+js(revealModal)+`).length`); n != 0 {
		b.t.Fatalf("after Done: %d reveal modals on the page, want none", n)
	}
}

// ---- the tests ----

// TestBrowserSignupLogoutLogin is the foundation flow: / → /login → Sign up
// → reveal → /keys → log out → wrong password → log in.
func TestBrowserSignupLogoutLogin(t *testing.T) {
	b := newBrowser(t)
	const account, email = "Acme Mail", "owner@acme.example"
	apiKey, _ := b.signUp(account, email)
	b.finishReveal()

	if got := b.text("main h1"); got != "API Key Management" {
		t.Fatalf("keys page heading %q, want API Key Management", got)
	}
	if got := b.text(masterCard + ` [data-testid="key-name"]`); got != account {
		t.Errorf("master card name %q, want %q", got, account)
	}
	if got := b.text(masterCard + ` [data-testid="api-key"]`); got != apiKey {
		t.Errorf("master card API key %q, want %q", got, apiKey)
	}
	if got := b.text(`[data-testid="account-menu"]`); !strings.Contains(got, account) || !strings.Contains(got, "owner") {
		t.Errorf("account menu %q, want the account name and the role", got)
	}

	// Log out through the account menu.
	b.click(`[data-testid="account-menu"]`)
	b.visible(`[data-testid="logout"]`)
	b.navigate("log out", chromedp.Click(chromedp.CSS(`[data-testid="logout"]`)))
	b.wantPath("/login")
	if got := b.text(`main [role="status"]`); got != "You are logged out." {
		t.Errorf("after logout: notice %q", got)
	}
	// Signed out for real: /keys sends us back to the login page.
	b.navigate("open /keys signed out", chromedp.Navigate(b.app.srv.URL+"/keys"))
	b.wantPath("/login")

	// A wrong password shows the failed-login message.
	b.fill("#f-email", email)
	b.fill("#f-password", "not the right password")
	resp := b.navigate("log in with a wrong password", chromedp.Click(chromedp.CSS(`form[action="/login"] button[type="submit"]`)))
	if resp.Status != 401 {
		t.Errorf("wrong password: status %d, want 401", resp.Status)
	}
	b.visible(`[data-testid="login-error"]`)
	if got := b.text(`[data-testid="login-error"]`); got != "The e-mail or password is not correct." {
		t.Errorf("login error %q", got)
	}
	b.wantPath("/login")

	// The right password lands on /keys again.
	b.fill("#f-email", email)
	b.fill("#f-password", testPassword)
	b.navigate("log in", chromedp.Click(chromedp.CSS(`form[action="/login"] button[type="submit"]`)))
	b.wantPath("/keys")
	if got := b.text("main h1"); got != "API Key Management" {
		t.Fatalf("after login: heading %q", got)
	}
	b.visible(masterCard)
	if got := b.text(masterCard + ` [data-testid="api-key"]`); got != apiKey {
		t.Errorf("after login: master API key %q, want %q", got, apiKey)
	}
}

// TestBrowserRevealModal checks the reveal after sign-up: the Done gate,
// Escape, the focus trap and the copy button.
func TestBrowserRevealModal(t *testing.T) {
	b := newBrowser(t)
	// Let the copy button use the clipboard, where this Chromium allows it.
	clipboard := true
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		_, err := chromedp.CallBrowser(b.ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: name, AllowWithoutSanitization: true},
			Setting:    browser.PermissionSettingGranted, Origin: b.app.srv.URL,
		})
		if err != nil {
			clipboard = false
			t.Logf("cannot grant %s (%v): the copy button is checked through the selection", name, err)
		}
	}
	_, secret := b.signUp("Acme Mail", "owner@acme.example")

	// Done stays off until the box is ticked.
	doneDisabled := `document.querySelector(` + js(revealDone) + `).disabled`
	if !eval[bool](b, doneDisabled) {
		t.Fatal("Done is enabled before ticking “I have stored the secret key”")
	}

	// Copy the secret: the clipboard holds it, or (where the clipboard is
	// refused) it is selected for Ctrl+C.
	b.click(copySecret)
	// The attribute and the label are read together: the label goes back
	// to "Copy" after a few seconds.
	state, err := chromedp.Run(b.ctx, chromedp.Poll[[]string](
		`(el => el.getAttribute("data-copied") && [el.getAttribute("data-copied"), el.querySelector("[data-copy-label]").textContent])(document.querySelector(`+js(copySecret)+`))`,
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(waitTimeout)))
	if err != nil || len(state) != 2 {
		t.Fatalf("copy button: data-copied never set: %v", err)
	}
	copied, label := state[0], state[1]
	if sel := eval[string](b, `window.getSelection().toString()`); sel != secret {
		t.Errorf("after copy: selection %q, want the secret %q", sel, secret)
	}
	switch copied {
	case "clipboard":
		got, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("read the clipboard: %v", err)
		}
		if got != secret {
			t.Errorf("clipboard %q, want the secret %q", got, secret)
		}
		if label != "Copied" {
			t.Errorf("copy button label %q, want Copied", label)
		}
		t.Log("copy button: the secret is on the clipboard")
	case "selected":
		if clipboard {
			t.Log("copy button: the clipboard was refused even with permissions granted; the secret is selected")
		}
		if label != "Selected: press Ctrl+C" {
			t.Errorf("copy button label %q, want the Ctrl+C hint", label)
		}
	default:
		t.Fatalf("copy button: data-copied=%q", copied)
	}

	// Escape does not close the reveal; it shows why and moves to the box.
	hintVisible := `!document.querySelector(` + js(revealHint) + `).classList.contains("hidden")`
	if eval[bool](b, hintVisible) {
		t.Fatal("the “tick first” hint is visible before anything was refused")
	}
	b.press(kb.Escape)
	b.waitFor("Escape reveals the hint", hintVisible)
	b.visible(revealHint)
	b.visible(revealModal)
	b.waitFor("Escape moves focus to the checkbox", focusIs(storedBox))
	b.wantPath("/signup")
	if got := b.text(revealSecret); got != secret {
		t.Fatalf("after Escape: secret %q, want %q", got, secret)
	}

	// Focus trap with Done disabled: the checkbox is the last stop.
	b.do("focus the checkbox", chromedp.Focus(chromedp.CSS(storedBox)))
	b.press(kb.Tab)
	b.waitFor("Tab from the checkbox wraps to the first copy button", focusIs(copyAPIKey))
	b.press(kb.Tab, chromedp.KeyModifiers(chromedp.ModifierShift))
	b.waitFor("Shift+Tab from the first element wraps to the checkbox", focusIs(storedBox))

	// Ticking enables Done (and hides the hint); unticking disables it again.
	b.click(storedBox)
	b.waitFor("Done enabled after ticking", `!`+doneDisabled)
	b.waitFor("the hint hides after ticking", `!(`+hintVisible+`)`)
	b.click(storedBox)
	b.waitFor("Done disabled after unticking", doneDisabled)
	b.click(storedBox)
	b.waitFor("Done enabled after ticking again", `!`+doneDisabled)

	// Focus trap with Done enabled: Done is the last stop.
	b.do("focus Done", chromedp.Focus(chromedp.CSS(revealDone)))
	b.press(kb.Tab)
	b.waitFor("Tab from Done wraps to the first copy button", focusIs(copyAPIKey))
	b.press(kb.Tab, chromedp.KeyModifiers(chromedp.ModifierShift))
	b.waitFor("Shift+Tab from the first element wraps to Done", focusIs(revealDone))

	// Done closes it, and the keys page does not show the secret.
	b.navigate("press Done", chromedp.Click(chromedp.CSS(revealDone)))
	b.wantPath("/keys")
	b.visible(masterCard)
	if strings.Contains(b.html(), secret) {
		t.Fatal("the keys page after Done contains the secret")
	}
}

// TestBrowserKeysPageGearMenuReset covers the keys page, the keyboard gear
// menu and Reset Secret Key through htmx up to the new reveal.
func TestBrowserKeysPageGearMenuReset(t *testing.T) {
	b := newBrowser(t)
	apiKey, oldSecret := b.signUp("Acme Mail", "owner@acme.example")
	b.finishReveal()

	// The master key and a masked hint, never the secret.
	if got := b.text(masterCard + ` [data-testid="api-key"]`); got != apiKey {
		t.Errorf("master API key %q, want %q", got, apiKey)
	}
	hint := b.text(masterCard + ` [data-testid="secret-hint"]`)
	if !strings.HasPrefix(hint, "kd_live_") || !strings.HasSuffix(hint, oldSecret[len(oldSecret)-4:]) || hint == oldSecret {
		t.Errorf("secret hint %q: want kd_live_…%s, masked", hint, oldSecret[len(oldSecret)-4:])
	}
	if strings.Contains(b.html(), oldSecret) {
		t.Fatal("the keys page contains the secret")
	}

	// The gear menu by keyboard.
	menuOpen := `document.querySelector(` + js(masterMenu) + `).open`
	b.do("focus the gear", chromedp.Focus(chromedp.CSS(masterGear)))
	b.waitFor("the gear has focus", focusIs(masterGear))
	if eval[bool](b, menuOpen) {
		t.Fatal("the gear menu is open before Enter")
	}
	b.press(kb.Enter)
	b.waitFor("Enter opens the menu", menuOpen)
	b.waitFor("focus on the first item", focusIs(masterCard+` [data-testid="menu-reset"]`))
	if got := eval[string](b, `document.querySelector(`+js(masterGear)+`).getAttribute("aria-expanded")`); got != "true" {
		t.Errorf("gear aria-expanded %q while open, want true", got)
	}
	b.press(kb.ArrowDown)
	b.waitFor("ArrowDown moves to Rename", focusIs(masterCard+` [data-testid="menu-rename"]`))
	b.press(kb.ArrowUp)
	b.waitFor("ArrowUp moves back to Reset Secret Key", focusIs(masterCard+` [data-testid="menu-reset"]`))
	b.press(kb.Escape)
	b.waitFor("Escape closes the menu", `!`+menuOpen)
	b.waitFor("Escape returns focus to the gear", focusIs(masterGear))

	// Open it again and activate Reset Secret Key with Enter: the dialog
	// comes through htmx, without a page load.
	b.do("mark the page", chromedp.Evaluate[chromedp.Void](`window.__keydeskNoReload = true`))
	b.press(kb.Enter)
	b.waitFor("Enter opens the menu again", menuOpen)
	b.waitFor("focus on Reset Secret Key", focusIs(masterCard+` [data-testid="menu-reset"]`))
	b.press(kb.Enter)
	b.visible(`[data-testid="reset-dialog"]`)
	if !eval[bool](b, `window.__keydeskNoReload === true`) {
		t.Fatal("opening the reset dialog reloaded the page (expected an htmx swap)")
	}
	b.wantPath("/keys")
	b.waitFor("focus moves into the reset dialog", `document.getElementById("reset-dialog").contains(document.activeElement)`)
	if got := b.text(`[data-testid="reset-dialog"]`); !strings.Contains(got, "Every application and SMTP client") {
		t.Errorf("reset dialog does not say what happens: %q", got)
	}
	if !eval[bool](b, `document.querySelector('#reset-dialog input[name="grace"][value="0"]').checked`) {
		t.Error("reset dialog: Immediately is not the default")
	}

	// Confirm: the reveal shows a new secret, still without a page load.
	b.click(`[data-testid="confirm-reset"]`)
	b.visible(revealModal)
	if !eval[bool](b, `window.__keydeskNoReload === true`) {
		t.Fatal("confirming the reset reloaded the page (expected an htmx swap)")
	}
	if got := b.text(revealAPIKey); got != apiKey {
		t.Errorf("reveal after reset: API key %q, want %q", got, apiKey)
	}
	newSecret := b.text(revealSecret)
	if !secretFormat.MatchString(newSecret) {
		t.Fatalf("new secret %q does not look like a secret", newSecret)
	}
	if newSecret == oldSecret {
		t.Fatal("the reset revealed the old secret again")
	}
	if !eval[bool](b, `document.querySelector(`+js(revealDone)+`).disabled`) {
		t.Error("Done is enabled before ticking in the reset reveal")
	}
	b.finishReveal()

	// Reload: no secret anywhere in the page.
	b.navigate("reload", chromedp.Reload())
	page := eval[string](b, `document.documentElement.outerHTML`)
	for name, s := range map[string]string{"old": oldSecret, "new": newSecret} {
		if strings.Contains(page, s) {
			t.Errorf("after reload the page contains the %s secret", name)
		}
	}
	if hint := b.text(masterCard + ` [data-testid="secret-hint"]`); !strings.HasSuffix(hint, newSecret[len(newSecret)-4:]) {
		t.Errorf("after reset: hint %q does not end with the new secret's last 4 characters", hint)
	}

	// The models agree: the new secret verifies, the old one is dead.
	ctx := context.Background()
	if _, err := b.app.store.Verify(ctx, apiKey, newSecret); err != nil {
		t.Errorf("Verify(new secret): %v", err)
	}
	if _, err := b.app.store.Verify(ctx, apiKey, oldSecret); err == nil {
		t.Error("Verify(old secret) succeeded after an immediate reset")
	}
}

// TestBrowserRenameThroughGearMenu renames the master key in the htmx
// dialog: an empty name shows the inline error, a good one is saved.
func TestBrowserRenameThroughGearMenu(t *testing.T) {
	b := newBrowser(t)
	b.signUp("Acme Mail", "owner@acme.example")
	b.finishReveal()

	b.click(masterGear)
	b.click(masterCard + ` [data-testid="menu-rename"]`)
	b.visible(`[data-testid="rename-dialog"]`)
	if got := eval[string](b, `document.querySelector("#rename-dialog #f-name").value`); got != "Acme Mail" {
		t.Errorf("rename dialog: name field %q, want the current name", got)
	}

	// An empty name: the dialog stays, with the error inside it.
	b.clear(`#rename-dialog #f-name`)
	b.click(`[data-testid="confirm-rename"]`)
	b.visible(`[data-testid="rename-dialog"] #e-name`)
	if got := b.text(`[data-testid="rename-dialog"] #e-name`); got != "Enter a name." {
		t.Errorf("empty name: inline error %q", got)
	}
	if got := eval[string](b, `document.querySelector("#rename-dialog #f-name").getAttribute("aria-invalid")`); got != "true" {
		t.Errorf("empty name: aria-invalid %q, want true", got)
	}
	b.wantPath("/keys")
	if got := b.text(masterCard + ` [data-testid="key-name"]`); got != "Acme Mail" {
		t.Errorf("after the refused rename the name is %q", got)
	}

	// A good name: saved, the page shows it and says so.
	const newName = "Acme Transactional"
	b.fill(`#rename-dialog #f-name`, newName)
	b.navigate("submit the new name", chromedp.Click(chromedp.CSS(`[data-testid="confirm-rename"]`)))
	b.wantPath("/keys")
	if got := b.text(masterCard + ` [data-testid="key-name"]`); got != newName {
		t.Errorf("after rename: name %q, want %q", got, newName)
	}
	if got := b.text(`main [role="status"].alert-success`); got != "The key was renamed." {
		t.Errorf("after rename: notice %q", got)
	}
	if n := eval[int](b, `document.querySelectorAll("#rename-dialog").length`); n != 0 {
		t.Errorf("after rename: the dialog is still open")
	}
}

// TestBrowserResetWithoutJavaScript resets a secret with scripts disabled:
// the dialog URL renders the page with the form, and the POST answers with
// the page and the reveal open.
func TestBrowserResetWithoutJavaScript(t *testing.T) {
	b := newBrowser(t)
	apiKey, oldSecret := b.signUp("Acme Mail", "owner@acme.example")
	b.finishReveal()
	href := eval[string](b, `document.querySelector(`+js(masterCard+` [data-testid="menu-reset"]`)+`).getAttribute("href")`)
	if !regexp.MustCompile(`^/keys/\d+/reset$`).MatchString(href) {
		t.Fatalf("Reset Secret Key link %q", href)
	}

	if _, err := chromedp.Call(b.ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		t.Fatalf("disable JavaScript: %v", err)
	}
	b.navigate("open the reset URL", chromedp.Navigate(b.app.srv.URL+href))
	doc := parseHTML(t, b.html())
	if doc.Find(`#reset-dialog`).Length() != 1 {
		t.Fatal("GET " + href + " without JavaScript: no reset dialog on the page")
	}
	// Evidence that no script ran: app.js marks <html> when a dialog opens.
	if doc.Find("html.overflow-hidden").Length() != 0 {
		t.Fatal("scripts ran although JavaScript is disabled")
	}

	resp := b.navigate("submit the reset form", chromedp.Click(chromedp.CSS(`[data-testid="confirm-reset"]`)))
	if resp.Status != 200 {
		t.Fatalf("reset POST: status %d, want 200", resp.Status)
	}
	if cc := fmt.Sprint(resp.Headers["Cache-Control"]); !strings.Contains(cc, "no-store") {
		t.Errorf("reset POST: Cache-Control %s, want no-store", cc)
	}
	doc = parseHTML(t, b.html())
	if doc.Find(revealModal).Length() != 1 {
		t.Fatal("the reset response has no reveal modal")
	}
	if doc.Find("html.overflow-hidden").Length() != 0 {
		t.Fatal("scripts ran although JavaScript is disabled")
	}
	if doc.Find(`main h1`).Text() != "API Key Management" {
		t.Error("the reset response is not the keys page with the modal open")
	}
	if got := strings.TrimSpace(doc.Find(revealAPIKey).Text()); got != apiKey {
		t.Errorf("reveal: API key %q, want %q", got, apiKey)
	}
	newSecret := strings.TrimSpace(doc.Find(revealSecret).Text())
	if !secretFormat.MatchString(newSecret) || newSecret == oldSecret {
		t.Fatalf("reveal: secret %q, want a new secret (old %q)", newSecret, oldSecret)
	}
	if _, disabled := doc.Find(revealDone).Attr("disabled"); disabled {
		t.Error("Done is disabled in the markup: without JavaScript the checkbox's required attribute is the gate")
	}

	ctx := context.Background()
	if _, err := b.app.store.Verify(ctx, apiKey, newSecret); err != nil {
		t.Errorf("Verify(new secret): %v", err)
	}
	if _, err := b.app.store.Verify(ctx, apiKey, oldSecret); !errors.Is(err, models.ErrVerifyFailed) {
		t.Errorf("Verify(old secret) after an immediate reset: %v, want the generic failure", err)
	}

	// Tick and Done, still without JavaScript: back on /keys, no secret.
	b.click(storedBox)
	b.navigate("press Done", chromedp.Click(chromedp.CSS(revealDone)))
	b.wantPath("/keys")
	page := b.html()
	if strings.Contains(page, newSecret) || strings.Contains(page, oldSecret) {
		t.Error("the keys page after Done contains a secret")
	}
}

func parseHTML(t *testing.T, html string) *goquery.Document {
	t.Helper()
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(html))
	if err != nil {
		t.Fatalf("parse the page: %v", err)
	}
	return doc
}
