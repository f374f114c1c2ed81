package handlers_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"keydesk/models"
)

// gunzip decompresses body, failing the test if it is not gzip.
func gunzip(t *testing.T, body string) string {
	t.Helper()
	zr, err := gzip.NewReader(strings.NewReader(body))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return string(b)
}

// Pages, CSS, JS and the audit export are gzip-compressed for clients that
// accept it; the answers that carry a secret (every POST answered with a
// page: the reveals) and the Mailjet API under /v3 are not (BREACH, and
// REST throughput: see BENCHMARKS.md). Sizes of /keys with 25 rows are
// logged for BENCHMARKS.md.
func TestCompressionOfPagesAssetsButNotSecretsOrAPI(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c := a.client()
	gz := c.with("Accept-Encoding", "gzip")
	apiKey, secret := c.signup("Acme Mail", "owner@acme.example")
	actor := a.actorOf("owner@acme.example")
	a.setPlan(actor.AccountID, models.PlanPremium)
	for i := range 25 {
		if _, _, err := a.store.CreateSubaccount(context.Background(), actor, "client-"+strconv.Itoa(i), ""); err != nil {
			t.Fatal(err)
		}
	}

	plain := c.get("/keys")
	if plain.header.Get("Content-Encoding") != "" {
		t.Fatalf("/keys without Accept-Encoding: Content-Encoding %q", plain.header.Get("Content-Encoding"))
	}
	zipped := gz.get("/keys")
	if zipped.header.Get("Content-Encoding") != "gzip" || !strings.Contains(zipped.header.Get("Vary"), "Accept-Encoding") {
		t.Fatalf("/keys with Accept-Encoding gzip: Content-Encoding %q, Vary %q", zipped.header.Get("Content-Encoding"), zipped.header.Get("Vary"))
	}
	if n := strings.Count(gunzip(t, zipped.body), `data-testid="key-row"`); n != 25 {
		t.Fatalf("/keys gzipped: %d rows, want 25", n)
	}
	t.Logf("/keys with 25 rows: %d bytes, %d bytes gzipped", len(plain.body), len(zipped.body))

	// The stylesheet and the scripts.
	for _, sel := range []string{`link[rel="stylesheet"]`, `script[src]`} {
		u, _ := plain.doc.Find(sel).First().Attr("href")
		if u == "" {
			u, _ = plain.doc.Find(sel).First().Attr("src")
		}
		raw := c.get(u)
		r := gz.get(u)
		if r.status != http.StatusOK || r.header.Get("Content-Encoding") != "gzip" || gunzip(t, r.body) != raw.body {
			t.Fatalf("GET %s: %d, Content-Encoding %q: want the same file gzipped", u, r.status, r.header.Get("Content-Encoding"))
		}
		t.Logf("%s: %d bytes, %d bytes gzipped", u, len(raw.body), len(r.body))
	}

	// The audit export (JSON Lines).
	exp := gz.post("/audit/export?format=jsonl", url.Values{"_csrf": {c.csrf("/audit")}})
	if exp.status != http.StatusOK || exp.header.Get("Content-Encoding") != "gzip" || !strings.HasPrefix(gunzip(t, exp.body), "{") {
		t.Fatalf("audit export: %d, Content-Encoding %q: want JSON Lines gzipped", exp.status, exp.header.Get("Content-Encoding"))
	}
	// At the fastest level: a bulk download of every entry, where level 5
	// held an export to 26 MB/s of CSV on one core (BENCHMARKS.md). The
	// gzip header's XFL byte says so (RFC 1952: 4, fastest algorithm).
	if len(exp.body) < 10 || exp.body[8] != 4 {
		t.Fatalf("audit export gzipped with XFL %d, want 4 (gzip.BestSpeed)", exp.body[8])
	}
	if page := gz.get("/keys"); len(page.body) < 10 || page.body[8] != 0 {
		t.Fatalf("/keys gzipped with XFL %d, want 0 (level %d)", page.body[8], 5)
	}

	// A reveal: a POST answered with the page and the secret. Never compressed.
	id := c.masterID()
	reveal := gz.post("/keys/"+id+"/reset", url.Values{"grace": {"0"}, "_csrf": {c.csrf("/keys")}})
	if reveal.status != http.StatusOK || reveal.header.Get("Content-Encoding") != "" {
		t.Fatalf("reset reveal: %d, Content-Encoding %q: a response carrying a secret must not be compressed", reveal.status, reveal.header.Get("Content-Encoding"))
	}
	if _, s := reveal.revealed(); s == "" {
		t.Fatal("reset reveal: no secret in the (uncompressed) answer")
	} else {
		secret = s
	}

	// The Mailjet API: never compressed, whatever the client accepts.
	req, _ := http.NewRequest(http.MethodGet, a.srv.URL+"/v3/REST/apikey?Limit=1000", nil)
	req.SetBasicAuth(apiKey, secret)
	req.Header.Set("Accept-Encoding", "gzip")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Encoding") != "" || !bytes.HasPrefix(body, []byte("{")) {
		t.Fatalf("REST with Accept-Encoding gzip: %d, Content-Encoding %q", res.StatusCode, res.Header.Get("Content-Encoding"))
	}
}
