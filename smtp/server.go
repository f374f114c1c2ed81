// Package smtp is keydesk's SMTP submission listener (emersion/go-smtp).
//
// A client authenticates with AUTH PLAIN or AUTH LOGIN, username = API key
// and password = secret key, verified only through the store's
// VerifyRequest (the same check and throttle as the REST API). AUTH is
// refused before STARTTLS unless Config.AllowInsecureAuth. Every accepted
// message is handed to a Relay and counted with RecordUse.
//
// Replies a client can see:
//
//	523 5.7.10 AUTH before STARTTLS (insecure auth off)
//	535 5.7.8  wrong, unknown, inactive or expired credentials
//	454 4.7.0  too many failures for this API key or this IP: try later
//	530 5.7.0  MAIL before AUTH
//	552 5.3.4  message larger than MaxMessageBytes
//	451 4.3.0  the relay could not take the message: try later
//	421 4.7.0  too many connections (in all, or from this address): try later
//
// Connections are capped in all and per client address (Config.MaxConns,
// Config.MaxConnsPerIP): one over a cap is greeted with 421 and closed
// before any session starts. DATA is spooled: the first
// Config.SpoolThreshold bytes in memory, the rest in an unlinked temporary
// file in Config.SpoolDir, and the relay reads the message back from
// there, so memory per connection stays bounded whatever the message size.
//
// No password, secret key or message body is ever logged.
package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"keydesk/models"
)

// DefaultPort is the SMTP submission port keydesk listens on, and shows to
// users, by default.
const DefaultPort = 2525

// DefaultMaxMessageBytes is the message size limit when Config leaves it 0.
const DefaultMaxMessageBytes = 10 << 20

// DefaultMaxConns and DefaultMaxConnsPerIP cap open connections when
// Config leaves them 0.
const (
	DefaultMaxConns      = 200
	DefaultMaxConnsPerIP = 20
)

// DefaultMaxRecipients bounds RCPT TO per message when Config leaves it 0.
const DefaultMaxRecipients = 1000

// Store is what the listener needs from models.Store.
type Store interface {
	// VerifyRequest throttles, verifies and records failures; see models.
	VerifyRequest(ctx context.Context, apiKey, secret, ip string, ch models.Channel) (models.KeyPrincipal, error)
	// RecordUse counts a successful use (and messages) in memory.
	RecordUse(p models.KeyPrincipal, ch models.Channel, ip string, messages int)
}

// Config is the listener's configuration.
type Config struct {
	// Addr is the TCP address to listen on, e.g. 127.0.0.1:2525.
	Addr string
	// TLS enables STARTTLS. Required unless AllowInsecureAuth.
	TLS *tls.Config
	// AllowInsecureAuth accepts AUTH without TLS: secrets then cross the
	// network in clear text. For local testing only (logged loudly).
	AllowInsecureAuth bool
	// MaxMessageBytes is the size limit (DefaultMaxMessageBytes when 0).
	MaxMessageBytes int64
	// MaxRecipients bounds RCPT TO per message (DefaultMaxRecipients when 0).
	MaxRecipients int
	// Domain is the name in the greeting (the host of Addr when empty).
	Domain string
	// Relay takes accepted messages (a SinkRelay when nil).
	Relay Relay
	// Logger receives structured logs (slog.Default when nil).
	Logger *slog.Logger
	// MaxConns caps open connections in all, MaxConnsPerIP those from one
	// client address (DefaultMaxConns, DefaultMaxConnsPerIP when 0; -1
	// for no cap). A connection over a cap gets 421 and is closed.
	MaxConns, MaxConnsPerIP int
	// SpoolDir holds the temporary files of messages larger than
	// SpoolThreshold (os.TempDir() when empty); SpoolThreshold is how much
	// of a message stays in memory (DefaultSpoolThreshold when 0).
	SpoolDir       string
	SpoolThreshold int
	// ReadTimeout and WriteTimeout bound each command (5 min and 1 min
	// when 0), so an idle client cannot hold a connection forever.
	ReadTimeout, WriteTimeout time.Duration
}

// Server is the SMTP submission listener.
type Server struct {
	cfg   Config
	store Store
	log   *slog.Logger
	relay Relay
	smtp  *gosmtp.Server

	mu sync.Mutex
	ln net.Listener

	stats struct{ sessions, messagesRelayed, messagesRefused atomic.Uint64 }
}

// Stats counts since start: SMTP sessions opened (a STARTTLS upgrade
// starts a new one), messages handed to the relay, and messages the relay
// refused or failed.
type Stats struct{ Sessions, MessagesRelayed, MessagesRefused uint64 }

// Stats returns the counters for the metrics endpoint.
func (s *Server) Stats() Stats {
	return Stats{s.stats.sessions.Load(), s.stats.messagesRelayed.Load(), s.stats.messagesRefused.Load()}
}

