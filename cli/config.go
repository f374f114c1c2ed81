package cli

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"keydesk/models"
	kdsmtp "keydesk/smtp"
)

// defaultSMTPAddr is where SMTP submission listens unless told otherwise.
var defaultSMTPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(kdsmtp.DefaultPort))

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
	fs.IntVar(&c.RotationDays, "rotation-days", envInt("KEYDESK_ROTATION_DAYS", models.DefaultRotationDays), "flag secrets older than this many days (KEYDESK_ROTATION_DAYS)")
	fs.DurationVar(&c.SessionIdle, "session-idle", envDuration("KEYDESK_SESSION_IDLE", models.DefaultSessionIdle), "sign out after this much inactivity (KEYDESK_SESSION_IDLE)")
	fs.DurationVar(&c.SessionMax, "session-max", envDuration("KEYDESK_SESSION_MAX", models.DefaultSessionMax), "absolute session lifetime (KEYDESK_SESSION_MAX)")
	fs.IntVar(&c.HashSlots, "password-hashes", envInt("KEYDESK_PASSWORD_HASHES", models.DefaultHashConcurrency()), fmt.Sprintf("password hashes (argon2id, 19 MiB each) run at once; more wait up to %v, then get 503 (KEYDESK_PASSWORD_HASHES)", models.DefaultHashWait))
	fs.IntVar(&c.CacheKeys, "cache-keys", envInt("KEYDESK_CACHE_KEYS", models.DefaultCacheEntries), "most entries each in-memory cache holds (verified API keys; account trees); past it the least recently used are evicted (KEYDESK_CACHE_KEYS)")
	fs.BoolVar(&c.TrustProxy, "trust-proxy", envBool("KEYDESK_TRUST_PROXY", false), "take the client IP from X-Forwarded-For; only behind a proxy that sets it (KEYDESK_TRUST_PROXY)")
	fs.StringVar(&c.SMTPAddr, "smtp-addr", env("KEYDESK_SMTP_ADDR", defaultSMTPAddr), "SMTP submission listen address, also shown to users; \"off\" disables the listener (KEYDESK_SMTP_ADDR)")
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
	fs.DurationVar(&c.AuditEvery, "audit-every", envDuration("KEYDESK_AUDIT_EVERY", models.DefaultAuditCheckEvery), "how often serve re-verifies the audit log from the newest verified head (KEYDESK_AUDIT_EVERY)")
	fs.StringVar(&c.AuditAnchor, "audit-anchor", env("KEYDESK_AUDIT_ANCHOR", ""), "append-only file that signed audit heads are written to, outside the database (KEYDESK_AUDIT_ANCHOR; default keydesk.audit-anchor beside the SQLite database, or in the working directory)")
	fs.StringVar(&c.LogLevel, "log-level", env("KEYDESK_LOG_LEVEL", "info"), "debug, info, warn or error (KEYDESK_LOG_LEVEL)")
	// Their defaults may come from the environment: keys, never printed.
	for _, name := range secretFlags {
		fs.Lookup(name).DefValue = ""
	}
}

// secretFlags carry keys: --help never shows their value as a default.
var secretFlags = []string{"session-keys", "audit-key"}

func newLogger(cfg *config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl}))
}
