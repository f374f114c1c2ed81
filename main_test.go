package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"keydesk/models"
	"keydesk/models/testdb"
)

func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestCLIAccountCreatePrintsMasterKeyOnce(t *testing.T) {
	dsn := testdb.DSN(t)
	code, out, stderr := runCLI(t, "a long enough password\n", "--db", dsn, "account", "create", "--name", "Acme Mail", "--email", "ops@acme.example", "--plan", "essential", "--password-stdin")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("stdout is not JSON: %q", out)
	}
	if got["plan"] != "essential" || got["email"] != "ops@acme.example" || got["role"] != "owner" {
		t.Fatalf("unexpected output %v", got)
	}
	apiKey, _ := got["api_key"].(string)
	secret, _ := got["secret_key"].(string)
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(apiKey) || !models.ValidSecretFormat(secret) {
		t.Fatalf("bad credentials in output: %q %q", apiKey, secret)
	}
	if strings.Contains(stderr, secret) || strings.Contains(stderr, "a long enough password") {
		t.Fatal("a secret or the password reached the log")
	}
	s := testdb.OpenDSN(t, dsn, models.Options{Argon: testdb.FastArgon, AuditKey: testdb.AuditKey})
	if _, err := s.Verify(context.Background(), apiKey, secret); err != nil {
		t.Fatalf("printed credentials do not verify: %v", err)
	}
	// The same e-mail again is refused with a message on stderr.
	code, out, stderr = runCLI(t, "a long enough password\n", "--db", dsn, "account", "create", "--name", "Again", "--email", "ops@acme.example", "--password-stdin")
	if code == 0 || out != "" || !strings.Contains(stderr, "email") {
		t.Fatalf("duplicate account: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
}

func TestCLIUserCreateAndErrors(t *testing.T) {
	dsn := testdb.DSN(t)
	code, out, stderr := runCLI(t, "support password 123\n", "user", "create", "--db", dsn, "--email", "ana@support.example", "--role", "support", "--password-stdin")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil || got["role"] != "support" {
		t.Fatalf("output %q (%v)", out, err)
	}
	for name, args := range map[string][]string{
		"owner role":        {"user", "create", "--db", dsn, "--email", "x@y.example", "--role", "owner", "--password-stdin"},
		"no password-stdin": {"user", "create", "--db", dsn, "--email", "x@y.example", "--role", "auditor"},
		"bad plan":          {"account", "create", "--db", dsn, "--name", "A", "--email", "a@b.example", "--plan", "gold", "--password-stdin"},
		"unknown command":   {"frobnicate"},
		"short password":    {"account", "create", "--db", dsn, "--name", "A", "--email", "a@b.example", "--password-stdin"},
	} {
		stdin := "support password 123\n"
		if name == "short password" {
			stdin = "short\n"
		}
		code, out, stderr := runCLI(t, stdin, args...)
		if code == 0 || out != "" || stderr == "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", name, code, out, stderr)
		}
	}
}

func TestCLIMigrateAndHelp(t *testing.T) {
	dsn := testdb.DSN(t)
	code, out, stderr := runCLI(t, "", "migrate", "--db", dsn)
	if code != 0 {
		t.Fatalf("migrate: exit %d: %s", code, stderr)
	}
	var got struct {
		Applied []int
		Version int
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Version != models.SchemaVersion() || len(got.Applied) != models.SchemaVersion() {
		t.Fatalf("first migrate output %q", out)
	}
	_, out, _ = runCLI(t, "", "migrate", "--db", dsn)
	if !strings.Contains(out, `"applied":[]`) {
		t.Fatalf("second migrate output %q", out)
	}
	code, _, stderr = runCLI(t, "", "--help")
	if code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, want := range []string{"KEYDESK_ADDR", "KEYDESK_DB", "KEYDESK_SESSION_KEYS", "KEYDESK_BASE_URL", "KEYDESK_SIGNUP", "account create", "user create", "migrate"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("--help does not mention %s", want)
		}
	}
}

func TestSessionKeysGeneratedOnceWith0600(t *testing.T) {
	dir := t.TempDir()
	cfg := &config{DB: filepath.Join(dir, "keydesk.db")}
	log := newLogger(&config{LogLevel: "error"}, &bytes.Buffer{})
	k1, err := sessionKeys(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "keydesk.session-keys"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", st.Mode().Perm())
	}
	k2, err := sessionKeys(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(k1) != 2 || !bytes.Equal(k1[0], k2[0]) || !bytes.Equal(k1[1], k2[1]) {
		t.Fatal("session keys changed between starts")
	}
	// Explicit keys, two pairs (rotation), newest first.
	cfg.SessionKeys = strings.Repeat("ab", 32) + ":" + strings.Repeat("cd", 32) + "," + strings.Repeat("01", 32) + ":" + strings.Repeat("02", 16)
	k3, err := sessionKeys(cfg, log)
	if err != nil || len(k3) != 4 {
		t.Fatalf("two key pairs: %v (%d keys)", err, len(k3))
	}
	cfg.SessionKeys = "nothex:zz"
	if _, err := sessionKeys(cfg, log); err == nil {
		t.Fatal("malformed session keys accepted")
	}
}
