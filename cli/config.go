package cli

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"time"

	"keydesk/models"
	kdsmtp "keydesk/smtp"
	"keydesk/web"
)

// defaultSMTPAddr is where SMTP submission listens unless told otherwise.
var defaultSMTPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(kdsmtp.DefaultPort))

// config is every setting, read once from flags with KEYDESK_* environment
// fallbacks.
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
	MemoryLimit  string
	TrustProxy   bool
	Staff2FA     bool
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
	APIAccessLog string
	AuditKey     string
	AuditEvery   time.Duration
	MetricsAddr  string
	AuditAnchor  string
}

// register puts every setting on fs, as a flag with its built-in default;
// parseGlobal then reads KEYDESK_<NAME> for each flag not given (the
// variable's name is the flag's, upper case, "-" as "_"). Each usage names
// its variable (TestEveryFlagNamesItsVariable).
func (c *config) register(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:8080", "listen address for the console and REST API (KEYDESK_ADDR)")
	fs.StringVar(&c.DB, "db", "keydesk.db", "database: a file path for SQLite, or postgres://… for PostgreSQL (KEYDESK_DB)")
	fs.StringVar(&c.SessionKeys, "session-keys", "", "session cookie keys, newest first: HASHHEX:BLOCKHEX[,HASHHEX:BLOCKHEX…]; generated and saved beside the database when empty (KEYDESK_SESSION_KEYS)")
	fs.StringVar(&c.BaseURL, "base-url", "", "public URL; https:// turns on Secure cookies and HSTS (KEYDESK_BASE_URL; default http://ADDR)")
	fs.BoolVar(&c.Signup, "signup", true, "allow open sign-up (KEYDESK_SIGNUP)")
	fs.IntVar(&c.RotationDays, "rotation-days", models.DefaultRotationDays, "flag secrets older than this many days (KEYDESK_ROTATION_DAYS)")
	fs.DurationVar(&c.SessionIdle, "session-idle", models.DefaultSessionIdle, "sign out after this much inactivity (KEYDESK_SESSION_IDLE)")
	fs.DurationVar(&c.SessionMax, "session-max", models.DefaultSessionMax, "absolute session lifetime (KEYDESK_SESSION_MAX)")
	fs.IntVar(&c.HashSlots, "password-hashes", models.DefaultHashConcurrency(), fmt.Sprintf("password hashes (argon2id, %d MiB each) run at once; more wait up to %v, then get 503 (KEYDESK_PASSWORD_HASHES)", models.DefaultArgon.MemoryKiB>>10, models.DefaultHashWait))
	fs.IntVar(&c.CacheKeys, "cache-keys", models.DefaultCacheEntries, "most entries each in-memory cache holds (verified API keys; account trees); past it the least recently used are evicted (KEYDESK_CACHE_KEYS)")
	fs.StringVar(&c.MemoryLimit, "memory-limit", "", "serve's soft memory limit (the Go runtime's, GOMEMLIMIT's syntax: 512MiB, 1GiB): the garbage collector runs more often near it; \"off\" = none; default 256MiB, or GOMEMLIMIT when that is set. Raise it with --cache-keys (KEYDESK_MEMORY_LIMIT)")
	fs.BoolVar(&c.Staff2FA, "staff-2fa", false, "require two-factor sign-in of support and auditor staff: without it they are sent to enrolment first (KEYDESK_STAFF_2FA)")
	fs.BoolVar(&c.TrustProxy, "trust-proxy", false, "take the client IP from X-Forwarded-For; only behind a proxy that sets it (KEYDESK_TRUST_PROXY)")
	fs.StringVar(&c.SMTPAddr, "smtp-addr", defaultSMTPAddr, "SMTP submission listen address, also shown to users; \"off\" disables the listener (KEYDESK_SMTP_ADDR)")
	fs.StringVar(&c.SMTPHost, "smtp-host", "", "SMTP host name shown to users (KEYDESK_SMTP_HOST; default: the base URL's host)")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate (chain) for SMTP STARTTLS and HTTPS; with --tls-key. When both are empty a self-signed ECDSA certificate is generated once and saved beside the database (KEYDESK_TLS_CERT)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM private key for --tls-cert (KEYDESK_TLS_KEY)")
	fs.StringVar(&c.HTTPS, "https", "auto", "serve the console, REST and Send APIs over HTTPS on --addr: auto = when --tls-cert/--tls-key are set; on = always (with the self-signed certificate when they are not: development); off = plain HTTP, e.g. behind a TLS proxy (KEYDESK_HTTPS)")
	fs.StringVar(&c.HTTPRedirect, "http-redirect-addr", "", "with HTTPS, also listen for plain HTTP here and redirect every request to the HTTPS base URL (308); empty = no redirect listener (KEYDESK_HTTP_REDIRECT_ADDR)")
	fs.BoolVar(&c.SMTPInsecure, "smtp-allow-insecure-auth", false, "accept SMTP AUTH without STARTTLS: secrets cross the network in clear text; local testing only (KEYDESK_SMTP_ALLOW_INSECURE_AUTH)")
	fs.Int64Var(&c.SMTPMaxBytes, "smtp-max-bytes", kdsmtp.DefaultMaxMessageBytes, "largest SMTP message accepted, in bytes; larger ones get 552 (KEYDESK_SMTP_MAX_BYTES)")
	fs.StringVar(&c.SMTPRelay, "smtp-relay", "", "where accepted SMTP messages go: empty = a sink that logs metadata only and delivers nothing; smtp://host:port = forward to that server (KEYDESK_SMTP_RELAY)")
	fs.IntVar(&c.SMTPMaxConns, "smtp-max-conns", kdsmtp.DefaultMaxConns, "most SMTP connections open at once; one more is answered 421 and closed; -1 = no cap (KEYDESK_SMTP_MAX_CONNS)")
	fs.IntVar(&c.SMTPMaxPerIP, "smtp-max-conns-per-ip", kdsmtp.DefaultMaxConnsPerIP, "most SMTP connections open at once from one client address; one more is answered 421 and closed; -1 = no cap (KEYDESK_SMTP_MAX_CONNS_PER_IP)")
	fs.StringVar(&c.SMTPSpoolDir, "smtp-spool-dir", "", fmt.Sprintf("folder for the temporary files of SMTP messages larger than %d KiB while they are relayed (unlinked at once, so never visible); default: the system's temporary folder (KEYDESK_SMTP_SPOOL_DIR)", kdsmtp.DefaultSpoolThreshold>>10))
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "", "serve Prometheus metrics at /metrics on this separate address (keep it private); empty = off (KEYDESK_METRICS_ADDR)")
	fs.StringVar(&c.AuditKey, "audit-key", "", "hex key (at least 32 bytes) that links audit entries and signs their heads; keep it outside the database. After a rotation: NEWHEX,OLDHEX (older keys verify older entries). Generated and saved beside the database when empty (KEYDESK_AUDIT_KEY)")
	fs.DurationVar(&c.AuditEvery, "audit-every", models.DefaultAuditCheckEvery, "how often serve re-verifies the audit log from the newest verified head (KEYDESK_AUDIT_EVERY)")
	fs.StringVar(&c.AuditAnchor, "audit-anchor", "", "append-only file that signed audit heads are written to, outside the database (KEYDESK_AUDIT_ANCHOR; default keydesk.audit-anchor beside the SQLite database, or in the working directory)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error (KEYDESK_LOG_LEVEL)")
	fs.StringVar(&c.APIAccessLog, "api-access-log", web.APILogAll, "which REST and Send API requests get an access log line: all, or errors (answers of 400 and up); console requests always do, and --metrics-addr counts every request (KEYDESK_API_ACCESS_LOG)")
}

func newLogger(cfg *config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl}))
}
