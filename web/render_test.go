package web_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"keydesk/models/testdb"
	"keydesk/web"
)

// TestRenderErrorMidwayIsACleanErrorPage: a component that fails after
// writing part of the page (on the reveal, after the secret was rotated)
// must not reach the browser as a cut-off 200. The central error handler
// answers a whole 500 page with the request ID, none of the partial
// output, and logs the cause with the same ID.
func TestRenderErrorMidwayIsACleanErrorPage(t *testing.T) {
	t.Parallel()
	store, _ := testdb.Open(t)
	logs := &testdb.LogBuffer{}
	s, err := web.New(web.Config{
		BaseURL: "http://127.0.0.1", Logger: slog.New(slog.NewTextHandler(logs, nil)),
		SessionKeys: [][]byte{[]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"), []byte("0123456789abcdef0123456789abcdef")},
	}, store)
	if err != nil {
		t.Fatal(err)
	}
	broken := templ.ComponentFunc(func(_ context.Context, w io.Writer) error {
		if _, err := io.WriteString(w, "<p>PARTIAL-OUTPUT secret=abc</p>"); err != nil {
			return err
		}
		return errors.New("template exploded midway")
	})
	whole := templ.ComponentFunc(func(_ context.Context, w io.Writer) error {
		_, err := io.WriteString(w, "<p>WHOLE-PAGE</p>")
		return err
	})
	s.Echo.GET("/broken", func(c echo.Context) error { return web.Render(c, http.StatusOK, broken) })
	// The error page itself cannot render either (templ components stop on
	// a cancelled context): the answer is still a 500 with the reference.
	s.Echo.GET("/broken-twice", func(c echo.Context) error {
		ctx, cancel := context.WithCancel(c.Request().Context())
		cancel()
		c.SetRequest(c.Request().WithContext(ctx))
		return web.Render(c, http.StatusOK, broken)
	})
	s.Echo.GET("/whole", func(c echo.Context) error { return web.Render(c, http.StatusCreated, whole) })
	srv := httptest.NewServer(s.Echo)
	t.Cleanup(srv.Close)

	get := func(path string, htmx bool) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if htmx {
			req.Header.Set("HX-Request", "true")
		}
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res, string(body)
	}

	for _, htmx := range []bool{false, true} {
		res, body := get("/broken", htmx)
		rid := res.Header.Get(echo.HeaderXRequestID)
		if res.StatusCode != http.StatusInternalServerError {
			t.Errorf("htmx=%v: status %d, want 500; body:\n%s", htmx, res.StatusCode, body)
		}
		if strings.Contains(body, "PARTIAL-OUTPUT") {
			t.Errorf("htmx=%v: the partial output reached the browser:\n%s", htmx, body)
		}
		if !strings.Contains(body, "Something went wrong") || rid == "" {
			t.Errorf("htmx=%v: want the error page, got:\n%s", htmx, body)
		}
		// The page shows the request ID as its reference and is whole (the
		// htmx dialog shows no reference; the log line carries the ID).
		if !htmx && (!strings.Contains(body, rid) || !strings.Contains(body, "</html>")) {
			t.Errorf("htmx=%v: want a whole error page with reference %q, got:\n%s", htmx, rid, body)
		}
		if ct := res.Header.Get(echo.HeaderContentType); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("htmx=%v: Content-Type %q", htmx, ct)
		}
		found := false
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "request_id="+rid) && strings.Contains(line, "template exploded midway") {
				found = true
			}
		}
		if !found {
			t.Errorf("htmx=%v: no log line with request_id=%s and the render error; log:\n%s", htmx, rid, logs.String())
		}
		if strings.Contains(logs.String(), "PARTIAL-OUTPUT") {
			t.Errorf("htmx=%v: partial output was logged", htmx)
		}
	}

	res, body := get("/broken-twice", false)
	if rid := res.Header.Get(echo.HeaderXRequestID); res.StatusCode != http.StatusInternalServerError ||
		strings.Contains(body, "PARTIAL-OUTPUT") || !strings.Contains(body, "Reference: "+rid) {
		t.Errorf("error page failing too: status %d body %q, want 500 with reference %s", res.StatusCode, body, rid)
	}

	// A render that succeeds still sends its own status and the whole body.
	res, body = get("/whole", false)
	if res.StatusCode != http.StatusCreated || body != "<p>WHOLE-PAGE</p>" {
		t.Errorf("whole render: status %d body %q", res.StatusCode, body)
	}
	if ct := res.Header.Get(echo.HeaderContentType); ct != echo.MIMETextHTMLCharsetUTF8 {
		t.Errorf("whole render: Content-Type %q", ct)
	}
}
