//go:build pprof

package cli

// Profiling of the real binary for benchmarks (BENCHMARKS.md): built only
// with `go build -tags pprof`, never in a release build. With
// KEYDESK_PPROF_ADDR set (a loopback address), serve also answers
// net/http/pprof there.

import (
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	if addr := os.Getenv("KEYDESK_PPROF_ADDR"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
}
