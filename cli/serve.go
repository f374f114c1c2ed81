package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"keydesk/handlers"
	"keydesk/models"
	kdsmtp "keydesk/smtp"
	"keydesk/web"
)

// Listening says where serve listens, once every listener is bound.
type Listening struct {
	URL      string // the console and the APIs: http://host:port or https://host:port
	SMTP     string // SMTP submission, host:port; "" when --smtp-addr is off
	Metrics  string // the Prometheus endpoint, http://host:port/metrics; "" when off
	Redirect string // the plain-HTTP redirect listener, host:port; "" when off
}

// Timings of serve.
const (
	usageFlushEvery   = 2 * time.Second  // buffered last use and day counters reach the database
	auditSealEvery    = time.Second      // the newest audit head is signed at most this long after an append
	shutdownGrace     = 15 * time.Second // the listeners drain within this at shutdown
	readHeaderTimeout = 10 * time.Second // every listener: a client has this long to send its headers
)

// httpTimeouts are the console's and the APIs' HTTP server timeouts.
type httpTimeouts struct {
	readHeader, read, write, idle time.Duration
}

// httpServeTimeouts: a client has readHeader to send a request's headers
// (slowloris), read for the whole request with its body; a response must
// be written within write of its request (the audit export moves its own
// deadline as it goes); a keep-alive connection is closed after idle.
var httpServeTimeouts = httpTimeouts{readHeader: readHeaderTimeout, read: 30 * time.Second, write: 60 * time.Second, idle: 120 * time.Second}

func cmdServe(ctx context.Context, in *invocation) error {
	cfg, stderr := in.cfg, in.stderr
	if err := in.parse(nil); err != nil {
		return err
	}
	apiLog, err := web.ParseAPIAccessLog(cfg.APIAccessLog)
	if err != nil {
		return fmt.Errorf("--api-access-log %w", err)
	}
	// The access log (one line a request) is written in batches, not
	// with a system call per line; a 5xx line goes out at once, and what
	// is left is written when serve returns. Other lines are written as
	// they come.
	accessLog := web.NewLogWriter(stderr, 100*time.Millisecond)
	defer accessLog.Close()
	log := newLogger(cfg, stderr)
	// The caches are bounded in entries; the process's memory is bounded
	// by a soft limit the garbage collector keeps to (cli/memlimit.go).
	limit, source, err := applyMemoryLimit(cfg.MemoryLimit, os.Getenv)
	if err != nil {
		return err
	}
	// and, unless GOGC is set, the collector is paced for a small live
	// heap (cli/gcpacing.go).
	_, stopPacing := startGCPacing(os.Getenv)
	defer stopPacing()
	gc := "paced"
	if os.Getenv("GOGC") != "" {
		gc = "GOGC"
	}
	log.Info("memory limit", "bytes", limit, "from", source, "cache_entries", cfg.CacheKeys, "gc", gc)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	store, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer store.Close()
	// Usage (last use, per-day counters) is buffered in memory and flushed
	// every usageFlushEvery; the final flush runs after both listeners have stopped and
	// before the store closes (defers run last-in, first-out).
	usageCtx, stopUsage := context.WithCancel(context.Background())
	usageDone := make(chan struct{})
	go func() {
		defer close(usageDone)
		store.RunUsageFlusher(usageCtx, usageFlushEvery)
	}()
	defer func() {
		stopUsage()
		<-usageDone
	}()
	// The verification and tree caches are filled in bulk at start and
	// their entries in use refreshed before they expire (models/warm.go);
	// stopped before the store closes.
	warmCtx, stopWarm := context.WithCancel(context.Background())
	warmDone := make(chan struct{})
	go func() {
		defer close(warmDone)
		store.KeepCachesWarm(warmCtx)
	}()
	defer func() {
		stopWarm()
		<-warmDone
	}()
	keys, err := sessionKeys(cfg, log)
	if err != nil {
		return err
	}
	useTLS, err := serveHTTPS(cfg)
	if err != nil {
		return err
	}
	// Listen first so the default base URL names the real port (":0").
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	defer ln.Close()
	if cfg.BaseURL == "" {
		host := cfg.Addr
		if strings.HasSuffix(host, ":0") {
			host = ln.Addr().String()
		}
		cfg.BaseURL = "http://" + host
		if useTLS {
			cfg.BaseURL = "https://" + host
		}
	}
	// One relay (or sink) for every way a message comes in: SMTP and the
	// Send API.
	relay, err := kdsmtp.ParseRelay(cfg.SMTPRelay, log)
	if err != nil {
		return err
	}
	var metrics *web.Metrics
	if cfg.MetricsAddr != "" {
		metrics = web.NewMetrics(store)
	}
	srv, err := web.New(web.Config{
		BaseURL: cfg.BaseURL, SessionKeys: keys, SignupEnabled: cfg.Signup, TrustProxy: cfg.TrustProxy,
		SMTP: smtpInfo(cfg), SessionMax: cfg.SessionMax, Relay: relay, Logger: log, AccessLog: accessLog, APIAccessLog: apiLog, Metrics: metrics,
		MailRelay: mailRelay(cfg, relay),
	}, store)
	if err != nil {
		return err
	}
	handlers.Register(srv)
	smtpSrv, err := newSMTPServer(cfg, store, relay, log)
	if err != nil {
		return err
	}
	if smtpSrv != nil {
		if err := smtpSrv.Listen(); err != nil {
			return err // names the address
		}
		defer smtpSrv.Close()
	}
	var listening Listening
	if smtpSrv != nil {
		listening.SMTP = smtpSrv.Addr().String()
	}
	var metricsSrv *http.Server
	if metrics != nil {
		if smtpSrv != nil {
			registerSMTPMetrics(metrics.Registry, smtpSrv)
		}
		if metricsSrv, listening.Metrics, err = listenMetrics(cfg, metrics, log); err != nil {
			return err
		}
	}
	to := httpServeTimeouts
	if in.opts.timeouts != nil {
		to = *in.opts.timeouts
	}
	hs := &http.Server{Handler: srv.Echo, ReadHeaderTimeout: to.readHeader, ReadTimeout: to.read,
		WriteTimeout: to.write, IdleTimeout: to.idle,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)} // TLS handshake noise from scanners
	scheme := "http"
	var redirect *http.Server
	if useTLS {
		tlsCfg, err := smtpTLS(cfg, log) // the same certificate as SMTP STARTTLS
		if err != nil {
			return err
		}
		hs.TLSConfig, scheme = tlsCfg.Clone(), "https"
		if cfg.HTTPRedirect != "" {
			if redirect, listening.Redirect, err = listenRedirect(cfg, log); err != nil {
				return err
			}
		}
	}
	// Heads are signed at most a second after entries are appended, after
	// the entries since the last head verify; the last one at shutdown.
	// It stops after both listeners have drained (defers run last).
	sealCtx, stopSeal := context.WithCancel(context.Background())
	sealDone := make(chan struct{})
	go func() {
		defer close(sealDone)
		store.RunAuditSealer(sealCtx, auditSealEvery)
	}()
	defer func() {
		stopSeal()
		<-sealDone
	}()
	// The periodic re-verification (from the newest verified head) stops
	// before the store closes.
	checkCtx, stopCheck := context.WithCancel(ctx)
	checkDone := make(chan struct{})
	go func() {
		defer close(checkDone)
		store.RunAuditChecker(checkCtx, cfg.AuditEvery)
	}()
	defer func() {
		stopCheck()
		<-checkDone
	}()
	listening.URL = scheme + "://" + ln.Addr().String()
	log.Info("keydesk listening", "url", listening.URL, "db_engine", store.Engine(), "signup", cfg.Signup)
	errc := make(chan error, 1)
	go func() {
		// Its connections keep the timeouts' deadlines in memory and a
		// sweeper enforces them, a tenth of the shortest late at most,
		// instead of a timer at every request (web.LazyDeadlines, issue
		// 13 #1).
		lazy := web.LazyDeadlinesEvery(ln, web.SweepFor(to.readHeader, to.read, to.write, to.idle))
		if useTLS {
			errc <- hs.ServeTLS(lazy, "", "")
			return
		}
		errc <- hs.Serve(lazy)
	}()
	var smtpErrc chan error // nil (never ready) when SMTP is off
	if smtpSrv != nil {
		smtpErrc = make(chan error, 1)
		go func() { smtpErrc <- smtpSrv.Serve() }()
	}
	if in.opts.onListening != nil {
		in.opts.onListening(listening)
	}
	var runErr error
	select {
	case runErr = <-errc:
	case err := <-smtpErrc:
		runErr = fmt.Errorf("smtp listener stopped: %w", err)
		if err == nil {
			runErr = errors.New("smtp listener stopped")
		}
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	// Both listeners drain at once, within the same deadline.
	smtpShut := make(chan error, 1)
	go func() {
		if smtpSrv == nil {
			smtpShut <- nil
			return
		}
		smtpShut <- smtpSrv.Shutdown(sctx)
	}()
	httpErr := hs.Shutdown(sctx)
	if redirect != nil {
		httpErr = errors.Join(httpErr, redirect.Shutdown(sctx))
	}
	if metricsSrv != nil {
		httpErr = errors.Join(httpErr, metricsSrv.Shutdown(sctx))
	}
	if err := <-smtpShut; err != nil {
		httpErr = errors.Join(httpErr, fmt.Errorf("smtp shutdown: %w", err))
	}
	return errors.Join(runErr, httpErr)
}

