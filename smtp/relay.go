package smtp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"keydesk/models"
)

// Message is one message handed to a Relay: an envelope and a streamed
// body (see models.Outgoing). The same type serves SMTP and the Send API.
type Message = models.Outgoing

// Relay takes accepted messages (see models.Relay). An error refuses the
// message: a *models.RelayError (or a *gosmtp.SMTPError) is answered as
// is, anything else as 451 (try later).
type Relay = models.Relay

// ParseRelay turns KEYDESK_SMTP_RELAY into a Relay: "" is a SinkRelay,
// smtp://host:port a ForwardRelay.
func ParseRelay(spec string, log *slog.Logger) (Relay, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return NewSinkRelay(log, 0), nil
	}
	f, err := NewForwardRelay(spec)
	if err != nil {
		return nil, err
	}
	f.Logger = log
	return f, nil
}

// Record is the metadata SinkRelay keeps of a message: never its body.
type Record struct {
	At         time.Time
	From       string
	Recipients int
	Size       int64
	MessageID  string
	APIKey     string
	KeyID      uint
	AccountID  uint
}

// SinkRelay accepts every message and delivers none: it logs the
// metadata (sender, recipient count, size, Message-ID, API key) and keeps
// the last few records in memory. The default relay.
type SinkRelay struct {
	log  *slog.Logger
	keep int

	mu     sync.Mutex
	recent []Record // ring buffer
	next   int
	total  int64
}

// NewSinkRelay keeps the last keep records (100 when keep <= 0).
func NewSinkRelay(log *slog.Logger, keep int) *SinkRelay {
	if log == nil {
		log = slog.Default()
	}
	if keep <= 0 {
		keep = 100
	}
	return &SinkRelay{log: log.With("component", "smtp"), keep: keep}
}

// Relay records m's metadata. It reads the body only when its size is
// unknown, to count it, and never keeps it.
func (r *SinkRelay) Relay(_ context.Context, m *Message) error {
	if m.Size < 0 && m.Body != nil {
		n, err := io.Copy(io.Discard, m.Body)
		if err != nil {
			return fmt.Errorf("sink relay: read the message: %w", err)
		}
		m.Size = n
	}
	rec := Record{At: time.Now(), From: m.From, Recipients: len(m.To), Size: m.Size, MessageID: m.MessageID,
		APIKey: m.Principal.APIKey, KeyID: m.Principal.KeyID, AccountID: m.Principal.AccountID}
	r.mu.Lock()
	if len(r.recent) < r.keep {
		r.recent = append(r.recent, rec)
	} else {
		r.recent[r.next] = rec
	}
	r.next = (r.next + 1) % r.keep
	r.total++
	r.mu.Unlock()
	r.log.Info("smtp message accepted (sink relay: recorded, not delivered)", "from", m.From, "recipients", len(m.To),
		"size", m.Size, "message_id", m.MessageID, "api_key", m.Principal.APIKey, "account_id", m.Principal.AccountID, "ip", m.RemoteIP)
	return nil
}

// Recent returns the kept records, oldest first.
func (r *SinkRelay) Recent() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Record, 0, len(r.recent))
	if len(r.recent) == r.keep {
		out = append(out, r.recent[r.next:]...)
		out = append(out, r.recent[:r.next]...)
	} else {
		out = append(out, r.recent...)
	}
	return out
}

// Total is how many messages the sink has accepted.
func (r *SinkRelay) Total() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// ForwardRelay hands each message to an upstream SMTP server over plain
// SMTP without AUTH (a local MTA or a relay on a trusted network), one
// connection per message.
type ForwardRelay struct {
	Addr      string        // host:port
	LocalName string        // EHLO name ("keydesk" when empty)
	Timeout   time.Duration // per command; 1 min when 0
	Logger    *slog.Logger  // logs each forwarded message's metadata (optional)
}

// NewForwardRelay parses smtp://host:port.
func NewForwardRelay(rawURL string) (*ForwardRelay, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "smtp" || u.Hostname() == "" || u.Port() == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("smtp relay: want smtp://host:port, got %q", rawURL)
	}
	return &ForwardRelay{Addr: u.Host}, nil
}

// Relay sends m upstream. Upstream refusals become 554 (permanent) or
// 451 (temporary) naming the upstream reply; connection problems are 451.
func (f *ForwardRelay) Relay(ctx context.Context, m *Message) error {
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", f.Addr)
	if err != nil {
		return fmt.Errorf("smtp relay: dial %s: %w", f.Addr, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c := gosmtp.NewClient(conn)
	defer c.Close()
	c.CommandTimeout, c.SubmissionTimeout = timeout, 2*timeout
	name := f.LocalName
	if name == "" {
		name = "keydesk"
	}
	if err := f.send(c, name, m); err != nil {
		var se *gosmtp.SMTPError
		if errors.As(err, &se) {
			if se.Temporary() {
				return &models.RelayError{Code: 451, Enhanced: [3]int{4, 3, 0},
					Message: fmt.Sprintf("Upstream relay deferred the message (%d %s), try again later", se.Code, se.Message)}
			}
			return &models.RelayError{Code: 554, Enhanced: [3]int{5, 3, 0},
				Message: fmt.Sprintf("Upstream relay refused the message (%d %s)", se.Code, se.Message)}
		}
		return fmt.Errorf("smtp relay %s: %w", f.Addr, err)
	}
	if f.Logger != nil {
		f.Logger.Info("smtp message forwarded", "component", "smtp", "upstream", f.Addr, "from", m.From, "recipients", len(m.To),
			"size", m.Size, "message_id", m.MessageID, "api_key", m.Principal.APIKey, "account_id", m.Principal.AccountID, "ip", m.RemoteIP)
	}
	return nil
}

func (f *ForwardRelay) send(c *gosmtp.Client, name string, m *Message) error {
	if err := c.Hello(name); err != nil {
		return err
	}
	if err := c.Mail(m.From, nil); err != nil {
		return err
	}
	for _, to := range m.To {
		if err := c.Rcpt(to, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	body := m.Body
	if body == nil {
		body = strings.NewReader("")
	}
	if _, err := io.Copy(w, body); err != nil {
		w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	_ = c.Quit()
	return nil
}
