// Command keydesk is a self-hosted console for the API keys and secret keys
// of an e-mail sending platform. See README.md.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"keydesk/handlers"
	"keydesk/models"
	kdsmtp "keydesk/smtp"
	"keydesk/views"
	"keydesk/web"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// config is every setting, read once from flags with environment fallbacks.
type config struct {
	Addr         string
	DB           string
	SessionKeys  string
	BaseURL      string
	Signup       bool
	RotationDays int
	SessionIdle  time.Duration
	SessionMax   time.Duration
	HashSlots    int
	CacheKeys    int
	TrustProxy   bool
	SMTPAddr     string
	SMTPHost     string
	TLSCert      string
	TLSKey       string
	HTTPS        string
	HTTPRedirect string
	SMTPInsecure bool
	SMTPMaxBytes int64
	SMTPRelay    string
	SMTPMaxConns int
	SMTPMaxPerIP int
	SMTPSpoolDir string
	LogLevel     string
	AuditKey     string
	AuditEvery   time.Duration
	MetricsAddr  string
	AuditAnchor  string
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func envBool(name string, def bool) bool {
	if v, err := strconv.ParseBool(env(name, "")); err == nil {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(env(name, "")); err == nil {
		return v
	}
	return def
}

func envInt64(name string, def int64) int64 {
	if v, err := strconv.ParseInt(env(name, ""), 10, 64); err == nil {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(env(name, "")); err == nil {
		return v
	}
	return def
}

// addGlobalFlags registers the settings every command shares.
func addGlobalFlags(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.Addr, "addr", env("KEYDESK_ADDR", "127.0.0.1:8080"), "listen address for the console and REST API (KEYDESK_ADDR)")
	fs.StringVar(&c.DB, "db", env("KEYDESK_DB", "keydesk.db"), "database: a file path for SQLite, or postgres://… for PostgreSQL (KEYDESK_DB)")
	fs.StringVar(&c.SessionKeys, "session-keys", env("KEYDESK_SESSION_KEYS", ""), "session cookie keys, newest first: HASHHEX:BLOCKHEX[,HASHHEX:BLOCKHEX…]; generated and saved beside the database when empty (KEYDESK_SESSION_KEYS)")
	fs.StringVar(&c.BaseURL, "base-url", env("KEYDESK_BASE_URL", ""), "public URL; https:// turns on Secure cookies and HSTS (KEYDESK_BASE_URL; default http://ADDR)")
	fs.BoolVar(&c.Signup, "signup", envBool("KEYDESK_SIGNUP", true), "allow open sign-up (KEYDESK_SIGNUP)")
	fs.IntVar(&c.RotationDays, "rotation-days", envInt("KEYDESK_ROTATION_DAYS", 90), "flag secrets older than this many days (KEYDESK_ROTATION_DAYS)")
	fs.DurationVar(&c.SessionIdle, "session-idle", envDuration("KEYDESK_SESSION_IDLE", 30*time.Minute), "sign out after this much inactivity (KEYDESK_SESSION_IDLE)")
	fs.DurationVar(&c.SessionMax, "session-max", envDuration("KEYDESK_SESSION_MAX", 12*time.Hour), "absolute session lifetime (KEYDESK_SESSION_MAX)")
	fs.IntVar(&c.HashSlots, "password-hashes", envInt("KEYDESK_PASSWORD_HASHES", runtime.NumCPU()), "password hashes (argon2id, 19 MiB each) run at once; more wait up to 2 s, then get 503 (KEYDESK_PASSWORD_HASHES)")
	fs.IntVar(&c.CacheKeys, "cache-keys", envInt("KEYDESK_CACHE_KEYS", models.DefaultCacheEntries), "most entries each in-memory cache holds (verified API keys; account trees); past it the least recently used are evicted (KEYDESK_CACHE_KEYS)")
	fs.BoolVar(&c.TrustProxy, "trust-proxy", envBool("KEYDESK_TRUST_PROXY", false), "take the client IP from X-Forwarded-For; only behind a proxy that sets it (KEYDESK_TRUST_PROXY)")
	fs.StringVar(&c.SMTPAddr, "smtp-addr", env("KEYDESK_SMTP_ADDR", "127.0.0.1:2525"), "SMTP submission listen address, also shown to users; \"off\" disables the listener (KEYDESK_SMTP_ADDR)")
	fs.StringVar(&c.SMTPHost, "smtp-host", env("KEYDESK_SMTP_HOST", ""), "SMTP host name shown to users (KEYDESK_SMTP_HOST; default: the base URL's host)")
	fs.StringVar(&c.TLSCert, "tls-cert", env("KEYDESK_TLS_CERT", ""), "PEM certificate (chain) for SMTP STARTTLS and HTTPS; with --tls-key. When both are empty a self-signed ECDSA certificate is generated once and saved beside the database (KEYDESK_TLS_CERT)")
	fs.StringVar(&c.TLSKey, "tls-key", env("KEYDESK_TLS_KEY", ""), "PEM private key for --tls-cert (KEYDESK_TLS_KEY)")
	fs.StringVar(&c.HTTPS, "https", env("KEYDESK_HTTPS", "auto"), "serve the console, REST and Send APIs over HTTPS on --addr: auto = when --tls-cert/--tls-key are set; on = always (with the self-signed certificate when they are not: development); off = plain HTTP, e.g. behind a TLS proxy (KEYDESK_HTTPS)")
	fs.StringVar(&c.HTTPRedirect, "http-redirect-addr", env("KEYDESK_HTTP_REDIRECT_ADDR", ""), "with HTTPS, also listen for plain HTTP here and redirect every request to the HTTPS base URL (308); empty = no redirect listener (KEYDESK_HTTP_REDIRECT_ADDR)")
	fs.BoolVar(&c.SMTPInsecure, "smtp-allow-insecure-auth", envBool("KEYDESK_SMTP_ALLOW_INSECURE_AUTH", false), "accept SMTP AUTH without STARTTLS: secrets cross the network in clear text; local testing only (KEYDESK_SMTP_ALLOW_INSECURE_AUTH)")
	fs.Int64Var(&c.SMTPMaxBytes, "smtp-max-bytes", envInt64("KEYDESK_SMTP_MAX_BYTES", kdsmtp.DefaultMaxMessageBytes), "largest SMTP message accepted, in bytes; larger ones get 552 (KEYDESK_SMTP_MAX_BYTES)")
	fs.StringVar(&c.SMTPRelay, "smtp-relay", env("KEYDESK_SMTP_RELAY", ""), "where accepted SMTP messages go: empty = a sink that logs metadata only and delivers nothing; smtp://host:port = forward to that server (KEYDESK_SMTP_RELAY)")
	fs.IntVar(&c.SMTPMaxConns, "smtp-max-conns", envInt("KEYDESK_SMTP_MAX_CONNS", kdsmtp.DefaultMaxConns), "most SMTP connections open at once; one more is answered 421 and closed; -1 = no cap (KEYDESK_SMTP_MAX_CONNS)")
	fs.IntVar(&c.SMTPMaxPerIP, "smtp-max-conns-per-ip", envInt("KEYDESK_SMTP_MAX_CONNS_PER_IP", kdsmtp.DefaultMaxConnsPerIP), "most SMTP connections open at once from one client address; one more is answered 421 and closed; -1 = no cap (KEYDESK_SMTP_MAX_CONNS_PER_IP)")
	fs.StringVar(&c.SMTPSpoolDir, "smtp-spool-dir", env("KEYDESK_SMTP_SPOOL_DIR", ""), "folder for the temporary files of SMTP messages larger than 64 KiB while they are relayed (unlinked at once, so never visible); default: the system's temporary folder (KEYDESK_SMTP_SPOOL_DIR)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", env("KEYDESK_METRICS_ADDR", ""), "serve Prometheus metrics at /metrics on this separate address (keep it private); empty = off (KEYDESK_METRICS_ADDR)")
	fs.StringVar(&c.AuditKey, "audit-key", env("KEYDESK_AUDIT_KEY", ""), "hex key (at least 32 bytes) that links audit entries and signs their heads; keep it outside the database. After a rotation: NEWHEX,OLDHEX (older keys verify older entries). Generated and saved beside the database when empty (KEYDESK_AUDIT_KEY)")
	fs.DurationVar(&c.AuditEvery, "audit-every", envDuration("KEYDESK_AUDIT_EVERY", 5*time.Minute), "how often serve re-verifies the audit log from the newest verified head (KEYDESK_AUDIT_EVERY)")
	fs.StringVar(&c.AuditAnchor, "audit-anchor", env("KEYDESK_AUDIT_ANCHOR", ""), "append-only file that signed audit heads are written to, outside the database (KEYDESK_AUDIT_ANCHOR; default keydesk.audit-anchor beside the SQLite database, or in the working directory)")
	fs.StringVar(&c.LogLevel, "log-level", env("KEYDESK_LOG_LEVEL", "info"), "debug, info, warn or error (KEYDESK_LOG_LEVEL)")
}

const usage = `keydesk — API key management console

Usage:
  keydesk [flags] [command]

Commands:
  serve            run the console (the default)
  migrate          apply pending database migrations and exit
  account create   --name N --email E --password-stdin [--plan free|essential|premium]
                   create an account, its owner and master key; prints JSON with
                   the master api_key and secret_key (shown once)
  user create      --email E --role support|auditor --password-stdin
                   create a staff user; prints JSON
  audit verify     [--full] [--anchor FILE] check the audit chain under the key,
                   the signed heads in the database and the anchor; prints a
                   JSON summary, exits 1 naming the first problem. Incremental
                   from the newest signed head unless --full
  audit rotate-key hand the audit chain over to a new key (a signed entry);
                   with the key file, generates the new key and keeps the old

Flags (each also read from the environment variable in brackets):
`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var cfg config
	top := flag.NewFlagSet("keydesk", flag.ContinueOnError)
	top.SetOutput(stderr)
	addGlobalFlags(top, &cfg)
	top.Usage = func() {
		fmt.Fprint(stderr, usage)
		top.PrintDefaults()
	}
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	rest := top.Args()
	cmd := "serve"
	if len(rest) > 0 {
		cmd, rest = rest[0], rest[1:]
		if (cmd == "account" || cmd == "user") && len(rest) > 0 && rest[0] == "create" {
			cmd, rest = cmd+" create", rest[1:]
		}
		if cmd == "audit" && len(rest) > 0 && (rest[0] == "verify" || rest[0] == "rotate-key") {
			cmd, rest = "audit "+rest[0], rest[1:]
		}
	}
	if group, ok := commandGroups[cmd]; ok {
		// "keydesk account" alone, or with --help: the help of what the
		// group holds.
		run(ctx, []string{cmd, group, "--help"}, stdin, stdout, stderr)
		if len(rest) > 0 && (rest[0] == "-h" || rest[0] == "-help" || rest[0] == "--help" || rest[0] == "help") {
			return 0
		}
		return 2
	}
	var err error
	switch cmd {
	case "serve":
		err = cmdServe(ctx, &cfg, rest, stderr)
	case "migrate":
		err = cmdMigrate(ctx, &cfg, rest, stdout, stderr)
	case "account create":
		err = cmdAccountCreate(ctx, &cfg, rest, stdin, stdout, stderr)
	case "user create":
		err = cmdUserCreate(ctx, &cfg, rest, stdin, stdout, stderr)
	case "audit verify":
		err = cmdAuditVerify(ctx, &cfg, rest, stdout, stderr)
	case "audit rotate-key":
		err = cmdAuditRotateKey(ctx, &cfg, rest, stdout, stderr)
	case "help":
		top.Usage()
		return 0
	default:
		fmt.Fprintf(stderr, "keydesk: unknown command %q (see keydesk --help)\n", strings.Join(append([]string{cmd}, rest...), " "))
		return 2
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var ve *models.ValidationError
		if errors.As(err, &ve) {
			for field, msg := range ve.Fields {
				fmt.Fprintf(stderr, "keydesk: %s: %s\n", field, msg)
			}
		} else {
			fmt.Fprintf(stderr, "keydesk: %v\n", err)
		}
		return 1
	}
	return 0
}

// commandGroups are the commands of two words, by their first word.
var commandGroups = map[string]string{"account": "create", "user": "create", "audit": "verify"}

// commandSummaries say what each command does, for its own --help.
var commandSummaries = map[string]string{
	"migrate":          "apply pending database migrations and exit; prints JSON",
	"account create":   "create an account, its owner and master key; prints JSON with the master api_key and secret_key (shown once)",
	"user create":      "create a staff user (support or auditor); prints JSON",
	"audit verify":     "check the audit chain under the key, the signed heads and the anchor (incremental from the newest signed head unless --full); prints a JSON summary, exits 1 naming the first problem",
	"audit rotate-key": "hand the audit chain over to a new key with a signed entry; with the key file, generates the new key and keeps the old ones",
}

// storeFlags are the global flags a command that opens the database uses;
// its --help lists them beside its own.
var storeFlags = []string{"db", "log-level"}

// subFlags parses a command's own flags, accepting the global ones too.
// Its --help shows only its own flags and the database ones (serve, whose
// flags are the global ones, shows them all).
func subFlags(name string, cfg *config, args []string, stderr io.Writer, def func(fs *flag.FlagSet)) error {
	fs := flag.NewFlagSet("keydesk "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	snapshot := *cfg
	addGlobalFlags(fs, cfg)
	// Keep what the top level parsed as the defaults here.
	*cfg = snapshot
	fs.VisitAll(func(f *flag.Flag) { _ = f.Value.Set(flagValue(&snapshot, f.Name, f.DefValue)) })
	own := flag.NewFlagSet("keydesk "+name, flag.ContinueOnError)
	own.SetOutput(stderr)
	if def != nil {
		def(fs)
		def(own)
	}
	if summary, ok := commandSummaries[name]; ok {
		for _, n := range storeFlags {
			if f := fs.Lookup(n); f != nil {
				own.Var(f.Value, f.Name, f.Usage)
			}
		}
		fs.Usage = func() {
			fmt.Fprintf(stderr, "Usage:\n  keydesk %s [flags]\n      %s\n\nFlags:\n", name, summary)
			own.PrintDefaults()
			fmt.Fprintln(stderr, "\nThe other global flags (keydesk --help) are accepted too.")
		}
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// flagValue returns the already-parsed global value of a flag.
func flagValue(c *config, name, def string) string {
	switch name {
	case "addr":
		return c.Addr
	case "db":
		return c.DB
	case "session-keys":
		return c.SessionKeys
	case "base-url":
		return c.BaseURL
	case "signup":
		return strconv.FormatBool(c.Signup)
	case "rotation-days":
		return strconv.Itoa(c.RotationDays)
	case "session-idle":
		return c.SessionIdle.String()
	case "session-max":
		return c.SessionMax.String()
	case "cache-keys":
		return strconv.Itoa(c.CacheKeys)
	case "trust-proxy":
		return strconv.FormatBool(c.TrustProxy)
	case "smtp-addr":
		return c.SMTPAddr
	case "smtp-host":
		return c.SMTPHost
	case "tls-cert":
		return c.TLSCert
	case "tls-key":
		return c.TLSKey
	case "https":
		return c.HTTPS
	case "http-redirect-addr":
		return c.HTTPRedirect
	case "metrics-addr":
		return c.MetricsAddr
	case "smtp-allow-insecure-auth":
		return strconv.FormatBool(c.SMTPInsecure)
	case "smtp-max-bytes":
		return strconv.FormatInt(c.SMTPMaxBytes, 10)
	case "smtp-relay":
		return c.SMTPRelay
	case "smtp-max-conns":
		return strconv.Itoa(c.SMTPMaxConns)
	case "smtp-max-conns-per-ip":
		return strconv.Itoa(c.SMTPMaxPerIP)
	case "smtp-spool-dir":
		return c.SMTPSpoolDir
	case "log-level":
		return c.LogLevel
	case "audit-key":
		return c.AuditKey
	case "audit-every":
		return c.AuditEvery.String()
	case "audit-anchor":
		return c.AuditAnchor
	}
	return def
}

func newLogger(cfg *config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl}))
}

func openStore(ctx context.Context, cfg *config, log *slog.Logger) (*models.Store, error) {
	if cfg.RotationDays < 1 {
		return nil, fmt.Errorf("--rotation-days must be at least 1")
	}
	if cfg.CacheKeys < 1 {
		return nil, fmt.Errorf("--cache-keys must be at least 1")
	}
	auditKeys, err := loadAuditKey(cfg, log)
	if err != nil {
		return nil, err
	}
	store, err := models.Open(ctx, cfg.DB, models.Options{
		SessionIdle: cfg.SessionIdle, SessionMax: cfg.SessionMax, RotationDays: cfg.RotationDays, Logger: log,
		AuditKey: auditKeys[0], AuditOldKeys: auditKeys[1:], AuditAnchor: auditAnchor(cfg),
		HashConcurrency: cfg.HashSlots, CacheEntries: cfg.CacheKeys,
	})
	if err != nil {
		return nil, err
	}
	applied, err := store.Migrate(ctx)
	if err != nil {
		store.Close()
		return nil, err
	}
	if len(applied) > 0 {
		log.Info("database migrated", "engine", store.Engine(), "applied", applied, "version", models.SchemaVersion())
	}
	return store, nil
}

func cmdServe(ctx context.Context, cfg *config, args []string, stderr io.Writer) error {
	if err := subFlags("serve", cfg, args, stderr, nil); err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	store, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer store.Close()
	// Usage (last use, per-day counters) is buffered in memory and flushed
	// every 2 s; the final flush runs after both listeners have stopped and
	// before the store closes (defers run last-in, first-out).
	usageCtx, stopUsage := context.WithCancel(context.Background())
	usageDone := make(chan struct{})
	go func() {
		defer close(usageDone)
		store.RunUsageFlusher(usageCtx, 2*time.Second)
	}()
	defer func() {
		stopUsage()
		<-usageDone
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
		SMTP: smtpInfo(cfg), SessionMax: cfg.SessionMax, Relay: relay, Logger: log, Metrics: metrics,
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
	var metricsSrv *http.Server
	if metrics != nil {
		if smtpSrv != nil {
			registerSMTPMetrics(metrics.Registry, smtpSrv)
		}
		if metricsSrv, err = listenMetrics(cfg, metrics, log); err != nil {
			return err
		}
	}
	hs := &http.Server{Handler: srv.Echo, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second,
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
			if redirect, err = listenRedirect(cfg, log); err != nil {
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
		store.RunAuditSealer(sealCtx, time.Second)
	}()
	defer func() {
		stopSeal()
		<-sealDone
	}()
	go auditJob(ctx, store, cfg.AuditEvery, log)
	log.Info("keydesk listening", "url", scheme+"://"+ln.Addr().String(), "db_engine", store.Engine(), "signup", cfg.Signup)
	errc := make(chan error, 1)
	go func() {
		if useTLS {
			errc <- hs.ServeTLS(ln, "", "")
			return
		}
		errc <- hs.Serve(ln)
	}()
	var smtpErrc chan error // nil (never ready) when SMTP is off
	if smtpSrv != nil {
		smtpErrc = make(chan error, 1)
		go func() { smtpErrc <- smtpSrv.Serve() }()
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
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
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
func listenMetrics(cfg *config, m *web.Metrics, log *slog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", cfg.MetricsAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	log.Info("metrics listening", "url", "http://"+ln.Addr().String()+"/metrics")
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "err", err)
		}
	}()
	return hs, nil
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

// serveHTTPS reads --https: auto serves HTTPS when a certificate is given.
func serveHTTPS(cfg *config) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(cfg.HTTPS)) {
	case "auto", "":
		return cfg.TLSCert != "" && cfg.TLSKey != "", nil
	case "on", "true", "1":
		return true, nil
	case "off", "false", "0":
		if cfg.HTTPRedirect != "" {
			return false, errors.New("--http-redirect-addr needs HTTPS (--https on, or --tls-cert and --tls-key)")
		}
		return false, nil
	}
	return false, fmt.Errorf("--https %q: use auto, on or off", cfg.HTTPS)
}

// listenRedirect serves plain HTTP on --http-redirect-addr, sending every
// request to the same path on the HTTPS base URL (308 keeps the method
// and body, so an API client's POST is repeated over HTTPS; the target
// host is the base URL's, never the request's Host header).
func listenRedirect(cfg *config, log *slog.Logger) (*http.Server, error) {
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || base.Scheme != "https" || base.Host == "" {
		return nil, fmt.Errorf("--http-redirect-addr needs an https:// base URL, got %q", cfg.BaseURL)
	}
	ln, err := net.Listen("tcp", cfg.HTTPRedirect)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.HTTPRedirect, err)
	}
	rs := &http.Server{ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://"+base.Host+r.URL.RequestURI(), http.StatusPermanentRedirect)
		})}
	log.Info("http redirect listening", "addr", ln.Addr().String(), "to", "https://"+base.Host)
	go func() {
		if err := rs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http redirect listener stopped", "err", err)
		}
	}()
	return rs, nil
}

