// Package cli is the keydesk command line: the settings (flags with
// KEYDESK_* environment fallbacks), the key files kept beside the database,
// and one file per command (serve, migrate, account create, user create,
// audit verify, audit rotate-key).
package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"keydesk/models"
)

// Main runs the keydesk command line with args (without the program name)
// and returns the process exit status.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, opts ...Option) int {
	return run(ctx, args, stdin, stdout, stderr, opts...)
}

// Option changes how Main runs (tests and embedders use them).
type Option func(*options)

type options struct {
	onListening func(Listening)
	timeouts    *httpTimeouts // tests: serve's HTTP timeouts (nil: httpServeTimeouts)
}

// OnListening makes serve call f once, when every listener is bound and
// serving, with their addresses: a caller that started serve on port 0
// learns its ports without reading the log.
func OnListening(f func(Listening)) Option {
	return func(o *options) { o.onListening = f }
}

// command is one thing keydesk does: one or two words, and a function in
// its own file.
type command struct {
	name     string // "serve", "account create"
	synopsis string // its flags, for keydesk --help
	summary  string // what it does, for keydesk --help and its own --help
	run      func(ctx context.Context, in *invocation) error
}

// commands in the order keydesk --help lists them. The first two-word
// command of a group ("account") is what the group alone shows help for.
var commands = []*command{
	{"serve", "", "run the console (the default)", cmdServe},
	{"migrate", "", "apply pending database migrations and exit; prints JSON", cmdMigrate},
	{"account create", "--name N --email E --password-stdin [--plan free|essential|premium]",
		"create an account, its owner and master key; prints JSON with the master api_key and secret_key (shown once)", cmdAccountCreate},
	{"user create", "--email E --role support|auditor --password-stdin", "create a staff user (support or auditor); prints JSON", cmdUserCreate},
	{"user reset-link", "--email E", "print a one-time password reset link (30 minutes, audited) for when there is no mail relay; prints JSON (set --base-url)", cmdUserResetLink},
	{"audit verify", "[--full] [--anchor FILE]",
		"check the audit chain under the key, the signed heads in the database and the anchor (incremental from the newest signed head unless --full); prints a JSON summary, exits 1 naming the first problem", cmdAuditVerify},
	{"audit rotate-key", "", "hand the audit chain over to a new key with a signed entry; with the key file, generates the new key and keeps the old ones", cmdAuditRotateKey},
}

// findCommand splits args into a command and its arguments: the first word,
// or the first two when they name a command ("account create"). Nothing is
// serve.
func findCommand(args []string) (name string, rest []string, cmd *command) {
	if len(args) == 0 {
		return "serve", nil, commands[0]
	}
	name, rest = args[0], args[1:]
	if len(rest) > 0 {
		for _, c := range commands {
			if c.name == name+" "+rest[0] {
				return c.name, rest[1:], c
			}
		}
	}
	for _, c := range commands {
		if c.name == name {
			return name, rest, c
		}
	}
	return name, rest, nil
}

// groupCommand is the first command of a group of two-word commands.
func groupCommand(word string) *command {
	for _, c := range commands {
		if first, _, ok := strings.Cut(c.name, " "); ok && first == word {
			return c
		}
	}
	return nil
}

// topUsage is keydesk --help: the commands, then every global flag.
func topUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, "keydesk — API key management console\n\nUsage:\n  keydesk [flags] [command]\n\nCommands:\n")
	for _, c := range commands {
		summary := strings.TrimSpace(wrap(c.summary, 19, 80))
		if c.synopsis != "" {
			fmt.Fprintf(w, "  %-16s %s\n", c.name, c.synopsis)
			fmt.Fprintf(w, "  %-16s %s\n", "", summary)
			continue
		}
		fmt.Fprintf(w, "  %-16s %s\n", c.name, summary)
	}
	fmt.Fprint(w, "\nFlags (each also read from the environment variable in brackets):\n")
	fs.PrintDefaults()
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, opts ...Option) int {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	cfg, top, err := parseSettings(args, stderr)
	if err != nil {
		if isHelp(err) {
			return 0
		}
		return 2
	}
	name, rest, cmd := findCommand(top.Args())
	if group := groupCommand(name); cmd == nil && group != nil {
		// "keydesk account" alone, or with --help: the help of what the
		// group holds.
		run(ctx, append(strings.Fields(group.name), "--help"), stdin, stdout, stderr, opts...)
		if len(rest) > 0 && (rest[0] == "-h" || rest[0] == "-help" || rest[0] == "--help" || rest[0] == "help") {
			return 0
		}
		return 2
	}
	if name == "help" {
		top.Usage()
		return 0
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "keydesk: unknown command %q (see keydesk --help)\n", strings.Join(append([]string{name}, rest...), " "))
		return 2
	}
	err = cmd.run(ctx, &invocation{cmd: cmd, cfg: cfg, globals: top, args: rest, stdin: stdin, stdout: stdout, stderr: stderr, opts: o})
	if err != nil {
		if isHelp(err) {
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
		HashConcurrency: cfg.HashSlots, CacheEntries: cfg.CacheKeys, StaffRequire2FA: cfg.Staff2FA,
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

// sealAndClose signs the audit head after a CLI command that wrote entries
// (verify first: a tampered log is reported, never signed), then closes.
func sealAndClose(ctx context.Context, store *models.Store, stderr io.Writer) {
	if _, err := store.SealAuditHead(ctx, "cli"); err != nil {
		fmt.Fprintf(stderr, "keydesk: audit head not signed: %v\n", err)
	}
	store.Close()
}
