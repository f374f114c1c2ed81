package cli

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, 3200},             // nothing measured yet: as if 1 MiB were live
		{1 << 20, 3200},       // 1 MiB live: 32 MiB of room is 3,200 %
		{3 << 20, 1067},       // rounded up: never less room than 32 MiB
		{16 << 20, 200},       //
		{32 << 20, 100},       // 100 % is 32 MiB of room already
		{200 << 20, 100},      // never below the default
		{(32 << 20) - 1, 101}, // just below: one point more
	} {
		if got := gcPercentFor(c.live, 100); got != c.want {
			t.Errorf("gcPercentFor(%d, 100) = %d, want %d", c.live, got, c.want)
		}
	}
	if got := gcPercentFor(200<<20, 150); got != 150 {
		t.Errorf("gcPercentFor(200 MiB, 150) = %d, want the base 150", got)
	}
}

// gogc reads the GOGC in force from the runtime.
func gogc(t *testing.T) int {
	t.Helper()
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// waitGOGC collects until GOGC satisfies ok (the pacer adjusts after a
// collection, on the runtime's cleanup goroutine), or fails after 10 s.
func waitGOGC(t *testing.T, what string, ok func(int) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok(gogc(t)) {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC is %d after 10 s of collections; want %s", gogc(t), what)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

var pacedHeap [][]byte

// The pacer raises GOGC while the live heap is small, lowers it to the
// default once 64 MiB is live, raises it again when that is freed, and
// restores the default when stopped.
func TestGCPacingFollowsTheLiveHeap(t *testing.T) {
	if gogc(t) != 100 {
		t.Fatalf("GOGC is %d before the test; want the default 100", gogc(t))
	}
	p, stop := startGCPacing(func(string) string { return "" })
	if p == nil {
		t.Fatal("startGCPacing with GOGC unset started no pacer")
	}
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	waitGOGC(t, "above 300 for a test binary's small heap", func(n int) bool { return n > 300 })

	for range 64 {
		pacedHeap = append(pacedHeap, make([]byte, 1<<20))
	}
	waitGOGC(t, "100 with 64 MiB live", func(n int) bool { return n == 100 })

	pacedHeap = nil
	waitGOGC(t, "above 300 again once the 64 MiB are freed", func(n int) bool { return n > 300 })

	if q, stop2 := startGCPacing(func(string) string { return "" }); q != nil {
		stop2()
		t.Fatal("a second pacer started beside the first")
	}

	stop()
	stopped = true
	if n := gogc(t); n != 100 {
		t.Fatalf("GOGC is %d after stop; want 100", n)
	}
	before := p.adjusts.Load()
	runtime.GC()
	runtime.GC()
	time.Sleep(50 * time.Millisecond)
	if n := gogc(t); n != 100 || p.adjusts.Load() != before {
		t.Fatalf("after stop: GOGC %d, %d more adjustments; want 100 and none", n, p.adjusts.Load()-before)
	}
	// stopped, a pacer may start again (serve run twice in one process)
	if q, stop3 := startGCPacing(func(string) string { return "" }); q == nil {
		t.Fatal("no pacer after the first stopped")
	} else {
		stop3()
	}
}

// An operator's GOGC is theirs: no pacer, GOGC untouched.
func TestGCPacingLeavesAnOperatorsGOGC(t *testing.T) {
	p, stop := startGCPacing(func(k string) string {
		if k == "GOGC" {
			return "50"
		}
		return ""
	})
	defer stop()
	if p != nil {
		t.Fatal("a pacer started although GOGC is set")
	}
	runtime.GC()
	time.Sleep(20 * time.Millisecond)
	if n := gogc(t); n != 100 {
		t.Fatalf("GOGC is %d; want the process's own 100 untouched", n)
	}
}
