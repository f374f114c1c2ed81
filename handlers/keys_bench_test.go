package handlers_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
)

// BenchmarkKeysPage renders /keys for an owner with 10 and with 1,000
// sub-accounts (docs/DESIGN.md target 4: within 1.5×). The page shows the master
// key and one page of sub-account keys, so its cost is bounded.
func BenchmarkKeysPage(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run("subaccounts="+strconv.Itoa(n), func(b *testing.B) {
			a := newApp(b)
			c := a.client()
			c.signup("Acme Mail", "owner@acme.example")
			ctx := context.Background()
			actor := a.actorOf("owner@acme.example")
			a.setSubaccountLimit(actor.AccountID, n)
			for i := 0; i < n; i++ {
				actor.AuthAt = a.store.Now()
				if _, _, err := a.store.CreateSubaccount(ctx, actor, fmt.Sprintf("stream-%04d", i), ""); err != nil {
					b.Fatal(err)
				}
			}
			// Measure the server, not HTML parsing in the test client.
			req, _ := http.NewRequest(http.MethodGet, a.srv.URL+"/keys", nil)
			for _, ck := range c.http.Jar.Cookies(req.URL) {
				req.AddCookie(ck)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				res, err := http.DefaultTransport.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					b.Fatalf("GET /keys: %d", res.StatusCode)
				}
			}
		})
	}
}
