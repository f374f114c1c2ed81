package models

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/gorm"
)

// Synthetic data for benchmarks and scale reports (.ci/seed). Everything a
// seeded database holds is valid as keydesk reads it: secrets are stored
// as digests, every audit entry is chained and keyed with the store's own
// functions (computeHash, linkEntry), so `keydesk audit verify --full`
// passes. The secrets are derived from the key's number (SeedCredentials)
// so a load test can authenticate: a seeded database is for benchmarks
// only, and Seed refuses a database that already holds accounts.

// SeedOptions size a synthetic data set.
type SeedOptions struct {
	// Accounts main accounts, each with one owner and one master key.
	Accounts int
	// Subaccounts in all, each with its master key: BigTree of them under
	// the first main account (the keys page with many sub-accounts), the
	// rest spread over the others round-robin.
	Subaccounts int
	BigTree     int
	// AuditEntries appended after the log's head, spread evenly in time
	// from AuditStart to the store's clock.
	AuditEntries int
	AuditStart   time.Time
	// Seed makes the audit mix reproducible (0: 1).
	Seed uint64
	// DeferIndexes drops the audit log's secondary indexes before the bulk
	// load and builds them again after it (much faster for millions).
	DeferIndexes bool
	// Progress, when set, is called after each batch.
	Progress func(what string, done, total int)
}

// SeedResult is what Seed wrote.
type SeedResult struct {
	FirstAccount, FirstUser, FirstKey uint
	Keys                              int
	FirstEntry, LastEntry             uint64
}

// SeedPassword is every seeded owner's password.
const SeedPassword = "bench password 0123"

// SeedCredentials is seeded key n's API key and secret (n from 0 in the
// order Seed creates keys: main accounts' keys, then sub-accounts' keys).
func SeedCredentials(n int) (apiKey, secret string) {
	a := sha256.Sum256([]byte("keydesk-seed-apikey\n" + strconv.Itoa(n)))
	apiKey = hex.EncodeToString(a[:16])
	b := sha256.Sum256([]byte("keydesk-seed-secret\n" + strconv.Itoa(n)))
	out := []byte(SecretPrefix)
	for i := 0; len(out) < len(SecretPrefix)+secretRandLen; i++ {
		out = append(out, base62[b[i%len(b)]%62])
		if i == len(b)-1 {
			b = sha256.Sum256(b[:])
		}
	}
	return apiKey, string(appendChecksum(out, out))
}

// SeedOwnerEmail is main account i's owner (i from 0).
func SeedOwnerEmail(i int) string {
	return fmt.Sprintf("owner%06d@t%03d.bench.example", i, i%997)
}

// Seed writes accounts, owners, keys and audit entries in bulk: multi-row
// INSERTs on SQLite, COPY on PostgreSQL. The audit entries are chained
// after the current head; the caller seals the head (SealAuditHead).
func (s *Store) Seed(ctx context.Context, opt SeedOptions) (SeedResult, error) {
	var res SeedResult
	var n int64
	if err := s.db.WithContext(ctx).Model(&Account{}).Count(&n).Error; err != nil {
		return res, err
	}
	if n > 0 && (opt.Accounts > 0 || opt.Subaccounts > 0) {
		return res, errors.New("models: seed: the database already holds accounts; seed only an empty database (seeded secrets are derivable)")
	}
	if opt.Seed == 0 {
		opt.Seed = 1
	}
	if opt.BigTree > opt.Subaccounts {
		opt.BigTree = opt.Subaccounts
	}
	if opt.Accounts > 0 {
		if err := s.seedAccounts(ctx, opt, &res); err != nil {
			return res, err
		}
	}
	if opt.AuditEntries > 0 {
		load := func() error { return s.seedAudit(ctx, opt, &res) }
		if opt.DeferIndexes {
			return res, s.withoutAuditIndexes(ctx, opt, load)
		}
		if err := load(); err != nil {
			return res, err
		}
	}
	return res, nil
}

