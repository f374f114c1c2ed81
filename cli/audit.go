package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"

	"keydesk/models"
)

func cmdAuditVerify(ctx context.Context, in *invocation) error {
	cfg, stdout, stderr := in.cfg, in.stdout, in.stderr
	var full bool
	var anchor string
	err := in.parse(func(fs *flag.FlagSet) {
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

func cmdAuditRotateKey(ctx context.Context, in *invocation) error {
	cfg, stdout, stderr := in.cfg, in.stdout, in.stderr
	if err := in.parse(nil); err != nil {
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
		path, err := prependAuditKey(cfg)
		if err != nil {
			return err
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
