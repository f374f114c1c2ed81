package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// runPlain runs the CLI as an operator would, without the test audit key:
// the key files are generated beside the database.
func runPlain(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// The audit key file is generated once (0600, said once at INFO), reused,
// and rotate-key puts a new key in front of the old one.
func TestAuditKeyFileGeneratedOnceAndRotated(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "keydesk.db")
	path := filepath.Join(dir, auditKeyFile)
	code, _, stderr := runPlain(t, "", "--db", db, "migrate")
	if code != 0 || strings.Count(stderr, "generated the audit key") != 1 || !strings.Contains(stderr, "level=INFO") {
		t.Fatalf("first migrate: exit %d, %s", code, stderr)
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 || !regexp.MustCompile(`^[0-9a-f]{64}\n$`).Match(first) {
		t.Fatalf("audit key file: mode %v, %q", st.Mode().Perm(), first)
	}
	code, _, stderr = runPlain(t, "a long enough password\n", "--db", db, "account", "create", "--name", "Acme", "--email", "ops@acme.example", "--password-stdin")
	if code != 0 || strings.Contains(stderr, "generated the audit key") {
		t.Fatalf("account create: exit %d, %s", code, stderr)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, first) {
		t.Fatal("the audit key file changed on the second start")
	}
	code, out, stderr := runPlain(t, "", "--db", db, "audit", "rotate-key")
	if code != 0 {
		t.Fatalf("rotate-key: exit %d, %s", code, stderr)
	}
	var rotated struct{ From, To string }
	if err := json.Unmarshal([]byte(out), &rotated); err != nil || rotated.From == "" || rotated.From == rotated.To {
		t.Fatalf("rotate-key output %q (%v)", out, err)
	}
	now, _ := os.ReadFile(path)
	newKey, oldKey, ok := strings.Cut(strings.TrimSpace(string(now)), ",")
	if !ok || oldKey != strings.TrimSpace(string(first)) || len(newKey) != 64 {
		t.Fatalf("key file after rotation %q, want NEW,%s", now, first)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("rotated key file mode %v", st.Mode().Perm())
	}
	if code, out, stderr := runPlain(t, "", "--db", db, "audit", "verify", "--full"); code != 0 || !strings.Contains(out, `"ok":true`) {
		t.Fatalf("verify after rotation: exit %d, %s %s", code, out, stderr)
	}
}

// The self-signed certificate and its key are generated together, reused,
// and never half regenerated: with one of them gone the start fails,
// naming the other to remove.
func TestCertificatePairGeneratedTogether(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := &config{DB: filepath.Join(dir, "keydesk.db"), Addr: "127.0.0.1:0", SMTPAddr: "127.0.0.1:0"}
	var logs bytes.Buffer
	log := newLogger(&config{LogLevel: "info"}, &logs)
	if _, err := smtpTLS(cfg, log); err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := filepath.Join(dir, certFile), filepath.Join(dir, certKeyFile)
	cert, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	for path, mode := range map[string]os.FileMode{certPath: 0o644, keyPath: 0o600} {
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != mode {
			t.Fatalf("%s: %v, want mode %v", path, err, mode)
		}
	}
	if _, err := smtpTLS(cfg, log); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(certPath); !bytes.Equal(again, cert) || strings.Count(logs.String(), "generated a self-signed certificate") != 1 {
		t.Fatalf("the certificate was regenerated:\n%s", logs.String())
	}
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	if _, err := smtpTLS(cfg, log); err == nil || !strings.Contains(err.Error(), "remove "+certPath) {
		t.Fatalf("a certificate without its key: %v", err)
	}
	if _, err := os.Stat(keyPath); !os.IsNotExist(err) {
		t.Fatal("half of the pair was regenerated")
	}
}
