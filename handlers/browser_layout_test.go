package handlers_test

// The layout suite (issue 11, items 4 and 11): every page of every role,
// with its dialogs and menus open, at a phone, a tablet and a desktop
// width. On each: the page does not scroll sideways, every control (row
// actions first) can be reached without scrolling sideways, text stays in
// its box, and axe-core finds no violation.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"keydesk/models"
	"keydesk/models/testdb"
)

// layoutWidths are the viewport widths every page is checked at: a phone,
// a tablet and a desktop.
var layoutWidths = []int64{375, 768, 1280}

// layoutProblems is run in the page. It returns one line per problem:
//   - the document is wider than the viewport (the page scrolls sideways);
//   - a control is off-screen, hidden under something else, or only
//     reachable by scrolling a box (or the page) sideways;
//   - a label's text overflows its box (the reset dialog's tiles);
//   - a secret hint or an API key breaks over lines, or a name in a table
//     takes more than two lines at a desktop width.
const layoutProblems = `(() => {
	const out = [];
	const de = document.documentElement;
	const describe = el => {
		const label = el.getAttribute("aria-label") || el.getAttribute("data-testid") || el.textContent.trim().replace(/\s+/g, " ").slice(0, 40);
		return el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + " “" + label + "”";
	};
	if (de.scrollWidth > innerWidth) {
		// Name the outermost element that sticks out (not a 1 px
		// screen-reader-only one), so the report says what to fix.
		const out_ = el => {
			const r = el.getBoundingClientRect();
			if (r.width <= 1 || !el.checkVisibility()) return false;
			// Its box, or text that overflows its box (a long unbroken word).
			return r.right > innerWidth + 0.5 || (getComputedStyle(el).overflowX === "visible" && r.left + el.scrollWidth > innerWidth + 0.5);
		};
		let culprit = null;
		for (const el of document.body.querySelectorAll("*")) {
			if (out_(el) && !(el.parentElement && out_(el.parentElement))) { culprit = el; break; }
		}
		out.push("the page is " + de.scrollWidth + " px wide in a " + innerWidth + " px viewport" + (culprit ? " (" + describe(culprit) + " ends at " + Math.round(culprit.getBoundingClientRect().right) + " px)" : ""));
	}
	const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]):not([type="hidden"]), select:not([disabled]), textarea:not([disabled]), summary, [tabindex]:not([tabindex="-1"])';
	// With a modal or a menu open, only its content can be reached.
	const root = document.querySelector('[aria-modal="true"]') || document.querySelector('details[data-menu][open] [role="menu"]') || document.body;
	for (const el of root.querySelectorAll(FOCUSABLE)) {
		const r0 = el.getBoundingClientRect();
		if (!el.checkVisibility({visibilityProperty: true})) continue; // not rendered (closed menu, hidden hint)
		if (r0.width <= 1 || r0.height <= 1) continue; // screen-reader only (the skip link until focused)
		el.scrollIntoView({block: "center", inline: "nearest"});
		for (let a = el.parentElement; a; a = a.parentElement) {
			if (a.scrollLeft > 0) {
				out.push(describe(el) + " is only reachable by scrolling " + describe(a) + " sideways");
				a.scrollLeft = 0;
			}
		}
		if (scrollX > 0) { out.push(describe(el) + " is only reachable by scrolling the page sideways"); scrollTo(0, scrollY); }
		const r = el.getBoundingClientRect();
		if (r.left < 0 || r.right > innerWidth + 0.5) {
			out.push(describe(el) + " is outside the viewport (" + Math.round(r.left) + "…" + Math.round(r.right) + " of " + innerWidth + ")");
			continue;
		}
		const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
		if (!hit || !(el.contains(hit) || hit.contains(el) || (hit.control && hit.control === el))) {
			out.push(describe(el) + " is covered by " + (hit ? describe(hit) : "nothing") + " (clipped or overlapped)");
		}
	}
	for (const el of root.querySelectorAll("label")) {
		if (el.checkVisibility() && el.clientWidth > 1 && el.scrollWidth > el.clientWidth + 1) out.push(describe(el) + " overflows its box (" + el.scrollWidth + " > " + el.clientWidth + ")");
	}
	// Lines of text in el: the height of its text, not of its box (a table
	// cell is as high as its row).
	const lines = el => {
		const range = document.createRange();
		range.selectNodeContents(el);
		return Math.round(range.getBoundingClientRect().height / parseFloat(getComputedStyle(el).lineHeight));
	};
	for (const el of root.querySelectorAll('[data-testid="secret-hint"], [data-testid="api-key"], [data-testid="key-apikey"]')) {
		if (el.getClientRects().length && el.getBoundingClientRect().width > 0 && lines(el) > 1 && innerWidth >= 768) out.push(describe(el) + " breaks over " + lines(el) + " lines");
	}
	if (innerWidth >= 1280) {
		for (const el of root.querySelectorAll('tr [data-testid="key-name"], tr [data-testid="subaccount-name"]')) {
			if (lines(el) > 2) out.push(describe(el) + " wraps to " + lines(el) + " lines");
		}
	}
	scrollTo(0, 0);
	return out;
})()`

