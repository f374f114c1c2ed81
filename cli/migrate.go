package cli

import (
	"context"
	"encoding/json"

	"keydesk/models"
)

func cmdMigrate(ctx context.Context, in *invocation) error {
	cfg, stdout, stderr := in.cfg, in.stdout, in.stderr
	if err := in.parse(nil); err != nil {
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
