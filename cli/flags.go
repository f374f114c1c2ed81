package cli

import (
	"flag"
	"fmt"
	"io"
	"strconv"
)

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