// listenMetrics serves the Prometheus exposition on --metrics-addr, apart
// from the public listener so it can stay on a private interface.
func listenMetrics(cfg *config, m *web.Metrics, log *slog.Logger) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		return nil, "", fmt.Errorf("metrics: listen on %s: %w", cfg.MetricsAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: readHeaderTimeout, WriteTimeout: 30 * time.Second}
	url := "http://" + ln.Addr().String() + "/metrics"
	log.Info("metrics listening", "url", url)
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "err", err)
		}
	}()
	return hs, url, nil
}

// registerSMTPMetrics exposes the SMTP server's counters.
func registerSMTPMetrics(reg *prometheus.Registry, s *kdsmtp.Server) {
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "keydesk_smtp_sessions_total", Help: "SMTP sessions opened (STARTTLS starts a new one)."},
			func() float64 { return float64(s.Stats().Sessions) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "keydesk_smtp_messages_relayed_total", Help: "SMTP messages handed to the relay."},
			func() float64 { return float64(s.Stats().MessagesRelayed) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "keydesk_smtp_messages_refused_total", Help: "SMTP messages the relay refused or failed."},
			func() float64 { return float64(s.Stats().MessagesRefused) }),
	)
}

// mailRelay is where keydesk's own messages (invitations, reset links) go:
// the relay when KEYDESK_SMTP_RELAY names one, nothing when it is the sink
// (a link "sent" to the sink would reach no one; the inviter copies it).
func mailRelay(cfg *config, relay models.Relay) models.Relay {
	if strings.TrimSpace(cfg.SMTPRelay) == "" {
		return nil
	}
	return relay
}