// checkLayout fails the test with every layout problem of the page shown.
func (b *browserT) checkLayout(where string) {
	b.t.Helper()
	problems := eval[[]string](b, layoutProblems)
	for _, p := range problems {
		b.t.Errorf("%s: %s", where, p)
	}
}

// axeSource is axe-core's browser build from node_modules (pinned in
// package.json, installed by npm ci).
var axeSource = sync.OnceValues(func() ([]byte, error) {
	return os.ReadFile(filepath.Join("..", "node_modules", "axe-core", "axe.min.js"))
})

// axeViolation is one failed axe-core rule with the elements that fail it.
type axeViolation struct {
	ID, Impact, Help string
	Nodes            []struct {
		Target         []string
		FailureSummary string
	}
}

// checkAxe runs axe-core (every rule it runs by default: WCAG 2.x A and AA
// and best practices) on the page as it is, dialogs and menus included,
// and fails the test with each violation. The script is injected through
// the DevTools protocol, so the page's CSP does not apply to it and the
// page never ships it.
func (b *browserT) checkAxe(where string) {
	b.t.Helper()
	src, err := axeSource()
	if err != nil {
		b.t.Fatalf("read axe-core (run npm ci): %v", err)
	}
	if !eval[bool](b, `typeof window.axe === "object"`) {
		b.do("inject axe-core", chromedp.Evaluate[chromedp.Void](string(src)+"\n;undefined"))
	}
	violations, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]axeViolation](`axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations.map(v => ({
		ID: v.id, Impact: v.impact || "", Help: v.help,
		Nodes: v.nodes.map(n => ({Target: n.target.map(String), FailureSummary: n.failureSummary || ""})),
	})))`, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: run axe-core: %v", where, err)
	}
	for _, v := range violations {
		for _, n := range v.Nodes {
			b.t.Errorf("%s: axe %s (%s): %s at %s: %s", where, v.ID, v.Impact, v.Help, strings.Join(n.Target, " "), strings.Join(strings.Fields(n.FailureSummary), " "))
		}
	}
}

