package cli

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkSMTPMidDataRSS is the memory check of issue 9, finding 5, as a
// load command (not a timed test): it builds the real binary, starts it on
// a fresh SQLite database, opens 40 authenticated SMTP sessions (STARTTLS,
// AUTH PLAIN) and sends each a 9.9 MB message without the final dot, then
// reads the server's peak RSS (VmHWM) from /proc while all 40 are
// mid-DATA. Target: < 256 MB. Run it with
//
//	go test -run '^$' -bench '^BenchmarkSMTPMidDataRSS$' -benchtime 1x ./cli/
//
// (.ci/bench smtp-memory). The per-address cap is raised through the
// environment (KEYDESK_SMTP_MAX_CONNS_PER_IP=100) so every session comes
// from loopback; a binary that does not know the setting ignores it, so the
// same command measures an older build too.
func BenchmarkSMTPMidDataRSS(b *testing.B) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		b.Fatal("needs Linux /proc to read the peak RSS")
	}
	const sessions, size = 40, 9_900_000
	dir := b.TempDir()
	bin := filepath.Join(dir, "keydesk")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = ".." // the module root: package main
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	db := filepath.Join(dir, "keydesk.db")
	create := exec.Command(bin, "--db", db, "account", "create", "--name", "Load", "--email", "load@example.com", "--password-stdin")
	create.Stdin = strings.NewReader("a long enough password\n")
	out, err := create.Output()
	if err != nil {
		b.Fatalf("account create: %v", err)
	}
	var acct struct {
		APIKey    string `json:"api_key"`
		SecretKey string `json:"secret_key"`
	}
	if err := json.Unmarshal(out, &acct); err != nil {
		b.Fatal(err)
	}

	var logs bytes.Buffer
	var logMu sync.Mutex
	srv := exec.Command(bin, "--db", db, "--addr", "127.0.0.1:0", "--smtp-addr", "127.0.0.1:0")
	srv.Env = append(os.Environ(), "KEYDESK_SMTP_MAX_CONNS_PER_IP=100", "KEYDESK_SMTP_SPOOL_DIR="+dir)
	srv.Stderr = lockedWriter{&logMu, &logs}
	srv.Stdout = srv.Stderr
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	addrRE := regexp.MustCompile(`msg="smtp submission listening" .*addr=(127\.0\.0\.1:\d+)`)
	var addr string
	for deadline := time.Now().Add(30 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		logMu.Lock()
		if m := addrRE.FindStringSubmatch(logs.String()); m != nil {
			addr = m[1]
		}
		logMu.Unlock()
	}
	if addr == "" {
		b.Fatalf("no SMTP listener:\n%s", logs.String())
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, "keydesk.smtp-cert.pem"))
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	tlsCfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	pid := srv.Process.Pid
	baseline := procKB(b, pid, "VmRSS")

	// Every session sends the header and 9.9 MB of body lines, no final dot.
	line := strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyz", 2)[:70] + "\r\n"
	body := []byte("Subject: load\r\nMessage-ID: <load@example.com>\r\n\r\n" + strings.Repeat(line, size/len(line)))
	b.ResetTimer()
	conns := make([]*tls.Conn, sessions)
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	for i := range conns {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := midData(addr, tlsCfg, acct.APIKey, acct.SecretKey, body)
			conns[i] = c
			if err != nil {
				errs <- fmt.Errorf("session %d: %w", i, err)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	// All 40 are mid-DATA: watch the server for a moment, then read its peak.
	time.Sleep(2 * time.Second)
	peak := procKB(b, pid, "VmHWM")
	rss := procKB(b, pid, "VmRSS")
	b.StopTimer()
	for _, c := range conns {
		_, _ = c.Write([]byte("\r\n.\r\nQUIT\r\n"))
	}
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		r := bufio.NewReader(c)
		reply, _ := r.ReadString('\n')
		if !strings.HasPrefix(reply, "250 ") {
			b.Errorf("end of DATA: %q, want 250", reply)
		}
		c.Close()
	}
	b.ReportMetric(float64(baseline)/1024, "baseline-RSS-MB")
	b.ReportMetric(float64(rss)/1024, "RSS-MB")
	b.ReportMetric(float64(peak)/1024, "peak-RSS-MB")
	b.Logf("%d sessions mid-DATA with %.1f MB each: server RSS %.1f MB, peak %.1f MB (baseline %.1f MB); target < 256 MB",
		sessions, float64(size)/1e6, float64(rss)/1024, float64(peak)/1024, float64(baseline)/1024)
	if peak >= 256*1024 {
		b.Errorf("peak RSS %.1f MB, target < 256 MB", float64(peak)/1024)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// midData opens a session, authenticates and sends msg after DATA without
// the terminating dot; it returns the open connection.
func midData(addr string, tlsCfg *tls.Config, user, pass string, msg []byte) (*tls.Conn, error) {
	raw, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	_ = raw.SetDeadline(time.Now().Add(2 * time.Minute))
	r := bufio.NewReader(raw)
	expect := func(r *bufio.Reader, code string) error {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			if !strings.HasPrefix(l, code) {
				return fmt.Errorf("reply %q, want %s", strings.TrimSpace(l), code)
			}
			if len(l) > 3 && l[3] == ' ' {
				return nil
			}
		}
	}
	if err := expect(r, "220"); err != nil {
		raw.Close()
		return nil, err
	}
	fmt.Fprintf(raw, "EHLO load.test\r\n")
	if err := expect(r, "250"); err != nil {
		raw.Close()
		return nil, err
	}
	fmt.Fprintf(raw, "STARTTLS\r\n")
	if err := expect(r, "220"); err != nil {
		raw.Close()
		return nil, err
	}
	c := tls.Client(raw, tlsCfg)
	tr := bufio.NewReader(c)
	steps := []struct{ cmd, code string }{
		{"EHLO load.test", "250"},
		{"AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass)), "235"},
		{"MAIL FROM:<load@example.com>", "250"},
		{"RCPT TO:<someone@example.net>", "250"},
		{"DATA", "354"},
	}
	for _, s := range steps {
		fmt.Fprintf(c, "%s\r\n", s.cmd)
		if err := expect(tr, s.code); err != nil {
			c.Close()
			return nil, fmt.Errorf("%s: %w", strings.Fields(s.cmd)[0], err)
		}
	}
	if _, err := c.Write(msg); err != nil {
		c.Close()
		return nil, err
	}
	_ = raw.SetDeadline(time.Time{})
	return c, nil
}

// procKB reads a "Vm…: N kB" line of /proc/PID/status.
func procKB(b *testing.B, pid int, field string) int64 {
	b.Helper()
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
