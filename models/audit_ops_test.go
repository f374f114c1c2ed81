package models_test

import (
	"strings"
	"testing"

	"keydesk/models"
	"keydesk/models/testdb"
)

// Every security-relevant operation appends exactly its entries, with the
// right actor, action and target, in the same transaction as the change.
func TestEveryOperationIsAudited(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	owner1, res := owner(t, s, "Acme", "owner@acme.example")
	setPlan(t, s, res.Account.ID, models.PlanEssential)
	staff := support(t, s)
	aud, err := s.CreateStaffUser(ctx, "aud@keydesk.example", pw, models.RoleAuditor, models.SystemActor())
	if err != nil {
		t.Fatal(err)
	}
	auditor := models.Actor{UserID: aud.ID, Email: aud.Email, Role: models.RoleAuditor, Meta: meta}
	var sub *models.Subaccount
	var req *models.LimitRequest
	var sessionTok string

	type step struct {
		name    string
		run     func() error
		actions []string
		actor   string // expected actor label of every entry
		target  string // expected target type of the first entry
	}
	steps := []step{
		{"account created by operator", func() error {
			_, err := s.CreateAccount(ctx, models.SignUpInput{AccountName: "Ops", Email: "ops@x.example", Password: pw}, models.SystemActor(), models.ActionAccountCreated)
			return err
		}, []string{models.ActionAccountCreated, models.ActionKeyCreated, models.ActionSecretRevealed}, "system", "account"},
		{"staff user created", func() error {
			_, err := s.CreateStaffUser(ctx, "new@support.example", pw, models.RoleSupport, models.SystemActor())
			return err
		}, []string{models.ActionUserCreated}, "system", "user"},
		{"login succeeded", func() error {
			tok, _, err := s.Login(ctx, "owner@acme.example", pw, "", meta)
			sessionTok = tok
			return err
		}, []string{models.ActionLoginSucceeded}, "owner@acme.example", "user"},
		{"login failed", func() error {
			_, _, err := s.Login(ctx, "owner@acme.example", "wrong password!", "", meta)
			if err == nil {
				t.Fatal("wrong password accepted")
			}
			return nil
		}, []string{models.ActionLoginFailed}, "system", "user"},
		{"re-authentication", func() error {
			p, err := s.ResolveSession(ctx, sessionTok)
			if err != nil {
				return err
			}
			_, err = s.ReauthenticateWithCode(ctx, p, pw, "", meta)
			return err
		}, []string{models.ActionReauthenticated}, "owner@acme.example", "user"},
		{"secret reset", func() error {
			_, _, err := s.ResetSecret(ctx, owner1, res.Key.ID, 0)
			return err
		}, []string{models.ActionSecretReset, models.ActionSecretRevealed}, "owner@acme.example", "apikey"},
		{"key renamed", func() error {
			_, err := s.RenameKey(ctx, owner1, res.Key.ID, "Acme main")
			return err
		}, []string{models.ActionKeyRenamed}, "owner@acme.example", "apikey"},
		{"sub-account created", func() error {
			var err error
			sub, _, err = s.CreateSubaccount(ctx, owner1, "newsletters", "")
			return err
		}, []string{models.ActionSubaccountNew, models.ActionKeyCreated, models.ActionSecretRevealed}, "owner@acme.example", "account"},
		{"key deactivated", func() error {
			_, err := s.SetKeyActive(ctx, owner1, sub.Key.ID, false)
			return err
		}, []string{models.ActionKeyDeactivated}, "owner@acme.example", "apikey"},
		{"key activated", func() error {
			_, err := s.SetKeyActive(ctx, owner1, sub.Key.ID, true)
			return err
		}, []string{models.ActionKeyActivated}, "owner@acme.example", "apikey"},
		{"limit request created", func() error {
			var err error
			req, err = s.RequestMoreSubaccounts(ctx, owner1, 3, "growth")
			return err
		}, []string{models.ActionLimitRequested}, "owner@acme.example", "limit_request"},
		{"limit request approved", func() error {
			return s.DecideLimitRequest(ctx, staff, req.ID, true, 8, "ok")
		}, []string{models.ActionLimitChanged, models.ActionLimitApproved}, staff.Email, "account"},
		{"limit request denied", func() error {
			r, err := s.RequestMoreSubaccounts(ctx, owner1, 3, "more")
			if err != nil {
				return err
			}
			return s.DecideLimitRequest(ctx, staff, r.ID, false, 0, "no")
		}, []string{models.ActionLimitRequested, models.ActionLimitDenied}, "", "limit_request"},
		{"limit changed", func() error {
			return s.SetSubaccountLimit(ctx, staff, res.Account.ID, 9, "TICKET-1")
		}, []string{models.ActionLimitChanged}, staff.Email, "account"},
		{"access denied", func() error {
			return s.RecordAccessDenied(ctx, owner1, "/support")
		}, []string{models.ActionAccessDenied}, "owner@acme.example", "route"},
		{"audit export", func() error {
			_, err := s.ExportAudit(ctx, auditor, models.AuditFilter{}, "csv", func(*models.AuditHead) error { return nil }, func(models.AuditEntry) error { return nil })
			return err
		}, []string{models.ActionAuditExported}, auditor.Email, "audit"},
		{"audit review", func() error {
			_, err := s.MarkReviewed(ctx, auditor, lastAuditID(t, s), "")
			return err
		}, []string{models.ActionAuditReviewed}, auditor.Email, "audit"},
		{"password changed (ends the other session)", func() error {
			_, _, err := s.Login(ctx, "owner@acme.example", pw, "", meta)
			if err != nil {
				return err
			}
			p, err := s.ResolveSession(ctx, sessionTok)
			if err != nil {
				return err
			}
			return s.ChangePassword(ctx, p, pw, "another long passphrase", meta)
		}, []string{models.ActionLoginSucceeded, models.ActionPasswordChanged, models.ActionSessionRevoked}, "owner@acme.example", "user"},
		{"language changed", func() error {
			p, err := s.ResolveSession(ctx, sessionTok)
			if err != nil {
				return err
			}
			return s.SetLanguage(ctx, p, "fr", meta)
		}, []string{models.ActionLanguageChanged}, "owner@acme.example", "user"},
		{"logout", func() error {
			p, err := s.ResolveSession(ctx, sessionTok)
			if err != nil {
				return err
			}
			return s.Logout(ctx, p, meta)
		}, []string{models.ActionLogout}, "owner@acme.example", "user"},
	}
	for _, st := range steps {
		before := lastAuditID(t, s)
		if err := st.run(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		var got []models.AuditEntry
		testdb.Must(t, s.DB().Where("id > ?", before).Order("id").Find(&got))
		var actions []string
		for _, e := range got {
			actions = append(actions, e.Action)
		}
		if strings.Join(actions, ",") != strings.Join(st.actions, ",") {
			t.Errorf("%s: audited %v, want %v", st.name, actions, st.actions)
			continue
		}
		for _, e := range got {
			if st.actor != "" && e.ActorLabel != st.actor {
				t.Errorf("%s: entry %s has actor %q, want %q", st.name, e.Action, e.ActorLabel, st.actor)
			}
			if strings.Contains(e.Details, pw) || strings.Contains(e.Details, "kd_live_") {
				t.Errorf("%s: entry %s carries a password or secret: %s", st.name, e.Action, e.Details)
			}
		}
		if got[0].TargetType != st.target {
			t.Errorf("%s: target type %q, want %q", st.name, got[0].TargetType, st.target)
		}
	}
	if r, err := s.VerifyAuditChain(ctx); err != nil || !r.OK {
		t.Fatalf("chain after every operation: %+v %v", r, err)
	}
}
