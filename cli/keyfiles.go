package cli

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"keydesk/models"
)

// The files keydesk generates on first start (each 0600 unless said
// otherwise) and keeps beside the database.
const (
	sessionKeysFile = "keydesk.session-keys"
	auditKeyFile    = "keydesk.audit-key"
	auditAnchorFile = "keydesk.audit-anchor"  // appended to, never generated
	certFile        = "keydesk.smtp-cert.pem" // 0644: clients may need to trust it
	certKeyFile     = "keydesk.smtp-key.pem"
)

// Sizes of the generated keys, in bytes.
const (
	sessionHashKeyBytes  = 64 // HMAC-SHA256 of the cookie (at least 32)
	sessionBlockKeyBytes = 32 // AES-256 of the cookie
	auditKeyBytes        = 32 // HMAC-SHA256 of the audit chain (at least 32)
)

// besideDB is where a generated file is kept: beside the SQLite file, or
// in the working directory for PostgreSQL.
func besideDB(cfg *config, name string) string {
	dir := "."
	if !models.IsPostgresDSN(cfg.DB) {
		dir = filepath.Dir(cfg.DB)
	}
	return filepath.Join(dir, name)
}

// loadOrGenerate returns the contents of the files at paths or, when none
// of them exists, generates their contents (one per path), saves each with
// 0600 permissions (never overwriting) and says so at INFO with msg and
// args. Some of several files missing is an error: a pair is never half
// regenerated.
func loadOrGenerate(log *slog.Logger, what string, paths []string, generate func() ([]string, error), msg string, args ...any) ([]string, error) {
	contents := make([]string, len(paths))
	var present []string
	var missing error // the first file that is not there
	for i, p := range paths {
		b, err := os.ReadFile(p)
		switch {
		case err == nil:
			contents[i] = string(b)
			present = append(present, p)
		case errors.Is(err, os.ErrNotExist):
			if missing == nil {
				missing = err
			}
		default:
			return nil, fmt.Errorf("read %s: %w", what, err)
		}
	}
	switch {
	case missing == nil:
		return contents, nil
	case len(present) > 0:
		return nil, fmt.Errorf("read %s: %w (remove %s to generate new ones)", what, missing, strings.Join(present, " and "))
	}
	contents, err := generate()
	if err != nil {
		return nil, fmt.Errorf("generate %s: %w", what, err)
	}
	for i, p := range paths {
		if err := writeNew(p, contents[i]); err != nil {
			return nil, fmt.Errorf("save %s: %w", what, err)
		}
	}
	log.Info(msg, args...)
	return contents, nil
}

// randomHex is n random bytes, hex-encoded.
func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// sessionKeys parses KEYDESK_SESSION_KEYS or, when unset, loads or creates a
// key file (0600) beside the SQLite database.
func sessionKeys(cfg *config, log *slog.Logger) ([][]byte, error) {
	spec := cfg.SessionKeys
	if spec == "" {
		path := besideDB(cfg, sessionKeysFile)
		got, err := loadOrGenerate(log, "session keys", []string{path}, func() ([]string, error) {
			hash, err := randomHex(sessionHashKeyBytes)
			if err != nil {
				return nil, err
			}
			block, err := randomHex(sessionBlockKeyBytes)
			if err != nil {
				return nil, err
			}
			return []string{hash + ":" + block + "\n"}, nil
		}, "generated session keys and saved them with 0600 permissions; set KEYDESK_SESSION_KEYS to share them between instances", "file", path)
		if err != nil {
			return nil, err
		}
		spec = strings.TrimSpace(got[0])
	}
	var keys [][]byte
	for _, pair := range strings.Split(spec, ",") {
		hs, bs, ok := strings.Cut(strings.TrimSpace(pair), ":")
		hash, err1 := hex.DecodeString(hs)
		block, err2 := hex.DecodeString(bs)
		if !ok || err1 != nil || err2 != nil || len(hash) < 32 || (len(block) != 16 && len(block) != 24 && len(block) != 32) {
			return nil, fmt.Errorf("session keys: each entry must be HASHHEX:BLOCKHEX with a hash key of at least 32 bytes and an AES block key of 16, 24 or 32 bytes")
		}
		keys = append(keys, hash, block)
	}
	return keys, nil
}

// loadAuditKey parses KEYDESK_AUDIT_KEY or loads/creates keydesk.audit-key
// (0600): the current key first, then older ones (NEW,OLD after a
// rotation). The key links entries and signs heads, so it must not live in
// the database.
func loadAuditKey(cfg *config, log *slog.Logger) ([][]byte, error) {
	spec := strings.TrimSpace(cfg.AuditKey)
	if spec == "" {
		path := besideDB(cfg, auditKeyFile)
		got, err := loadOrGenerate(log, "audit key", []string{path}, func() ([]string, error) {
			k, err := randomHex(auditKeyBytes)
			return []string{k + "\n"}, err
		}, "generated the audit key and saved it with 0600 permissions; back it up apart from the database, and set KEYDESK_AUDIT_KEY on every instance", "file", path)
		if err != nil {
			return nil, err
		}
		spec = strings.TrimSpace(got[0])
	}
	var keys [][]byte
	for _, part := range strings.Split(spec, ",") {
		k, err := hex.DecodeString(strings.TrimSpace(part))
		if err != nil || len(k) < auditKeyBytes {
			return nil, fmt.Errorf("audit key: must be at least 32 bytes, hex-encoded (NEWHEX,OLDHEX after a rotation)")
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// prependAuditKey generates a new audit key and puts it first in the key
// file, keeping the older ones after it (NEW,OLD…) to verify older entries.
// The file is replaced whole (a new 0600 file renamed over it).
func prependAuditKey(cfg *config) (string, error) {
	path := besideDB(cfg, auditKeyFile)
	old, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read audit key: %w", err)
	}
	k, err := randomHex(auditKeyBytes)
	if err != nil {
		return "", err
	}
	tmp := path + ".new"
	_ = os.Remove(tmp)
	if err := writeNew(tmp, k+","+strings.TrimSpace(string(old))+"\n"); err != nil {
		return "", fmt.Errorf("save the new audit key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("save the new audit key: %w", err)
	}
	return path, nil
}

// auditAnchor is the anchor file: KEYDESK_AUDIT_ANCHOR, else beside the
// SQLite database or in the working directory.
func auditAnchor(cfg *config) string {
	if cfg.AuditAnchor != "" {
		return cfg.AuditAnchor
	}
	return besideDB(cfg, auditAnchorFile)
}

// writeNew creates path with 0600 permissions; it never overwrites.
func writeNew(path, content string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
