package models

import (
	"strings"
	"testing"
)

// In the default schema the channel and the lock IDs are those every
// earlier version used (instances of two versions share them during an
// upgrade); elsewhere they are the schema's own and fit PostgreSQL's
// identifier length.
func TestPGScopeNames(t *testing.T) {
	t.Parallel()
	for _, schema := range []string{"", "public"} {
		sc := newPGScope(schema)
		s := &Store{pg: sc}
		if sc.channel != "keydesk_keys" || s.lock(lockMigrate) != 7311001 || s.lock(lockAuditCheck) != 7311004 {
			t.Fatalf("schema %q: channel %q, locks %d %d", schema, sc.channel, s.lock(lockMigrate), s.lock(lockAuditCheck))
		}
	}
	a, b := &Store{pg: newPGScope("t_0a1b2c")}, &Store{pg: newPGScope("t_0a1b2d")}
	if a.pg.channel != "keydesk_keys:t_0a1b2c" || a.pg.channel == b.pg.channel {
		t.Fatalf("channels %q %q", a.pg.channel, b.pg.channel)
	}
	seen := map[int64]bool{}
	for _, s := range []*Store{{}, a, b} {
		for _, id := range []int64{lockMigrate, lockAuditAppend, lockAuditSign, lockAuditCheck} {
			if seen[s.lock(id)] {
				t.Fatalf("lock %d of schema %q is another's", id, s.pg.channel)
			}
			seen[s.lock(id)] = true
		}
	}
	long := newPGScope(strings.Repeat("x", 63))
	if len(long.channel) > maxIdentifier || !strings.HasPrefix(long.channel, "keydesk_keys:") {
		t.Fatalf("long schema's channel %q", long.channel)
	}
}
