package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"

	"keydesk/models"
)

func cmdAccountCreate(ctx context.Context, in *invocation) error {
	cfg, stdin, stdout, stderr := in.cfg, in.stdin, in.stdout, in.stderr
	var name, email, plan string
	var pwStdin bool
	err := in.parse(func(fs *flag.FlagSet) {
		fs.StringVar(&name, "name", "", "account name (required)")
		fs.StringVar(&email, "email", "", "owner's e-mail (required)")
		fs.StringVar(&plan, "plan", "free", "free, essential or premium")
		fs.BoolVar(&pwStdin, "password-stdin", false, "read the owner's password from stdin (required)")
	})
	if err != nil {
		return err
	}
	if !pwStdin {
		return fmt.Errorf("--password-stdin is required (passwords are never taken as arguments)")
	}
	p, ok := models.ParsePlan(plan)
	if !ok {
		return fmt.Errorf("--plan must be free, essential or premium")
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
	res, err := store.CreateAccount(ctx, models.SignUpInput{AccountName: name, Email: email, Password: pw, Plan: p}, models.SystemActor(), models.ActionAccountCreated)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(map[string]any{
		"account_id": res.Account.ID, "name": res.Account.Name, "plan": res.Account.Plan,
		"user_id": res.User.ID, "email": res.User.Email, "role": res.User.Role,
		"api_key": res.Secret.APIKey, "secret_key": res.Secret.Secret,
	})
}
