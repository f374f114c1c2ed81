package cli

import (
	"fmt"
	"math"
	"runtime/debug"
	"strconv"
	"strings"
)

// defaultMemoryLimit is serve's soft memory limit when neither
// --memory-limit nor GOMEMLIMIT says otherwise. The caches are bounded in
// entries (--cache-keys); what the process's memory then grows to is the
// garbage collector's headroom: with GOGC's default the heap may reach
// twice what is live. At the default cache bound, full caches of a
// realistic tree shape (250,000 keys in 20,000 accounts with their
// sub-accounts) hold about 150 MB live, which let RSS reach ~335–355 MB;
// under this limit the collector runs earlier instead (BENCHMARKS.md,
// "Memory at 250,000 keys"). Raise it with --cache-keys.
const defaultMemoryLimit = 256 << 20

// memoryLimit is the soft limit serve sets (debug.SetMemoryLimit) and
// where it comes from, or 0 when none is set: the flag (or
// KEYDESK_MEMORY_LIMIT) wins; "off" sets none; when unset, a GOMEMLIMIT in
// the environment is the Go runtime's own, left as it is; otherwise the
// default.
func memoryLimit(flag string, getenv func(string) string) (int64, string, error) {
	switch {
	case flag == "off":
		return 0, "off", nil
	case flag != "":
		n, err := parseBytes(flag)
		if err != nil {
			return 0, "", fmt.Errorf("--memory-limit %q: %w", flag, err)
		}
		return n, "--memory-limit", nil
	case getenv("GOMEMLIMIT") != "":
		return 0, "GOMEMLIMIT", nil
	}
	return defaultMemoryLimit, "default", nil
}

// parseBytes reads a size as GOMEMLIMIT is written: a whole number of
// bytes, with B, KiB, MiB, GiB or TiB or none. It must be at least 16 MiB:
// less would have the collector run without end.
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}}
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a size: write bytes, or a number with KiB, MiB, GiB (e.g. 512MiB), or off")
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("too large")
	}
	if n*mult < 16<<20 {
		return 0, fmt.Errorf("at least 16MiB")
	}
	return n * mult, nil
}

// applyMemoryLimit sets the soft memory limit serve runs under and says
// which one in force (the runtime's, read back).
func applyMemoryLimit(flag string, getenv func(string) string) (limit int64, source string, err error) {
	n, source, err := memoryLimit(flag, getenv)
	if err != nil {
		return 0, "", err
	}
	if n > 0 {
		debug.SetMemoryLimit(n)
	} else if source == "off" {
		debug.SetMemoryLimit(math.MaxInt64)
	}
	return debug.SetMemoryLimit(-1), source, nil
}
