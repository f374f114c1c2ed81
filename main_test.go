package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	netsmtp "net/smtp"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"keydesk/models"
	"keydesk/models/testdb"
)

func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	if !slices.Contains(args, "--audit-key") {
		// Never let a test write keydesk.audit-key into the working
		// directory (PostgreSQL DSNs have no folder to put it beside).
		args = append([]string{"--audit-key", hex.EncodeToString(testdb.AuditKey)}, args...)
	}
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

// ---- keydesk audit verify ----

// cliAuditKey is the checkpoint key the CLI gets with --audit-key; the test
// store opened on the same database uses the same bytes.
const cliAuditKey = "6b657964657363c1a0d1e2f30415263748596a7b8c9daebfc0d1e2f30415a5b6"

// cliAuditLog opens a store on a fresh database and writes a little history:
// an account (three entries), five renames and, with checkpoint, a signed
// head. The store stays open while the CLI runs, as the server would.
func cliAuditLog(t *testing.T, checkpoint bool) (string, *models.Store, *models.Checkpoint) {
	t.Helper()
	dsn := testdb.DSN(t)
	key, err := hex.DecodeString(cliAuditKey)
	if err != nil || len(key) != 32 {
		t.Fatal("bad test key")
	}
	s := testdb.OpenDSN(t, dsn, models.Options{AuditKey: key, Argon: testdb.FastArgon})
	ctx := context.Background()
	res, err := s.CreateAccount(ctx, models.SignUpInput{AccountName: "Acme", Email: "owner@acme.example", Password: "a long enough password"},
		models.SystemActor(), models.ActionAccountCreated)
	if err != nil {
		t.Fatal(err)
	}
	owner := models.Actor{UserID: res.User.ID, Email: res.User.Email, Role: models.RoleOwner, AccountID: res.Account.ID, AuthAt: s.Now(),
		Meta: models.RequestMeta{IP: "198.51.100.7", UserAgent: "cli-test"}}
	for i := range 5 {
		if _, err := s.RenameKey(ctx, owner, res.Key.ID, fmt.Sprintf("Acme %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	var cp *models.Checkpoint
	if checkpoint {
		if cp, err = s.Checkpoint(ctx, "test"); err != nil {
			t.Fatal(err)
		}
	}
	return dsn, s, cp
}

type cliVerifyOutput struct {
	OK             *bool  `json:"ok"`
	Entries        int64  `json:"entries"`
	Head           uint64 `json:"head"`
	Checkpoints    int    `json:"checkpoints"`
	LastCheckpoint uint64 `json:"last_checkpoint"`
	BadEntry       uint64 `json:"bad_entry"`
	Problem        string `json:"problem"`
}

func runAuditVerify(t *testing.T, dsn, key string) (int, cliVerifyOutput, string) {
	t.Helper()
	code, out, stderr := runCLI(t, "", "--db", dsn, "--audit-key", key, "audit", "verify")
	var got cliVerifyOutput
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.OK == nil {
		t.Fatalf("audit verify: stdout is not the JSON summary: %q (exit %d, stderr %q)", out, code, stderr)
	}
	return code, got, stderr
}

// cliAllowTampering lifts the append-only triggers, as someone with
// database rights could.
func cliAllowTampering(t *testing.T, s *models.Store) {
	t.Helper()
	stmts := []string{"DROP TRIGGER audit_entries_no_update", "DROP TRIGGER audit_entries_no_delete",
		"DROP TRIGGER audit_checkpoints_no_update", "DROP TRIGGER audit_checkpoints_no_delete"}
	if s.Engine() == models.Postgres {
		stmts = []string{"ALTER TABLE audit_entries DISABLE TRIGGER USER", "ALTER TABLE audit_checkpoints DISABLE TRIGGER USER"}
	}
	for _, q := range stmts {
		if err := s.DB().Exec(q).Error; err != nil {
			t.Fatal(err)
		}
	}
}

func TestCLIAuditVerifyCleanLog(t *testing.T) {
	dsn, s, cp := cliAuditLog(t, true)
	var n int64
	var head uint64
	s.DB().Table("audit_entries").Count(&n)
	s.DB().Table("audit_entries").Select("MAX(id)").Scan(&head)
	if n < 8 {
		t.Fatalf("fixture: %d entries", n)
	}
	code, got, stderr := runAuditVerify(t, dsn, cliAuditKey)
	if code != 0 {
		t.Fatalf("clean log: exit %d, stderr %q", code, stderr)
	}
	if !*got.OK || got.Entries != n || got.Head != head || got.Checkpoints != 1 || got.LastCheckpoint != cp.EntryID || got.Problem != "" || got.BadEntry != 0 {
		t.Fatalf("clean log summary %+v, want ok with %d entries through #%d and checkpoint #%d", got, n, head, cp.EntryID)
	}
	if strings.Contains(stderr, "does not verify") {
		t.Fatalf("clean log: stderr %q", stderr)
	}
	// More entries after the checkpoint still verify.
	if _, err := s.Checkpoint(context.Background(), "again"); err != nil {
		t.Fatal(err)
	}
	if code, got, _ := runAuditVerify(t, dsn, cliAuditKey); code != 0 || !*got.OK || got.Checkpoints != 1 {
		t.Fatalf("re-signing an already signed head: exit %d %+v", code, got)
	}

	// Another audit key cannot vouch for the checkpoints.
	code, got, stderr = runAuditVerify(t, dsn, strings.Repeat("0f", 32))
	if code == 0 || *got.OK || !strings.Contains(got.Problem, "signature") || got.BadEntry != cp.EntryID {
		t.Fatalf("wrong audit key: exit %d %+v", code, got)
	}
	if !strings.Contains(stderr, "signature") {
		t.Fatalf("wrong audit key: stderr %q", stderr)
	}
	// A malformed key is refused before anything is read.
	if code, out, stderr := runCLI(t, "", "--db", dsn, "--audit-key", "abc", "audit", "verify"); code == 0 || out != "" || !strings.Contains(stderr, "audit key") {
		t.Fatalf("malformed key: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
}

func TestCLIAuditVerifyNamesTheFirstBadEntry(t *testing.T) {
	for _, field := range []struct{ column, value string }{
		{"action", "logout"}, {"actor_label", "mallory@evil.example"}, {"target_name", "Innocent"},
		{"ip", "10.6.6.6"}, {"details", `{"from":"x","to":"y"}`}, {"hash", strings.Repeat("a", 64)},
	} {
		t.Run("edit "+field.column, func(t *testing.T) {
			dsn, s, _ := cliAuditLog(t, true)
			cliAllowTampering(t, s)
			if err := s.DB().Exec("UPDATE audit_entries SET "+field.column+" = ? WHERE id = 5", field.value).Error; err != nil {
				t.Fatal(err)
			}
			code, got, stderr := runAuditVerify(t, dsn, cliAuditKey)
			if code == 0 || *got.OK || got.BadEntry != 5 || !strings.Contains(got.Problem, "#5") {
				t.Fatalf("edited %s of #5: exit %d %+v", field.column, code, got)
			}
			if got.Entries != 4 || got.Head != 4 {
				t.Fatalf("edited %s of #5: verified %d entries through #%d, want 4 through #4", field.column, got.Entries, got.Head)
			}
			if !strings.Contains(stderr, "#5") {
				t.Fatalf("stderr does not name the entry: %q", stderr)
			}
		})
	}
	t.Run("delete an entry", func(t *testing.T) {
		dsn, s, _ := cliAuditLog(t, false)
		cliAllowTampering(t, s)
		if err := s.DB().Exec("DELETE FROM audit_entries WHERE id = 3").Error; err != nil {
			t.Fatal(err)
		}
		code, got, stderr := runAuditVerify(t, dsn, cliAuditKey)
		if code == 0 || *got.OK || got.BadEntry != 3 || !strings.Contains(got.Problem, "#3 is missing") || !strings.Contains(stderr, "#3") {
			t.Fatalf("deleted #3: exit %d %+v, stderr %q", code, got, stderr)
		}
	})
	t.Run("truncate the tail after a checkpoint", func(t *testing.T) {
		dsn, s, cp := cliAuditLog(t, true)
		cliAllowTampering(t, s)
		if err := s.DB().Exec("DELETE FROM audit_entries WHERE id >= ?", cp.EntryID-1).Error; err != nil {
			t.Fatal(err)
		}
		code, got, stderr := runAuditVerify(t, dsn, cliAuditKey)
		want := fmt.Sprintf("#%d", cp.EntryID-1)
		if code == 0 || *got.OK || got.BadEntry != cp.EntryID-1 || !strings.Contains(got.Problem, "truncated") || !strings.Contains(stderr, "truncated") {
			t.Fatalf("cut the last two entries of %d: exit %d %+v, stderr %q (want %s named)", cp.EntryID, code, got, stderr, want)
		}
		if got.Head != cp.EntryID-2 || got.LastCheckpoint != cp.EntryID {
			t.Fatalf("truncated: head #%d, last checkpoint #%d", got.Head, got.LastCheckpoint)
		}
	})
	t.Run("forge a checkpoint", func(t *testing.T) {
		dsn, s, cp := cliAuditLog(t, true)
		cliAllowTampering(t, s)
		if err := s.DB().Exec("UPDATE audit_checkpoints SET head_hash = ?", strings.Repeat("b", 64)).Error; err != nil {
			t.Fatal(err)
		}
		code, got, _ := runAuditVerify(t, dsn, cliAuditKey)
		if code == 0 || *got.OK || got.BadEntry != cp.EntryID || !strings.Contains(got.Problem, "signature") {
			t.Fatalf("forged checkpoint: exit %d %+v", code, got)
		}
	})
}

// ---- keydesk serve: SMTP listener, certificate, usage flush ----

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestServeRunsSMTPAndFlushesUsageAtShutdown(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "keydesk.db") // SQLite: the certificate goes beside it
	code, out, stderr := runCLI(t, "a long enough password\n", "--db", db, "account", "create", "--name", "Acme", "--email", "ops@acme.example", "--password-stdin")
	if code != 0 {
		t.Fatalf("account create: %s", stderr)
	}
	var acct struct {
		APIKey    string `json:"api_key"`
		SecretKey string `json:"secret_key"`
	}
	if err := json.Unmarshal([]byte(out), &acct); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &lockedBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--db", db, "--addr", "127.0.0.1:0", "--smtp-addr", "127.0.0.1:0", "--smtp-max-conns-per-ip", "3"}, strings.NewReader(""), io.Discard, logs)
	}()
	addrRE := regexp.MustCompile(`msg="smtp submission listening" .*addr=(127\.0\.0\.1:\d+)`)
	var addr string
	for deadline := time.Now().Add(20 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := addrRE.FindStringSubmatch(logs.String()); m != nil {
			addr = m[1]
		}
		select {
		case c := <-done:
			t.Fatalf("serve exited %d:\n%s", c, logs.String())
		default:
		}
	}
	if addr == "" {
		t.Fatalf("no SMTP listener:\n%s", logs.String())
	}
	certPath, keyPath := filepath.Join(dir, "keydesk.smtp-cert.pem"), filepath.Join(dir, "keydesk.smtp-key.pem")
	if st, err := os.Stat(keyPath); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("SMTP TLS key file: %v %v", st, err)
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "max_conns=200 max_conns_per_ip=3") {
		t.Error("the connection caps (--smtp-max-conns-per-ip 3, default total) are not in the listening log line")
	}
	if !strings.Contains(logs.String(), "generated a self-signed certificate for SMTP STARTTLS") {
		t.Error("no log line for the generated certificate")
	}
	// A clean first start is not a warning: what it generated is said at
	// INFO (the README explains each line).
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "generated") && !strings.Contains(line, "level=INFO") {
			t.Errorf("first-start generation logged above INFO: %s", line)
		}
	}

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	c, err := netsmtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StartTLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}); err != nil {
		t.Fatalf("STARTTLS with the generated certificate: %v", err)
	}
	if err := c.Auth(netsmtp.PlainAuth("", acct.APIKey, acct.SecretKey, "127.0.0.1")); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	if err := c.Mail("app@acme.example"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("a@example.com"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "Subject: hi\r\nMessage-ID: <serve@acme.example>\r\n\r\nhello\r\n")
	if err := w.Close(); err != nil {
		t.Fatalf("send: %v", err)
	}
	c.Quit()

	cancel() // as SIGTERM would
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exited %d:\n%s", code, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not shut down")
	}
	if strings.Contains(logs.String(), acct.SecretKey) {
		t.Fatal("the secret key reached the log")
	}
	// The final usage flush ran before the store closed.
	s := testdb.OpenDSN(t, db, models.Options{Argon: testdb.FastArgon, AuditKey: testdb.AuditKey})
	var row struct {
		LastUsedAt *time.Time
		Messages   int64
	}
	if err := s.DB().Raw(`SELECT k.last_used_at, (SELECT COALESCE(SUM(smtp_messages), 0) FROM key_usage_daily d WHERE d.key_id = k.id) AS messages
		FROM api_keys k WHERE k.api_key = ?`, acct.APIKey).Scan(&row).Error; err != nil {
		t.Fatal(err)
	}
	if row.LastUsedAt == nil || row.Messages != 1 {
		t.Fatalf("usage after shutdown: last used %v, %d SMTP messages (want set, 1)", row.LastUsedAt, row.Messages)
	}
	_ = s.Close()

	// A taken SMTP port fails the start, naming the address; the saved
	// certificate is reused, not regenerated.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	code, _, stderr = runCLI(t, "", "--db", db, "--addr", "127.0.0.1:0", "--smtp-addr", busy.Addr().String())
	if code == 0 || !strings.Contains(stderr, "smtp: listen on "+busy.Addr().String()) {
		t.Fatalf("busy SMTP port: exit %d, stderr %s", code, stderr)
	}
	if again, _ := os.ReadFile(certPath); !bytes.Equal(again, certPEM) {
		t.Error("the SMTP certificate was regenerated")
	}
	// Half a certificate setting is refused; "off" disables the listener.
	code, _, stderr = runCLI(t, "", "--db", db, "--addr", "127.0.0.1:0", "--tls-cert", certPath)
	if code == 0 || !strings.Contains(stderr, "--tls-key") {
		t.Fatalf("--tls-cert alone: exit %d, %s", code, stderr)
	}
	code, _, stderr = runCLI(t, "", "--help")
	for _, want := range []string{"KEYDESK_SMTP_ADDR", "KEYDESK_TLS_CERT", "KEYDESK_TLS_KEY", "KEYDESK_SMTP_ALLOW_INSECURE_AUTH", "KEYDESK_SMTP_MAX_BYTES", "KEYDESK_SMTP_RELAY", "KEYDESK_SMTP_MAX_CONNS", "KEYDESK_SMTP_MAX_CONNS_PER_IP", "KEYDESK_SMTP_SPOOL_DIR"} {
		if code != 0 || !strings.Contains(stderr, want) {
			t.Errorf("--help does not mention %s", want)
		}
	}
}