// withoutAuditIndexes drops audit_entries' secondary indexes, runs load,
// and creates them again (also when load fails).
func (s *Store) withoutAuditIndexes(ctx context.Context, opt SeedOptions, load func() error) error {
	type index struct{ Name, SQL string }
	var idx []index
	q := `SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_entries' AND sql IS NOT NULL`
	if s.engine == Postgres {
		q = `SELECT indexname AS name, indexdef AS sql FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'audit_entries'
			AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = 'audit_entries'::regclass)`
	}
	if err := s.db.WithContext(ctx).Raw(q).Scan(&idx).Error; err != nil {
		return fmt.Errorf("models: seed: list audit indexes: %w", err)
	}
	for _, i := range idx {
		if err := s.db.WithContext(ctx).Exec("DROP INDEX " + i.Name).Error; err != nil {
			return fmt.Errorf("models: seed: drop %s: %w", i.Name, err)
		}
	}
	err := load()
	rebuild := s.db.WithContext(context.WithoutCancel(ctx)).Transaction(func(tx *gorm.DB) error {
		if s.engine == Postgres {
			if err := tx.Exec("SET LOCAL maintenance_work_mem = '512MB'").Error; err != nil {
				return err
			}
		}
		for n, i := range idx {
			if err := tx.Exec(i.SQL).Error; err != nil {
				return fmt.Errorf("models: seed: create %s again: %w", i.Name, err)
			}
			if opt.Progress != nil {
				opt.Progress("audit indexes built", n+1, len(idx))
			}
		}
		return nil
	})
	return errors.Join(err, rebuild)
}

// seedTree is one main account as the audit generator sees it.
type seedTree struct {
	id, owner uint
	email     string
	subs      []uint
	keys      []uint // master key of the account, then of each sub-account
	apiKeys   []string
	names     []string
}

func (s *Store) nextID(ctx context.Context, table string) (uint, error) {
	var max sql.NullInt64
	if err := s.db.WithContext(ctx).Raw("SELECT MAX(id) FROM " + table).Scan(&max).Error; err != nil {
		return 0, err
	}
	return uint(max.Int64) + 1, nil
}

// insertRows writes rows of len(cols) values in multi-row INSERTs.
func (s *Store) insertRows(ctx context.Context, table string, cols []string, rows [][]any) error {
	per := max(1, 4000/len(cols))
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for start := 0; start < len(rows); start += per {
			end := min(len(rows), start+per)
			var b strings.Builder
			b.WriteString("INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES ")
			args := make([]any, 0, (end-start)*len(cols))
			ph := "(" + params(len(cols)) + ")"
			for i := start; i < end; i++ {
				if i > start {
					b.WriteString(", ")
				}
				b.WriteString(ph)
				args = append(args, rows[i]...)
			}
			if err := tx.Exec(b.String(), args...).Error; err != nil {
				return fmt.Errorf("models: seed %s: %w", table, err)
			}
		}
		return nil
	})
}

func (s *Store) fixSequence(ctx context.Context, table string) error {
	if s.engine != Postgres {
		return nil // SQLite's AUTOINCREMENT follows the largest explicit ID
	}
	return s.db.WithContext(ctx).Exec("SELECT setval(pg_get_serial_sequence('" + table + "', 'id'), (SELECT MAX(id) FROM " + table + "))").Error
}

