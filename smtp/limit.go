package smtp

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// capListener caps open connections, in all and per client address. A
// connection over a cap is answered "421" and closed without reaching
// go-smtp, so it costs no session, and Accept goes on with the next one.
type capListener struct {
	net.Listener
	max, perIP int // < 0: no cap
	domain     string
	log        *slog.Logger

	mu    sync.Mutex
	total int
	byIP  map[string]int
	// lastWarn rate-limits the "cap reached" log line.
	lastWarn time.Time
	// refusing counts 421 replies being written; past maxRefusing a
	// refused connection is closed without one, so a flood of refused
	// connections cannot pile up goroutines.
	refusing atomic.Int32
}

const maxRefusing = 64

func newCapListener(ln net.Listener, max, perIP int, domain string, log *slog.Logger) *capListener {
	return &capListener{Listener: ln, max: max, perIP: perIP, domain: domain, log: log, byIP: map[string]int{}}
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := hostOf(c.RemoteAddr())
		if reason := l.acquire(ip); reason != "" {
			if l.refusing.Add(1) > maxRefusing {
				l.refusing.Add(-1)
				_ = c.Close()
				continue
			}
			go func() {
				defer l.refusing.Add(-1)
				refuse(c, l.domain, reason)
			}()
			continue
		}
		return &capConn{Conn: c, l: l, ip: ip}, nil
	}
}

// acquire counts a connection from ip in, or says which cap it is over.
func (l *capListener) acquire(ip string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	reason := ""
	switch {
	case l.max >= 0 && l.total >= l.max:
		reason = "Too many connections, try again later"
	case l.perIP >= 0 && l.byIP[ip] >= l.perIP:
		reason = "Too many connections from your address, try again later"
	}
	if reason != "" {
		if now := time.Now(); now.Sub(l.lastWarn) >= 10*time.Second {
			l.lastWarn = now
			l.log.Warn("smtp connection refused: cap reached (logged at most every 10 s)", "ip", ip,
				"open", l.total, "open_from_ip", l.byIP[ip], "max_conns", l.max, "max_conns_per_ip", l.perIP)
		}
		return reason
	}
	l.total++
	l.byIP[ip]++
	return ""
}

func (l *capListener) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.byIP[ip]--; l.byIP[ip] <= 0 {
		delete(l.byIP, ip)
	}
}

// refuse answers 421 and closes, never waiting long on a slow client.
func refuse(c net.Conn, domain, reason string) {
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.Write([]byte("421 4.7.0 " + domain + " " + reason + "\r\n"))
	_ = c.Close()
}

// capConn gives its slot back when closed (once).
type capConn struct {
	net.Conn
	l    *capListener
	ip   string
	once sync.Once
}

func (c *capConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.ip) })
	return err
}

func hostOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	s := a.String()
	if h, _, err := net.SplitHostPort(s); err == nil {
		return h
	}
	return s
}
