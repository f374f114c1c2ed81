package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"keydesk/models/testdb"
	"keydesk/web"
)

// A CSRF refusal is recognised by its type, not by searching error text
// for "csrf": a handler's own 400 whose message happens to say "csrf"
// stays a 400, and a real refusal is the 403 "Request blocked" page.
func TestCSRFRefusalIsRecognisedByType(t *testing.T) {
	t.Parallel()
	store, _ := testdb.Open(t)
	s, err := web.New(web.Config{
		BaseURL: "http://127.0.0.1", Logger: testdb.QuietLogger,
		SessionKeys: [][]byte{[]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"), []byte("0123456789abcdef0123456789abcdef")},
	}, store)
	if err != nil {
		t.Fatal(err)
	}
	s.Echo.GET("/bad-input", func(c echo.Context) error {
		return echo.NewHTTPError(http.StatusBadRequest, "The csrf_note field is not accepted.")
	})
	s.Echo.POST("/form", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
	srv := httptest.NewServer(s.Echo)
	t.Cleanup(srv.Close)

	do := func(method, path string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, strings.NewReader(url.Values{"x": {"1"}}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var b strings.Builder
		if _, err := io.Copy(&b, res.Body); err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, b.String()
	}
	if status, body := do(http.MethodGet, "/bad-input"); status != http.StatusBadRequest || strings.Contains(body, "Request blocked") {
		t.Errorf("a 400 that mentions csrf: status %d, blocked page %v; want the 400 as it is", status, strings.Contains(body, "Request blocked"))
	}
	if status, body := do(http.MethodPost, "/form"); status != http.StatusForbidden || !strings.Contains(body, "Request blocked") {
		t.Errorf("POST without a CSRF token: status %d, blocked page %v; want 403 Request blocked", status, strings.Contains(body, "Request blocked"))
	}
}
