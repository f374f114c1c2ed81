package handlers_test

// Browser test for the audit page (issue 5): an owner with some history
// filters by action, pages to older entries and back, expands a row,
// exports CSV and marks the log reviewed.

import (
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"keydesk/models"
)

// auditRows reads the IDs and actions of the table rows.
func (b *browserT) auditRows() ([]uint64, []string) {
	b.t.Helper()
	type row struct {
		ID     string
		Action string
	}
	rows := eval[[]row](b, `[...document.querySelectorAll('[data-testid="audit-row"]')].map(tr => ({
		ID: tr.querySelector("td").textContent.trim(),
		Action: tr.querySelector('[data-testid="audit-action"]').textContent.trim(),
	}))`)
	ids := make([]uint64, len(rows))
	actions := make([]string, len(rows))
	for i, r := range rows {
		id, err := strconv.ParseUint(r.ID, 10, 64)
		if err != nil {
			b.t.Fatalf("row %d: ID %q", i, r.ID)
		}
		ids[i], actions[i] = id, r.Action
	}
	return ids, actions
}

// auditSearch is location.search as a map of value lists.
func (b *browserT) auditSearch() map[string][]string {
	b.t.Helper()
	return eval[map[string][]string](b, `(() => {
		const m = {};
		for (const [k, v] of new URLSearchParams(location.search)) (m[k] = m[k] || []).push(v);
		return m;
	})()`)
}

// auditPick selects an option of a multi-select with a real mouse click,
// Ctrl held when adding to the selection.
func (b *browserT) auditPick(selectSel, value string, add bool) {
	b.t.Helper()
	opt := selectSel + ` option[value="` + value + `"]`
	b.do("scroll "+value+" into the list's view", chromedp.Evaluate[chromedp.Void](`document.querySelector(`+js(opt)+`).scrollIntoView({block: "nearest"})`))
	nodes, err := chromedp.Run(b.ctx, chromedp.Nodes(chromedp.CSS(opt)))
	if err != nil || len(nodes) != 1 {
		b.t.Fatalf("find option %s: %v", value, err)
	}
	var opts []chromedp.MouseOption
	if add {
		opts = append(opts, chromedp.ButtonModifiers(chromedp.ModifierCtrl))
	}
	b.do("click option "+value, chromedp.MouseClickNode(nodes[0], opts...))
	b.waitFor(value+" is selected", `document.querySelector(`+js(opt)+`).selected`)
}

// auditTour is what the audit page's browser walk carries from one step
// to the next: each step starts on the page the previous one left.
type auditTour struct {
	b     *browserT
	f     *auditFixture
	email string
	// want are the entries the two-action filter matches, newest first;
	// page1 the first page of them as the page showed it.
	want  []uint64
	page1 []uint64
}

func auditFiltered(a string) bool {
	return a == models.ActionKeyRenamed || a == models.ActionSecretReset
}

// browser and fixture are the tour's, reporting to t (a step's subtest).
func (a *auditTour) browser(t *testing.T) *browserT {
	b := *a.b
	b.t = t
	return &b
}

func (a *auditTour) fixture(t *testing.T) *auditFixture {
	f := *a.f
	f.t = t
	return &f
}

func TestBrowserAuditFilterPageExpandExportReview(t *testing.T) {
	tour := newAuditTour(t)
	for _, step := range []struct {
		name string
		run  func(*auditTour, *testing.T)
	}{
		{"OpenFromNav", (*auditTour).openFromNav},
		{"FilterByTwoActions", (*auditTour).filter},
		{"OlderThenNewer", (*auditTour).olderThenNewer},
		{"ExpandARow", (*auditTour).expand},
		{"ExportCSV", (*auditTour).export},
		{"MarkReviewed", (*auditTour).review},
	} {
		if !t.Run(step.name, func(t *testing.T) { step.run(tour, t) }) {
			return // the next step would start on the wrong page
		}
	}
}

