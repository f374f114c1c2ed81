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

// keyFile is where a generated key is kept: beside the SQLite file, or in
// the working directory for PostgreSQL.
func keyFile(cfg *config, name string) string {
	dir := "."
	if !models.IsPostgresDSN(cfg.DB) {
		dir = filepath.Dir(cfg.DB)
	}
	return filepath.Join(dir, name)
}

// sessionKeys parses KEYDESK_SESSION_KEYS or, when unset, loads or creates a
// key file (0600) beside the SQLite database.
func sessionKeys(cfg *config, log *slog.Logger) ([][]byte, error) {
	spec := cfg.SessionKeys
	if spec == "" {
		path := keyFile(cfg, "keydesk.session-keys")
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			spec = strings.TrimSpace(string(b))
		case errors.Is(err, os.ErrNotExist):
			hash, block := make([]byte, 64), make([]byte, 32)
			if _, err := rand.Read(hash); err != nil {
				return nil, err
			}
			if _, err := rand.Read(block); err != nil {
				return nil, err
			}
			spec = hex.EncodeToString(hash) + ":" + hex.EncodeToString(block)
			if err := writeNew(path, spec+"\n"); err != nil {
				return nil, fmt.Errorf("save session keys: %w", err)
			}
			log.Info("generated session keys and saved them with 0600 permissions; set KEYDESK_SESSION_KEYS to share them between instances", "file", path)
		default:
			return nil, fmt.Errorf("read session keys: %w", err)
		}
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
		path := keyFile(cfg, "keydesk.audit-key")
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			spec = strings.TrimSpace(string(b))
		case errors.Is(err, os.ErrNotExist):
			k := make([]byte, 32)
			if _, err := rand.Read(k); err != nil {
				return nil, err
			}
			spec = hex.EncodeToString(k)
			if err := writeNew(path, spec+"\n"); err != nil {
				return nil, fmt.Errorf("save audit key: %w", err)
			}
			log.Info("generated the audit key and saved it with 0600 permissions; back it up apart from the database, and set KEYDESK_AUDIT_KEY on every instance", "file", path)
		default:
			return nil, fmt.Errorf("read audit key: %w", err)
		}
	}
	var keys [][]byte
	for _, part := range strings.Split(spec, ",") {
		k, err := hex.DecodeString(strings.TrimSpace(part))
		if err != nil || len(k) < 32 {
			return nil, fmt.Errorf("audit key: must be at least 32 bytes, hex-encoded (NEWHEX,OLDHEX after a rotation)")
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// auditAnchor is the anchor file: KEYDESK_AUDIT_ANCHOR, else beside the
// SQLite database or in the working directory.
func auditAnchor(cfg *config) string {
	if cfg.AuditAnchor != "" {
		return cfg.AuditAnchor
	}
	return keyFile(cfg, "keydesk.audit-anchor")
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
