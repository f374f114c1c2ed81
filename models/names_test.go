package models_test

import (
	"strings"
	"testing"

	"keydesk/models"
	"keydesk/models/testdb"
)

// Issue 9, finding 10: one set of name rules for creating and renaming.

// Characters that make a name display as something else, or as nothing,
// are refused with a message that says which kind.
func TestValidateNameRefusesBidiAndInvisibleCharacters(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, value, want string }{
		{"RLO", "invoice\u202Efdp.exe", "text-direction"},
		{"LRO", "a\u202Db", "text-direction"},
		{"RLI isolate", "a\u2067b\u2069", "text-direction"},
		{"RLM mark", "a\u200Fb", "text-direction"},
		{"arabic letter mark", "a\u061Cb", "text-direction"},
		{"zero-width space", "Acme\u200B", "invisible"},
		{"zero-width joiner", "Ac\u200Dme", "invisible"},
		{"zero-width non-joiner", "Ac\u200Cme", "invisible"},
		{"word joiner", "Ac\u2060me", "invisible"},
		{"byte-order mark", "\uFEFFAcme", "invisible"},
		{"soft hyphen", "Ac\u00ADme", "invisible"},
		{"tag character", "Acme\U000E0041", "invisible"},
		{"Hangul filler", "Acme\u3164", "invisible"},
		{"line separator", "a\u2028b", "control"},
		{"DEL", "a\x7Fb", "control"},
	}
	for _, tc := range cases {
		if got, msg := models.ValidateName(tc.value); got != "" || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: ValidateName(%q) = %q, %q; want a message about %s characters", tc.name, tc.value, got, msg, tc.want)
		}
	}
	for _, ok := range []string{"Acme Mail", "Café crème", "東京 newsletters", "مرسل", "שלום", "Acme — 2026 (EU)", "a\u00A0b"} {
		if got, msg := models.ValidateName(ok); got != ok || msg != "" {
			t.Errorf("ValidateName(%q) = %q, %q; want it accepted", ok, got, msg)
		}
	}
}

// Renaming follows creation's rules: a name is unique in the account tree
// (main account, master key and sub-accounts), case-insensitively.
func TestRenameKeepsNamesUniqueInTheTree(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	actor, res := owner(t, s, "Acme", "owner@acme.example")
	setPlan(t, s, res.Account.ID, models.PlanEssential)
	news, _, err := s.CreateSubaccount(ctx, actor, "Newsletters", "")
	if err != nil {
		t.Fatal(err)
	}
	billing, _, err := s.CreateSubaccount(ctx, actor, "Billing", "")
	if err != nil {
		t.Fatal(err)
	}
	taken := []struct {
		what  string
		keyID uint
		name  string
	}{
		{"a sub-account to another's name", billing.Key.ID, "newsletters"},
		{"a sub-account to the main account's name", billing.Key.ID, "ACME"},
		{"the master key to a sub-account's name", res.Key.ID, "Billing"},
		{"a sub-account to another's name in other case", billing.Key.ID, "NEWSLETTERS"},
	}
	for _, tc := range taken {
		if _, err := s.RenameKey(ctx, actor, tc.keyID, tc.name); models.FieldErrors(err)["name"] == "" {
			t.Errorf("rename %s (%q): %v, want a name error", tc.what, tc.name, err)
		}
	}
	// Renamed master key: its old name is free for nobody else (the main
	// account keeps it), its new name is taken.
	if _, err := s.RenameKey(ctx, actor, res.Key.ID, "Production"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateSubaccount(ctx, actor, "production", ""); models.FieldErrors(err)["name"] == "" {
		t.Errorf("create a sub-account named like the master key: %v", err)
	}
	if _, err := s.RenameKey(ctx, actor, news.Key.ID, "PRODUCTION"); models.FieldErrors(err)["name"] == "" {
		t.Errorf("rename a sub-account to the master key's name: %v", err)
	}
	// A key may change the case of its own name, and take a free name.
	if _, err := s.RenameKey(ctx, actor, news.Key.ID, "NEWSLETTERS"); err != nil {
		t.Errorf("change the case of its own name: %v", err)
	}
	if _, err := s.RenameKey(ctx, actor, billing.Key.ID, "Invoices"); err != nil {
		t.Errorf("rename to a free name: %v", err)
	}
	if _, err := s.RenameKey(ctx, actor, billing.Key.ID, "in\u202Evoices"); !strings.Contains(models.FieldErrors(err)["name"], "text-direction") {
		t.Errorf("rename with U+202E: %v", err)
	}
	if _, _, err := s.CreateSubaccount(ctx, actor, "zero\u200Bwidth", ""); !strings.Contains(models.FieldErrors(err)["name"], "invisible") {
		t.Errorf("create with U+200B: %v", err)
	}
	// Another tree's names do not count.
	other, otherRes := owner(t, s, "Globex", "owner@globex.example")
	if _, err := s.RenameKey(ctx, other, otherRes.Key.ID, "Newsletters"); err != nil {
		t.Errorf("a name used in another tree: %v", err)
	}
}