// newAuditTour signs up an owner with enough renames for a second page of
// the filtered log, then renames and resets the master key through the page.
func newAuditTour(t *testing.T) *auditTour {
	b := newBrowser(t)
	const email = "owner@acme.example"
	b.signUp("Acme Mail", email)
	b.finishReveal()

	// Enough renames for a second page, a few per second…
	f := &auditFixture{t: t, app: b.app}
	actor := f.actor(email, "198.51.100.7")
	f.renames(actor, 60, 4, "Bulk")
	// …then a rename and a reset through the page.
	b.navigate("reload /keys", chromedp.Reload())
	b.click(masterGear)
	b.click(masterCard + ` [data-testid="menu-rename"]`)
	b.visible(`[data-testid="rename-dialog"]`)
	b.fill(`#rename-dialog #f-name`, "Acme Renamed")
	b.navigate("submit the rename", chromedp.Click(chromedp.CSS(`[data-testid="confirm-rename"]`)))
	b.wantPath("/keys")
	b.click(masterGear)
	b.click(masterCard + ` [data-testid="menu-reset"]`)
	b.visible(`[data-testid="reset-dialog"]`)
	b.click(`[data-testid="confirm-reset"]`)
	b.visible(revealModal)
	b.finishReveal()
	mine := auditInTree(f.tree(actor.AccountID))
	want := f.expect(func(e models.AuditEntry) bool { return mine(e) && auditFiltered(e.Action) })
	if len(want) <= models.AuditPageSize || len(want) > 2*models.AuditPageSize {
		t.Fatalf("fixture: %d matching entries, want between one and two pages", len(want))
	}
	return &auditTour{b: b, f: f, email: email, want: want}
}

// openFromNav: Audit from the navigation, a full unfiltered first page.
func (a *auditTour) openFromNav(t *testing.T) {
	b := a.browser(t)
	b.navigate("open Audit from the nav", chromedp.Click(chromedp.CSS(`header nav a[href="/audit"]`)))
	b.wantPath("/audit")
	b.wantAssets()
	if got := b.text("main h1"); got != "Audit log" {
		t.Fatalf("heading %q", got)
	}
	if got := b.text(`header nav a[aria-current="page"]`); got != "Audit" {
		t.Errorf("current nav item %q", got)
	}
	ids, actions := b.auditRows()
	if len(ids) != models.AuditPageSize {
		t.Fatalf("unfiltered page 1: %d rows", len(ids))
	}
	if !slices.ContainsFunc(actions, func(a string) bool { return !auditFiltered(a) }) {
		t.Fatal("fixture: the unfiltered page shows only the actions the filter will pick")
	}
}

// filter by two actions in the multi-select.
func (a *auditTour) filter(t *testing.T) {
	b := a.browser(t)
	b.auditPick("#f-action", models.ActionKeyRenamed, false)
	b.auditPick("#f-action", models.ActionSecretReset, true)
	if n := eval[int](b, `document.querySelector("#f-action").selectedOptions.length`); n != 2 {
		t.Fatalf("%d options selected, want 2", n)
	}
	b.navigate("apply the filters", chromedp.Click(chromedp.CSS(`[data-testid="apply-filters"]`)))
	b.wantPath("/audit")
	q := b.auditSearch()
	if got := q["action"]; !slices.Equal(got, []string{models.ActionSecretReset, models.ActionKeyRenamed}) && !slices.Equal(got, []string{models.ActionKeyRenamed, models.ActionSecretReset}) {
		t.Fatalf("URL action filter %v (search %v)", got, q)
	}
	page1, actions := b.auditRows()
	if !slices.Equal(page1, a.want[:models.AuditPageSize]) {
		t.Fatalf("filtered page 1 %v\nwant %v", page1, a.want[:models.AuditPageSize])
	}
	for _, act := range actions {
		if !auditFiltered(act) {
			t.Fatalf("filtered page shows a %s row", act)
		}
	}
	if !slices.Contains(actions, models.ActionSecretReset) {
		t.Fatal("the reset is not on the filtered page")
	}
	if got := eval[[]string](b, `[...document.querySelector("#f-action").selectedOptions].map(o => o.value).sort()`); !slices.Equal(got, []string{models.ActionKeyRenamed, models.ActionSecretReset}) {
		t.Errorf("after applying, the menu shows %v selected", got)
	}
	a.page1 = page1
}

