package web

import (
	"net/http"
	"sync"
	"testing"
	"time"
)

// The API's Date header is net/http's format of the answer's second,
// shared within that second and new in the next one.
func TestHTTPDateIsTheSecondsDate(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		paris = time.FixedZone("CET", 3600)
	}
	base := time.Date(2026, 12, 7, 2, 59, 59, 900_000_000, paris)
	for _, now := range []time.Time{
		base,
		base.Add(50 * time.Millisecond),  // the same second
		base.Add(100 * time.Millisecond), // the next second, the next minute and hour
		base.Add(-3 * time.Second),       // an answer that started earlier and writes later
		base.Add(24 * time.Hour),
	} {
		got := httpDate(now)
		if want := now.UTC().Format(http.TimeFormat); len(got) != 1 || got[0] != want {
			t.Errorf("httpDate(%v) = %q, want [%q]", now, got, want)
		}
	}
	a, b := httpDate(base), httpDate(base.Add(10*time.Millisecond))
	if &a[0] != &b[0] {
		t.Error("two answers in one second formatted the date twice")
	}
}

func TestHTTPDateConcurrently(t *testing.T) {
	start := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				now := start.Add(time.Duration(i) * 3 * time.Millisecond)
				if got, want := httpDate(now)[0], now.Format(http.TimeFormat); got != want {
					t.Errorf("httpDate(%v) = %q, want %q", now, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}