// New builds a server; call Listen then Serve (or ListenAndServe).
func New(cfg Config, store Store) (*Server, error) {
	if store == nil {
		return nil, errors.New("smtp: a store is required")
	}
	if cfg.TLS == nil && !cfg.AllowInsecureAuth {
		return nil, errors.New("smtp: a TLS configuration is required for STARTTLS unless insecure AUTH is allowed")
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.MaxRecipients <= 0 {
		cfg.MaxRecipients = DefaultMaxRecipients
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxConnsPerIP == 0 {
		cfg.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if cfg.SpoolThreshold <= 0 {
		cfg.SpoolThreshold = DefaultSpoolThreshold
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 5 * time.Minute
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Domain == "" {
		if h, _, err := net.SplitHostPort(cfg.Addr); err == nil && h != "" {
			cfg.Domain = h
		} else {
			cfg.Domain = "keydesk"
		}
	}
	s := &Server{cfg: cfg, store: store, log: cfg.Logger.With("component", "smtp"), relay: cfg.Relay}
	if s.relay == nil {
		s.relay = NewSinkRelay(cfg.Logger, 0)
	}
	gs := gosmtp.NewServer(&backend{s: s})
	gs.Addr = cfg.Addr
	gs.Domain = cfg.Domain
	gs.TLSConfig = cfg.TLS
	gs.AllowInsecureAuth = cfg.AllowInsecureAuth
	gs.MaxMessageBytes = cfg.MaxMessageBytes
	gs.MaxRecipients = cfg.MaxRecipients
	gs.ReadTimeout = cfg.ReadTimeout
	gs.WriteTimeout = cfg.WriteTimeout
	gs.ErrorLog = errorLog{s.log}
	// gs.Debug stays nil: it would copy AUTH lines (secrets) to a writer.
	s.smtp = gs
	return s, nil
}

// Relay is the relay accepted messages go to.
func (s *Server) Relay() Relay { return s.relay }

// Listen binds Config.Addr; the error names the address.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("smtp: listen on %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	return nil
}

// Addr is the bound address (nil before Listen).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Serve accepts connections on the bound listener (binding it first if
// needed) until Shutdown or Close; it then returns nil.
func (s *Server) Serve() error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	if s.cfg.AllowInsecureAuth {
		s.log.Warn("INSECURE: SMTP AUTH IS ACCEPTED WITHOUT TLS — API keys and secret keys can cross the network in clear text; for local testing only, never in production",
			"addr", ln.Addr().String(), "setting", "KEYDESK_SMTP_ALLOW_INSECURE_AUTH")
	}
	s.log.Info("smtp submission listening", "addr", ln.Addr().String(), "starttls", s.cfg.TLS != nil,
		"auth", "PLAIN LOGIN", "max_message_bytes", s.cfg.MaxMessageBytes, "relay", relayName(s.relay),
		"max_conns", s.cfg.MaxConns, "max_conns_per_ip", s.cfg.MaxConnsPerIP)
	return s.ServeListener(ln)
}

// ServeListener accepts connections on ln (with the connection caps)
// until Shutdown or Close; it then returns nil. Serve uses it with the
// bound TCP listener; tests may hand it another listener.
func (s *Server) ServeListener(ln net.Listener) error {
	err := s.smtp.Serve(newCapListener(ln, s.cfg.MaxConns, s.cfg.MaxConnsPerIP, s.cfg.Domain, s.log))
	if errors.Is(err, gosmtp.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// ListenAndServe is Listen then Serve.
func (s *Server) ListenAndServe() error { return s.Serve() }

// Shutdown stops accepting connections and waits for open ones to finish
// (a client ends with QUIT or the read timeout); when ctx ends first, the
// remaining connections are closed and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	if ln == nil {
		return nil
	}
	err := s.smtp.Shutdown(ctx)
	_ = ln.Close() // in case Serve was never called
	if errors.Is(err, gosmtp.ErrServerClosed) {
		return nil
	}
	if err != nil && ctx.Err() != nil {
		_ = s.smtp.Close()
	}
	return err
}

// Close closes the listener and every connection at once.
func (s *Server) Close() error {
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	err := s.smtp.Close()
	if ln != nil {
		_ = ln.Close() // in case Serve was never called
	}
	if errors.Is(err, gosmtp.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// errorLog adapts slog to go-smtp's Logger (connection-level errors only;
// they never contain command arguments).
type errorLog struct{ l *slog.Logger }

func (e errorLog) Printf(format string, v ...any) { e.l.Warn(fmt.Sprintf(format, v...)) }
func (e errorLog) Println(v ...any)               { e.l.Warn(fmt.Sprint(v...)) }

func relayName(r Relay) string {
	switch r := r.(type) {
	case *SinkRelay:
		return "sink"
	case *ForwardRelay:
		return "forward " + r.Addr
	default:
		return fmt.Sprintf("%T", r)
	}
}