// checkFont fails unless the page's text is set in the Inter that keydesk
// ships (static/fonts, from @fontsource-variable/inter): layout must not
// depend on the fonts of the machine. A font installed on the machine is not
// in document.fonts; only @font-face rules are.
func (b *browserT) checkFont(where string) {
	b.t.Helper()
	type fonts struct {
		Family string
		Loaded []string
	}
	got, err := chromedp.Run(b.ctx, chromedp.Evaluate[fonts](`document.fonts.ready.then(() => ({
		Family: getComputedStyle(document.body).fontFamily.split(",")[0].replace(/["']/g, "").trim(),
		Loaded: [...document.fonts].filter(f => f.status === "loaded").map(f => f.family.replace(/["']/g, "") + " " + f.weight),
	}))`, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: read the fonts: %v", where, err)
	}
	if got.Family != "Inter" || !slices.ContainsFunc(got.Loaded, func(f string) bool { return strings.HasPrefix(f, "Inter ") }) {
		b.t.Errorf("%s: body font %q, loaded font faces %v: want the shipped Inter loaded", where, got.Family, got.Loaded)
	}
}

// layoutFixture is an account with enough in it to fill every screen: four
// sub-accounts (one with a long name, one inactive and overdue, one in a
// grace period, one used from a long IPv6 address), traffic, a pending
// request for more, and staff users of each role.
type layoutFixture struct {
	accountID     uint
	masterID      uint
	busyID, idle  uint // a key with traffic, a key without
	subaccountIDs []uint
}

const (
	layoutOwner   = "owner@acme.example"
	layoutSupport = "ana@support.example"
	layoutAuditor = "audrey@audit.example"
	// layoutAtLimit uses every sub-account its plan allows and has asked
	// for nothing: /keys and /subaccounts offer "Request more", which opens
	// the limit-request dialog.
	layoutAtLimit = "full@globex.example"
	// layoutPending is at its limit too, with a request waiting for support.
	layoutPending = "waiting@initech.example"
	// layoutLongName is as long as names get in practice (64 is the limit).
	layoutLongName = "Transactional e-mail for the EU web shop (orders, invoices)"
)

func newLayoutFixture(b *browserT) layoutFixture {
	b.t.Helper()
	t, a := b.t, b.app
	ctx := context.Background()
	b.signUp("Acme Mail", layoutOwner)
	b.finishReveal()
	var f layoutFixture
	actor := a.actorOf(layoutOwner)
	f.accountID = actor.AccountID
	a.setPlan(f.accountID, models.PlanEssential)
	for _, n := range []string{"newsletters", layoutLongName, "billing", "eu-client"} {
		if _, _, err := a.store.CreateSubaccount(ctx, actor, n, "Sending for "+n); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := a.store.ListKeys(ctx, actor)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		p := models.KeyPrincipal{KeyID: k.ID, AccountID: k.AccountID}
		switch {
		case k.IsMaster:
			f.masterID = k.ID
		case k.Name == "billing":
			f.idle = k.ID
			testdb.Must(t, a.store.DB().Table("api_keys").Where("id = ?", k.ID).Updates(map[string]any{"secret_set_at": a.store.Now().Add(-140 * 24 * time.Hour), "is_active": false}))
		case k.Name == "eu-client":
			if _, _, err := a.store.ResetSecret(ctx, actor, k.ID, 7*24*time.Hour); err != nil {
				t.Fatal(err)
			}
		case k.Name == layoutLongName:
			f.busyID = k.ID
			for i := 0; i < 40; i++ {
				a.store.RecordUse(p, models.ChannelAPI, "2001:db8:85a3:1234:5678:8a2e:370:7334", 0)
			}
			a.store.RecordUse(p, models.ChannelSMTP, "2001:db8:85a3:1234:5678:8a2e:370:7334", 12)
		}
		if !k.IsMaster {
			f.subaccountIDs = append(f.subaccountIDs, k.ID)
		}
	}
	if err := a.store.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.store.RequestMoreSubaccounts(ctx, actor, 5, "three new EU clients next month, each with its own sending stream"); err != nil {
		t.Fatal(err)
	}
	a.staffUser(models.RoleSupport, layoutSupport)
	a.staffUser(models.RoleAuditor, layoutAuditor)
	atLimitOwner(b, "Globex Mail", layoutAtLimit, "")
	atLimitOwner(b, "Initech Mail", layoutPending, "two more EU clients next month")
	return f
}

// atLimitOwner creates an owner on the free plan whose one sub-account is
// in use and, when reason is set, who has asked support for more.
func atLimitOwner(b *browserT, account, email, reason string) {
	b.t.Helper()
	t, s, ctx := b.t, b.app.store, context.Background()
	res, err := s.CreateAccount(ctx, models.SignUpInput{AccountName: account, Email: email, Password: testPassword, Plan: models.PlanFree}, models.Actor{}, models.ActionSignup)
	if err != nil {
		t.Fatalf("create %s: %v", email, err)
	}
	actor := models.Actor{UserID: res.User.ID, Email: email, Role: models.RoleOwner, AccountID: res.Account.ID, AuthAt: s.Now()}
	if _, _, err := s.CreateSubaccount(ctx, actor, "newsletters", "Sending for newsletters"); err != nil {
		t.Fatalf("%s: create a sub-account: %v", email, err)
	}
	st, err := s.SubaccountLimitStatus(ctx, actor)
	if err != nil || st.State != models.LimitAt {
		t.Fatalf("%s: limit state %v (%v), want at the limit", email, st.State, err)
	}
	if reason == "" {
		return
	}
	if _, err := s.RequestMoreSubaccounts(ctx, actor, 2, reason); err != nil {
		t.Fatalf("%s: request more: %v", email, err)
	}
}

// layoutStep is one screen: a page, optionally with a dialog or a menu open.
type layoutStep struct {
	name string
	path string
	// before runs before each load (put the state the screen needs back).
	before func(b *browserT)
	// then runs after the page loaded (open a menu, a dialog through htmx).
	then func(b *browserT)
}

func ownerSteps(f layoutFixture) []layoutStep {
	key := func(id uint, action string) string { return "/keys/" + strconv.Itoa(int(id)) + "/" + action }
	lastGear := `[data-testid="key-row"]:last-child [data-testid="gear"]`
	return []layoutStep{
		{name: "keys", path: "/keys"},
		{name: "keys, gear menu of the last row open", path: "/keys", then: func(b *browserT) {
			b.click(lastGear)
			b.waitFor("the menu opens", `document.querySelector('[data-testid="key-row"]:last-child details[data-menu]').open`)
		}},
		{name: "keys, reset dialog", path: key(f.busyID, "reset")},
		{name: "keys, reset reveal", path: key(f.busyID, "reset"), then: func(b *browserT) {
			b.click(`[data-testid="confirm-reset"]`)
			b.visible(revealModal)
		}},
		{name: "keys, end an old secret now (dialog)", path: "/keys", then: func(b *browserT) {
			b.click(`[data-testid="end-old-secret"]`)
			b.visible(`[data-testid="end-secret-dialog"]`)
		}},
		{name: "keys, rename dialog", path: key(f.busyID, "rename")},
		{name: "keys, deactivate dialog", path: key(f.busyID, "deactivate")},
		{name: "keys, search without a match", path: "/keys?q=nothing-matches-this"},
		{name: "usage with traffic", path: key(f.busyID, "usage")},
		{name: "usage without traffic", path: key(f.idle, "usage")},
		{name: "sub-accounts", path: "/subaccounts"},
		{name: "sub-accounts, create dialog", path: "/subaccounts/new"},
		{name: "audit (owner)", path: "/audit"},
		{name: "change password", path: "/account/password"},
		{name: "time zone", path: "/account/time-zone"},
		{name: "account menu open", path: "/keys", then: func(b *browserT) {
			b.click(`[data-testid="account-menu"]`)
			b.visible(`[data-testid="logout"]`)
		}},
	}
}

// atLimitSteps are the screens of an owner at the limit with nothing asked:
// the banner and "Request more" on both pages, and the request dialog (as
// htmx opens it from each page, as a page of its own, and with the errors
// of an empty form).
var atLimitSteps = []layoutStep{
	{name: "keys at the limit", path: "/keys", then: wantLimitState("limit-reached")},
	{name: "sub-accounts at the limit", path: "/subaccounts", then: wantLimitState("limit-reached")},
	{name: "keys, limit-request dialog", path: "/keys", then: openLimitDialog},
	{name: "sub-accounts, limit-request dialog", path: "/subaccounts", then: openLimitDialog},
	{name: "limit-request dialog as a page", path: "/subaccounts/new", then: func(b *browserT) {
		b.visible(`[data-testid="limit-dialog"] [data-testid="send-request"]`)
	}},
	{name: "limit-request dialog with errors", path: "/subaccounts", then: func(b *browserT) {
		openLimitDialog(b)
		b.click(`[data-testid="send-request"]`)
		b.visible(`#limit-dialog #e-reason`)
	}},
}

// pendingSteps are the screens of an owner at the limit whose request for
// more waits for support.
var pendingSteps = []layoutStep{
	{name: "keys, request pending", path: "/keys", then: wantLimitState("limit-pending")},
	{name: "sub-accounts, request pending", path: "/subaccounts", then: wantLimitState("limit-pending")},
	{name: "limit dialog with the pending request", path: "/subaccounts/new", then: func(b *browserT) {
		b.visible(`[data-testid="limit-dialog"] [data-testid="pending-request"]`)
	}},
}

// wantLimitState checks the page shows the limit banner with testid
// banner, so the step checks the state it is named after.
func wantLimitState(banner string) func(b *browserT) {
	return func(b *browserT) {
		b.t.Helper()
		b.visible(`[data-testid="` + banner + `"]`)
	}
}

// openLimitDialog opens the limit-request dialog with "Request more".
func openLimitDialog(b *browserT) {
	b.t.Helper()
	wantLimitState("limit-reached")(b)
	b.click(`[data-testid="request-more"]`)
	b.visible(`[data-testid="limit-dialog"] [data-testid="send-request"]`)
}

func supportSteps(f layoutFixture) []layoutStep {
	return []layoutStep{
		{name: "support queue and search", path: "/support?q=acme"},
		{name: "support account", path: "/support/accounts/" + strconv.Itoa(int(f.accountID))},
		{name: "audit (support)", path: "/audit"},
	}
}

var auditorSteps = []layoutStep{
	{name: "audit (auditor)", path: "/audit"},
	{name: "audit (auditor), a row expanded", path: "/audit", then: func(b *browserT) {
		b.click(`[data-testid="audit-details"] summary`)
		b.visible(`[data-testid="audit-hash"]`)
	}},
}

var signedOutSteps = []layoutStep{
	{name: "login", path: "/login"},
	{name: "sign up", path: "/signup"},
}

// newDeadline bounds what the tab does next by browserTimeout, from now.
func (b *browserT) newDeadline() {
	ctx, cancel := context.WithTimeout(b.tab, browserTimeout)
	b.t.Cleanup(cancel)
	b.ctx = ctx
}

// runLayoutSteps checks each step at each width.
func (b *browserT) runLayoutSteps(role string, steps []layoutStep) {
	b.t.Helper()
	for _, w := range layoutWidths {
		b.do(fmt.Sprintf("viewport %d px", w), chromedp.EmulateViewport(w, 800))
		for _, s := range steps {
			b.newDeadline()
			where := fmt.Sprintf("%s @%dpx: %s (%s)", role, w, s.name, s.path)
			if s.before != nil {
				s.before(b)
			}
			b.navigate("open "+where, chromedp.Navigate(b.app.srv.URL+s.path))
			if got := b.path(); got != strings.SplitN(s.path, "?", 2)[0] {
				b.t.Fatalf("%s: landed on %s", where, got)
			}
			if s.then != nil {
				s.then(b)
			}
			b.checkFont(where)
			b.checkLayout(where)
			b.checkAxe(where)
		}
	}
	b.do("viewport back to 1280 px", chromedp.EmulateViewport(1280, 900))
	// A fresh page: the last step may have left a menu open.
	b.navigate("leave the last step", chromedp.Navigate(b.app.srv.URL+"/"))
}

func TestBrowserLayoutEveryPageEveryWidth(t *testing.T) {
	b := newBrowser(t)
	// Three roles (owners below, at and waiting past the limit), three
	// widths, some thirty screens: far more than one flow, so each screen
	// (and each sign-in between roles) gets a deadline of its own.
	b.newDeadline()
	f := newLayoutFixture(b)
	b.logOutViaMenu()
	b.runLayoutSteps("signed out", signedOutSteps)

	b.newDeadline()
	b.logInAs(layoutOwner, "/keys")
	b.runLayoutSteps("owner", ownerSteps(f))
	b.logOutViaMenu()

	b.newDeadline()
	b.logInAs(layoutAtLimit, "/keys")
	b.runLayoutSteps("owner at the limit", atLimitSteps)
	b.logOutViaMenu()

	b.newDeadline()
	b.logInAs(layoutPending, "/keys")
	b.runLayoutSteps("owner with a request pending", pendingSteps)
	b.logOutViaMenu()

	b.newDeadline()
	b.logInAs(layoutSupport, "/support")
	b.runLayoutSteps("support", supportSteps(f))
	b.logOutViaMenu()

	b.newDeadline()
	b.logInAs(layoutAuditor, "/audit")
	b.runLayoutSteps("auditor", auditorSteps)
}
