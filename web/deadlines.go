package web

import (
	"errors"
	"math"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// LazyDeadlines wraps a listener so that its connections keep the read
// and write deadlines asked for in memory and a sweeper enforces them,
// instead of a runtime timer armed and moved each time one is set (issue
// 13 #1). With its timeouts on, net/http asks for eight deadlines a
// request (the write deadline, the whole-request read deadline, clearing
// it for the background read, the abort of that read and clearing it
// again, the write deadline cleared, the idle deadline, the header
// deadline); on a plain connection each one moves a timer.
//
// A connection from this listener sets its socket's deadline only:
//
//   - to a deadline asked for that has passed already, while a read
//     (write) is under way: it must cut that read at once (net/http aborts
//     its background read so);
//   - to none, before a read (write) begins, when a deadline that passed
//     is in force but is no longer the one asked for.
//
// Every sweep (LazyDeadlinesEvery; 100 ms by default) the listener cuts
// the reads and writes under way whose deadline has passed. So a timeout
// is never early, and at most two sweeps late: one when the read (write)
// is under way as it passes, two when it begins just after a sweep with a
// deadline that had passed unseen. In the steady state of keep-alive
// requests that is what net/http does with no timeouts: two socket
// deadlines a request (the abort of the background read, and none again
// before the next read), and no timer.
func LazyDeadlines(ln net.Listener) net.Listener { return LazyDeadlinesEvery(ln, DefaultSweep) }

// DefaultSweep is how often LazyDeadlines' listener looks for deadlines
// that have passed: a tenth of a second on timeouts of ten seconds and up.
const DefaultSweep = 100 * time.Millisecond

// LazyDeadlinesEvery is LazyDeadlines sweeping every every.
func LazyDeadlinesEvery(ln net.Listener, every time.Duration) net.Listener {
	if every <= 0 {
		every = DefaultSweep
	}
	return &lazyListener{Listener: ln, every: every, conns: map[*lazyConn]struct{}{}}
}

// SweepFor is the sweep interval for the shortest of the timeouts given
// (0: none): a tenth of it, between a millisecond and DefaultSweep, so a
// timeout comes at most a fifth of the shortest one late.
func SweepFor(timeouts ...time.Duration) time.Duration {
	every := DefaultSweep
	for _, d := range timeouts {
		if d > 0 {
			every = min(every, d/10)
		}
	}
	return max(every, time.Millisecond)
}

// lazyListener keeps its open connections for the sweeper, which runs
// while there are any.
type lazyListener struct {
	net.Listener
	every   time.Duration
	mu      sync.Mutex
	conns   map[*lazyConn]struct{}
	running bool // a sweeper goroutine is on
}

func (l *lazyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	lc := &lazyConn{Conn: c, ln: l}
	l.mu.Lock()
	l.conns[lc] = struct{}{}
	if !l.running {
		l.running = true
		go l.sweep()
	}
	l.mu.Unlock()
	return lc, nil
}

// sweep cuts, every l.every, the reads and writes under way whose
// deadline has passed; it ends when no connection is open (the next
// Accept starts another).
func (l *lazyListener) sweep() {
	tick := time.NewTicker(l.every)
	defer tick.Stop()
	var due []*lazyConn
	for range tick.C {
		now := time.Now().UnixNano()
		l.mu.Lock()
		if len(l.conns) == 0 {
			l.running = false
			l.mu.Unlock()
			return
		}
		for c := range l.conns {
			if c.r.due(now) || c.w.due(now) {
				due = append(due, c)
			}
		}
		l.mu.Unlock()
		for i, c := range due {
			c.cut(now)
			due[i] = nil
		}
		due = due[:0]
	}
}

func (l *lazyListener) forget(c *lazyConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// lazyConn is a connection whose deadlines a sweeper enforces. Recording
// a deadline and starting or ending a read (write) take no lock: each
// costs an atomic store or add and a load or two (net/http asks for eight
// deadlines a request and makes three or four reads and writes). Only
// setting the socket's deadline takes mu, which keeps one direction's
// "in force" in step with the socket. A deadline asked for and a read
// (write) beginning cannot miss each other: ask stores the deadline then
// loads busy, begin adds to busy then loads the deadline (Go's atomics
// are sequentially consistent), so at least one of them sees the other;
// the sweeper sees both.
type lazyConn struct {
	net.Conn
	ln   *lazyListener
	mu   sync.Mutex // held while a socket deadline is set
	r, w lazyDeadline
}

// lazyDeadline is one direction's deadline: asked for and in force on the
// socket, each as nanoseconds since the Unix epoch (nanos; 0: none). The
// one in force is none or one that has passed.
type lazyDeadline struct {
	want atomic.Int64
	have atomic.Int64 // stored under c.mu only
	busy atomic.Int32 // reads (writes) under way
}

// nanos is t as a lazyDeadline holds it: 0 for none, at least 1 for a
// time at or before the epoch (long passed), at most the last nanosecond
// an int64 holds (far future).
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	switch sec := t.Unix(); {
	case sec <= 0:
		return 1
	case sec >= math.MaxInt64/int64(time.Second):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// deadline is the time of n (nanos).
func deadline(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// started is when the process started: a deadline before it has passed
// without a clock read (net/http aborts a read with one in 1970).
var started = time.Now().UnixNano()

// passed reports whether the deadline n has passed at now (nanos; now 0:
// without a clock read, only a deadline before the process started).
func passed(n, now int64) bool { return n != 0 && (n < started || (now != 0 && n <= now)) }

// due reports, for the sweeper, whether a read (write) is under way past
// its deadline with that deadline not yet in force.
func (d *lazyDeadline) due(now int64) bool {
	if d.busy.Load() == 0 {
		return false
	}
	want := d.want.Load()
	return passed(want, now) && d.have.Load() != want
}

// force sets the socket's deadline (c.mu held) to the one asked for if it
// has passed at now (see passed), to none otherwise.
func (d *lazyDeadline) force(now int64, set func(time.Time) error) error {
	n := d.want.Load()
	if !passed(n, now) {
		n = 0
	}
	if n == d.have.Load() {
		return nil
	}
	err := set(deadline(n))
	d.have.Store(n)
	return err
}

// cut is the sweeper's: it sets the deadlines that have passed of the
// reads and writes under way.
func (c *lazyConn) cut(now int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.r.due(now) {
		_ = c.r.force(now, c.Conn.SetReadDeadline)
	}
	if c.w.due(now) {
		_ = c.w.force(now, c.Conn.SetWriteDeadline)
	}
}

func (c *lazyConn) SetReadDeadline(t time.Time) error {
	return c.ask(&c.r, t, c.Conn.SetReadDeadline)
}

func (c *lazyConn) SetWriteDeadline(t time.Time) error {
	return c.ask(&c.w, t, c.Conn.SetWriteDeadline)
}

// ask records the deadline t of one direction, and sets it at once only
// when a read (write) is under way and it has passed already (an abort);
// the sweeper sees the others.
func (c *lazyConn) ask(d *lazyDeadline, t time.Time, set func(time.Time) error) error {
	n := nanos(t)
	d.want.Store(n)
	if d.busy.Load() == 0 || n == 0 {
		return nil
	}
	now := int64(0)
	if n >= started {
		if now = time.Now().UnixNano(); n > now {
			return nil
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if d.busy.Load() > 0 {
		return d.force(now, set)
	}
	return nil
}

func (c *lazyConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

// begin marks a read (write) under way. A deadline that passed and is in
// force stays only if it is still the one asked for; one asked for before
// the process started (an abort that came as the read began) is set.
func (c *lazyConn) begin(d *lazyDeadline, set func(time.Time) error) error {
	d.busy.Add(1)
	if d.have.Load() == 0 && !passed(d.want.Load(), 0) {
		return nil
	}
	c.mu.Lock()
	err := d.force(0, set)
	c.mu.Unlock()
	if err != nil {
		d.busy.Add(-1)
	}
	return err
}

// retry reports, after a timeout, whether it came early (the deadline
// asked for moved after the one in force was set); if so the socket's is
// none again and the read (write) goes on. If not, the read (write) is
// over.
func (c *lazyConn) retry(d *lazyDeadline, set func(time.Time) error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	// An abort (a deadline before the process started: net/http's, at the
	// end of each request) has passed without a clock read.
	if want := d.want.Load(); !passed(want, 0) && !passed(want, time.Now().UnixNano()) && d.force(0, set) == nil {
		return true
	}
	d.busy.Add(-1)
	return false
}

func (c *lazyConn) end(d *lazyDeadline) { d.busy.Add(-1) }

func (c *lazyConn) Read(p []byte) (int, error) {
	if err := c.begin(&c.r, c.Conn.SetReadDeadline); err != nil {
		return 0, err
	}
	for {
		n, err := c.Conn.Read(p)
		if n > 0 || err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			c.end(&c.r)
			return n, err
		}
		if !c.retry(&c.r, c.Conn.SetReadDeadline) {
			return n, err
		}
	}
}

func (c *lazyConn) Write(p []byte) (int, error) {
	if err := c.begin(&c.w, c.Conn.SetWriteDeadline); err != nil {
		return 0, err
	}
	written := 0
	for {
		n, err := c.Conn.Write(p[written:])
		written += n
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			c.end(&c.w)
			return written, err
		}
		if !c.retry(&c.w, c.Conn.SetWriteDeadline) {
			return written, err
		}
	}
}

// Close closes the connection and lets the sweeper forget it.
func (c *lazyConn) Close() error {
	c.ln.forget(c)
	return c.Conn.Close()
}

// CloseWrite half-closes a TCP connection (net/http does after a request
// body over its limit, so the client sees the answer before the reset).
func (c *lazyConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
