package models_test

import (
	"slices"
	"strings"
	"testing"

	"keydesk/models/testdb"
)

// Support search (issue 13): a query of three letters or digits in a row
// matches anywhere in an account's or sub-account's name or an owner's
// e-mail, in any case; a shorter one matches from their start; an API key
// matches whole. Every query is answered from an index on both engines
// (before, one query joined accounts, users and keys with LIKE '%…%' and
// scanned all three: about 1 s at 250,000 keys).
func TestSupportSearchMatchesAnywhereOrFromTheStart(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	alice, a := owner(t, s, "Alice Mail", "alice@alice.example")
	sub, _, err := s.CreateSubaccount(ctx, alice, "Weekly Newsletters", "")
	if err != nil {
		t.Fatal(err)
	}
	_, b := owner(t, s, "Bob Sends", "bob@post.example")
	_, c := owner(t, s, "Carol 100% Mail_x", "carol@c.example")
	staff := support(t, s)
	ids := map[uint]string{a.Account.ID: "alice", b.Account.ID: "bob", c.Account.ID: "carol"}
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"alice", []string{"alice"}},
		{"LETTERS", []string{"alice"}}, // inside a sub-account's name: its parent
		{"ends", []string{"bob"}},      // inside a name
		{"post.ex", []string{"bob"}},   // inside an e-mail
		{"MAIL", []string{"alice", "carol"}},
		{"al", []string{"alice"}}, // short: from the start of a name or e-mail only
		{"AL", []string{"alice"}},
		{"ce", nil}, // inside "alice", but too short to match inside
		{"b", []string{"bob"}},
		{"%", nil}, // LIKE's wildcards are literal
		{"100% m", []string{"carol"}},
		{"100%_", nil},
		{"l_x", nil},
		{sub.Key.APIKey, []string{"alice"}}, // a sub-account's key: its parent
		{strings.ToUpper(a.Key.APIKey), []string{"alice"}},
		{a.Key.APIKey[:12], nil}, // keys match whole
		{"nobody", nil},
	} {
		got, err := s.SearchAccounts(ctx, staff, tc.q)
		if err != nil {
			t.Fatalf("search %q: %v", tc.q, err)
		}
		var names []string
		for _, m := range got {
			names = append(names, ids[m.Account.ID])
			if want := ids[m.Account.ID]; !strings.HasPrefix(m.OwnerEmail, want+"@") {
				t.Errorf("search %q: %s's owner is %q", tc.q, want, m.OwnerEmail)
			}
		}
		slices.Sort(names)
		if !slices.Equal(names, tc.want) {
			t.Errorf("search %q found %v, want %v", tc.q, names, tc.want)
		}
		plans, err := s.ExplainSearchAccounts(ctx, tc.q)
		if err != nil {
			t.Fatalf("explain %q: %v", tc.q, err)
		}
		for _, p := range plans {
			for _, l := range p {
				if strings.Contains(l, "Seq Scan") || regexpScan(l) {
					t.Errorf("search %q scans a table:\n\t%s", tc.q, strings.Join(p, "\n\t"))
				}
			}
		}
	}
}

// regexpScan: a SQLite plan line that reads a whole table (a full-text
// table's "SCAN … VIRTUAL TABLE INDEX" is its index).
func regexpScan(l string) bool {
	l = strings.TrimSpace(l)
	return strings.HasPrefix(l, "SCAN ") && !strings.Contains(l, "VIRTUAL TABLE INDEX")
}

// The trigram tables follow renames and deletions (SQLite keeps them with
// triggers; PostgreSQL's indexes are the table's own).
func TestSupportSearchFollowsRenames(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	_, a := owner(t, s, "Old Name Ltd", "first@one.example")
	staff := support(t, s)
	testdb.Must(t, s.DB().Exec("UPDATE accounts SET name = ? WHERE id = ?", "Fresh Title Ltd", a.Account.ID))
	testdb.Must(t, s.DB().Exec("UPDATE users SET email = ? WHERE account_id = ?", "second@two.example", a.Account.ID))
	for q, want := range map[string]int{"old name": 0, "fresh": 1, "first@": 0, "second@": 1, "two.ex": 1} {
		got, err := s.SearchAccounts(ctx, staff, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != want {
			t.Errorf("search %q after the rename: %d results, want %d", q, len(got), want)
		}
	}
}
