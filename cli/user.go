package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"

	"keydesk/models"
)

func cmdUserCreate(ctx context.Context, in *invocation) error {
	cfg, stdin, stdout, stderr := in.cfg, in.stdin, in.stdout, in.stderr
	var email, role string
	var pwStdin bool
	err := in.parse(func(fs *flag.FlagSet) {
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
