package cli

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// Garbage collection pacing. With GOGC's default (100) the collector runs
// each time the heap has grown by as much as is live. keydesk's live heap
// is small when its caches are (about 3 MB: the message catalogs,
// templates, routes), so a server answering tens of thousands of API
// requests a second collected 15 times a second, each time marking all of
// it and stopping every goroutine to scan its stack: ~10 % of the CPU of a
// warm REST request (BENCHMARKS.md, "1. REST throughput over a socket").
// serve therefore gives the heap at least minGCHeadroom of room between
// collections: GOGC is raised while what is live is small, and back to
// 100 once the live heap is large enough (the caches full) that 100 %
// already gives that room. The soft memory limit (memlimit.go) still
// bounds the whole: near it the collector runs earlier, whatever GOGC says.
const minGCHeadroom = 32 << 20

// gcPercentFor is the GOGC that gives a live heap of live bytes at least
// minGCHeadroom to grow before the next collection, and never less than
// base (GOGC's default, 100).
func gcPercentFor(live uint64, base int) int {
	if live < 1<<20 {
		live = 1 << 20 // a heap this small is being measured before anything is live
	}
	p := int((uint64(minGCHeadroom)*100 + live - 1) / live)
	return max(p, base)
}

// gcPacer re-sets GOGC after every collection from the live heap that
// collection found. It leaves GOGC alone when an operator set it (the
// environment variable): theirs wins, as GOMEMLIMIT's does.
type gcPacer struct {
	stopped atomic.Bool
	percent atomic.Int64 // the GOGC in force, as last set
	adjusts atomic.Int64 // how many times it has looked (tests)
}

// pacing is set while a pacer runs: GOGC is the process's, so a second
// serve in one process (tests) leaves it to the first.
var pacing atomic.Bool

// startGCPacing starts pacing unless getenv("GOGC") is set, and returns
// the pacer (nil when GOGC is the operator's, or another pacer runs) and
// the function that stops it and restores GOGC's default.
func startGCPacing(getenv func(string) string) (*gcPacer, func()) {
	if getenv("GOGC") != "" || !pacing.CompareAndSwap(false, true) {
		return nil, func() {}
	}
	p := &gcPacer{}
	p.percent.Store(100)
	p.adjust()
	p.arm()
	return p, func() {
		if p.stopped.CompareAndSwap(false, true) {
			debug.SetGCPercent(100)
			pacing.Store(false)
		}
	}
}

// arm asks for a call of adjust after the next collection: a sentinel the
// collector finds unreachable, whose cleanup re-arms (the runtime runs
// cleanups one at a time, on its own goroutine, after the cycle that freed
// them).
func (p *gcPacer) arm() {
	s := new(gcSentinel)
	runtime.AddCleanup(s, func(p *gcPacer) {
		if p.stopped.Load() {
			return
		}
		p.adjust()
		p.arm()
	}, p)
}

// gcSentinel is larger than the tiny allocator's 16 bytes, so that it is
// freed (and its cleanup run) by the first collection after arm.
type gcSentinel struct{ _ [64]byte }

// adjust sets GOGC for the live heap the last collection found; it
// changes nothing when that is within a tenth of what is in force (a
// steady heap does not re-set it every cycle).
func (p *gcPacer) adjust() {
	p.adjusts.Add(1)
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	want := int64(gcPercentFor(sample[0].Value.Uint64(), 100))
	cur := p.percent.Load()
	if want == cur || (want > cur*9/10 && want < cur*11/10) {
		return
	}
	p.percent.Store(want)
	debug.SetGCPercent(int(want))
}