// startServe runs serve with args until the test ends and returns the URL
// of its "keydesk listening" log line and the logs.
func startServe(t *testing.T, args ...string) (string, *lockedBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &lockedBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, strings.NewReader(""), io.Discard, logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("serve did not shut down")
		}
	})
	urlRE := regexp.MustCompile(`msg="keydesk listening" url=(\S+)`)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := urlRE.FindStringSubmatch(logs.String()); m != nil {
			return m[1], logs
		}
		select {
		case c := <-done:
			t.Fatalf("serve exited %d:\n%s", c, logs.String())
		default:
		}
	}
	t.Fatalf("serve did not start:\n%s", logs.String())
	return "", nil
}

// issue 16 #6: keydesk serves HTTPS itself (node-mailjet hard-codes
// https://): with --tls-cert/--tls-key (auto), or with the generated
// self-signed certificate (--https on), plus an optional HTTP redirect.
func TestServeHTTPS(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "keydesk.db")
	code, out, stderr := runCLI(t, "a long enough password\n", "--db", db, "account", "create", "--name", "Acme", "--email", "ops@acme.example", "--password-stdin")
	if code != 0 {
		t.Fatalf("account create: %s", stderr)
	}
	var acct struct {
		APIKey    string `json:"api_key"`
		SecretKey string `json:"secret_key"`
	}
	if err := json.Unmarshal([]byte(out), &acct); err != nil {
		t.Fatal(err)
	}
	client := func(certFile string) *http.Client {
		pem, err := os.ReadFile(certFile)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			t.Fatal("no certificate in", certFile)
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	listKeys := func(c *http.Client, base string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", base+"/v3/REST/apikey", nil)
		req.SetBasicAuth(acct.APIKey, acct.SecretKey)
		res, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", base, err)
		}
		res.Body.Close()
		return res
	}

	// --https on, no certificate: the generated self-signed one, trusted
	// explicitly by the client; a redirect listener for plain HTTP.
	base, logs := startServe(t, "--db", db, "--addr", "127.0.0.1:0", "--smtp-addr", "off", "--https", "on", "--http-redirect-addr", "127.0.0.1:0")
	if !strings.HasPrefix(base, "https://127.0.0.1:") {
		t.Fatalf("listening on %s", base)
	}
	certFile := filepath.Join(dir, "keydesk.smtp-cert.pem")
	hc := client(certFile)
	res := listKeys(hc, base)
	if res.StatusCode != 200 || res.Header.Get("Strict-Transport-Security") == "" || res.TLS == nil {
		t.Fatalf("REST over HTTPS: %d %v", res.StatusCode, res.Header)
	}
	res, err := hc.Get(base + "/signup")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	for _, ck := range res.Cookies() {
		if !ck.Secure {
			t.Errorf("cookie %s is not Secure under HTTPS", ck.Name)
		}
	}
	// Without trusting the certificate the connection is refused.
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("an untrusted self-signed certificate was accepted")
	}
	m := regexp.MustCompile(`msg="http redirect listening" addr=(\S+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no redirect listener:\n%s", logs.String())
	}
	req, _ := http.NewRequest("POST", "http://"+m[1]+"/v3.1/send?x=1", strings.NewReader("{}"))
	req.Host = "evil.example"
	res, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusPermanentRedirect || res.Header.Get("Location") != base+"/v3.1/send?x=1" {
		t.Errorf("redirect: %d %q, want 308 to %s", res.StatusCode, res.Header.Get("Location"), base+"/v3.1/send?x=1")
	}

	// auto (the default) with --tls-cert/--tls-key given serves HTTPS.
	base2, _ := startServe(t, "--db", db, "--addr", "127.0.0.1:0", "--smtp-addr", "off",
		"--tls-cert", certFile, "--tls-key", filepath.Join(dir, "keydesk.smtp-key.pem"))
	if res := listKeys(hc, base2); !strings.HasPrefix(base2, "https://") || res.StatusCode != 200 {
		t.Fatalf("auto HTTPS with a given certificate: %s %d", base2, res.StatusCode)
	}
	// A redirect listener needs HTTPS.
	if code, _, stderr := runCLI(t, "", "--db", db, "--addr", "127.0.0.1:0", "--https", "off", "--http-redirect-addr", "127.0.0.1:0"); code == 0 ||
		!strings.Contains(stderr, "--http-redirect-addr needs HTTPS") {
		t.Errorf("redirect without HTTPS: exit %d %s", code, stderr)
	}
}

// Each command has its own help, with only its own flags; a command group
// without its subcommand (keydesk account --help) explains the group.
func TestCLICommandHelp(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		want, not  []string
		exitStatus int
	}{
		{[]string{"account", "-help"}, []string{"keydesk account create", "-name", "-password-stdin"}, []string{"unknown command", "-smtp-max-conns"}, 0},
		{[]string{"account"}, []string{"keydesk account create"}, []string{"unknown command"}, 2},
		{[]string{"user", "-help"}, []string{"keydesk user create", "-role"}, []string{"unknown command"}, 0},
		{[]string{"audit", "-h"}, []string{"keydesk audit verify"}, []string{"unknown command"}, 0},
		{[]string{"account", "create", "-help"}, []string{"keydesk account create", "-name", "-email", "-plan", "-password-stdin", "-db"}, []string{"-smtp-max-conns", "-session-idle", "-tls-cert"}, 0},
		{[]string{"user", "create", "-help"}, []string{"keydesk user create", "-email", "-role", "-password-stdin", "-db"}, []string{"-smtp-max-conns", "-session-idle", "-tls-cert", "-name"}, 0},
		{[]string{"audit", "verify", "-help"}, []string{"keydesk audit verify", "-db"}, []string{"-smtp-max-conns"}, 0},
		{[]string{"migrate", "-help"}, []string{"keydesk migrate", "-db"}, []string{"-smtp-max-conns"}, 0},
	} {
		code, out, stderr := runCLI(t, "", tc.args...)
		help := out + stderr
		if code != tc.exitStatus {
			t.Errorf("keydesk %s: exit %d, want %d\n%s", strings.Join(tc.args, " "), code, tc.exitStatus, help)
		}
		for _, w := range tc.want {
			if !strings.Contains(help, w) {
				t.Errorf("keydesk %s: help does not mention %q:\n%s", strings.Join(tc.args, " "), w, help)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(help, n) {
				t.Errorf("keydesk %s: help mentions %q:\n%s", strings.Join(tc.args, " "), n, help)
			}
		}
	}
}
