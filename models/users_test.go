package models_test

import (
	"errors"
	"strings"
	"testing"

	"keydesk/models"
	"keydesk/models/testdb"
)

func TestMigrateIsVersionedAndIdempotent(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	v, err := s.CurrentSchemaVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v != models.SchemaVersion() {
		t.Fatalf("schema version %d, want %d", v, models.SchemaVersion())
	}
	applied, err := s.Migrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != 0 {
		t.Fatalf("second migrate applied %v, want nothing", applied)
	}
}

func TestCreateAccountValidation(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	mustAccount(t, s, "Taken", "taken@example.com")
	cases := []struct {
		name, account, email, password, field string
	}{
		{"empty name", "  ", "a@example.com", pw, "account_name"},
		{"long name", strings.Repeat("x", 65), "a@example.com", pw, "account_name"},
		{"control char", "bad\nname", "a@example.com", pw, "account_name"},
		{"no email", "Acme", "", pw, "email"},
		{"bad email", "Acme", "not-an-email", pw, "email"},
		{"email without dot domain", "Acme", "a@localhost", pw, "email"},
		{"short password", "Acme", "a@example.com", "elevenchars", "password"},
		{"duplicate email", "Acme", "TAKEN@example.com ", pw, "email"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.CreateAccount(ctx, models.SignUpInput{AccountName: tc.account, Email: tc.email, Password: tc.password}, models.Actor{}, models.ActionSignup)
			fe := models.FieldErrors(err)
			if fe[tc.field] == "" {
				t.Fatalf("want an error on %q, got %v", tc.field, err)
			}
		})
	}
	// 64 characters and a 64-character password are accepted.
	_, err := s.CreateAccount(ctx, models.SignUpInput{AccountName: strings.Repeat("é", 64), Email: "long@example.com", Password: strings.Repeat("p", 64)}, models.Actor{}, models.ActionSignup)
	if err != nil {
		t.Fatalf("64-character name and password refused: %v", err)
	}
}

func TestCreateAccountMakesOwnerMasterKeyAndAudit(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	res := mustAccount(t, s, "  Acme Mail ", " Owner@Acme.Example ")
	if res.Account.Name != "Acme Mail" || res.User.Email != "owner@acme.example" || res.User.Role != models.RoleOwner {
		t.Fatalf("unexpected account/user: %+v %+v", res.Account, res.User)
	}
	if res.Account.Plan != models.PlanFree {
		t.Fatalf("default plan %q", res.Account.Plan)
	}
	if !res.Key.IsMaster || !res.Key.IsActive || res.Key.AccountID != res.Account.ID {
		t.Fatalf("master key wrong: %+v", res.Key)
	}
	if _, err := s.Verify(ctx, res.Secret.APIKey, res.Secret.Secret); err != nil {
		t.Fatalf("master secret does not verify: %v", err)
	}
	var actions []string
	testdb.Must(t, s.DB().Table("audit_entries").Order("id").Pluck("action", &actions))
	want := []string{models.ActionSignup, models.ActionKeyCreated, models.ActionSecretRevealed}
	if strings.Join(actions, ",") != strings.Join(want, ",") {
		t.Fatalf("audit actions %v, want %v", actions, want)
	}
}

func TestDefaultArgonParametersAreOWASP(t *testing.T) {
	t.Parallel()
	if models.DefaultArgon.MemoryKiB < 19*1024 || models.DefaultArgon.Time < 2 || models.DefaultArgon.Threads < 1 {
		t.Fatalf("argon2id parameters below OWASP: %+v", models.DefaultArgon)
	}
	// A store with production parameters stores them in the PHC string and
	// verifies the right password only.
	dsn := testdb.DSN(t)
	clock := testdb.NewClock()
	s := testdb.OpenDSN(t, dsn, models.Options{Now: clock.Now, AuditKey: testdb.AuditKey})
	res := mustAccount(t, s, "Acme", "prod@example.com")
	var hash string
	testdb.Must(t, s.DB().Table("users").Where("id = ?", res.User.ID).Pluck("password_hash", &hash))
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q does not record OWASP parameters", hash)
	}
	if strings.Contains(hash, pw) {
		t.Fatal("hash contains the password")
	}
	if _, _, err := s.Login(ctx, "prod@example.com", pw, "", models.RequestMeta{IP: "192.0.2.1"}); err != nil {
		t.Fatalf("right password refused: %v", err)
	}
	if _, _, err := s.Login(ctx, "prod@example.com", pw+"x", "", models.RequestMeta{IP: "192.0.2.1"}); !errors.Is(err, models.ErrInvalidCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
}

