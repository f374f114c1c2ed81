// Command seed fills an empty keydesk database with synthetic accounts,
// keys and a valid audit log, fast, for benchmarks and the scale report
// (BENCHMARKS.md). Not for production: the seeded secrets are derivable
// (models.SeedCredentials), so it refuses a database that holds accounts.
//
//	go run ./.ci/seed --db 'postgres://…/kd_scale' --audit-key HEX --audit-anchor /tmp/scale.anchor \
//	    --accounts 20000 --subaccounts 230000 --audit 10000000
//
// Then `keydesk audit verify --full` with the same KEYDESK_DB,
// KEYDESK_AUDIT_KEY and KEYDESK_AUDIT_ANCHOR passes: every entry is
// chained and keyed with the models' own functions, and the head is
// sealed (signed into the anchor) at the end.
package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"keydesk/models"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
}

func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func run() error {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	dsn := fs.String("db", getenv("KEYDESK_DB", ""), "database: postgres://… or a SQLite file (KEYDESK_DB)")
	keyHex := fs.String("audit-key", getenv("KEYDESK_AUDIT_KEY", ""), "audit key, hex, at least 32 bytes (KEYDESK_AUDIT_KEY); serve and verify need the same")
	anchor := fs.String("audit-anchor", getenv("KEYDESK_AUDIT_ANCHOR", "keydesk.audit-anchor"), "anchor file for the signed head (KEYDESK_AUDIT_ANCHOR)")
	accounts := fs.Int("accounts", 20000, "main accounts, each with an owner and a master key")
	subs := fs.Int("subaccounts", 230000, "sub-accounts in all, each with its master key")
	big := fs.Int("big-tree", 1000, "sub-accounts of the first main account (the keys page with many rows)")
	audit := fs.Int("audit", 1000000, "audit entries")
	days := fs.Int("days", 365, "the audit entries are spread over this many days up to now")
	seed := fs.Uint64("seed", 1, "random seed of the audit mix")
	deferIdx := fs.Bool("defer-indexes", true, "drop the audit indexes during the bulk load and build them after")
	basic := fs.Int("basic-auth", 0, "print the Authorization header value of seeded keys 0..N-1, one a line, and exit (for load tests)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if *basic > 0 {
		w := bufio.NewWriter(os.Stdout)
		for n := 0; n < *basic; n++ {
			k, sec := models.SeedCredentials(n)
			fmt.Fprintln(w, "Basic "+base64.StdEncoding.EncodeToString([]byte(k+":"+sec)))
		}
		return w.Flush()
	}
	if *dsn == "" {
		return fmt.Errorf("--db is required")
	}
	key, err := hex.DecodeString(strings.TrimSpace(strings.Split(*keyHex, ",")[0]))
	if err != nil || len(key) < 32 {
		return fmt.Errorf("--audit-key: give at least 32 bytes in hex (the same KEYDESK_AUDIT_KEY serve will use)")
	}
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := models.Open(ctx, *dsn, models.Options{AuditKey: key, AuditAnchor: *anchor, Logger: log})
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		return err
	}
	start := time.Now()
	last := time.Time{}
	progress := func(what string, done, total int) {
		if time.Since(last) > 10*time.Second || done == total {
			last = time.Now()
			fmt.Printf("%7.1fs  %s %d/%d\n", time.Since(start).Seconds(), what, done, total)
		}
	}
	res, err := s.Seed(ctx, models.SeedOptions{Accounts: *accounts, Subaccounts: *subs, BigTree: *big, AuditEntries: *audit,
		AuditStart: time.Now().Add(-time.Duration(*days) * 24 * time.Hour), Seed: *seed, DeferIndexes: *deferIdx && *audit >= 100000,
		Progress: progress})
	if err != nil {
		return err
	}
	seeded := time.Since(start)
	fmt.Printf("seeded %d keys and audit entries #%d–#%d in %v (%.0f entries/s)\n", res.Keys, res.FirstEntry, res.LastEntry,
		seeded.Round(time.Second), float64(*audit)/seeded.Seconds())
	if err := s.Analyze(ctx); err != nil {
		return err
	}
	t := time.Now()
	h, err := s.SealAuditHead(ctx, "seed")
	if err != nil {
		return err
	}
	if h != nil {
		fmt.Printf("verified the log and signed head seq %d at entry #%d in %v\n", h.Seq, h.Entry, time.Since(t).Round(time.Millisecond))
	}
	return nil
}
