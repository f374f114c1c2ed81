package cli

import (
	"encoding/hex"
	"strings"
	"testing"

	"keydesk/models/testdb"
)

// No help prints a secret: the session keys and the audit key come from the
// environment or the command line, and --help (of keydesk or of a command)
// must not show them as defaults.
func TestHelpNeverPrintsSecrets(t *testing.T) {
	const envAudit, envSession = "aaaa0000feedfacecafe1111envaudit", "bbbb2222envsessionkeysmarker3333"
	const argAudit, argSession = "cccc4444argauditkeymarker5555dead", "dddd6666argsessionkeysmarker7777"
	t.Setenv("KEYDESK_AUDIT_KEY", envAudit)
	t.Setenv("KEYDESK_SESSION_KEYS", envSession)
	secrets := []string{envAudit, envSession, argAudit, argSession, hex.EncodeToString(testdb.AuditKey)}
	for _, args := range [][]string{
		{"--help"},
		{"help"},
		{"serve", "--help"},
		{"migrate", "--help"},
		{"account", "create", "--help"},
		{"user", "create", "--help"},
		{"audit", "verify", "--help"},
		{"audit", "rotate-key", "--help"},
		{"account", "--help"},
		{"--audit-key", argAudit, "--session-keys", argSession, "--help"},
		{"--audit-key", argAudit, "--session-keys", argSession, "serve", "--help"},
		{"--audit-key", argAudit, "migrate", "--help"},
		{"serve", "--audit-key", argAudit, "--session-keys", argSession, "--help"},
		{"--audit-key", hex.EncodeToString(testdb.AuditKey), "serve", "--help"},
	} {
		code, out, stderr := runPlain(t, "", args...)
		if code != 0 || !strings.Contains(stderr, "Usage") {
			t.Errorf("keydesk %s: exit %d, no usage:\n%s", strings.Join(args, " "), code, stderr)
		}
		for _, s := range secrets {
			if strings.Contains(out+stderr, s) {
				t.Errorf("keydesk %s prints the secret %s:\n%s", strings.Join(args, " "), s, out+stderr)
			}
		}
	}
}
