package cli

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The HTTP server's timeouts hold on serve's own listener (issue 13 #1:
// its connections set deadlines lazily, web.LazyDeadlines): a slow client
// is cut after the header or whole-request timeout, one that does not read
// after the write timeout, an idle keep-alive connection after the idle
// timeout; a connection in use outlives all of them. Small timeouts, so
// each case takes about a second.
func TestServeHTTPTimeouts(t *testing.T) {
	t.Parallel()
	to := httpTimeouts{readHeader: 300 * time.Millisecond, read: 800 * time.Millisecond, write: 400 * time.Millisecond, idle: 2 * time.Second}
	db := filepath.Join(t.TempDir(), "keydesk.db")
	srv := startServeWith(t, []Option{func(o *options) { o.timeouts = &to }}, "--db", db, "--addr", "127.0.0.1:0", "--smtp-addr", "off")
	addr := strings.TrimPrefix(srv.URL, "http://")
	dial := func(t *testing.T) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// dribble writes p every 50 ms until the server cuts the connection
	// (or 10 s, far longer than any timeout here).
	dribble := func(c net.Conn, p string) {
		go func() {
			for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
				if _, err := io.WriteString(c, p); err != nil {
					return
				}
			}
		}()
	}
	// cutWithin reads until the server ends the connection and checks it
	// did so between least and most after start; it returns what it read.
	cutWithin := func(t *testing.T, c net.Conn, r io.Reader, start time.Time, least, most time.Duration) int64 {
		t.Helper()
		_ = c.SetReadDeadline(start.Add(most + 5*time.Second))
		n, err := io.Copy(io.Discard, r)
		took := time.Since(start)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the connection was still open after %v (%d bytes read)", took, n)
		}
		if took < least || took > most {
			t.Fatalf("the connection ended after %v (%d bytes, %v), want between %v and %v", took, n, err, least, most)
		}
		return n
	}
	get := func(t *testing.T, c net.Conn, br *bufio.Reader, path string) {
		t.Helper()
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: "+addr+"\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, res.StatusCode)
		}
	}
	slack := time.Second // the race detector and a busy machine

	t.Run("headers sent slowly are cut after the header timeout", func(t *testing.T) {
		t.Parallel()
		c := dial(t)
		start := time.Now()
		_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: "+addr+"\r\n")
		dribble(c, "X-Slow: 1\r\n")
		if n := cutWithin(t, c, c, start, to.readHeader-50*time.Millisecond, to.readHeader+slack); n != 0 {
			t.Fatalf("%d bytes of answer to headers that never ended", n)
		}
	})
	t.Run("headers sent slowly after a keep-alive request are cut after the header timeout", func(t *testing.T) {
		t.Parallel()
		c := dial(t)
		br := bufio.NewReader(c)
		get(t, c, br, "/healthz")
		start := time.Now()
		_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: "+addr+"\r\n")
		dribble(c, "X-Slow: 1\r\n")
		// Well before the idle timeout: the header timeout cut it.
		cutWithin(t, c, br, start, to.readHeader-50*time.Millisecond, to.readHeader+slack)
	})
	t.Run("a body sent slowly is cut after the read timeout", func(t *testing.T) {
		t.Parallel()
		c := dial(t)
		start := time.Now()
		_, _ = io.WriteString(c, "POST /login HTTP/1.1\r\nHost: "+addr+"\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n")
		dribble(c, "a")
		cutWithin(t, c, c, start, 0, to.read+slack)
	})
	t.Run("a client that does not read is cut after the write timeout", func(t *testing.T) {
		t.Parallel()
		c := dial(t)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4 << 10)
		}
		// 300 pipelined requests for an 85 kB font: ~25 MB of answers,
		// more than the socket buffers hold.
		const n = 300
		req := "GET /static/x/fonts/inter-latin-ext-wght-normal.woff2 HTTP/1.1\r\nHost: " + addr + "\r\n\r\n"
		if _, err := io.WriteString(c, strings.Repeat(req, n)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(to.write + slack)
		// Without the write timeout the server would still be waiting
		// to write the rest, and all of it would come now.
		start := time.Now()
		got := cutWithin(t, c, c, start, 0, 5*time.Second)
		if got >= n*85000 {
			t.Fatalf("all %d answers (%d bytes) came to a client that did not read for %v", n, got, to.write+slack)
		}
	})
	t.Run("an idle keep-alive connection is closed after the idle timeout", func(t *testing.T) {
		t.Parallel()
		c := dial(t)
		br := bufio.NewReader(c)
		get(t, c, br, "/healthz")
		cutWithin(t, c, br, time.Now(), to.idle-100*time.Millisecond, to.idle+slack)
	})
	t.Run("a connection in use outlives every timeout", func(t *testing.T) {
		t.Parallel()
		c := dial(t)
		br := bufio.NewReader(c)
		// 2.4 s of requests 150 ms apart: longer than the header, read and
		// write timeouts, each gap shorter than the idle timeout.
		for range 16 {
			get(t, c, br, "/healthz")
			time.Sleep(150 * time.Millisecond)
		}
	})
}
