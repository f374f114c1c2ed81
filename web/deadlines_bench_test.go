package web_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"

	"keydesk/web"
)

// BenchmarkServerDeadlines is one keep-alive request over loopback (a raw
// client: the request's bytes out, the response's bytes in) against
// net/http without timeouts (bare Echo's http.Serve, the yardstick of
// .ci/bench rest), with serve's four timeouts, and with those timeouts
// behind web.LazyDeadlines (issue 13 #1).
func BenchmarkServerDeadlines(b *testing.B) {
	body := []byte(`{"Count":1,"Data":[],"Total":1}`)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"application/json"}
		_, _ = w.Write(body)
	})
	bare := func() *http.Server { return &http.Server{Handler: h} }
	timeouts := func() *http.Server {
		return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
			WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second}
	}
	for _, bc := range []struct {
		name string
		srv  func() *http.Server
		wrap func(net.Listener) net.Listener
	}{
		{"bare", bare, nil},
		{"timeouts", timeouts, nil},
		{"timeouts-lazy", timeouts, web.LazyDeadlines},
	} {
		b.Run(bc.name, func(b *testing.B) {
			srv := bc.srv()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			addr := ln.Addr().String()
			if bc.wrap != nil {
				ln = bc.wrap(ln)
			}
			go func() { _ = srv.Serve(ln) }()
			defer srv.Close()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			req := []byte("GET /v3/REST/apikey HTTP/1.1\r\nHost: " + addr + "\r\nAuthorization: Basic eDp5\r\n\r\n")
			br := bufio.NewReader(c)
			res, err := roundTrip(c, br, req)
			if err != nil || res == 0 {
				b.Fatalf("first request: %d bytes, %v", res, err)
			}
			b.ResetTimer()
			cpu0 := cpuTime()
			for range b.N {
				if _, err := roundTrip(c, br, req); err != nil {
					b.Fatal(err)
				}
			}
			// The process's CPU time (client and server: the client's
			// share is the same in each case) is steadier than the wall
			// clock on a shared machine.
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// roundTrip writes req and reads one response with a Content-Length body.
func roundTrip(c net.Conn, br *bufio.Reader, req []byte) (int, error) {
	if _, err := c.Write(req); err != nil {
		return 0, err
	}
	n, clen := 0, -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return n, err
		}
		n += len(line)
		if len(line) <= 2 {
			break
		}
		if v, ok := cutPrefixFold(line, "content-length:"); ok {
			clen, _ = strconv.Atoi(string(trimSpace(v)))
		}
	}
	m, err := io.CopyN(io.Discard, br, int64(clen))
	return n + int(m), err
}

func cutPrefixFold(b []byte, p string) ([]byte, bool) {
	if len(b) < len(p) {
		return nil, false
	}
	for i := range len(p) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != p[i] {
			return nil, false
		}
	}
	return b[len(p):], true
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == '\r' || b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
