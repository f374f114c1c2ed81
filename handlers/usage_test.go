package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
)

func TestUsageAppearsOnKeysPageAndChart(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	apiKey, secret := c.signup("Acme Mail", "owner@acme.example")
	id := c.masterID()
	if r := c.get("/keys"); !strings.Contains(r.text(`[data-testid="last-used"]`), "never") {
		t.Fatalf("fresh key last used: %q", r.text(`[data-testid="last-used"]`))
	}
	for i := 0; i < 4; i++ {
		if st, _, _ := restDo(t, a, "GET", "/v3/REST/apikey", apiKey, secret, ""); st != 200 {
			t.Fatalf("REST call %d: %d", i, st)
		}
	}
	if err := a.store.FlushUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := c.get("/keys")
	if lu := r.text(`[data-testid="last-used"]`); !strings.Contains(lu, "just now") || !strings.Contains(lu, "127.0.0.1") {
		t.Fatalf("last used after REST calls: %q", lu)
	}
	u := c.get("/keys/" + id + "/usage")
	if u.status != http.StatusOK {
		t.Fatalf("usage page: %d", u.status)
	}
	if got := u.text(`[data-testid="usage-api"]`); got != "4" {
		t.Fatalf("API requests total %q, want 4", got)
	}
	if n := u.doc.Find(`[data-testid="usage-bar"]`).Length(); n != 30 {
		t.Fatalf("%d bars, want 30", n)
	}
	if strings.Contains(u.body, secret) {
		t.Fatal("usage page shows the secret")
	}
	// Another owner's key answers 404.
	other := a.client()
	other.signup("Other", "other@other.example")
	if r := other.get("/keys/" + id + "/usage"); r.status != http.StatusNotFound {
		t.Fatalf("other owner's usage page: %d", r.status)
	}
}

func TestKeysPageSaysWhetherOldSecretIsStillUsed(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	apiKey, oldSecret := c.signup("Acme Mail", "owner@acme.example")
	id := c.masterID()
	r := c.submit("/keys/"+id+"/reset", "/keys/"+id+"/reset", url.Values{"grace": {"24h"}})
	if r.status != http.StatusOK {
		t.Fatalf("reset: %d", r.status)
	}
	if got := c.get("/keys").text(`[data-testid="old-secret-use"]`); got != "not used since the reset" {
		t.Fatalf("before use: %q", got)
	}
	a.clock.Advance(3 * time.Minute)
	if st, _, _ := restDo(t, a, "GET", "/v3/REST/apikey", apiKey, oldSecret, ""); st != 200 {
		t.Fatalf("old secret in grace: %d", st)
	}
	if err := a.store.FlushUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	a.clock.Advance(2 * time.Minute)
	if got := c.get("/keys").text(`[data-testid="old-secret-use"]`); got != "last used 2 minutes ago" {
		t.Fatalf("after use: %q", got)
	}
}

// The usage chart can be read: a y axis from 0 to a round maximum at or
// above the busiest day, dates under the first, middle and last bars, and
// the numbers in a table. A key without traffic gets a sentence instead of
// an empty chart, and so does "Sending by key" when no key sent anything.
func TestUsageChartAxesAndEmptyStates(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	apiKey, secret := c.signup("Acme Mail", "owner@acme.example")
	id := c.masterID()
	if r := c.submit("/subaccounts", "/subaccounts", url.Values{"name": {"newsletters"}, "from": {"subaccounts"}}); r.status != http.StatusOK && r.status != http.StatusCreated {
		t.Fatalf("create a sub-account: %d", r.status)
	}

	// No traffic yet.
	u := c.get("/keys/" + id + "/usage")
	if !u.has(`[data-testid="usage-empty"]`) || u.has(`[data-testid="usage-chart"]`) {
		t.Fatalf("usage without traffic: empty state %v, chart %v; want the empty state and no chart", u.has(`[data-testid="usage-empty"]`), u.has(`[data-testid="usage-chart"]`))
	}
	if got := u.doc.Find(`[data-testid="usage-table"] tbody tr`).Length(); got != 30 {
		t.Fatalf("usage without traffic: %d rows in the numbers table, want 30", got)
	}
	subs := c.get("/subaccounts")
	if !subs.has(`[data-testid="compare-empty"]`) || subs.has(`[data-testid="compare-row"]`) {
		t.Fatalf("sending by key without traffic: empty state %v, rows %d; want the empty state and no bars", subs.has(`[data-testid="compare-empty"]`), subs.doc.Find(`[data-testid="compare-row"]`).Length())
	}

	// Seven API requests today: the axis goes to 10 (a round maximum).
	for i := 0; i < 7; i++ {
		if st, _, _ := restDo(t, a, "GET", "/v3/REST/apikey", apiKey, secret, ""); st != 200 {
			t.Fatalf("REST call %d: %d", i, st)
		}
	}
	if err := a.store.FlushUsage(context.Background()); err != nil {
		t.Fatal(err)
	}
	u = c.get("/keys/" + id + "/usage")
	if u.has(`[data-testid="usage-empty"]`) || !u.has(`[data-testid="usage-chart"]`) {
		t.Fatal("usage with traffic: want the chart, not the empty state")
	}
	if got := u.text(`[data-testid="chart-max"]`); got != "10" {
		t.Errorf("y axis maximum %q, want 10 (busiest day 7)", got)
	}
	if got := u.text(`[data-testid="chart-zero"]`); got != "0" {
		t.Errorf("y axis origin %q, want 0", got)
	}
	today := a.store.Now().UTC()
	first := today.AddDate(0, 0, -29)
	var dates []string
	u.doc.Find(`[data-testid="chart-date"]`).Each(func(_ int, s *goquery.Selection) { dates = append(dates, strings.TrimSpace(s.Text())) })
	if len(dates) != 3 || dates[0] != first.Format("2 Jan") || dates[2] != today.Format("2 Jan") {
		t.Errorf("x axis dates %q, want 3 from %s to %s", dates, first.Format("2 Jan"), today.Format("2 Jan"))
	}
	if got := u.doc.Find(`[data-testid="usage-table"] tbody tr`).Last().Find("td").Eq(1).Text(); strings.TrimSpace(got) != "7" {
		t.Errorf("numbers table, today's API requests %q, want 7", got)
	}
	subs = c.get("/subaccounts")
	if subs.has(`[data-testid="compare-empty"]`) {
		t.Error("sending by key with traffic still shows the empty state")
	}
}
