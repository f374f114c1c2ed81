package models

import (
	"strings"
	"unicode"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Names of accounts, sub-accounts and keys: one set of rules for
// creation and renaming, wherever the name comes from (console, REST,
// CLI). ValidateName (users.go) checks the shape and calls nameCharProblem;
// ensureNameFree checks uniqueness within the account tree.

// Messages for refused names.
const (
	msgNameBidi      = "The name cannot contain text-direction control characters (such as U+202E RIGHT-TO-LEFT OVERRIDE): they make a name display differently from what it is."
	msgNameInvisible = "The name cannot contain invisible characters (such as zero-width spaces or joiners)."
	msgNameTaken     = "You already have an account or sub-account with this name."
)

// isBidiControl reports the Unicode bidirectional formatting characters:
// marks, embeddings, overrides and isolates.
func isBidiControl(r rune) bool {
	switch {
	case r == 0x061C, r == 0x200E, r == 0x200F: // ALM, LRM, RLM
		return true
	case r >= 0x202A && r <= 0x202E: // LRE, RLE, PDF, LRO, RLO
		return true
	case r >= 0x2066 && r <= 0x2069: // LRI, RLI, FSI, PDI
		return true
	}
	return false
}

// nameCharProblem returns why name's characters are refused, or "":
// control characters (including line and paragraph separators), bidi
// controls, and invisible format characters (zero-width space, joiners,
// word joiner, byte-order mark, soft hyphen, tag characters…).
func nameCharProblem(name string) string {
	invisible := false
	for _, r := range name {
		switch {
		case unicode.IsControl(r) || r == 0x2028 || r == 0x2029:
			return "The name cannot contain control characters (such as line breaks or tabs)."
		case isBidiControl(r):
			return msgNameBidi
		case unicode.Is(unicode.Cf, r) || r == 0x034F || r == 0x115F || r == 0x1160 || r == 0x3164 || r == 0xFFA0:
			// Format characters, plus the combining grapheme joiner and
			// the Hangul fillers, which render as nothing.
			invisible = true
		}
	}
	if invisible {
		return msgNameInvisible
	}
	return ""
}

// ensureNameFree refuses name when another account or key of the tree
// rooted at root already has it, compared case-insensitively (Unicode
// case folding, the same on both engines). except is the account being
// renamed (its own name and its keys' names do not count), 0 on creation.
// The caller holds the root account's lock (lockTreeRoot), so two
// concurrent renames cannot both take one name.
func ensureNameFree(tx *gorm.DB, root, except uint, name string) error {
	var names []string
	if err := tx.Model(&Account{}).Where("(id = ? OR parent_id = ?) AND id <> ?", root, root, except).
		Pluck("name", &names).Error; err != nil {
		return err
	}
	var keyNames []string
	if err := tx.Model(&APIKey{}).Where("tree_id = ? AND account_id <> ?", root, except).
		Pluck("name", &keyNames).Error; err != nil {
		return err
	}
	for _, n := range append(names, keyNames...) {
		if strings.EqualFold(strings.TrimSpace(n), name) {
			return &ValidationError{Fields: map[string]string{"name": msgNameTaken}}
		}
	}
	return nil
}

// lockTreeRoot locks the tree's main account row (PostgreSQL; SQLite
// write transactions are serialised already), the lock every name change
// in the tree takes.
func (s *Store) lockTreeRoot(tx *gorm.DB, root uint) error {
	q := tx.Model(&Account{}).Select("id").Where("id = ?", root)
	if s.engine == Postgres {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	var ids []uint
	return q.Pluck("id", &ids).Error
}