// newSMTPServer builds the SMTP submission listener from the settings, or
// returns nil when --smtp-addr is "off".
func newSMTPServer(cfg *config, store *models.Store, relay models.Relay, log *slog.Logger) (*kdsmtp.Server, error) {
	if strings.EqualFold(strings.TrimSpace(cfg.SMTPAddr), "off") {
		log.Info("smtp submission disabled (--smtp-addr off)")
		return nil, nil
	}
	tlsCfg, err := smtpTLS(cfg, log)
	if err != nil {
		return nil, err
	}
	return kdsmtp.New(kdsmtp.Config{
		Addr: cfg.SMTPAddr, TLS: tlsCfg, AllowInsecureAuth: cfg.SMTPInsecure, MaxMessageBytes: cfg.SMTPMaxBytes,
		Domain: smtpInfo(cfg).Host, Relay: relay, Logger: log,
		MaxConns: cfg.SMTPMaxConns, MaxConnsPerIP: cfg.SMTPMaxPerIP, SpoolDir: cfg.SMTPSpoolDir,
	}, store)
}

// smtpTLS loads --tls-cert/--tls-key or, when both are empty, loads or
// creates a self-signed certificate beside the database (the key 0600).
func smtpTLS(cfg *config, log *slog.Logger) (*tls.Config, error) {
	switch {
	case cfg.TLSCert != "" && cfg.TLSKey != "":
		pair, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("load TLS certificate %s and key %s: %w", cfg.TLSCert, cfg.TLSKey, err)
		}
		return kdsmtp.TLSConfig(pair), nil
	case cfg.TLSCert != "" || cfg.TLSKey != "":
		return nil, errors.New("set both --tls-cert and --tls-key (KEYDESK_TLS_CERT, KEYDESK_TLS_KEY), or neither for a self-signed certificate")
	}
	certPath, keyPath := keyFile(cfg, "keydesk.smtp-cert.pem"), keyFile(cfg, "keydesk.smtp-key.pem")
	certPEM, certErr := os.ReadFile(certPath)
	keyPEM, keyErr := os.ReadFile(keyPath)
	switch {
	case errors.Is(certErr, os.ErrNotExist) && errors.Is(keyErr, os.ErrNotExist):
		hosts := []string{smtpInfo(cfg).Host}
		for _, addr := range []string{cfg.SMTPAddr, cfg.Addr} { // the HTTPS listener uses it too
			if h, _, err := net.SplitHostPort(addr); err == nil && h != "" && !slices.Contains(hosts, h) {
				hosts = append(hosts, h)
			}
		}
		var err error
		certPEM, keyPEM, err = kdsmtp.SelfSignedCertificate(hosts...)
		if err != nil {
			return nil, fmt.Errorf("generate the SMTP certificate: %w", err)
		}
		if err := writeNew(keyPath, string(keyPEM)); err != nil {
			return nil, fmt.Errorf("save the SMTP TLS key: %w", err)
		}
		if err := writeNew(certPath, string(certPEM)); err != nil {
			return nil, fmt.Errorf("save the SMTP TLS certificate: %w", err)
		}
		_ = os.Chmod(certPath, 0o644) // public: clients may need to trust it
		log.Info("generated a self-signed certificate for SMTP STARTTLS and saved it (key with 0600 permissions); clients must trust it explicitly. Set KEYDESK_TLS_CERT and KEYDESK_TLS_KEY to use a real one",
			"cert", certPath, "key", keyPath, "hosts", hosts)
	case certErr != nil:
		return nil, fmt.Errorf("read the SMTP certificate: %w (remove %s to generate a new pair)", certErr, keyPath)
	case keyErr != nil:
		return nil, fmt.Errorf("read the SMTP TLS key: %w (remove %s to generate a new pair)", keyErr, certPath)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("SMTP certificate %s and key %s: %w", certPath, keyPath, err)
	}
	return kdsmtp.TLSConfig(pair), nil
}

