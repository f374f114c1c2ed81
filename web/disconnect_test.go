package web_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"keydesk/models/testdb"
	"keydesk/web"
)

// issue 13 #9: a client that disconnects is not a server error. Whether
// the handler's error wraps context.Canceled (PostgreSQL) or not (SQLite's
// "interrupted"), the request is logged once, at info, with status 499.
func TestClientDisconnectLogged499AtInfo(t *testing.T) {
	logs := &testdb.LogBuffer{}
	s, err := web.New(web.Config{
		BaseURL: "http://127.0.0.1", Logger: slog.New(slog.NewTextHandler(logs, nil)),
		SessionKeys: [][]byte{[]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"), []byte("0123456789abcdef0123456789abcdef")},
		Metrics:     web.NewMetrics(nil),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{}, 1)
	s.Echo.GET("/v3/REST/slow/:kind", func(c echo.Context) error {
		started <- struct{}{}
		<-c.Request().Context().Done()
		if c.Param("kind") == "wrapped" {
			return fmt.Errorf("models: list keys: %w", c.Request().Context().Err())
		}
		return errors.New("interrupted (9)")
	})
	ts := httptest.NewServer(s.Echo)
	defer ts.Close()
	for _, kind := range []string{"wrapped", "opaque"} {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/v3/REST/slow/"+kind, nil)
		go func() { <-started; cancel() }()
		if _, err := http.DefaultClient.Do(req); err == nil {
			t.Fatal("the request was not canceled")
		}
		var line string
		for deadline := time.Now().Add(10 * time.Second); line == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, "path=/v3/REST/slow/"+kind) && strings.Contains(l, "msg=request") {
					line = l
				}
			}
		}
		if !strings.Contains(line, "level=INFO") || !strings.Contains(line, "status=499") {
			t.Errorf("%s: disconnect logged as %q", kind, line)
		}
	}
	if strings.Contains(logs.String(), "level=ERROR") || strings.Contains(logs.String(), "status=500") {
		t.Errorf("a disconnect was logged as an error:\n%s", logs.String())
	}
	// The metrics see it as 499 too, under the route pattern.
	rec := httptest.NewRecorder()
	s.Config.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if want := `keydesk_http_request_duration_seconds_count{method="GET",route="/v3/REST/slow/:kind",status="499"} 2`; !strings.Contains(rec.Body.String(), want) {
		t.Errorf("metrics lack %s", want)
	}
}
