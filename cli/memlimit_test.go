package cli

import (
	"math"
	"os"
	"runtime/debug"
	"strings"
	"testing"
)

// TestMain: serve sets the process's soft memory limit; this package runs
// many serves in one test process, so the tests leave the runtime's limit
// alone as an operator's GOMEMLIMIT would (memoryLimit's rule), except
// TestApplyMemoryLimit, which sets it and puts it back.
func TestMain(m *testing.M) {
	if os.Getenv("GOMEMLIMIT") == "" {
		os.Setenv("GOMEMLIMIT", "off")
	}
	os.Exit(m.Run())
}

func TestMemoryLimitSettings(t *testing.T) {
	t.Parallel()
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "GOMEMLIMIT" {
				return v
			}
			return ""
		}
	}
	for _, c := range []struct {
		flag, gomemlimit string
		want             int64
		source           string
	}{
		{"", "", defaultMemoryLimit, "default"},
		{"", "1GiB", 0, "GOMEMLIMIT"}, // the runtime read it already
		{"512MiB", "1GiB", 512 << 20, "--memory-limit"},
		{"off", "", 0, "off"},
		{"1GiB", "", 1 << 30, "--memory-limit"},
		{"300000000B", "", 300e6, "--memory-limit"},
		{"268435456", "", 256 << 20, "--memory-limit"},
		{" 64 MiB ", "", 64 << 20, "--memory-limit"},
		{"2TiB", "", 2 << 40, "--memory-limit"},
	} {
		got, source, err := memoryLimit(c.flag, env(c.gomemlimit))
		if err != nil || got != c.want || source != c.source {
			t.Errorf("memoryLimit(%q, GOMEMLIMIT=%q) = %d, %q, %v; want %d, %q", c.flag, c.gomemlimit, got, source, err, c.want, c.source)
		}
	}
	for _, bad := range []string{"lots", "-1GiB", "1.5GiB", "10MiB", "0", "1KiB", "9999999999TiB", "MiB", "256 M", "300MB"} {
		if n, _, err := memoryLimit(bad, env("")); err == nil || !strings.Contains(err.Error(), "--memory-limit") {
			t.Errorf("memoryLimit(%q) = %d, %v; want an error naming the flag", bad, n, err)
		}
	}
}

// Serial: the limit is the process's.
func TestApplyMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	none := func(string) string { return "" }
	for _, c := range []struct {
		flag string
		want int64
	}{{"", defaultMemoryLimit}, {"384MiB", 384 << 20}, {"off", math.MaxInt64}} {
		got, _, err := applyMemoryLimit(c.flag, none)
		if err != nil || got != c.want || debug.SetMemoryLimit(-1) != c.want {
			t.Errorf("applyMemoryLimit(%q) = %d, %v; runtime's %d; want %d", c.flag, got, err, debug.SetMemoryLimit(-1), c.want)
		}
	}
	if _, _, err := applyMemoryLimit("tiny", none); err == nil {
		t.Error("a bad size was applied")
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("a bad size changed the limit to %d", got)
	}
}
