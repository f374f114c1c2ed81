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
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return run(ctx, args, stdin, stdout, stderr)
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

// sealAndClose signs the audit head after a CLI command that wrote entries
// (verify first: a tampered log is reported, never signed), then closes.
func sealAndClose(ctx context.Context, store *models.Store, stderr io.Writer) {
	if _, err := store.SealAuditHead(ctx, "cli"); err != nil {
		fmt.Fprintf(stderr, "keydesk: audit head not signed: %v\n", err)
	}
	store.Close()
}