func smtpInfo(cfg *config) views.SMTPInfo {
	if strings.EqualFold(cfg.SMTPAddr, "off") {
		return views.SMTPInfo{Off: true}
	}
	host, portStr, err := net.SplitHostPort(cfg.SMTPAddr)
	port, _ := strconv.Atoi(portStr)
	if err != nil || port == 0 {
		port = 2525
	}
	if cfg.SMTPHost != "" {
		host = cfg.SMTPHost
	} else if u, err := url.Parse(cfg.BaseURL); err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return views.SMTPInfo{Host: host, Port: port, TLSMode: "STARTTLS"}
}

// sessionKeys parses KEYDESK_SESSION_KEYS or, when unset, loads or creates a
// key file (0600) beside the SQLite database.
func sessionKeys(cfg *config, log *slog.Logger) ([][]byte, error) {
	spec := cfg.SessionKeys
	if spec == "" {
		path := keyFile(cfg, "keydesk.session-keys")
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			spec = strings.TrimSpace(string(b))
		case errors.Is(err, os.ErrNotExist):
			hash, block := make([]byte, 64), make([]byte, 32)
			if _, err := rand.Read(hash); err != nil {
				return nil, err
			}
			if _, err := rand.Read(block); err != nil {
				return nil, err
			}
			spec = hex.EncodeToString(hash) + ":" + hex.EncodeToString(block)
			if err := writeNew(path, spec+"\n"); err != nil {
				return nil, fmt.Errorf("save session keys: %w", err)
			}
			log.Info("generated session keys and saved them with 0600 permissions; set KEYDESK_SESSION_KEYS to share them between instances", "file", path)
		default:
			return nil, fmt.Errorf("read session keys: %w", err)
		}
	}
	var keys [][]byte
	for _, pair := range strings.Split(spec, ",") {
		hs, bs, ok := strings.Cut(strings.TrimSpace(pair), ":")
		hash, err1 := hex.DecodeString(hs)
		block, err2 := hex.DecodeString(bs)
		if !ok || err1 != nil || err2 != nil || len(hash) < 32 || (len(block) != 16 && len(block) != 24 && len(block) != 32) {
			return nil, fmt.Errorf("session keys: each entry must be HASHHEX:BLOCKHEX with a hash key of at least 32 bytes and an AES block key of 16, 24 or 32 bytes")
		}
		keys = append(keys, hash, block)
	}
	return keys, nil
}

