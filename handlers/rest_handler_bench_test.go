package handlers_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/labstack/echo/v4"

	"keydesk/web"
)

// discardWriter is a reusable http.ResponseWriter that keeps nothing: the
// in-process cost of a request without the socket.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(s int)           { w.status = s }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkRESTHandler is keydesk's own work for a warm GET
// /v3/REST/apikey (middleware, Basic auth, verification, usage, access
// line, the cached answer) against a bare Echo handler answering the same
// bytes, both called in process with no socket, so the figure is only the
// part of a request keydesk adds (BENCHMARKS.md, issue 13 #1).
func BenchmarkRESTHandler(b *testing.B) {
	a := newApp(b, func(c *web.Config) { c.AccessLog = io.Discard })
	c := a.client()
	apiKey, secret := c.signup("Acme Mail", "owner@acme.example")
	body := fetch(b, a.srv.URL+"/v3/REST/apikey", apiKey, secret)
	bare := echo.New()
	bare.GET("/v3/REST/apikey", func(c echo.Context) error { return c.JSONBlob(http.StatusOK, body) })
	// one is a request of its own with its writer, as a connection has.
	one := func(b *testing.B, h http.Handler, auth bool) func() {
		req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1/v3/REST/apikey", nil)
		req.RemoteAddr = "127.0.0.1:40000"
		if auth {
			req.SetBasicAuth(apiKey, secret)
		}
		w := &discardWriter{h: http.Header{}}
		return func() {
			clear(w.h)
			h.ServeHTTP(w, req)
			if w.status != http.StatusOK {
				b.Fatalf("status %d", w.status)
			}
		}
	}
	run := func(b *testing.B, h http.Handler, auth bool) {
		serve := one(b, h, auth)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			serve()
		}
	}
	// parallel serves on every core at once, as a server does under load:
	// memory that every request writes (a lock, a shared counter) passes
	// from core to core at each request, which the serial loop cannot
	// show. ns/op is wall time over all cores: with no such sharing it is
	// the serial figure divided by the cores.
	parallel := func(b *testing.B, h http.Handler, auth bool) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			serve := one(b, h, auth)
			for pb.Next() {
				serve()
			}
		})
	}
	b.Run("bare-echo", func(b *testing.B) { run(b, bare, false) })
	b.Run("keydesk-warm", func(b *testing.B) { run(b, a.web.Echo, true) })
	b.Run("bare-echo-parallel", func(b *testing.B) { parallel(b, bare, false) })
	b.Run("keydesk-warm-parallel", func(b *testing.B) { parallel(b, a.web.Echo, true) })
}

// A warm GET /v3/REST/apikey through the whole router (request ID, access
// line, headers, Basic auth, verification, throttle check, usage, the
// cached answer) allocates at most 3 objects (issue 13 #1): today 2, the
// credentials' string and the handler's context, and a block of request
// IDs now and then; it was 10. Not parallel: AllocsPerRun counts every
// allocation of the process, so another test running beside it would
// count too.
func TestWarmRESTRequestAllocations(t *testing.T) {
	a := newApp(t, func(c *web.Config) { c.AccessLog = io.Discard })
	apiKey, secret := a.client().signup("Acme Mail", "owner@acme.example")
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1/v3/REST/apikey", nil)
	req.RemoteAddr = "127.0.0.1:40000"
	req.SetBasicAuth(apiKey, secret)
	w := &discardWriter{h: http.Header{}}
	serve := func() {
		clear(w.h)
		a.web.Echo.ServeHTTP(w, req)
		if w.status != http.StatusOK {
			t.Fatalf("status %d", w.status)
		}
	}
	serve() // fills the caches
	// The app's own background work (start-up fill, cache refresh, usage
	// flush) allocates too and may run during one measurement: the least
	// of three is the request's own count; a request that allocates more
	// fails all three.
	n := testing.AllocsPerRun(500, serve)
	for i := 0; i < 2 && n > 3; i++ {
		n = min(n, testing.AllocsPerRun(500, serve))
	}
	if n > 3 {
		t.Errorf("a warm REST request allocates %.1f objects, want at most 3", n)
	}
}
