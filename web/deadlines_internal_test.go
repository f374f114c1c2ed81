package web

import (
	"net"
	"testing"
	"time"
)

// The sweeper runs while the listener has connections open, stops with
// the last one, and starts again with the next.
func TestLazySweeperRunsWhileConnectionsAreOpen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l := LazyDeadlinesEvery(ln, 5*time.Millisecond).(*lazyListener)
	running := func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.running
	}
	// waitFor polls running until it is want (for 5 s, a thousand sweeps).
	waitFor := func(want bool) bool {
		for end := time.Now().Add(5 * time.Second); running() != want && time.Now().Before(end); {
			time.Sleep(time.Millisecond)
		}
		return running() == want
	}
	accept := func() net.Conn {
		go func() {
			if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
				t.Cleanup(func() { c.Close() })
			}
		}()
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if running() {
		t.Fatal("a sweeper before any connection")
	}
	for round := range 2 {
		a, b := accept(), accept()
		if !running() {
			t.Fatalf("round %d: no sweeper with two connections open", round)
		}
		a.Close()
		time.Sleep(20 * time.Millisecond)
		if !running() {
			t.Fatalf("round %d: the sweeper stopped with a connection still open", round)
		}
		b.Close()
		b.Close() // twice, as a TLS connection and net/http may
		if !waitFor(false) {
			t.Fatalf("round %d: the sweeper still ran 5 s after the last connection closed", round)
		}
	}
}

// The sweep is a tenth of the shortest timeout, between a millisecond and
// DefaultSweep; timeouts of zero (none) do not count.
func TestSweepFor(t *testing.T) {
	for _, c := range []struct {
		timeouts []time.Duration
		want     time.Duration
	}{
		{nil, DefaultSweep},
		{[]time.Duration{0, 0}, DefaultSweep},
		{[]time.Duration{10 * time.Second, 30 * time.Second, 60 * time.Second, 120 * time.Second}, DefaultSweep},
		{[]time.Duration{300 * time.Millisecond, 0, 2 * time.Second}, 30 * time.Millisecond},
		{[]time.Duration{time.Millisecond}, time.Millisecond},
	} {
		if got := SweepFor(c.timeouts...); got != c.want {
			t.Errorf("SweepFor(%v) = %v, want %v", c.timeouts, got, c.want)
		}
	}
}