func cmdMigrate(ctx context.Context, cfg *config, args []string, stdout, stderr io.Writer) error {
	if err := subFlags("migrate", cfg, args, stderr, nil); err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	auditKeys, err := loadAuditKey(cfg, log)
	if err != nil {
		return err
	}
	store, err := models.Open(ctx, cfg.DB, models.Options{Logger: log, AuditKey: auditKeys[0], AuditOldKeys: auditKeys[1:], AuditAnchor: auditAnchor(cfg)})
	if err != nil {
		return err
	}
	defer store.Close()
	applied, err := store.Migrate(ctx)
	if err != nil {
		return err
	}
	if applied == nil {
		applied = []int{}
	}
	return json.NewEncoder(stdout).Encode(map[string]any{"engine": store.Engine(), "applied": applied, "version": models.SchemaVersion()})
}

// readPassword reads one line from stdin (for --password-stdin).
func readPassword(stdin io.Reader) (string, error) {
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", fmt.Errorf("no password on stdin")
	}
	return pw, nil
}

func cmdAccountCreate(ctx context.Context, cfg *config, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var name, email, plan string
	var pwStdin bool
	err := subFlags("account create", cfg, args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&name, "name", "", "account name (required)")
		fs.StringVar(&email, "email", "", "owner's e-mail (required)")
		fs.StringVar(&plan, "plan", "free", "free, essential or premium")
		fs.BoolVar(&pwStdin, "password-stdin", false, "read the owner's password from stdin (required)")
	})
	if err != nil {
		return err
	}
	if !pwStdin {
		return fmt.Errorf("--password-stdin is required (passwords are never taken as arguments)")
	}
	p, ok := models.ParsePlan(plan)
	if !ok {
		return fmt.Errorf("--plan must be free, essential or premium")
	}
	pw, err := readPassword(stdin)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg, newLogger(cfg, stderr))
	if err != nil {
		return err
	}
	defer sealAndClose(ctx, store, stderr)
	res, err := store.CreateAccount(ctx, models.SignUpInput{AccountName: name, Email: email, Password: pw, Plan: p}, models.SystemActor(), models.ActionAccountCreated)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(map[string]any{
		"account_id": res.Account.ID, "name": res.Account.Name, "plan": res.Account.Plan,
		"user_id": res.User.ID, "email": res.User.Email, "role": res.User.Role,
		"api_key": res.Secret.APIKey, "secret_key": res.Secret.Secret,
	})
}