func TestCreateStaffUser(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	u, err := s.CreateStaffUser(ctx, "ana@support.example", pw, models.RoleSupport, models.SystemActor())
	if err != nil {
		t.Fatal(err)
	}
	if u.AccountID != nil || u.Role != models.RoleSupport {
		t.Fatalf("staff user %+v", u)
	}
	if _, err := s.CreateStaffUser(ctx, "ana@support.example", pw, models.RoleAuditor, models.SystemActor()); models.FieldErrors(err)["email"] == "" {
		t.Fatalf("duplicate staff e-mail: %v", err)
	}
	if _, err := s.CreateStaffUser(ctx, "bob@support.example", pw, models.RoleOwner, models.SystemActor()); models.FieldErrors(err)["role"] == "" {
		t.Fatalf("owner role accepted for staff: %v", err)
	}
}

func TestMaskEmail(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"ana@example.com": "a**@example.com",
		"x":               "***",
		"":                "***",
		"noat":            "n***",
		"élodie@ex.fr":    "é**@ex.fr",
	} {
		if got := models.MaskEmail(in); got != want {
			t.Errorf("MaskEmail(%q) = %q, want %q", in, got, want)
		}
	}
}

// The language a person chooses is saved on their user (a session sees it
// at once), checked for shape, and an unchanged choice writes nothing.
func TestSetLanguage(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	mustAccount(t, s, "Acme", "owner@acme.example")
	tok, _, err := s.Login(ctx, "owner@acme.example", pw, "", meta)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.ResolveSession(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if p.User.Language != "" {
		t.Fatalf("new user's language %q, want \"\" (the browser's)", p.User.Language)
	}
	for _, bad := range []string{"f", "french", "FR", "fr-FR", "../x"} {
		if fe := models.FieldErrors(s.SetLanguage(ctx, p, bad, meta)); fe["language"] == "" {
			t.Errorf("SetLanguage(%q) accepted", bad)
		}
	}
	if err := s.SetLanguage(ctx, p, "fr", meta); err != nil {
		t.Fatal(err)
	}
	again, err := s.ResolveSession(ctx, tok)
	if err != nil || again.User.Language != "fr" {
		t.Fatalf("after SetLanguage(fr): %q %v", again.User.Language, err)
	}
	var n int64
	s.DB().Model(&models.AuditEntry{}).Where("action = ?", models.ActionLanguageChanged).Count(&n)
	if err := s.SetLanguage(ctx, again, "fr", meta); err != nil {
		t.Fatal(err)
	}
	var m int64
	s.DB().Model(&models.AuditEntry{}).Where("action = ?", models.ActionLanguageChanged).Count(&m)
	if n != 1 || m != 1 {
		t.Fatalf("language.changed entries: %d then %d, want 1 and 1", n, m)
	}
	if err := s.SetLanguage(ctx, again, "", meta); err != nil || again.User.Language != "" {
		t.Fatalf("back to the browser's language: %q %v", again.User.Language, err)
	}
}

// SignUp is one operation: the account and the owner's first session, the
// browser's previous session ended; a refused sign-up opens nothing.
func TestSignUpOpensTheOwnersSession(t *testing.T) {
	s, _ := testdb.Open(t)
	mustAccount(t, s, "Other", "other@example.com")
	oldTok, _, err := s.Login(ctx, "other@example.com", pw, "", meta)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.SignUp(ctx, models.SignUpInput{AccountName: "Acme", Email: "owner@acme.example", Password: pw}, oldTok, meta)
	if err != nil {
		t.Fatal(err)
	}
	if res.Secret.Secret == "" || !res.Key.IsMaster || res.Account.Name != "Acme" {
		t.Fatalf("sign-up result: %+v", res.SignUpResult)
	}
	p, err := s.ResolveSession(ctx, res.Token)
	if err != nil {
		t.Fatal(err)
	}
	if p.User.ID != res.User.ID || p.Account == nil || p.Account.ID != res.Account.ID || p.Role() != models.RoleOwner || !p.InSudo(s.Now()) {
		t.Fatalf("session of the new owner: %+v", p)
	}
	if got := res.Principal; got.User.ID != res.User.ID || got.Account == nil || got.Account.ID != res.Account.ID || got.Role() != models.RoleOwner {
		t.Fatalf("returned principal: %+v", got)
	}
	if _, err := s.ResolveSession(ctx, oldTok); !errors.Is(err, models.ErrSessionInvalid) {
		t.Fatalf("the browser's previous session still resolves: %v", err)
	}
	var sessions int64
	testdb.Must(t, s.DB().Table("sessions").Count(&sessions))
	if _, err := s.SignUp(ctx, models.SignUpInput{AccountName: "Again", Email: "owner@acme.example", Password: pw}, "", meta); models.FieldErrors(err)["email"] == "" {
		t.Fatalf("duplicate sign-up: %v", err)
	}
	var after int64
	testdb.Must(t, s.DB().Table("sessions").Count(&after))
	if after != sessions {
		t.Fatalf("a refused sign-up opened a session: %d sessions, want %d", after, sessions)
	}
}
