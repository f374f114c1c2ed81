package models

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
)

// treeCache holds each account tree's keys (display fields only, never a
// digest) and owner ID for the REST API, by main account ID, so a warm
// GET /v3/REST/apikey costs no query. The rules are those of cache
// (cache.go): invalidated after every write to the tree in this process
// and, on PostgreSQL, in every instance through NOTIFY; off with the key
// cache while the listener is down.
type treeCache = cache[uint, *treeEntry]

type treeEntry struct {
	keys    []treeKey
	ownerID uint
	// listed is the encoded answer to a master key's default list (see
	// APIListKeysEncoded), made from keys on first use: it lives and dies
	// with the entry, so every invalidation of the tree drops it too.
	listed atomic.Pointer[[]byte]
	// lists counts default lists served from this entry: the encoded
	// answer is kept from the second on, so a tree listed once (a pass
	// over many keys) does not pin its answer for the TTL (issue 13 #3).
	lists atomic.Int32
}

// treeKey is a key as the REST list shows it: the display fields only,
// 96 bytes a key instead of a whole APIKey row's 240 (issue 13 #3).
type treeKey struct {
	ID, AccountID, TreeID uint
	Name, APIKey          string
	CreatedAt             time.Time
	IsMaster, IsActive    bool
}

// sameTree reports whether two reads of a tree found the same keys and
// owner: a refresh then keeps the cached entry and its encoded list.
func sameTree(a, b *treeEntry) bool {
	if a.ownerID != b.ownerID || len(a.keys) != len(b.keys) {
		return false
	}
	for i := range a.keys {
		x, y := &a.keys[i], &b.keys[i]
		if x.ID != y.ID || x.AccountID != y.AccountID || x.TreeID != y.TreeID || x.Name != y.Name || x.APIKey != y.APIKey ||
			x.IsMaster != y.IsMaster || x.IsActive != y.IsActive || !x.CreatedAt.Equal(y.CreatedAt) {
			return false
		}
	}
	return true
}

func (k *treeKey) row() APIKey {
	return APIKey{ID: k.ID, AccountID: k.AccountID, TreeID: k.TreeID, Name: k.Name, APIKey: k.APIKey,
		IsMaster: k.IsMaster, IsActive: k.IsActive, CreatedAt: k.CreatedAt}
}

const treePrefix = "tree:"

// treeOf is the tree an account belongs to, named by its root (the main
// account: itself or its parent); 0 for an unknown account. It is what
// tree_id holds on a tree's rows.
func treeOf(tx *gorm.DB, accountID uint) (uint, error) {
	var root uint
	err := tx.Raw("SELECT COALESCE(parent_id, id) FROM accounts WHERE id = ?", accountID).Scan(&root).Error
	return root, err
}

// notifyTreeChanged tells other instances, at commit, that a tree's keys
// changed.
func (s *Store) notifyTreeChanged(tx *gorm.DB, root uint) error {
	if s.engine != Postgres {
		return nil
	}
	return tx.Exec("SELECT pg_notify(?, ?)", s.pg.channel, treePrefix+strconv.FormatUint(uint64(root), 10)).Error
}

// invalidateTree drops a tree from this process's cache (after commit).
func (s *Store) invalidateTree(root uint) { s.trees.invalidate(root) }

// handleNotification dispatches a NOTIFY payload to the right cache.
func (s *Store) handleNotification(payload string) {
	if rest, ok := strings.CutPrefix(payload, throttleNotifyPrefix); ok {
		s.handleThrottleNotification(rest)
		return
	}
	if rest, ok := strings.CutPrefix(payload, treePrefix); ok {
		if id, err := strconv.ParseUint(rest, 10, 64); err == nil {
			s.trees.invalidate(uint(id))
		}
		return
	}
	s.cache.invalidate(payload)
}

// treeOwnersSQL is the one statement of who owns a tree: for each root in
// its first argument (the second is RoleOwner), the lowest user ID with the
// owner role on it, as (account_id, owner_id). That user ID is the one
// Mailjet's API calls UserID. treeOwner asks it for one tree, loadTrees
// joins it for a batch, and the support search lists owners with it.
const treeOwnersSQL = `SELECT u.account_id, MIN(u.id) AS owner_id FROM users u WHERE u.account_id IN ? AND u.role = ? GROUP BY u.account_id`

// treeOwner is the owner's user ID of the tree whose root is root (0:
// none).
func treeOwner(db *gorm.DB, root uint) (uint, error) {
	var rows []struct{ AccountID, OwnerID uint }
	if err := db.Raw(treeOwnersSQL, []uint{root}, RoleOwner).Scan(&rows).Error; err != nil || len(rows) == 0 {
		return 0, err
	}
	return rows[0].OwnerID, nil
}

// treeKeys returns the keys of a tree (cached) and its owner's user ID.
// Concurrent misses share one query (batchload.go).
func (s *Store) treeKeys(ctx context.Context, root uint) (*treeEntry, error) {
	if e, ok, _ := s.trees.get(root, s.now()); ok {
		return e, nil
	}
	e, _, err := s.treeLoads.get(ctx, root)
	return e, err
}

// loadTrees reads the keys (display fields only) of a batch of trees and
// each tree's owner's user ID in one prepared query, and caches them. Every
// root asked for gets an entry (a tree without keys an empty one).
func (s *Store) loadTrees(ctx context.Context, roots []uint) (map[uint]*treeEntry, error) {
	now := s.now()
	epoch := s.trees.currentEpoch() // before the query: a change committed since voids the fill
	in := padded(roots)
	var rows []treeKey
	var owners []uint
	var c cols
	err := rawRows(s.hot.WithContext(ctx), 9, func(v []any) error {
		rows = append(rows, treeKey{ID: c.id(v[0]), AccountID: c.id(v[1]), TreeID: c.id(v[2]), Name: c.text(v[3]), APIKey: c.text(v[4]),
			IsMaster: c.bool(v[5], false), IsActive: c.bool(v[6], false), CreatedAt: c.time(v[7])})
		owners = append(owners, c.id(v[8]))
		return c.err
	}, `SELECT k.id, k.account_id, k.tree_id, k.name, k.api_key, k.is_master, k.is_active, k.created_at, o.owner_id
		FROM api_keys k LEFT JOIN (`+treeOwnersSQL+`) o
		ON o.account_id = k.tree_id
		WHERE k.tree_id IN ? ORDER BY k.tree_id, k.id`, in, RoleOwner, in)
	if err != nil {
		return nil, err
	}
	out := make(map[uint]*treeEntry, len(roots))
	for i := 0; i < len(rows); { // rows come in tree order
		j := i
		for j < len(rows) && rows[j].TreeID == rows[i].TreeID {
			j++
		}
		e := &treeEntry{keys: make([]treeKey, j-i), ownerID: owners[i]} // each its own array: an entry pins no other's rows
		copy(e.keys, rows[i:j])
		out[rows[i].TreeID] = e
		i = j
	}
	for _, root := range roots {
		e := out[root]
		if e == nil {
			e = &treeEntry{}
			out[root] = e
		}
		s.trees.put(root, e, now, epoch)
	}
	return out, nil
}
