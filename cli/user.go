package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strings"

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

// cmdUserResetLink prints a password reset link for an operator to hand
// over when keydesk has no mail relay. The link is the credential: it is
// printed once, audited, and never logged.
func cmdUserResetLink(ctx context.Context, in *invocation) error {
	cfg, stdout, stderr := in.cfg, in.stdout, in.stderr
	var email string
	err := in.parse(func(fs *flag.FlagSet) {
		fs.StringVar(&email, "email", "", "the user's e-mail (required)")
	})
	if err != nil {
		return err
	}
	if strings.TrimSpace(email) == "" {
		return fmt.Errorf("--email is required")
	}
	store, err := openStore(ctx, cfg, newLogger(cfg, stderr))
	if err != nil {
		return err
	}
	defer sealAndClose(ctx, store, stderr)
	token, err := store.ResetLinkFor(ctx, email, models.SystemActor())
	if errors.Is(err, models.ErrNotFound) {
		return fmt.Errorf("no user has the e-mail address %q", models.NormalizeEmail(email))
	}
	if err != nil {
		return err
	}
	base := strings.TrimRight(cfg.BaseURL, "/")
	if base == "" {
		// serve's default: http://ADDR (an empty host is this machine).
		host := cfg.Addr
		if strings.HasPrefix(host, ":") {
			host = "localhost" + host
		}
		base = "http://" + host
	}
	link := base + "/password/reset?" + url.Values{"t": {token}}.Encode()
	return json.NewEncoder(stdout).Encode(map[string]any{"email": models.NormalizeEmail(email), "link": link, "expires_in": models.PasswordResetTTL.String()})
}