func (s *Store) seedAccounts(ctx context.Context, opt SeedOptions, res *SeedResult) error {
	now := s.Now().UTC().Truncate(time.Microsecond)
	hash, err := s.hashPassword(ctx, SeedPassword)
	if err != nil {
		return err
	}
	base, err := s.nextID(ctx, "accounts")
	if err != nil {
		return err
	}
	ubase, err := s.nextID(ctx, "users")
	if err != nil {
		return err
	}
	kbase, err := s.nextID(ctx, "api_keys")
	if err != nil {
		return err
	}
	res.FirstAccount, res.FirstUser, res.FirstKey = base, ubase, kbase
	parentOf := func(j int) int { // main account index of sub-account j
		if j < opt.BigTree || opt.Accounts == 1 {
			return 0
		}
		return 1 + (j-opt.BigTree)%(opt.Accounts-1)
	}
	counts := make([]int, opt.Accounts)
	for j := 0; j < opt.Subaccounts; j++ {
		counts[parentOf(j)]++
	}
	accCols := []string{"id", "parent_id", "name", "plan", "subaccount_limit", "is_active", "created_at", "updated_at", "description", "subaccount_count"}
	var rows [][]any
	for i := 0; i < opt.Accounts; i++ {
		var limit any
		if counts[i] > 1 {
			limit = counts[i]
		}
		rows = append(rows, []any{base + uint(i), nil, fmt.Sprintf("Bench %06d", i), string(PlanFree), limit, true, now, now, "", counts[i]})
	}
	for j := 0; j < opt.Subaccounts; j++ {
		p := parentOf(j)
		rows = append(rows, []any{base + uint(opt.Accounts+j), base + uint(p), fmt.Sprintf("Bench %06d sub %d", p, j), string(PlanFree), nil, true, now, now, "", 0})
	}
	if err := s.insertRows(ctx, "accounts", accCols, rows); err != nil {
		return err
	}
	rows = rows[:0]
	for i := 0; i < opt.Accounts; i++ {
		rows = append(rows, []any{ubase + uint(i), base + uint(i), SeedOwnerEmail(i), hash, string(RoleOwner), true, now, now, now})
	}
	if err := s.insertRows(ctx, "users", []string{"id", "account_id", "email", "password_hash", "role", "is_active", "password_changed_at", "created_at", "updated_at"}, rows); err != nil {
		return err
	}
	// Each owner is their account's owner member (members.go): sign-in
	// works in the accounts a person is a member of.
	rows = rows[:0]
	for i := 0; i < opt.Accounts; i++ {
		rows = append(rows, []any{base + uint(i), ubase + uint(i), string(RoleOwner), true, now, now})
	}
	if err := s.insertRows(ctx, "members", []string{"account_id", "user_id", "role", "scope_all", "created_at", "updated_at"}, rows); err != nil {
		return err
	}
	if opt.Progress != nil {
		opt.Progress("accounts and owners", opt.Accounts+opt.Subaccounts, opt.Accounts+opt.Subaccounts)
	}
	keyCols := []string{"id", "account_id", "tree_id", "name", "api_key", "secret_digest", "secret_hint", "secret_set_at", "is_master", "is_active", "last_used_ip", "created_at", "updated_at"}
	total := opt.Accounts + opt.Subaccounts
	for start := 0; start < total; start += 50000 {
		rows = rows[:0]
		for n := start; n < min(total, start+50000); n++ {
			acc, tree, name := base+uint(n), base+uint(n), fmt.Sprintf("Bench %06d", n)
			if n >= opt.Accounts {
				p := parentOf(n - opt.Accounts)
				tree, name = base+uint(p), fmt.Sprintf("Bench %06d sub %d", p, n-opt.Accounts)
			}
			apiKey, secret := SeedCredentials(n)
			d := digestSecret(secret)
			rows = append(rows, []any{kbase + uint(n), acc, tree, name, apiKey, d[:], secretHint(secret), now, true, true, "", now, now})
		}
		if err := s.insertRows(ctx, "api_keys", keyCols, rows); err != nil {
			return err
		}
		if opt.Progress != nil {
			opt.Progress("keys", min(total, start+50000), total)
		}
	}
	res.Keys = total
	for _, t := range []string{"accounts", "users", "api_keys"} {
		if err := s.fixSequence(ctx, t); err != nil {
			return err
		}
	}
	s.InvalidateVerifyCache()
	return nil
}

// seedTrees reads the account trees the audit generator spreads entries
// over (every main account with an owner).
func (s *Store) seedTrees(ctx context.Context) ([]seedTree, error) {
	var owners []User
	if err := s.db.WithContext(ctx).Where("role = ? AND account_id IS NOT NULL", RoleOwner).Order("id").Find(&owners).Error; err != nil {
		return nil, err
	}
	byID := map[uint]*seedTree{}
	var trees []seedTree
	for _, u := range owners {
		if _, dup := byID[*u.AccountID]; dup {
			continue
		}
		trees = append(trees, seedTree{id: *u.AccountID, owner: u.ID, email: u.Email})
	}
	for i := range trees {
		byID[trees[i].id] = &trees[i]
	}
	var keys []APIKey
	if err := s.db.WithContext(ctx).Select("id", "account_id", "tree_id", "name", "api_key").Order("id").Find(&keys).Error; err != nil {
		return nil, err
	}
	for _, k := range keys {
		t := byID[k.TreeID]
		if t == nil {
			continue
		}
		if k.AccountID != k.TreeID {
			t.subs = append(t.subs, k.AccountID)
		}
		t.keys, t.apiKeys, t.names = append(t.keys, k.ID), append(t.apiKeys, k.APIKey), append(t.names, k.Name)
	}
	return trees, nil
}

