package smtp_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	kdsmtp "keydesk/smtp"
)

// greeting dials addr and returns the first reply line ("" on EOF).
func greeting(t *testing.T, addr string) (net.Conn, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	_ = c.SetReadDeadline(time.Time{})
	return c, line
}

// Finding 5: connections are capped per client address (20 by default);
// one over the cap is told 421 and closed, and a freed slot is reused.
func TestConnectionsPerAddressAreCapped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	const perIP = 20 // the default cap per client address
	conns := make([]net.Conn, 0, perIP)
	for i := 0; i < perIP; i++ {
		c, line := greeting(t, e.addr)
		if !strings.HasPrefix(line, "220 ") {
			t.Fatalf("connection %d: greeting %q, want 220", i+1, line)
		}
		conns = append(conns, c)
	}
	c, line := greeting(t, e.addr)
	if !strings.HasPrefix(line, "421 4.7.0 ") || !strings.Contains(line, "Too many connections") {
		t.Fatalf("connection %d from one address: %q, want 421 Too many connections", perIP+1, line)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("the refused connection stays open (%d, %v)", n, err)
	}
	// A closed connection frees its slot.
	conns[0].Close()
	for deadline := time.Now().Add(5 * time.Second); ; {
		_, line = greeting(t, e.addr)
		if strings.HasPrefix(line, "220 ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after closing one connection: %q, want 220", line)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if logs := e.logs.String(); !strings.Contains(logs, "cap reached") {
		t.Errorf("no log line for the refused connection:\n%s", logs)
	}
}

func TestConnectionsInAllAreCapped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *kdsmtp.Config) { c.MaxConns, c.MaxConnsPerIP = 3, -1 })
	for i := 0; i < 3; i++ {
		if _, line := greeting(t, e.addr); !strings.HasPrefix(line, "220 ") {
			t.Fatalf("connection %d: %q", i+1, line)
		}
	}
	if _, line := greeting(t, e.addr); !strings.HasPrefix(line, "421 ") {
		t.Fatalf("4th connection with MaxConns 3: %q, want 421", line)
	}
}

// holdRelay blocks each message until released, so a test can look at
// the server while n messages are all in the relay's hands.
type holdRelay struct {
	arrived chan struct{}
	release chan struct{}
}

func (h *holdRelay) Relay(ctx context.Context, m *kdsmtp.Message) error {
	h.arrived <- struct{}{}
	select {
	case <-h.release:
	case <-ctx.Done():
	}
	return nil
}

// Finding 5: a session does not hold its message in memory. Four
// sessions each hand over an 8 MB message; while all four sit in the
// relay (every byte read from the client), the heap holds far less than
// one of them.
func TestLargeMessagesAreNotHeldInMemory(t *testing.T) {
	const sessions, size = 4, 8 << 20
	hold := &holdRelay{arrived: make(chan struct{}, sessions), release: make(chan struct{})}
	e := newEnv(t, func(c *kdsmtp.Config) { c.Relay = hold; c.SpoolDir = t.TempDir() })
	k := e.acct.Secret
	line := strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ....", 16)[:998] + "\r\n"
	body := "Subject: big\r\nMessage-ID: <big@x>\r\n\r\n" + strings.Repeat(line, size/len(line))

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	for i := 0; i < sessions; i++ {
		c := dial(t, e.addr)
		if err := c.Auth(plain(k.APIKey, k.Secret)); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- send(c, body, "a@example.com")
		}()
	}
	for i := 0; i < sessions; i++ {
		select {
		case <-hold.arrived:
		case err := <-errs:
			t.Fatalf("a message failed: %v", err)
		case <-time.After(2 * time.Minute):
			t.Fatal("the messages did not reach the relay")
		}
	}
	runtime.GC()
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	close(hold.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("send: %v", err)
		}
	}
	grew := int64(during.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap grew %.1f MB with %d messages of %d MB in the relay's hands", float64(grew)/(1<<20), sessions, size>>20)
	if grew > size/2 {
		t.Errorf("heap grew %.1f MB while %d sessions held %d MB messages: messages are held in memory", float64(grew)/(1<<20), sessions, size>>20)
	}
}

// captureRelay reads each message body and keeps its digest.
type captureRelay struct {
	mu   sync.Mutex
	dir  string
	got  []captured
	seen []string // files in dir during Relay
}

type captured struct {
	size, read int64
	id         string
	sum        [32]byte
	channelOK  bool
}

func (c *captureRelay) Relay(_ context.Context, m *kdsmtp.Message) error {
	h := sha256.New()
	n, err := io.Copy(h, m.Body)
	if err != nil {
		return err
	}
	var cap captured
	cap.size, cap.read, cap.id = m.Size, n, m.MessageID
	copy(cap.sum[:], h.Sum(nil))
	cap.channelOK = m.Channel == 1 // models.ChannelSMTP
	ents, _ := os.ReadDir(c.dir)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range ents {
		c.seen = append(c.seen, e.Name())
	}
	c.got = append(c.got, cap)
	return nil
}

// The relay receives every byte of a spooled message (one past the
// in-memory threshold and one within it), with its size and Message-ID;
// the spool file is never visible in the spool folder.
func TestSpooledMessagesReachTheRelayWhole(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cr := &captureRelay{dir: dir}
	e := newEnv(t, func(c *kdsmtp.Config) { c.Relay = cr; c.SpoolDir = dir; c.SpoolThreshold = 4096 })
	k := e.acct.Secret
	c := dial(t, e.addr)
	if err := c.Auth(plain(k.APIKey, k.Secret)); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i, n := range []int{10, 4096 / 18, 300 * 1024 / 18} {
		msg := message(fmt.Sprintf("m%d@x", i), strings.Repeat("0123456789abcdef\r\n", n))
		if err := send(c, msg, "a@example.com"); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		want = append(want, msg)
	}
	if len(cr.got) != len(want) {
		t.Fatalf("relay got %d messages, want %d", len(cr.got), len(want))
	}
	for i, msg := range want {
		g := cr.got[i]
		if g.sum != sha256.Sum256([]byte(msg)) || g.read != int64(len(msg)) || g.size != int64(len(msg)) {
			t.Errorf("message %d: read %d bytes (size %d), want %d intact", i, g.read, g.size, len(msg))
		}
		if g.id != fmt.Sprintf("<m%d@x>", i) || !g.channelOK {
			t.Errorf("message %d: Message-ID %q, channel ok %v", i, g.id, g.channelOK)
		}
	}
	if len(cr.seen) != 0 {
		t.Errorf("spool files visible in the spool folder during relay: %v", cr.seen)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("spool folder not empty afterwards: %d entries", len(ents))
	}
}

// A spool folder that cannot be written is a 451, not a crash, and the
// connection goes on.
func TestSpoolFailureIs451(t *testing.T) {
	t.Parallel()
	dir := t.TempDir() + "/missing"
	e := newEnv(t, func(c *kdsmtp.Config) { c.SpoolDir = dir; c.SpoolThreshold = 1024 })
	k := e.acct.Secret
	c := dial(t, e.addr)
	if err := c.Auth(plain(k.APIKey, k.Secret)); err != nil {
		t.Fatal(err)
	}
	if err := send(c, message("big@x", strings.Repeat("0123456789abcdef\r\n", 300)), "a@example.com"); code(err) != 451 {
		t.Fatalf("spool folder missing: %v, want 451", err)
	}
	if err := send(c, message("small@x", "fits"), "a@example.com"); err != nil {
		t.Fatalf("small message after a spool failure: %v", err)
	}
}