func cmdUserCreate(ctx context.Context, cfg *config, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var email, role string
	var pwStdin bool
	err := subFlags("user create", cfg, args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&email, "email", "", "e-mail (required)")
		fs.StringVar(&role, "role", "", "support or auditor (required)")
		fs.BoolVar(&pwStdin, "password-stdin", false, "read the password from stdin (required)")
	})
	if err != nil {
		return err
	}
	if !pwStdin {
		return fmt.Errorf("--password-stdin is required (passwords are never taken as arguments)")
	}
	r := models.Role(role)
	if !r.IsStaff() {
		return fmt.Errorf("--role must be support or auditor")
	}
	pw, err := readPassword(stdin)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg, newLogger(cfg, stderr))
	if err != nil {
		return err
	}
	defer sealAndClose(ctx, store, stderr)
	u, err := store.CreateStaffUser(ctx, email, pw, r, models.SystemActor())
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(map[string]any{"user_id": u.ID, "email": u.Email, "role": u.Role})
}

// keyFile is where a generated key is kept: beside the SQLite file, or in
// the working directory for PostgreSQL.
func keyFile(cfg *config, name string) string {
	dir := "."
	if !models.IsPostgresDSN(cfg.DB) {
		dir = filepath.Dir(cfg.DB)
	}
	return filepath.Join(dir, name)
}

