package web

import (
	"errors"
	"net"
	"os"
	"sync"
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

// lazyConn is a connection with lazily applied deadlines.
type lazyConn struct {
	net.Conn
	mu   sync.Mutex // guards r and w
	r, w lazyDeadline
}

// lazyDeadline is one direction's deadline: asked for and in force.
type lazyDeadline struct {
	want, have time.Time // zero: none
	passed     bool      // have was in the past when it was set
	busy       int       // reads (writes) under way
}

// tighter reports whether the deadline asked for is earlier than the one
// in force (none being the latest of all).
func (d *lazyDeadline) tighter() bool {
	return !d.want.IsZero() && (d.have.IsZero() || d.want.Before(d.have))
}

// stale reports whether the deadline in force must be moved before a read
// (write) begins.
func (d *lazyDeadline) stale() bool {
	if d.want.Equal(d.have) {
		return false
	}
	return d.passed || d.tighter() || (!d.want.IsZero() && d.have.Before(d.want.Add(-lazySlack)))
}

// apply sets the socket's deadline to the one asked for (c.mu held).
func (d *lazyDeadline) apply(set func(time.Time) error) error {
	err := set(d.want)
	d.have = d.want
	// No clock read here (a time.Now is a good part of what a deadline
	// costs): a deadline before the process started has passed (net/http
	// aborts a read with one in 1970); one that passed otherwise fails the
	// next read (write) at once, and early sees it has.
	d.passed = !d.want.IsZero() && d.want.Before(started)
	return err
}

var started = time.Now()

// early reports whether a timeout came before the deadline asked for
// (the one in force was earlier): the caller moves it and goes on.
func (d *lazyDeadline) early() bool {
	if d.want.Equal(d.have) {
		return false
	}
	return d.want.IsZero() || time.Now().Before(d.want)
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
	c.mu.Lock()
	defer c.mu.Unlock()
	d.want = t
	if d.busy > 0 && d.tighter() {
		return d.apply(set)
	}
	return nil
}

func (c *lazyConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

// begin marks a read (write) under way and brings its deadline up to date.
func (c *lazyConn) begin(d *lazyDeadline, set func(time.Time) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d.stale() {
		if err := d.apply(set); err != nil {
			return err
		}
	}
	d.busy++
	return nil
}

// retry reports, after a timeout, whether it came early; if so the
// deadline asked for is now in force and the read (write) goes on. If not,
// the read (write) is over.
func (c *lazyConn) retry(d *lazyDeadline, set func(time.Time) error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d.early() && d.apply(set) == nil {
		return true
	}
	d.busy--
	return false
}

func (c *lazyConn) end(d *lazyDeadline) {
	c.mu.Lock()
	d.busy--
	c.mu.Unlock()
}

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