var seedActions = []struct {
	action string
	weight int
}{
	{ActionLoginSucceeded, 30}, {ActionLoginFailed, 8}, {ActionLogout, 12}, {ActionKeyRenamed, 8}, {ActionSecretReset, 8},
	{ActionSecretRevealed, 8}, {ActionKeyCreated, 5}, {ActionKeyDeactivated, 4}, {ActionKeyActivated, 4}, {ActionAccessDenied, 4},
	{ActionSubaccountNew, 3}, {ActionPasswordChanged, 2}, {ActionSessionRevoked, 2}, {ActionLimitRequested, 1}, {ActionLimitChanged, 1},
}

var seedAgents = []string{
	"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
	"mailjet-apiv3-go/4.0.7", "node-mailjet/6.0.6", "curl/8.11.0",
}

// seedGen draws one plausible entry at a time: trees by a Zipf law (a few
// busy accounts, a long tail), the owner as actor mostly, sometimes one of
// the tree's API keys or the system; actions by weight; targets that fit
// the action; each tree's own addresses.
type seedGen struct {
	r     *rand.Rand
	zipf  *rand.Zipf
	trees []seedTree
	total int
}

func newSeedGen(trees []seedTree, seed uint64) *seedGen {
	r := rand.New(rand.NewPCG(seed, 0x6b657964))
	g := &seedGen{r: r, trees: trees, zipf: rand.NewZipf(r, 1.2, 4, uint64(len(trees)-1))}
	for _, a := range seedActions {
		g.total += a.weight
	}
	return g
}

func (g *seedGen) fill(e *AuditEntry) {
	t := &g.trees[g.zipf.Uint64()]
	w := g.r.IntN(g.total)
	for _, a := range seedActions {
		if w < a.weight {
			e.Action = a.action
			break
		}
		w -= a.weight
	}
	k := g.r.IntN(len(t.keys)) // the tree's key (or sub-account) concerned
	acc := t.id
	if k > 0 {
		acc = t.subs[k-1]
	}
	tree := t.id
	e.AccountID, e.TreeID = &acc, &tree
	e.ActorUserID = nil
	switch p := g.r.IntN(100); {
	case p < 88 || strings.HasPrefix(e.Action, "login") || e.Action == ActionLogout || e.Action == ActionPasswordChanged:
		uid := t.owner
		e.ActorType, e.ActorUserID, e.ActorLabel, e.ActorRole = actorUser, &uid, t.email, string(RoleOwner)
	case p < 96:
		e.ActorType, e.ActorLabel, e.ActorRole = actorAPIKey, "API key "+t.apiKeys[k], string(RoleAPIKey)
	default:
		e.ActorType, e.ActorLabel, e.ActorRole = actorSystem, actorSystem, string(RoleSystem)
	}
	switch e.Action {
	case ActionLoginSucceeded, ActionLoginFailed, ActionLogout, ActionPasswordChanged, ActionSessionRevoked:
		e.TargetType, e.TargetID, e.TargetName = "user", strconv.FormatUint(uint64(t.owner), 10), t.email
		e.Details = "{}"
	case ActionSubaccountNew, ActionLimitRequested, ActionLimitChanged:
		e.TargetType, e.TargetID, e.TargetName = "account", strconv.FormatUint(uint64(acc), 10), t.names[k]
		e.Details = `{"plan":"free"}`
	default:
		e.TargetType, e.TargetID, e.TargetName = "apikey", strconv.FormatUint(uint64(t.keys[k]), 10), t.names[k]
		e.Details = `{"api_key":"` + t.apiKeys[k] + `"}`
	}
	if g.r.IntN(10) < 8 {
		e.IP = fmt.Sprintf("10.%d.%d.%d", (t.id>>16)&255, (t.id>>8)&255, t.id&255)
	} else {
		e.IP = fmt.Sprintf("198.51.%d.%d", g.r.IntN(256), g.r.IntN(256))
	}
	e.UserAgent = seedAgents[g.r.IntN(len(seedAgents))]
}