// loadAuditKey parses KEYDESK_AUDIT_KEY or loads/creates keydesk.audit-key
// (0600): the current key first, then older ones (NEW,OLD after a
// rotation). The key links entries and signs heads, so it must not live in
// the database.
func loadAuditKey(cfg *config, log *slog.Logger) ([][]byte, error) {
	spec := strings.TrimSpace(cfg.AuditKey)
	if spec == "" {
		path := keyFile(cfg, "keydesk.audit-key")
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			spec = strings.TrimSpace(string(b))
		case errors.Is(err, os.ErrNotExist):
			k := make([]byte, 32)
			if _, err := rand.Read(k); err != nil {
				return nil, err
			}
			spec = hex.EncodeToString(k)
			if err := writeNew(path, spec+"\n"); err != nil {
				return nil, fmt.Errorf("save audit key: %w", err)
			}
			log.Info("generated the audit key and saved it with 0600 permissions; back it up apart from the database, and set KEYDESK_AUDIT_KEY on every instance", "file", path)
		default:
			return nil, fmt.Errorf("read audit key: %w", err)
		}
	}
	var keys [][]byte
	for _, part := range strings.Split(spec, ",") {
		k, err := hex.DecodeString(strings.TrimSpace(part))
		if err != nil || len(k) < 32 {
			return nil, fmt.Errorf("audit key: must be at least 32 bytes, hex-encoded (NEWHEX,OLDHEX after a rotation)")
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// auditAnchor is the anchor file: KEYDESK_AUDIT_ANCHOR, else beside the
// SQLite database or in the working directory.
func auditAnchor(cfg *config) string {
	if cfg.AuditAnchor != "" {
		return cfg.AuditAnchor
	}
	return keyFile(cfg, "keydesk.audit-anchor")
}

// writeNew creates path with 0600 permissions; it never overwrites.
func writeNew(path, content string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// auditJob re-verifies the audit log periodically from the newest verified
// head (incremental, one instance at a time); the audit page shows the
// latest result. Signing heads is RunAuditSealer's job (every second).
func auditJob(ctx context.Context, store *models.Store, every time.Duration, log *slog.Logger) {
	if every <= 0 {
		every = 5 * time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		r, ran, err := store.CheckAudit(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error("audit verification failed to run", "err", err)
		case err == nil && ran && !r.OK:
			log.Error("AUDIT LOG DOES NOT VERIFY", "entry", r.BadEntry, "problem", r.Problem)
		case err == nil && ran:
			log.Debug("audit log verified", "from", r.From, "head", r.Head, "entries", r.Entries)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sealAndClose signs the audit head after a CLI command that wrote entries
// (verify first: a tampered log is reported, never signed), then closes.
func sealAndClose(ctx context.Context, store *models.Store, stderr io.Writer) {
	if _, err := store.SealAuditHead(ctx, "cli"); err != nil {
		fmt.Fprintf(stderr, "keydesk: audit head not signed: %v\n", err)
	}
	store.Close()
}

func cmdAuditVerify(ctx context.Context, cfg *config, args []string, stdout, stderr io.Writer) error {
	var full bool
	var anchor string
	err := subFlags("audit verify", cfg, args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&full, "full", false, "walk every entry from the first (default: from the newest signed head that still matches)")
		fs.StringVar(&anchor, "anchor", "", "verify against this anchor (a copy kept elsewhere, or log lines of \"audit head signed\"); default: the configured anchor file")
	})
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg, newLogger(cfg, stderr))
	if err != nil {
		return err
	}
	defer store.Close()
	r, err := store.VerifyAudit(ctx, models.VerifyOptions{Full: full, Anchor: anchor})
	if err != nil {
		return err
	}
	if anchor == "" {
		_ = store.RecordVerification(ctx, r)
	}
	out := map[string]any{"ok": r.OK, "full": r.Full, "from": r.From, "entries": r.Entries, "head": r.Head, "checkpoints": r.Checkpoints,
		"last_checkpoint": r.LastCheckpoint, "anchor_heads": r.AnchorHeads, "anchor_head": r.AnchorHead}
	if !r.OK {
		out["bad_entry"], out["problem"] = r.BadEntry, r.Problem
	}
	if err := json.NewEncoder(stdout).Encode(out); err != nil {
		return err
	}
	if !r.OK {
		return fmt.Errorf("audit log does not verify: %s", r.Problem)
	}
	return nil
}

func cmdAuditRotateKey(ctx context.Context, cfg *config, args []string, stdout, stderr io.Writer) error {
	if err := subFlags("audit rotate-key", cfg, args, stderr, nil); err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	store, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	chain, current, err := store.AuditChainKeyID(ctx)
	if err != nil {
		store.Close()
		return err
	}
	if chain == current {
		// The chain already uses the first configured key: a new key is
		// needed. Only the key file can be rewritten here.
		store.Close()
		if strings.TrimSpace(cfg.AuditKey) != "" {
			return fmt.Errorf("the audit chain already continues under the first key of KEYDESK_AUDIT_KEY (%s): put a new key first (NEWHEX,OLDHEX), then run audit rotate-key again", current)
		}
		path := keyFile(cfg, "keydesk.audit-key")
		old, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read audit key: %w", err)
		}
		k := make([]byte, 32)
		if _, err := rand.Read(k); err != nil {
			return err
		}
		tmp := path + ".new"
		_ = os.Remove(tmp)
		if err := writeNew(tmp, hex.EncodeToString(k)+","+strings.TrimSpace(string(old))+"\n"); err != nil {
			return fmt.Errorf("save the new audit key: %w", err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("save the new audit key: %w", err)
		}
		log.Warn("generated a new audit key and put it first in the key file; the older keys stay to verify older entries. Restart every instance so they load it", "file", path)
		if store, err = openStore(ctx, cfg, log); err != nil {
			return err
		}
	}
	defer store.Close()
	from, to, entry, err := store.RotateAuditKey(ctx, models.SystemActor())
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(map[string]any{"from": from, "to": to, "entry": entry})
}