// olderThenNewer pages to the older entries and back, keeping the filter.
func (a *auditTour) olderThenNewer(t *testing.T) {
	b := a.browser(t)
	b.navigate("follow Older", chromedp.Click(chromedp.CSS(`[data-testid="older"]`)))
	q := b.auditSearch()
	if len(q["before"]) != 1 || len(q["action"]) != 2 {
		t.Fatalf("older page URL %v: want the cursor and both actions", q)
	}
	page2, actions := b.auditRows()
	if !slices.Equal(page2, a.want[models.AuditPageSize:]) {
		t.Fatalf("older page %v\nwant %v", page2, a.want[models.AuditPageSize:])
	}
	for _, act := range actions {
		if !auditFiltered(act) {
			t.Fatalf("older page shows a %s row", act)
		}
	}
	if eval[int](b, `document.querySelectorAll('a[data-testid="older"]').length`) != 0 {
		t.Error("the last page has an Older link")
	}
	b.navigate("follow Newer", chromedp.Click(chromedp.CSS(`[data-testid="newer"]`)))
	q = b.auditSearch()
	if len(q["after"]) != 1 || len(q["action"]) != 2 {
		t.Fatalf("newer page URL %v", q)
	}
	if back, _ := b.auditRows(); !slices.Equal(back, a.page1) {
		t.Fatalf("Newer shows %v, want page 1 %v", back, a.page1)
	}
}

// expand the first row: its details JSON and hash.
func (a *auditTour) expand(t *testing.T) {
	b := a.browser(t)
	first := `[data-testid="audit-row"]:first-child`
	hashSel := first + ` [data-testid="audit-hash"]`
	if eval[bool](b, `document.querySelector(`+js(first+` details`)+`).open`) {
		t.Fatal("the row is expanded before clicking")
	}
	if eval[bool](b, `document.querySelector(`+js(hashSel)+`).checkVisibility()`) {
		t.Fatal("the hash is visible before expanding")
	}
	b.click(first + ` summary`)
	b.waitFor("the row expands", `document.querySelector(`+js(first+` details`)+`).open`)
	b.visible(hashSel)
	e := a.fixture(t).entry(a.page1[0])
	if got := b.text(hashSel); got != e.Hash || !auditHex64.MatchString(got) {
		t.Fatalf("expanded hash %q, want entry #%d's %q", got, e.ID, e.Hash)
	}
	if got := b.text(first + ` pre`); got != e.Details {
		t.Fatalf("expanded details %q, want %q", got, e.Details)
	}
}

