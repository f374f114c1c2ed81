package models

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"

	"gorm.io/gorm"
)

// RoleAPIKey is the role of an actor authenticated by a master API key.
const RoleAPIKey Role = "apikey"

// APIKeyActor is the actor for changes made through the REST API.
func APIKeyActor(p KeyPrincipal, meta RequestMeta) Actor {
	return Actor{Email: "API key " + p.APIKey, Role: RoleAPIKey, AccountID: p.AccountID, Meta: meta}
}

// APIKeyRecord is a key as the REST API returns it.
type APIKeyRecord struct {
	Key    APIKey
	UserID uint // the owner of the main account (Mailjet's UserID)
}

// APIKeyQuery is the REST list's filters and paging.
type APIKeyQuery struct {
	APIKey   string
	Name     string
	IsActive *bool
	IsMaster *bool
	Limit    int
	Offset   int
	Sort     APIKeySort // zero: by ID, ascending (Mailjet's default)
}

// APIKeySort orders a REST list by one of APIKeySortFields.
type APIKeySort struct {
	Field string
	Desc  bool
}

// APIKeySortFields are the properties a REST list can be sorted on.
var APIKeySortFields = []string{"ID", "APIKey", "Name", "CreatedAt", "IsActive", "IsMaster"}

func (o APIKeySort) less(a, b *APIKey) bool {
	var c int
	switch o.Field {
	case "APIKey":
		c = strings.Compare(a.APIKey, b.APIKey)
	case "Name":
		c = strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name))
	case "CreatedAt":
		c = a.CreatedAt.Compare(b.CreatedAt)
	case "IsActive":
		c = boolCmp(a.IsActive, b.IsActive)
	case "IsMaster":
		c = boolCmp(a.IsMaster, b.IsMaster)
	}
	if c == 0 {
		c = cmp.Compare(a.ID, b.ID) // ties (and Field "ID") by ID
	}
	if o.Desc {
		return c > 0
	}
	return c < 0
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// apiScope limits keys to what a principal may see: a master key its
// account tree, a sub-account key only itself.
func (s *Store) apiScope(db *gorm.DB, p KeyPrincipal) *gorm.DB {
	if !p.IsMaster {
		return db.Where("id = ?", p.KeyID)
	}
	return s.ownedKeys(db, Actor{Role: RoleAPIKey, AccountID: p.AccountID})
}

// root is the main account of the principal's tree.
func (p KeyPrincipal) root() uint {
	if p.ParentID != 0 {
		return p.ParentID
	}
	return p.AccountID
}

// listKeys applies a REST list's filters, sort and paging to a tree.
func listKeys(tree *treeEntry, p KeyPrincipal, q APIKeyQuery) ([]APIKeyRecord, int64) {
	apiKey := strings.ToLower(q.APIKey)
	keys := tree.keys // by ID; shared with the cache: never modified
	if q.Sort.Desc || (q.Sort.Field != "" && q.Sort.Field != "ID") {
		sorted := make([]treeKey, len(keys))
		copy(sorted, keys)
		rows := make([]APIKey, len(keys))
		for i := range keys {
			rows[i] = keys[i].row()
		}
		idx := make([]int, len(keys))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(i, j int) bool { return q.Sort.less(&rows[idx[i]], &rows[idx[j]]) })
		for i, n := range idx {
			sorted[i] = keys[n]
		}
		keys = sorted
	}
	var total int64
	// Sized for the page at once: a record is ~250 bytes, and growing the
	// slice record by record was a tenth of a pass over many trees' first
	// lists (issue 13 #2).
	out := make([]APIKeyRecord, 0, max(0, min(q.Limit, len(keys))))
	for i := range keys {
		k := &keys[i]
		switch {
		case !p.IsMaster && k.ID != p.KeyID,
			apiKey != "" && k.APIKey != apiKey,
			q.Name != "" && k.Name != q.Name,
			q.IsActive != nil && k.IsActive != *q.IsActive,
			q.IsMaster != nil && k.IsMaster != *q.IsMaster:
			continue
		}
		total++
		if total > int64(q.Offset) && len(out) < q.Limit {
			out = append(out, APIKeyRecord{Key: k.row(), UserID: tree.ownerID})
		}
	}
	return out, total
}

// DefaultAPIKeyQuery is the list a REST client gets without parameters:
// the first 10 keys by ID.
var DefaultAPIKeyQuery = APIKeyQuery{Limit: 10}

// APIListKeysEncoded lists the keys a principal sees, with the total
// before paging, encoded by encode. The tree's keys come from the tree
// cache; filters and paging are applied in memory (a tree holds at most its
// plan's sub-accounts). The
// default list of a master key (most clients' only call) is encoded once
// per tree cache entry and served from it until the tree changes or the
// entry expires; any other query is encoded each time.
func (s *Store) APIListKeysEncoded(ctx context.Context, p KeyPrincipal, q APIKeyQuery, encode func([]APIKeyRecord, int64) ([]byte, error)) ([]byte, error) {
	memo := p.IsMaster && q == DefaultAPIKeyQuery
	tree, err := s.treeKeys(ctx, p.root())
	if err != nil {
		return nil, wrapOp("api list keys", err)
	}
	if memo {
		if b := tree.listed.Load(); b != nil {
			return *b, nil
		}
	}
	rows, total := listKeys(tree, p, q)
	b, err := encode(rows, total)
	if err != nil {
		return nil, err
	}
	if memo && tree.lists.Add(1) >= 2 { // kept from the second list on (treeEntry.lists)
		kept := bytes.Clone(b) // its own size: the encoder's buffer has room to spare
		tree.listed.Store(&kept)
	}
	return b, nil
}

