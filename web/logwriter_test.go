package web_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"keydesk/models/testdb"
	"keydesk/web"
)

// The access log is written in batches (issue 13 #1), but nothing is
// lost or reordered, WARN/ERROR lines go out at once, and Close writes
// what is left.
func TestLogWriterBatchesInOrderAndFlushesUrgentLines(t *testing.T) {
	out := &testdb.LogBuffer{}
	w := web.NewLogWriter(out, time.Hour) // no timed flush during the test
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				fmt.Fprintf(w, "time=x level=INFO msg=request g=%d i=%d\n", g, i)
			}
		}()
	}
	wg.Wait()
	before := strings.Count(out.String(), "\n")
	if before == 2000 {
		t.Fatalf("every INFO line was written at once: nothing was batched")
	}
	if _, err := w.Write([]byte("time=x level=ERROR msg=boom\n")); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if !strings.HasSuffix(got, "level=ERROR msg=boom\n") || strings.Count(got, "\n") != 2001 {
		t.Fatalf("an ERROR line waits for the timer or overtakes earlier lines: %d lines, ends %q", strings.Count(got, "\n"), got[max(0, len(got)-60):])
	}
	last := map[string]int{}
	for _, l := range strings.Split(strings.TrimSuffix(got, "\n"), "\n")[:2000] {
		var g, i int
		if _, err := fmt.Sscanf(l, "time=x level=INFO msg=request g=%d i=%d", &g, &i); err != nil {
			t.Fatalf("mangled line %q", l)
		}
		if k := fmt.Sprint(g); i != last[k] {
			t.Fatalf("goroutine %d: line %d after %d", g, i, last[k]-1)
		}
		last[fmt.Sprint(g)] = i + 1
	}
	fmt.Fprint(w, "time=x level=INFO msg=tail\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.String(), "msg=tail\n") {
		t.Fatal("Close did not write the buffered tail")
	}
	fmt.Fprint(w, "time=x level=INFO msg=after\n")
	if !strings.HasSuffix(out.String(), "msg=after\n") {
		t.Fatal("a line after Close was not written straight through")
	}
}

func TestLogWriterWritesOnItsTimer(t *testing.T) {
	out := &testdb.LogBuffer{}
	w := web.NewLogWriter(out, 10*time.Millisecond)
	defer w.Close()
	fmt.Fprint(w, "time=x level=INFO msg=one\n")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "msg=one") {
		if time.Now().After(deadline) {
			t.Fatal("a buffered line was not written by the timer")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// With Config.AccessLog, request lines go straight to it (issue 13 #1);
// the Logger's level still decides what is written.
func TestAccessLogWritesRequestLinesAtTheLoggersLevel(t *testing.T) {
	for _, tc := range []struct {
		level slog.Level
		want  bool
	}{{slog.LevelInfo, true}, {slog.LevelWarn, false}} {
		out := &testdb.LogBuffer{}
		s, err := web.New(web.Config{
			BaseURL: "http://127.0.0.1", Logger: slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: tc.level})), AccessLog: out,
			SessionKeys: [][]byte{[]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"), []byte("0123456789abcdef0123456789abcdef")},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		s.Echo.GET("/v3/REST/ping", func(c echo.Context) error { return c.String(http.StatusOK, "pong") })
		rec := httptest.NewRecorder()
		s.Echo.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v3/REST/ping", nil))
		line := out.String()
		got := strings.Contains(line, "level=INFO msg=request request_id=") && strings.Contains(line, " method=GET path=/v3/REST/ping status=200 latency=")
		if got != tc.want || (tc.want && strings.Count(line, "\n") != 1) {
			t.Errorf("logger level %v: access log %q", tc.level, line)
		}
	}
}

// Config.APIAccessLog takes all, errors (any case) or nothing (all);
// anything else is refused when the server is built, not taken for one of
// them.
func TestAPIAccessLogRefusesUnknownValues(t *testing.T) {
	keys := [][]byte{[]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"), []byte("0123456789abcdef0123456789abcdef")}
	for v, want := range map[string]string{"": web.APILogAll, "all": web.APILogAll, " Errors ": web.APILogErrors, "sometimes": "", "error": ""} {
		got, perr := web.ParseAPIAccessLog(v)
		_, err := web.New(web.Config{BaseURL: "http://127.0.0.1", Logger: slog.New(slog.NewTextHandler(&testdb.LogBuffer{}, nil)),
			AccessLog: &testdb.LogBuffer{}, APIAccessLog: v, SessionKeys: keys}, nil)
		if got != want || (perr == nil) != (want != "") || (err == nil) != (want != "") {
			t.Errorf("APIAccessLog %q: %q, %v; web.New: %v", v, got, perr, err)
		}
	}
}
