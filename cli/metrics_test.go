package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// issue 13 #9: Prometheus metrics on a separate listener, labelled by the
// route pattern, with the store's, SMTP's and the pool's figures.
func TestServeMetricsListener(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "keydesk.db")
	code, out, stderr := runCLI(t, "a long enough password\n", "--db", db, "account", "create", "--name", "Acme", "--email", "ops@acme.example", "--password-stdin")
	if code != 0 {
		t.Fatalf("account create: %s", stderr)
	}
	var acct struct {
		APIKey    string `json:"api_key"`
		SecretKey string `json:"secret_key"`
	}
	if err := json.Unmarshal([]byte(out), &acct); err != nil {
		t.Fatal(err)
	}
	srv := startServe(t, "--db", db, "--addr", "127.0.0.1:0", "--smtp-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0")
	base := srv.URL
	get := func(url string, auth bool) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if auth {
			req.SetBasicAuth(acct.APIKey, acct.SecretKey)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if st, _ := get(base+"/v3/REST/apikey", true); st != 200 {
		t.Fatalf("REST: %d", st)
	}
	if st, _ := get(base+"/v3/REST/apikey/"+acct.APIKey, true); st != 200 {
		t.Fatalf("REST one key: %d", st)
	}
	if st, _ := get(base+"/login", false); st != 200 {
		t.Fatalf("login page: %d", st)
	}
	if st, _ := get(base+"/metrics", false); st != 404 {
		t.Errorf("the public listener serves /metrics: %d", st)
	}
	if srv.Metrics == "" || !strings.Contains(srv.logs.String(), `msg="metrics listening" url=`+srv.Metrics) {
		t.Fatalf("no metrics listener (%q):\n%s", srv.Metrics, srv.logs.String())
	}
	st, body := get(srv.Metrics, false)
	if st != 200 {
		t.Fatalf("metrics: %d", st)
	}
	for _, want := range []string{
		`keydesk_http_request_duration_seconds_count{method="GET",route="/v3/REST/apikey",status="200"} 1`,
		`keydesk_http_request_duration_seconds_count{method="GET",route="/login",status="200"} 1`,
		`keydesk_http_request_duration_seconds_bucket{`,
		`keydesk_verify_total{outcome="ok"} 2`,
		`keydesk_verify_cache_total{result="hit"}`,
		`keydesk_verify_cache_total{result="miss"}`,
		`keydesk_throttle_refusals_total{channel="api"} 0`,
		`keydesk_smtp_sessions_total 0`,
		`keydesk_smtp_messages_relayed_total 0`,
		`keydesk_audit_append_seconds_count`,
		`keydesk_db_connections{state="idle"}`,
		`keydesk_db_connections_max`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// The route pattern, never the raw path: a client cannot create series.
	if strings.Contains(body, acct.APIKey) {
		t.Error("a raw path (with the API key) became a label")
	}
	if !regexp.MustCompile(`route="/v3/REST/apikey/:[a-z_A-Z]+",status="200"} 1`).MatchString(body) {
		t.Errorf("no series for the key route pattern:\n%s", grepLines(body, "keydesk_http_request_duration_seconds_count"))
	}
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Metrics are off unless an address is configured.
func TestServeMetricsOffByDefault(t *testing.T) {
	if c := (&config{}); c.MetricsAddr != "" {
		t.Fatal("zero config has a metrics address")
	}
	db := filepath.Join(t.TempDir(), "keydesk.db")
	t.Setenv("KEYDESK_METRICS_ADDR", "")
	srv := startServe(t, "--db", db, "--addr", "127.0.0.1:0", "--smtp-addr", "off")
	if srv.Metrics != "" || strings.Contains(srv.logs.String(), "metrics listening") {
		t.Errorf("a metrics listener started by default (%q):\n%s", srv.Metrics, srv.logs.String())
	}
	res, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 404 {
		t.Errorf("/metrics on the public listener: %d", res.StatusCode)
	}
}
