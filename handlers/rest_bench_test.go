package handlers_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"
)

// REST throughput over loopback, keydesk versus a bare Echo handler that
// returns the same bytes, in one run (docs/DESIGN.md target 2: warm ≥ 90 %,
// cold ≥ 50 %). Each benchmark drives keep-alive connections from
// parallel goroutines.
func BenchmarkREST(b *testing.B) {
	a := newApp(b)
	c := a.client()
	apiKey, secret := c.signup("Acme Mail", "owner@acme.example")
	body := fetch(b, a.srv.URL+"/v3/REST/apikey", apiKey, secret)

	bare := echo.New()
	bare.GET("/v3/REST/apikey", func(c echo.Context) error { return c.JSONBlob(http.StatusOK, body) })
	bareSrv := httptest.NewServer(bare)
	b.Cleanup(bareSrv.Close)

	run := func(b *testing.B, url string, before func()) {
		tr := &http.Transport{MaxIdleConnsPerHost: 64}
		client := &http.Client{Transport: tr}
		b.Cleanup(tr.CloseIdleConnections)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if before != nil {
					before()
				}
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.SetBasicAuth(apiKey, secret)
				res, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK || n != int64(len(body)) {
					b.Fatalf("status %d, %d bytes", res.StatusCode, n)
				}
			}
		})
	}
	b.Run("bare-echo", func(b *testing.B) { run(b, bareSrv.URL+"/v3/REST/apikey", nil) })
	b.Run("keydesk-warm", func(b *testing.B) { run(b, a.srv.URL+"/v3/REST/apikey", nil) })
	b.Run("keydesk-cold", func(b *testing.B) { run(b, a.srv.URL+"/v3/REST/apikey", a.store.InvalidateVerifyCache) })
}

func fetch(b *testing.B, url, user, pass string) []byte {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.SetBasicAuth(user, pass)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %d", url, res.StatusCode)
	}
	return out
}