// findAPIKey resolves "{id}" in a REST path: a numeric ID or an API key.
func (s *Store) findAPIKey(db *gorm.DB, p KeyPrincipal, ref string) (*APIKey, error) {
	q := s.apiScope(db.Model(&APIKey{}), p)
	if id, err := strconv.ParseUint(ref, 10, 32); err == nil && id > 0 {
		q = q.Where("id = ?", id)
	} else if ValidAPIKeyFormat(strings.ToLower(ref)) {
		q = q.Where("api_key = ?", strings.ToLower(ref))
	} else {
		return nil, ErrNotFound
	}
	var k APIKey
	if err := q.Take(&k).Error; err != nil {
		return nil, notFound(err)
	}
	return &k, nil
}

// APIGetKey reads one key the principal may see (another tenant's: ErrNotFound).
func (s *Store) APIGetKey(ctx context.Context, p KeyPrincipal, ref string) (*APIKeyRecord, error) {
	db := s.db.WithContext(ctx)
	k, err := s.findAPIKey(db, p, ref)
	if err != nil {
		return nil, err
	}
	uid, err := treeOwner(db, p.root())
	if err != nil {
		return nil, wrapOp("api get key", err)
	}
	return &APIKeyRecord{Key: *k, UserID: uid}, nil
}

// ErrSubaccountKeyReadOnly refuses changes requested with a sub-account key.
var ErrSubaccountKeyReadOnly = errors.New("a sub-account API key can only read itself")

// APIKeyCreate is what a REST create may set.
type APIKeyCreate struct {
	Name     string
	IsActive *bool // nil: active
}

// APICreateSubaccount creates a sub-account and its key with a master key,
// subject to the plan limit, returning the secret once. Everything the
// response needs is read inside the one transaction, so once it commits
// nothing can fail and lose the secret (a failure before the commit
// leaves nothing behind, and the retry works).
func (s *Store) APICreateSubaccount(ctx context.Context, p KeyPrincipal, in APIKeyCreate, meta RequestMeta) (*APIKeyRecord, Revealed, error) {
	if !p.IsMaster {
		return nil, Revealed{}, ErrSubaccountKeyReadOnly
	}
	actor := APIKeyActor(p, meta)
	actor.Role, actor.AuthAt = RoleOwner, s.Now() // the API key itself is a fresh authentication
	var rec APIKeyRecord
	var secret Revealed
	err := s.tx(ctx, func(tx *gorm.DB) error {
		sub, rev, err := s.createSubaccountTx(tx, actor, in.Name, "")
		if err != nil {
			return err
		}
		rec.Key, secret = sub.Key, rev
		if in.IsActive != nil && !*in.IsActive {
			k := sub.Key
			if err := s.setKeyActive(tx, APIKeyActor(p, meta), &k, false); err != nil {
				return err
			}
			rec.Key = k
		}
		rec.UserID, err = treeOwner(tx, p.root())
		return err
	})
	if err != nil {
		return nil, Revealed{}, wrapOp("api create key", err)
	}
	s.invalidateTree(p.root())
	s.invalidate(rec.Key.APIKey)
	return &rec, secret, nil
}

// APIUpdateKey applies a partial update (Name, IsActive) with a master key,
// in one transaction: a refused part leaves the other undone too.
func (s *Store) APIUpdateKey(ctx context.Context, p KeyPrincipal, ref string, rawName *string, active *bool, meta RequestMeta) (*APIKeyRecord, error) {
	if !p.IsMaster {
		return nil, ErrSubaccountKeyReadOnly
	}
	var name string
	if rawName != nil {
		var err error
		if name, err = keyName(*rawName); err != nil {
			return nil, err
		}
	}
	found, err := s.findAPIKey(s.db.WithContext(ctx), p, ref)
	if err != nil {
		return nil, err
	}
	actor := APIKeyActor(p, meta)
	actor.AuthAt = s.Now()
	var uid uint
	k, err := s.withOwnedKey(ctx, actor, found.ID, "api update key", func(tx *gorm.DB, k *APIKey) error {
		if rawName != nil {
			if err := s.renameKey(tx, actor, k, name); err != nil {
				return err
			}
		}
		if active != nil {
			if err := s.setKeyActive(tx, actor, k, *active); err != nil {
				return err
			}
		}
		var err error
		uid, err = treeOwner(tx, p.root())
		return err
	})
	if err != nil {
		return nil, err
	}
	return &APIKeyRecord{Key: *k, UserID: uid}, nil
}
