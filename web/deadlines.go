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

// LazyDeadlines wraps a listener so that its connections apply read and
// write deadlines when they matter, not each time they are set (issue 13
// #1). With its timeouts on, net/http sets eight deadlines a request
// (the write deadline, the whole-request read deadline, clearing it for
// the background read, the abort of that read and clearing it again, the
// write deadline cleared, the idle deadline, the header deadline); each
// one moves a runtime timer. A connection from this listener only records
// the deadline asked for, and sets the socket's own deadline:
//
//   - at once, when a read (write) is under way and the new deadline is
//     earlier than the one in force: it must cut that read (net/http
//     aborts its background read this way);
//   - before the next read (write) begins, when the deadline in force is
//     later than the one asked for, or none (a timeout must never come
//     late: the slow-header, slow-body, idle and write timeouts keep
//     their exact values), when it has passed already, or when it is
//     earlier than the one asked for by more than lazySlack.
//
// So the deadline in force is never later than the one asked for, but may
// be earlier (by less than lazySlack, or when it was cleared): a read or
// write that times out while the deadline asked for has not passed is
// not an error, the connection sets the one asked for and goes on. In the
// steady state of keep-alive requests that is two socket deadlines a
// request: the abort of the background read and the idle deadline after
// it.
func LazyDeadlines(ln net.Listener) net.Listener { return lazyListener{ln} }

// lazySlack is how much earlier than the one asked for a deadline in
// force may be before it is moved (a write deadline now+WriteTimeout,
// asked for at every request, moves the socket's at most once a second).
const lazySlack = time.Second

type lazyListener struct{ net.Listener }

func (l lazyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &lazyConn{Conn: c}, nil
}

// lazyConn is a connection with lazily applied deadlines. Recording a
// deadline and starting or ending a read (write) take no lock: each costs
// an atomic store or add and a load or two (net/http asks for eight
// deadlines a request and makes three or four reads and writes). Only
// setting the socket's deadline takes mu, which keeps one direction's
// "in force" in step with the socket. A deadline asked for and a read
// (write) beginning cannot miss each other: ask stores the deadline then
// loads busy, begin adds to busy then loads the deadline (Go's atomics
// are sequentially consistent), so at least one of them sees the other
// and applies the deadline if it must.
type lazyConn struct {
	net.Conn
	mu   sync.Mutex // held while a socket deadline is set
	r, w lazyDeadline
}

// lazyDeadline is one direction's deadline: asked for and in force, each
// as nanoseconds since the Unix epoch (nanos; 0: none).
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

var (
	// A deadline before the process started has passed (net/http aborts
	// a read with one in 1970). No clock read when a deadline is set (a
	// time.Now is a good part of what a deadline costs): one that passed
	// otherwise fails the next read (write) at once, and early sees it
	// has.
	started = time.Now().UnixNano()
)

// tighter reports whether the deadline asked for is earlier than the one
// in force (none being the latest of all).
func tighter(want, have int64) bool { return want != 0 && (have == 0 || want < have) }

// stale reports whether the deadline in force must be moved before a read
// (write) begins.
func stale(want, have int64) bool {
	if want == have {
		return false
	}
	passed := have != 0 && have < started
	return passed || tighter(want, have) || (want != 0 && have < want-int64(lazySlack))
}

// early reports whether a timeout came before the deadline asked for
// (the one in force was earlier): the caller moves it and goes on.
func early(want, have int64) bool {
	if want == have {
		return false
	}
	return want == 0 || time.Now().UnixNano() < want
}

// apply sets the socket's deadline to the one asked for (c.mu held).
func (d *lazyDeadline) apply(set func(time.Time) error) error {
	want := d.want.Load()
	err := set(deadline(want))
	d.have.Store(want)
	return err
}

func (c *lazyConn) SetReadDeadline(t time.Time) error {
	return c.ask(&c.r, t, c.Conn.SetReadDeadline)
}

func (c *lazyConn) SetWriteDeadline(t time.Time) error {
	return c.ask(&c.w, t, c.Conn.SetWriteDeadline)
}

// ask records the deadline t of one direction, and applies it at once
// only when it must cut a read (write) under way.
func (c *lazyConn) ask(d *lazyDeadline, t time.Time, set func(time.Time) error) error {
	d.want.Store(nanos(t))
	if d.busy.Load() == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if d.busy.Load() > 0 && tighter(d.want.Load(), d.have.Load()) {
		return d.apply(set)
	}
	return nil
}

func (c *lazyConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

// begin marks a read (write) under way and brings its deadline up to date.
func (c *lazyConn) begin(d *lazyDeadline, set func(time.Time) error) error {
	d.busy.Add(1)
	if !stale(d.want.Load(), d.have.Load()) {
		return nil
	}
	c.mu.Lock()
	var err error
	if stale(d.want.Load(), d.have.Load()) {
		err = d.apply(set)
	}
	c.mu.Unlock()
	if err != nil {
		d.busy.Add(-1)
	}
	return err
}

// retry reports, after a timeout, whether it came early; if so the
// deadline asked for is now in force and the read (write) goes on. If not,
// the read (write) is over.
func (c *lazyConn) retry(d *lazyDeadline, set func(time.Time) error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if early(d.want.Load(), d.have.Load()) && d.apply(set) == nil {
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

// CloseWrite half-closes a TCP connection (net/http does after a request
// body over its limit, so the client sees the answer before the reset).
func (c *lazyConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