var seedAuditCols = []string{"id", "at", "actor_type", "actor_user_id", "actor_label", "actor_role", "account_id", "tree_id", "action",
	"target_type", "target_id", "target_name", "ip", "user_agent", "details", "prev_hash", "hash", "key_id", "link"}

func (e *AuditEntry) seedRow() []any {
	var uid, acc, tree any
	if e.ActorUserID != nil {
		uid = int64(*e.ActorUserID)
	}
	if e.AccountID != nil {
		acc = int64(*e.AccountID)
	}
	if e.TreeID != nil {
		tree = int64(*e.TreeID)
	}
	return []any{int64(e.ID), e.At, e.ActorType, uid, e.ActorLabel, e.ActorRole, acc, tree, e.Action,
		e.TargetType, e.TargetID, e.TargetName, e.IP, e.UserAgent, e.Details, e.PrevHash, e.Hash, e.KeyID, e.Link}
}

// seedAudit appends opt.AuditEntries chained entries after the head.
func (s *Store) seedAudit(ctx context.Context, opt SeedOptions, res *SeedResult) error {
	trees, err := s.seedTrees(ctx)
	if err != nil {
		return err
	}
	if len(trees) < 2 {
		return errors.New("models: seed: the audit log needs at least two accounts with an owner")
	}
	var head AuditEntry
	if err := s.db.WithContext(ctx).Order("id DESC").Limit(1).Find(&head).Error; err != nil {
		return err
	}
	end := s.Now().UTC()
	start := opt.AuditStart
	if start.IsZero() || !start.Before(end) {
		start = end.Add(-365 * 24 * time.Hour)
	}
	step := end.Sub(start) / time.Duration(opt.AuditEntries)
	g := newSeedGen(trees, opt.Seed)
	prev := head
	res.FirstEntry = head.ID + 1
	const batch = 50000
	for done := 0; done < opt.AuditEntries; {
		n := min(batch, opt.AuditEntries-done)
		rows := make([][]any, 0, n)
		for i := 0; i < n; i++ {
			e := AuditEntry{ID: prev.ID + 1, At: start.Add(time.Duration(done+i) * step).Truncate(time.Microsecond), PrevHash: prev.Hash}
			g.fill(&e)
			e.Hash = e.computeHash()
			if err := s.linkEntry(&e, &prev); err != nil {
				return err
			}
			rows = append(rows, e.seedRow())
			prev = e
		}
		if err := s.bulkAudit(ctx, rows); err != nil {
			return err
		}
		done += n
		if opt.Progress != nil {
			opt.Progress("audit entries", done, opt.AuditEntries)
		}
	}
	res.LastEntry = prev.ID
	return nil
}

func (s *Store) bulkAudit(ctx context.Context, rows [][]any) error {
	if s.engine != Postgres {
		return s.insertRows(ctx, "audit_entries", seedAuditCols, rows)
	}
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("models: seed: unexpected driver connection %T", dc)
		}
		_, err := c.Conn().CopyFrom(ctx, pgx.Identifier{"audit_entries"}, seedAuditCols, pgx.CopyFromRows(rows))
		if err != nil {
			return fmt.Errorf("models: seed audit (COPY): %w", err)
		}
		return nil
	})
}

// Analyze refreshes the planner's statistics after a bulk load (PostgreSQL;
// autovacuum would do it later). SQLite keeps none unless asked, and
// keydesk does not rely on them. Only the store's own tables (its
// schema's): a bare ANALYZE also waits for every other table of the
// database, and beside another schema's CREATE INDEX CONCURRENTLY, which
// waits for ANALYZE's snapshot, one of the two was ended as a deadlock.
func (s *Store) Analyze(ctx context.Context) error {
	if s.engine != Postgres {
		return nil
	}
	var tables []string
	if err := s.db.WithContext(ctx).Raw("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename").Scan(&tables).Error; err != nil {
		return err
	}
	if len(tables) == 0 {
		return nil
	}
	for i, t := range tables {
		tables[i] = pgx.Identifier{t}.Sanitize()
	}
	return s.db.WithContext(ctx).Exec("ANALYZE " + strings.Join(tables, ", ")).Error
}
