package views

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"
)

// BenchmarkCatalog is the cost of the catalog on a page: a plain message,
// one with values, a plural, and the keys page with 50 sub-account rows in
// English and in French.
func BenchmarkCatalog(b *testing.B) {
	fr := WithLocale(context.Background(), Messages().Locale("fr"))
	b.Run("T", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			_ = T(fr, "common.api_key")
		}
	})
	b.Run("T-args", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			_ = T(fr, "keys.actions_for", Args{"Name": "newsletters"})
		}
	})
	b.Run("TN", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			_ = TN(fr, "common.subaccounts", 3)
		}
	})
	now := time.Date(2026, 11, 27, 14, 3, 0, 0, time.UTC)
	rows := make([]KeyRow, 50)
	for i := range rows {
		rows[i] = KeyRow{ID: uint(i + 2), Name: fmt.Sprintf("stream-%04d", i), APIKey: "0123456789abcdef0123456789abcdef", SecretHint: "kd_live_…Xq4Z",
			IsActive: true, CreatedAt: now, SecretSetAt: now, SecretDays: i, Now: now}
	}
	master := KeyRow{ID: 1, Name: "Acme Mail", IsMaster: true, IsActive: true, Now: now}
	for _, lang := range []string{"en", "fr"} {
		ctx := WithLocale(context.Background(), Messages().Locale(lang))
		b.Run("keys-page-50-rows-"+lang, func(b *testing.B) {
			p := KeysPageProps{Master: &master, Subaccounts: rows, Page: 1, Pages: 1, Now: now}
			for i := 0; i < b.N; i++ {
				if err := KeysPage(p).Render(ctx, io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
