package web_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"keydesk/web"
)

// lazyPair is a connection accepted through web.LazyDeadlines and its
// client end.
func lazyPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lazy := web.LazyDeadlines(ln)
	done := make(chan net.Conn, 1)
	go func() {
		c, _ := lazy.Accept()
		done <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-done
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// readTook reads one byte from c and says how long it took and how it ended.
func readTook(c net.Conn) (time.Duration, error) {
	start := time.Now()
	_, err := c.Read(make([]byte, 1))
	return time.Since(start), err
}

// What net/http relies on: a deadline in the past set while a read is
// under way cuts it at once (the abort of its background read), and a
// deadline set before a read holds to the millisecond, later or earlier
// than the one before.
func TestLazyDeadlinesCutAsAsked(t *testing.T) {
	srv, _ := lazyPair(t)
	go func() {
		time.Sleep(100 * time.Millisecond)
		_ = srv.SetReadDeadline(time.Unix(1, 0))
	}()
	type result struct {
		took time.Duration
		err  error
	}
	aborted := make(chan result, 1)
	go func() {
		took, err := readTook(srv)
		aborted <- result{took, err}
	}()
	select {
	case r := <-aborted:
		if !errors.Is(r.err, os.ErrDeadlineExceeded) || r.took > time.Second {
			t.Fatalf("a read aborted after 100 ms ended after %v with %v", r.took, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a read aborted after 100 ms was still waiting after 5 s")
	}
	_ = srv.SetReadDeadline(time.Time{})
	_ = srv.SetReadDeadline(time.Now().Add(2 * time.Second))
	_ = srv.SetReadDeadline(time.Now().Add(200 * time.Millisecond)) // earlier: it holds
	if took, err := readTook(srv); !errors.Is(err, os.ErrDeadlineExceeded) || took < 190*time.Millisecond || took > time.Second {
		t.Fatalf("a read under a 200 ms deadline ended after %v with %v", took, err)
	}
	_ = srv.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_ = srv.SetReadDeadline(time.Now().Add(600 * time.Millisecond)) // later: it holds, not the earlier one
	if took, err := readTook(srv); !errors.Is(err, os.ErrDeadlineExceeded) || took < 590*time.Millisecond || took > 2*time.Second {
		t.Fatalf("a read under a 600 ms deadline ended after %v with %v", took, err)
	}
}

// A deadline moved later, or cleared, while a read is under way does not
// cut that read at the deadline it replaced (the socket's deadline may
// still be the old one: the read goes on).
func TestLazyDeadlinesLaterWhileReading(t *testing.T) {
	srv, cli := lazyPair(t)
	_ = srv.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	go func() {
		time.Sleep(30 * time.Millisecond)
		_ = srv.SetReadDeadline(time.Time{})
		time.Sleep(400 * time.Millisecond)
		_, _ = cli.Write([]byte("x"))
	}()
	if took, err := readTook(srv); err != nil || took < 400*time.Millisecond {
		t.Fatalf("a read whose deadline was cleared ended after %v with %v", took, err)
	}
	_ = srv.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	go func() {
		time.Sleep(30 * time.Millisecond)
		_ = srv.SetReadDeadline(time.Now().Add(400 * time.Millisecond))
	}()
	if took, err := readTook(srv); !errors.Is(err, os.ErrDeadlineExceeded) || took < 400*time.Millisecond || took > 2*time.Second {
		t.Fatalf("a read whose deadline moved to 430 ms ended after %v with %v", took, err)
	}
}

// A write to a client that does not read is cut at the write deadline,
// and a write deadline that has passed does not fail a later write once
// a new one is set.
func TestLazyDeadlinesWrite(t *testing.T) {
	srv, _ := lazyPair(t)
	_ = srv.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	start := time.Now()
	buf := make([]byte, 1<<20)
	var err error
	for time.Since(start) < 5*time.Second && err == nil {
		_, err = srv.Write(buf)
	}
	if took := time.Since(start); !errors.Is(err, os.ErrDeadlineExceeded) || took < 290*time.Millisecond || took > 2*time.Second {
		t.Fatalf("writes to a client that does not read ended after %v with %v", took, err)
	}
	srv2, cli2 := lazyPair(t)
	_ = srv2.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := srv2.Write([]byte("x")); err != nil { // the socket's deadline is now 50 ms away
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	_ = srv2.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := srv2.Write([]byte("y")); err != nil {
		t.Fatalf("a write after its deadline was moved: %v", err)
	}
	if _, err := io.ReadFull(cli2, make([]byte, 2)); err != nil {
		t.Fatal(err)
	}
}

// A deadline in the past asked for at the moment a read begins, with no
// lock between them (net/http aborts its background read so, and the
// read may just be starting): the read ends, whichever came first, many
// times over.
func TestLazyDeadlinesAbortRacesTheRead(t *testing.T) {
	srv, cli := lazyPair(t)
	for i := range 3000 {
		// A read with no deadline first, so that none is in force on the
		// socket either when the race begins.
		_ = srv.SetReadDeadline(time.Time{})
		if _, err := cli.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(srv, make([]byte, 1)); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		start := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			<-start
			_, err := srv.Read(make([]byte, 1))
			done <- err
		}()
		close(start)
		// A few microseconds more each round, so that the deadline comes
		// before, during and after the read's start.
		for spin := time.Now(); time.Since(spin) < time.Duration(i%40)*time.Microsecond; {
		}
		_ = srv.SetReadDeadline(time.Unix(1, 0))
		select {
		case err := <-done:
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("round %d: the aborted read ended with %v", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: a read aborted as it began was still waiting after 5 s", i)
		}
	}
}

// countingListener's connections count the socket deadlines set on them:
// those in the future (each arms a runtime timer) and the others (none, or
// one that has passed).
type countingListener struct {
	net.Listener
	future, other *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, l: l}, nil
}

type countingConn struct {
	net.Conn
	l countingListener
}

func (c *countingConn) count(t time.Time) {
	if !t.IsZero() && t.After(time.Now()) {
		c.l.future.Add(1)
	} else {
		c.l.other.Add(1)
	}
}

func (c *countingConn) SetReadDeadline(t time.Time) error {
	c.count(t)
	return c.Conn.SetReadDeadline(t)
}

func (c *countingConn) SetWriteDeadline(t time.Time) error {
	c.count(t)
	return c.Conn.SetWriteDeadline(t)
}

func (c *countingConn) SetDeadline(t time.Time) error {
	c.count(t)
	c.count(t)
	return c.Conn.SetDeadline(t)
}

// Keep-alive requests to a server with serve's four timeouts set no
// deadline in the future on the socket (no runtime timer a request: the
// sweeper enforces them) and at most two others a request (net/http's
// abort of its background read, and none again before the next read), as
// net/http does with no timeouts at all.
func TestLazyDeadlinesArmNoTimerPerRequest(t *testing.T) {
	var future, other atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "{}") }),
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second,
	}
	go func() { _ = srv.Serve(web.LazyDeadlines(countingListener{ln, &future, &other})) }()
	t.Cleanup(func() { srv.Close() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	get := func() {
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	get() // the connection's first request
	f0, o0 := future.Load(), other.Load()
	const n = 200
	for range n {
		get()
	}
	if f := future.Load() - f0; f != 0 {
		t.Errorf("%d requests set %d socket deadlines in the future (a timer each), want none", n, f)
	}
	if o := other.Load() - o0; o > 2*n {
		t.Errorf("%d requests set %d other socket deadlines, want at most %d", n, o, 2*n)
	}
}

// A read that begins after its deadline passed, unseen by the sweeper, is
// cut within two sweeps of it, never before it.
func TestLazyDeadlinesLateByAtMostTwoSweeps(t *testing.T) {
	const every = 50 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lazy := web.LazyDeadlinesEvery(ln, every)
	done := make(chan net.Conn, 1)
	go func() {
		c, _ := lazy.Accept()
		done <- c
	}()
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	srv := <-done
	defer srv.Close()
	for _, wait := range []time.Duration{0, 130 * time.Millisecond} {
		due := time.Now().Add(100 * time.Millisecond)
		_ = srv.SetReadDeadline(due)
		time.Sleep(wait)
		// Should no sweep cut it, a byte from the client ends the read
		// after 5 s (the test fails, it does not hang).
		rescue := time.AfterFunc(5*time.Second, func() { _, _ = cli.Write([]byte("x")) })
		_, err := srv.Read(make([]byte, 1))
		late := time.Since(due)
		rescue.Stop()
		if !errors.Is(err, os.ErrDeadlineExceeded) || late < 0 || late > 2*every+100*time.Millisecond {
			t.Errorf("a read begun %v after its deadline was set (100 ms) ended %v after it with %v", wait, late, err)
		}
	}
}