// export CSV with the button (the browser downloads the file), then the
// same form through fetch for the response headers.
func (a *auditTour) export(t *testing.T) {
	b := a.browser(t)
	dir := t.TempDir()
	if _, err := chromedp.Call(b.ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: auditPtrTrue(),
	}); err != nil {
		t.Fatalf("allow downloads: %v", err)
	}
	dctx, cancel := context.WithTimeout(b.ctx, waitTimeout)
	defer cancel()
	begins := chromedp.Events(dctx, browser.DownloadWillBegin)
	progress := chromedp.Events(dctx, browser.DownloadProgress)
	b.click(`[data-testid="export-csv"]`)
	var suggested string
	for ev, err := range begins {
		if err != nil {
			t.Fatalf("no download began: %v", err)
		}
		suggested = ev.SuggestedFilename
		break
	}
	var file string
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("the download did not complete: %v", err)
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			t.Fatal("the download was cancelled")
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			file = filepath.Join(dir, ev.GUID)
			break
		}
	}
	if !strings.HasPrefix(suggested, "keydesk-audit-") || !strings.HasSuffix(suggested, ".csv") {
		t.Errorf("download file name %q", suggested)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("read the download: %v", err)
	}
	rd := csv.NewReader(strings.NewReader(string(raw))) // pure CSV: every record has the header's fields
	recs, err := rd.ReadAll()
	if err != nil || len(recs) < 2 {
		t.Fatalf("the download is not the CSV export (%v): %q", err, raw)
	}
	if recs[0][0] != "id" {
		t.Fatalf("CSV header %v", recs[0])
	}
	var got []uint64
	for _, rec := range recs[1:] {
		got = append(got, auditUint(t, rec[0]))
	}
	if !slices.Equal(got, a.want) {
		t.Fatalf("downloaded rows %v\nwant every filtered row %v", got, a.want)
	}
	// The file is named after the signed head: the export's own entry.
	if es := a.fixture(t).entries(); suggested != "keydesk-audit-"+strconv.FormatUint(es[len(es)-1].ID, 10)+".csv" || es[len(es)-1].Action != models.ActionAuditExported {
		t.Errorf("file name %q does not carry the head entry #%d", suggested, es[len(es)-1].ID)
	}
	b.wantPath("/audit") // the page stays

	// The same form through fetch, for the response headers.
	type exportResp struct {
		Status                           int
		Type, Disposition, Cache, Header string
		Body                             string
	}
	res, err := chromedp.Run(b.ctx, chromedp.Evaluate[exportResp](`(async () => {
		const form = document.querySelector('[data-testid="export-csv"]').form;
		const r = await fetch(form.action, {method: "POST", body: new FormData(form)});
		return {Status: r.status, Type: r.headers.get("Content-Type"), Disposition: r.headers.get("Content-Disposition"),
			Cache: r.headers.get("Cache-Control"), Header: r.headers.get("X-Keydesk-Audit-Head") || "", Body: await r.text()};
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("fetch the export: %v", err)
	}
	if res.Status != 200 || !strings.HasPrefix(res.Type, "text/csv") || !strings.HasPrefix(res.Disposition, "attachment") ||
		!strings.Contains(res.Cache, "no-store") || !strings.HasPrefix(res.Header, "seq=") || strings.Contains(res.Body, "#checkpoint") {
		t.Fatalf("export through fetch: %+v", res)
	}
}

// review marks the log reviewed, from a fresh page so the form names the
// current head.
func (a *auditTour) review(t *testing.T) {
	b := a.browser(t)
	b.navigate("clear the filters", chromedp.Click(chromedp.CSS(`a[href="/audit"].btn-secondary`)))
	if s := eval[string](b, `location.search`); s != "" {
		t.Fatalf("Clear left %q in the URL", s)
	}
	through := eval[string](b, `document.querySelector('[data-testid="review-form"] input[name="through"]').value`)
	es := a.fixture(t).entries()
	if through != strconv.FormatUint(es[len(es)-1].ID, 10) {
		t.Fatalf("review form through #%s, want the head #%d", through, es[len(es)-1].ID)
	}
	if got := b.text(`[data-testid="review-status"]`); !strings.HasPrefix(got, "Not reviewed yet.") {
		t.Fatalf("review status before: %q", got)
	}
	b.fill("#f-note", "checked in the browser")
	b.navigate("mark reviewed", chromedp.Click(chromedp.CSS(`[data-testid="mark-reviewed"]`)))
	b.wantPath("/audit")
	if got := eval[string](b, `document.querySelector('main [role="status"]')?.textContent.trim() ?? ""`); got != "Review recorded." {
		t.Errorf("notice %q", got)
	}
	status := strings.Join(strings.Fields(b.text(`[data-testid="review-status"]`)), " ")
	if !strings.HasPrefix(status, "Last review through #"+through+" by "+a.email) || !strings.Contains(status, "checked in the browser") {
		t.Fatalf("review status %q", status)
	}
	if got := strings.Join(strings.Fields(b.text(`[data-testid="new-since-review"]`)), " "); got != "0 new entries" {
		t.Fatalf("new since my own review %q, want 0", got)
	}
}

func auditPtrTrue() *bool { v := true; return &v }
