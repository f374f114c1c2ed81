package models

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
)

// migration is one versioned schema step. Steps are append-only: never edit
// one that has shipped, add the next.
type migration struct {
	Version int
	Name    string
	SQL     string
	// Engine-specific statements, run after SQL, one statement each (they
	// may contain semicolons, e.g. trigger bodies).
	Only map[Engine][]string
}

// online says whether m runs outside a transaction on engine e: PostgreSQL
// refuses CREATE or DROP INDEX CONCURRENTLY in one, and those build or
// drop an index while the table is written (a plain CREATE INDEX blocks
// every write to the table for the whole build: a minute at 10,000,000
// audit entries). Its statements run one at a time on one connection of
// their own, which is closed after (a SET goes with it); each must be safe
// to run again, as one that fails or is interrupted leaves the earlier ones
// done and the migration unrecorded.
func (m migration) online(e Engine) bool {
	for _, stmt := range m.Only[e] {
		if strings.Contains(stmt, " CONCURRENTLY ") {
			return true
		}
	}
	return false
}

// The SQL is shared by both engines; {{pk}}, {{ts}} and {{bytes}} expand to
// each engine's spelling of an auto-increment key, a timestamp and a blob.
var migrations = []migration{
	{1, "accounts, users, sessions, throttles, audit", `
CREATE TABLE accounts (
	id {{pk}},
	parent_id BIGINT NULL REFERENCES accounts(id),
	name TEXT NOT NULL,
	plan TEXT NOT NULL DEFAULT 'free',
	subaccount_limit INTEGER NULL,
	is_active BOOLEAN NOT NULL DEFAULT TRUE,
	created_at {{ts}} NOT NULL,
	updated_at {{ts}} NOT NULL
);
CREATE INDEX idx_accounts_parent ON accounts(parent_id);
CREATE TABLE users (
	id {{pk}},
	account_id BIGINT NULL REFERENCES accounts(id),
	email TEXT NOT NULL,
	password_hash TEXT NOT NULL,
	role TEXT NOT NULL,
	is_active BOOLEAN NOT NULL DEFAULT TRUE,
	password_changed_at {{ts}} NOT NULL,
	created_at {{ts}} NOT NULL,
	updated_at {{ts}} NOT NULL
);
CREATE UNIQUE INDEX idx_users_email ON users(email);
CREATE INDEX idx_users_account ON users(account_id);
CREATE TABLE sessions (
	id_hash TEXT PRIMARY KEY,
	user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	created_at {{ts}} NOT NULL,
	last_seen_at {{ts}} NOT NULL,
	auth_at {{ts}} NOT NULL,
	expires_at {{ts}} NOT NULL,
	ip TEXT NOT NULL DEFAULT '',
	user_agent TEXT NOT NULL DEFAULT ''
);
CREATE INDEX idx_sessions_user ON sessions(user_id);
CREATE TABLE throttles (
	key TEXT PRIMARY KEY,
	failures INTEGER NOT NULL,
	window_start {{ts}} NOT NULL,
	locked_until {{ts}} NULL
);
CREATE TABLE audit_entries (
	id {{pk}},
	at {{ts}} NOT NULL,
	actor_type TEXT NOT NULL,
	actor_user_id BIGINT NULL,
	actor_label TEXT NOT NULL,
	actor_role TEXT NOT NULL DEFAULT '',
	account_id BIGINT NULL,
	action TEXT NOT NULL,
	target_type TEXT NOT NULL DEFAULT '',
	target_id TEXT NOT NULL DEFAULT '',
	target_name TEXT NOT NULL DEFAULT '',
	ip TEXT NOT NULL DEFAULT '',
	user_agent TEXT NOT NULL DEFAULT '',
	details TEXT NOT NULL DEFAULT '{}',
	prev_hash TEXT NOT NULL DEFAULT '',
	hash TEXT NOT NULL DEFAULT ''
);
CREATE INDEX idx_audit_account ON audit_entries(account_id, id);
`, nil},
	{2, "api keys", `
CREATE TABLE api_keys (
	id {{pk}},
	account_id BIGINT NOT NULL REFERENCES accounts(id),
	name TEXT NOT NULL,
	api_key TEXT NOT NULL,
	secret_digest {{bytes}} NOT NULL,
	secret_hint TEXT NOT NULL,
	secret_set_at {{ts}} NOT NULL,
	prev_secret_digest {{bytes}} NULL,
	prev_secret_expires_at {{ts}} NULL,
	is_master BOOLEAN NOT NULL,
	is_active BOOLEAN NOT NULL DEFAULT TRUE,
	last_used_at {{ts}} NULL,
	last_used_ip TEXT NOT NULL DEFAULT '',
	created_at {{ts}} NOT NULL,
	updated_at {{ts}} NOT NULL
);
CREATE UNIQUE INDEX idx_api_keys_api_key ON api_keys(api_key);
CREATE INDEX idx_api_keys_account ON api_keys(account_id);
`, nil},
	{3, "sub-account descriptions, limit requests", `
ALTER TABLE accounts ADD COLUMN description TEXT NOT NULL DEFAULT '';
CREATE TABLE limit_requests (
	id {{pk}},
	account_id BIGINT NOT NULL REFERENCES accounts(id),
	requested_by BIGINT NOT NULL REFERENCES users(id),
	requester_email TEXT NOT NULL,
	extra INTEGER NOT NULL,
	reason TEXT NOT NULL,
	status TEXT NOT NULL DEFAULT 'pending',
	limit_before INTEGER NOT NULL,
	new_limit INTEGER NULL,
	decided_by BIGINT NULL REFERENCES users(id),
	decider_email TEXT NOT NULL DEFAULT '',
	note TEXT NOT NULL DEFAULT '',
	created_at {{ts}} NOT NULL,
	decided_at {{ts}} NULL
);
CREATE INDEX idx_limit_requests_account ON limit_requests(account_id, id);
CREATE INDEX idx_limit_requests_status ON limit_requests(status, id);
`, nil},
	{4, "audit checkpoints, reviews, time index, append-only triggers", `
CREATE TABLE audit_checkpoints (
	id {{pk}},
	entry_id BIGINT NOT NULL,
	head_hash TEXT NOT NULL,
	signature TEXT NOT NULL,
	reason TEXT NOT NULL DEFAULT '',
	created_at {{ts}} NOT NULL
);
CREATE INDEX idx_audit_checkpoints_entry ON audit_checkpoints(entry_id);
CREATE TABLE audit_reviews (
	id {{pk}},
	account_id BIGINT NULL,
	through_id BIGINT NOT NULL,
	reviewer_id BIGINT NOT NULL,
	reviewer_email TEXT NOT NULL,
	reviewer_role TEXT NOT NULL,
	note TEXT NOT NULL DEFAULT '',
	created_at {{ts}} NOT NULL
);
CREATE INDEX idx_audit_reviews_account ON audit_reviews(account_id, id);
ALTER TABLE audit_entries ADD COLUMN tree_id BIGINT NULL;
CREATE INDEX idx_audit_at ON audit_entries(at, id);
CREATE INDEX idx_audit_tree_at ON audit_entries(tree_id, at, id);
`, map[Engine][]string{
		SQLite: {
			`CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END`,
			`CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END`,
			`CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END`,
			`CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END`,
		},
		Postgres: {
			`CREATE OR REPLACE FUNCTION keydesk_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END
$$`,
			`CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries FOR EACH ROW EXECUTE FUNCTION keydesk_append_only()`,
			`CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries FOR EACH STATEMENT EXECUTE FUNCTION keydesk_append_only()`,
			`CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints FOR EACH ROW EXECUTE FUNCTION keydesk_append_only()`,
			`CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints FOR EACH STATEMENT EXECUTE FUNCTION keydesk_append_only()`,
		},
	}},
	{5, "key usage", `
ALTER TABLE api_keys ADD COLUMN prev_secret_last_used_at {{ts}} NULL;
CREATE TABLE key_usage_daily (
	key_id BIGINT NOT NULL REFERENCES api_keys(id),
	day TEXT NOT NULL,
	api_requests BIGINT NOT NULL DEFAULT 0,
	smtp_messages BIGINT NOT NULL DEFAULT 0,
	auth_failures BIGINT NOT NULL DEFAULT 0,
	old_secret_uses BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (key_id, day)
);
`, nil},
	{6, "api_keys.tree_id", `
ALTER TABLE api_keys ADD COLUMN tree_id BIGINT NULL;
UPDATE api_keys SET tree_id = (SELECT COALESCE(a.parent_id, a.id) FROM accounts a WHERE a.id = api_keys.account_id);
CREATE INDEX idx_api_keys_tree_name ON api_keys(tree_id, is_master, name);
CREATE INDEX idx_api_keys_tree_secret ON api_keys(tree_id, secret_set_at);
`, nil},
	{7, "accounts.subaccount_count", `
ALTER TABLE accounts ADD COLUMN subaccount_count INTEGER NOT NULL DEFAULT 0;
UPDATE accounts SET subaccount_count = (SELECT COUNT(*) FROM accounts c WHERE c.parent_id = accounts.id);
`, nil},
	// A key holds its current secret (in api_keys) plus every older secret
	// still inside the grace period it was given, each with its own
	// deadline: a later reset never shortens an earlier promise. The one
	// previous secret of migration 2 moves here with its deadline and use.
	{8, "old secrets, each with its own grace period", `
CREATE TABLE old_secrets (
	id {{pk}},
	key_id BIGINT NOT NULL REFERENCES api_keys(id),
	digest {{bytes}} NOT NULL,
	hint TEXT NOT NULL DEFAULT '',
	retired_at {{ts}} NOT NULL,
	expires_at {{ts}} NOT NULL,
	last_used_at {{ts}} NULL
);
CREATE INDEX idx_old_secrets_key ON old_secrets(key_id, expires_at);
INSERT INTO old_secrets (key_id, digest, hint, retired_at, expires_at, last_used_at)
	SELECT id, prev_secret_digest, '', secret_set_at, prev_secret_expires_at, prev_secret_last_used_at FROM api_keys
	WHERE prev_secret_digest IS NOT NULL AND prev_secret_expires_at IS NOT NULL;
ALTER TABLE api_keys DROP COLUMN prev_secret_digest;
ALTER TABLE api_keys DROP COLUMN prev_secret_expires_at;
ALTER TABLE api_keys DROP COLUMN prev_secret_last_used_at;
`, nil},
	{9, "key_usage_daily.api_messages (Send API)", `
ALTER TABLE key_usage_daily ADD COLUMN api_messages BIGINT NOT NULL DEFAULT 0;
`, nil},
	{10, "keyed audit chain, signed heads, verification status", `
ALTER TABLE audit_entries ADD COLUMN key_id TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_entries ADD COLUMN link TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_checkpoints ADD COLUMN seq BIGINT NULL;
ALTER TABLE audit_checkpoints ADD COLUMN link TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_checkpoints ADD COLUMN key_id TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_checkpoints ADD COLUMN anchor TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX idx_audit_checkpoints_seq ON audit_checkpoints(seq);
CREATE INDEX idx_audit_checkpoints_anchor ON audit_checkpoints(anchor, seq);
CREATE TABLE audit_status (
	id INTEGER PRIMARY KEY,
	verified_at {{ts}} NOT NULL,
	ok BOOLEAN NOT NULL,
	full_walk BOOLEAN NOT NULL,
	from_entry BIGINT NOT NULL,
	head BIGINT NOT NULL,
	entries BIGINT NOT NULL,
	bad_entry BIGINT NOT NULL,
	problem TEXT NOT NULL,
	anchor_head BIGINT NOT NULL
);
`, nil},
	// Every audit filter searches an index in keyset order (see
	// auditquery.go): an equality on the first column, then (at, id). The
	// case-insensitive columns are indexed lower-cased, bytewise on
	// PostgreSQL, so a typed prefix is one range of the index. Owners'
	// filters (one tree) have their own for actions, actors and target
	// names. (account_id, at, id) replaces (account_id, id).
	{11, "audit filter indexes", `
CREATE INDEX idx_audit_action_at ON audit_entries(action, at, id);
CREATE INDEX idx_audit_actor_user_at ON audit_entries(actor_user_id, at, id);
CREATE INDEX idx_audit_target_id_at ON audit_entries(target_id, at, id);
CREATE INDEX idx_audit_ip_at ON audit_entries(ip, at, id);
CREATE INDEX idx_audit_account_at ON audit_entries(account_id, at, id);
CREATE INDEX idx_audit_tree_action_at ON audit_entries(tree_id, action, at, id);
DROP INDEX idx_audit_account;
`, map[Engine][]string{
		SQLite: {
			`CREATE INDEX idx_audit_actor_label_at ON audit_entries(lower(actor_label), at, id)`,
			`CREATE INDEX idx_audit_target_name_at ON audit_entries(lower(target_name), at, id)`,
			`CREATE INDEX idx_audit_tree_actor_label_at ON audit_entries(tree_id, lower(actor_label), at, id)`,
			`CREATE INDEX idx_audit_tree_target_name_at ON audit_entries(tree_id, lower(target_name), at, id)`,
		},
		Postgres: {
			`CREATE INDEX idx_audit_actor_label_at ON audit_entries((lower(actor_label) COLLATE "C"), at, id)`,
			`CREATE INDEX idx_audit_target_name_at ON audit_entries((lower(target_name) COLLATE "C"), at, id)`,
			`CREATE INDEX idx_audit_tree_actor_label_at ON audit_entries(tree_id, (lower(actor_label) COLLATE "C"), at, id)`,
			`CREATE INDEX idx_audit_tree_target_name_at ON audit_entries(tree_id, (lower(target_name) COLLATE "C"), at, id)`,
		},
	}},
	// PostgreSQL estimates "tree_id = ? AND ip = ?" (an owner filtering an
	// address) as if the columns were independent: a few rows, so it reads
	// every match through a bitmap and sorts them (2 s at 10,000,000
	// entries) instead of walking the address index in (at, id) order. The
	// columns are not independent: an address, an account, a user, a target
	// belong to one tree. Dependency statistics tell the planner so.
	{12, "audit filter statistics (PostgreSQL)", ``, map[Engine][]string{
		Postgres: {
			`CREATE STATISTICS audit_entries_tree_deps (dependencies) ON tree_id, account_id, ip, actor_user_id, target_id FROM audit_entries`,
			`ANALYZE audit_entries`,
		},
	}},
	// The keys page lists a tree's sub-account keys by name, case
	// folded, 25 at a time: in index order, without sorting every key of
	// the tree (issue 13 #7).
	{13, "keys page name order index", `
CREATE INDEX idx_api_keys_tree_lname ON api_keys(tree_id, is_master, lower(name), id);
`, nil},
	{14, "users.language (the console's language, chosen in the account menu)", `
ALTER TABLE users ADD COLUMN language TEXT NOT NULL DEFAULT '';
`, nil},
	// People (issue 15): members of an account with a role and a scope,
	// invitations, password resets, two-factor sign-in, suspension.
	// Every existing owner becomes the owner member of their account.
	{15, "members and their scopes", `
CREATE TABLE members (
	id {{pk}},
	account_id BIGINT NOT NULL REFERENCES accounts(id),
	user_id BIGINT NOT NULL REFERENCES users(id),
	role TEXT NOT NULL,
	scope_all BOOLEAN NOT NULL DEFAULT TRUE,
	created_at {{ts}} NOT NULL,
	updated_at {{ts}} NOT NULL
);
CREATE UNIQUE INDEX idx_members_account_user ON members(account_id, user_id);
CREATE INDEX idx_members_user ON members(user_id);
CREATE UNIQUE INDEX idx_members_one_owner ON members(account_id) WHERE role = 'owner';
CREATE TABLE member_scopes (
	member_id BIGINT NOT NULL REFERENCES members(id) ON DELETE CASCADE,
	subaccount_id BIGINT NOT NULL REFERENCES accounts(id),
	PRIMARY KEY (member_id, subaccount_id)
);
INSERT INTO members (account_id, user_id, role, scope_all, created_at, updated_at)
	SELECT account_id, id, 'owner', TRUE, created_at, updated_at FROM users WHERE role = 'owner' AND account_id IS NOT NULL;
ALTER TABLE sessions ADD COLUMN account_id BIGINT NULL;
ALTER TABLE users ADD COLUMN last_login_at {{ts}} NULL;
`, nil},
	{16, "invitations", `
CREATE TABLE invitations (
	id {{pk}},
	account_id BIGINT NOT NULL REFERENCES accounts(id),
	email TEXT NOT NULL,
	role TEXT NOT NULL,
	scope_all BOOLEAN NOT NULL DEFAULT TRUE,
	scope TEXT NOT NULL DEFAULT '',
	token_digest TEXT NOT NULL,
	invited_by BIGINT NOT NULL REFERENCES users(id),
	inviter_email TEXT NOT NULL,
	created_at {{ts}} NOT NULL,
	expires_at {{ts}} NOT NULL,
	accepted_at {{ts}} NULL,
	accepted_by BIGINT NULL,
	revoked_at {{ts}} NULL
);
CREATE UNIQUE INDEX idx_invitations_token ON invitations(token_digest);
CREATE INDEX idx_invitations_account ON invitations(account_id, id);
`, nil},
	{17, "password reset tokens", `
CREATE TABLE password_resets (
	id {{pk}},
	user_id BIGINT NOT NULL REFERENCES users(id),
	token_digest TEXT NOT NULL,
	created_at {{ts}} NOT NULL,
	expires_at {{ts}} NOT NULL,
	used_at {{ts}} NULL
);
CREATE UNIQUE INDEX idx_password_resets_token ON password_resets(token_digest);
CREATE INDEX idx_password_resets_user ON password_resets(user_id);
`, nil},
	{18, "two-factor sign-in", `
ALTER TABLE users ADD COLUMN totp_secret TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN totp_pending TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN totp_enabled_at {{ts}} NULL;
ALTER TABLE users ADD COLUMN totp_last_step BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN pending BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE accounts ADD COLUMN require_2fa BOOLEAN NOT NULL DEFAULT FALSE;
CREATE TABLE recovery_codes (
	id {{pk}},
	user_id BIGINT NOT NULL REFERENCES users(id),
	digest TEXT NOT NULL,
	created_at {{ts}} NOT NULL,
	used_at {{ts}} NULL
);
CREATE INDEX idx_recovery_codes_user ON recovery_codes(user_id);
`, nil},
	{19, "account suspension", `
ALTER TABLE accounts ADD COLUMN suspended_at {{ts}} NULL;
ALTER TABLE accounts ADD COLUMN suspended_reason TEXT NOT NULL DEFAULT '';
`, nil},
	// The audit page's status line (the newest entry an owner sees, and
	// how many came since their last review) walks one tree's entries by
	// id: without this index the primary key was walked backward past
	// every other tree's entries (about 1 s for a small tree at 10,000,000
	// entries). Issue 13.
	{25, "audit (tree_id, id) index for the review status", `
CREATE INDEX idx_audit_tree_id ON audit_entries(tree_id, id);
`, nil},
	// Support search (models.SearchAccounts) answers every query from an
	// index: account names and e-mails by trigram (a query anywhere in
	// them), or from their start for a query of fewer than three letters
	// or digits in a row. PostgreSQL: pg_trgm GIN indexes (the extension
	// goes into the public schema when there is one, so that every schema
	// of a database shares it) and bytewise ranges; SQLite: FTS5 trigram
	// tables kept by triggers, and a lower(name) index (the unique e-mail
	// index already serves ranges). Issue 13.
	{26, "support search indexes", ``, map[Engine][]string{
		SQLite: {
			`CREATE INDEX idx_accounts_lname ON accounts(lower(name))`,
			`CREATE VIRTUAL TABLE accounts_search USING fts5(name, content='accounts', content_rowid='id', tokenize='trigram')`,
			`CREATE TRIGGER accounts_search_ai AFTER INSERT ON accounts BEGIN
	INSERT INTO accounts_search(rowid, name) VALUES (new.id, new.name);
END`,
			`CREATE TRIGGER accounts_search_ad AFTER DELETE ON accounts BEGIN
	INSERT INTO accounts_search(accounts_search, rowid, name) VALUES ('delete', old.id, old.name);
END`,
			`CREATE TRIGGER accounts_search_au AFTER UPDATE OF name ON accounts BEGIN
	INSERT INTO accounts_search(accounts_search, rowid, name) VALUES ('delete', old.id, old.name);
	INSERT INTO accounts_search(rowid, name) VALUES (new.id, new.name);
END`,
			`INSERT INTO accounts_search(accounts_search) VALUES ('rebuild')`,
			`CREATE VIRTUAL TABLE users_search USING fts5(email, content='users', content_rowid='id', tokenize='trigram')`,
			`CREATE TRIGGER users_search_ai AFTER INSERT ON users BEGIN
	INSERT INTO users_search(rowid, email) VALUES (new.id, new.email);
END`,
			`CREATE TRIGGER users_search_ad AFTER DELETE ON users BEGIN
	INSERT INTO users_search(users_search, rowid, email) VALUES ('delete', old.id, old.email);
END`,
			`CREATE TRIGGER users_search_au AFTER UPDATE OF email ON users BEGIN
	INSERT INTO users_search(users_search, rowid, email) VALUES ('delete', old.id, old.email);
	INSERT INTO users_search(rowid, email) VALUES (new.id, new.email);
END`,
			`INSERT INTO users_search(users_search) VALUES ('rebuild')`,
		},
		Postgres: {
			`DO $$
DECLARE ns text;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
		BEGIN
			IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'public') THEN
				CREATE EXTENSION pg_trgm SCHEMA public;
			ELSE
				CREATE EXTENSION pg_trgm;
			END IF;
		EXCEPTION WHEN unique_violation OR duplicate_object THEN
			NULL; -- another schema's migration created it meanwhile
		END;
	END IF;
	SELECT n.nspname INTO ns FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm';
	EXECUTE format('CREATE INDEX idx_accounts_name_trgm ON accounts USING gin (lower(name) %I.gin_trgm_ops)', ns);
	EXECUTE format('CREATE INDEX idx_users_email_trgm ON users USING gin (email %I.gin_trgm_ops)', ns);
END
$$`,
			`CREATE INDEX idx_accounts_lname ON accounts((lower(name) COLLATE "C"))`,
			`CREATE INDEX idx_users_email_c ON users((email COLLATE "C"))`,
			`ANALYZE accounts`, // statistics of the new expressions
			`ANALYZE users`,
		},
	}},
	// The audit filters' indexes on lower-cased actors and target names
	// (migration 11) hold the raw column too, so that a branch of a
	// prefix's union reads (at, id) from the index alone: neither engine
	// treats an index on an expression as covering unless the column is
	// in it, so each branch fetched its 51 rows from the table (a 14-name
	// prefix: 714 random reads for one page, 4-7x the unfiltered page at
	// 10,000,000 entries). Likewise the review status line's count
	// (migration 25's index) reads the action and actor from the index.
	// Issue 13 #6.
	{27, "audit filter indexes cover the page keys", ``, map[Engine][]string{
		SQLite: {
			`DROP INDEX idx_audit_actor_label_at`,
			`DROP INDEX idx_audit_target_name_at`,
			`DROP INDEX idx_audit_tree_actor_label_at`,
			`DROP INDEX idx_audit_tree_target_name_at`,
			`CREATE INDEX idx_audit_actor_label_at ON audit_entries(lower(actor_label), at, id, actor_label)`,
			`CREATE INDEX idx_audit_target_name_at ON audit_entries(lower(target_name), at, id, target_name)`,
			`CREATE INDEX idx_audit_tree_actor_label_at ON audit_entries(tree_id, lower(actor_label), at, id, actor_label)`,
			`CREATE INDEX idx_audit_tree_target_name_at ON audit_entries(tree_id, lower(target_name), at, id, target_name)`,
			`DROP INDEX idx_audit_tree_id`,
			`CREATE INDEX idx_audit_tree_id ON audit_entries(tree_id, id, action, actor_user_id)`,
		},
		// Online, as migration 29 (see there): each index is built beside
		// the old one, which is then dropped and its name taken. In one
		// transaction, the DROPs held the table's ACCESS EXCLUSIVE lock
		// for all five builds: no entry could be read or written (no
		// login, no page) for minutes at 10,000,000 entries.
		Postgres: onlineIndexRebuilds(27,
			`idx_audit_actor_label_at ON audit_entries((lower(actor_label) COLLATE "C"), at, id) INCLUDE (actor_label)`,
			`idx_audit_target_name_at ON audit_entries((lower(target_name) COLLATE "C"), at, id) INCLUDE (target_name)`,
			`idx_audit_tree_actor_label_at ON audit_entries(tree_id, (lower(actor_label) COLLATE "C"), at, id) INCLUDE (actor_label)`,
			`idx_audit_tree_target_name_at ON audit_entries(tree_id, (lower(target_name) COLLATE "C"), at, id) INCLUDE (target_name)`,
			`idx_audit_tree_id ON audit_entries(tree_id, id) INCLUDE (action, actor_user_id)`,
		),
	}},
	{28, "users.time_zone (the zone the console shows times in, chosen in the account menu)", `
ALTER TABLE users ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';
`, nil},
	// An actor filtered by actions walks the actor's index and tests each
	// entry's action: from the table, row by row, while the index lacked
	// it (300 rows read for a page of 51 of an owner's renames and
	// resets, 2.1-2.2x the unfiltered page on both engines). With the
	// action in both actor indexes, the entries of other actions are
	// skipped in the index: PostgreSQL's index-only walk of keys, SQLite's
	// deferred seek, which reads the table row only for a column the index
	// lacks. Issue 13 #6.
	//
	// PostgreSQL builds the new index beside the old one without blocking
	// writes (CONCURRENTLY: the migration runs outside a transaction, see
	// migration.online), then drops the old one and takes its name; each
	// step may run again after an interruption. SQLite rebuilds them in
	// the migration's transaction (one writer anyway).
	{29, "audit actor indexes hold the action", ``, map[Engine][]string{
		SQLite: {
			`DROP INDEX idx_audit_actor_label_at`,
			`CREATE INDEX idx_audit_actor_label_at ON audit_entries(lower(actor_label), at, id, actor_label, action)`,
			`DROP INDEX idx_audit_tree_actor_label_at`,
			`CREATE INDEX idx_audit_tree_actor_label_at ON audit_entries(tree_id, lower(actor_label), at, id, actor_label, action)`,
		},
		Postgres: onlineIndexRebuilds(29,
			`idx_audit_actor_label_at ON audit_entries((lower(actor_label) COLLATE "C"), at, id) INCLUDE (actor_label, action)`,
			`idx_audit_tree_actor_label_at ON audit_entries(tree_id, (lower(actor_label) COLLATE "C"), at, id) INCLUDE (actor_label, action)`,
		),
	}},
	// An address with a busy actor or within a busy tree walked one of
	// the two in (at, id) order and tested the other row by row: 1.6 s
	// for the busiest owner's e-mail and another tree's address at
	// 5,000,000 entries on SQLite (0.1 s on PostgreSQL), 60-90x the
	// unfiltered page for a busy tree (an account filter, an owner) and an
	// address. Neither index can be skipped: the address may have fewer
	// entries than the actor or the tree, or more (a tree's own address).
	// With both equalities first in one index, the pair is one search, its
	// entries in (at, id) order. The actor's holds what its walk tests
	// (the label an expression is read from, the tree of an owner, the
	// actions), as migration 29's do: only the index is read. The actor ID
	// has no such index (an address with an actor ID still walks one of
	// them). Issue 13 #6.
	//
	// Built as migration 29's indexes: CONCURRENTLY on PostgreSQL, each
	// step safe to run again; in the migration's transaction on SQLite.
	{32, "audit indexes of an address within a tree and with an actor", ``, map[Engine][]string{
		SQLite: {
			`CREATE INDEX idx_audit_tree_ip_at ON audit_entries(tree_id, ip, at, id)`,
			`CREATE INDEX idx_audit_ip_actor_label_at ON audit_entries(ip, lower(actor_label), at, id, actor_label, tree_id, action)`,
		},
		Postgres: {
			`SET maintenance_work_mem = '256MB'`,
			`DROP INDEX CONCURRENTLY IF EXISTS idx_audit_tree_ip_at`,
			`CREATE INDEX CONCURRENTLY idx_audit_tree_ip_at ON audit_entries(tree_id, ip, at, id)`,
			`DROP INDEX CONCURRENTLY IF EXISTS idx_audit_ip_actor_label_at`,
			`CREATE INDEX CONCURRENTLY idx_audit_ip_actor_label_at ON audit_entries(ip, (lower(actor_label) COLLATE "C"), at, id) INCLUDE (actor_label, tree_id, action)`,
			`ANALYZE audit_entries`,
		},
	}},
	// An actor's or a target's prefix with actions walked each value's
	// index and tested the action: the actor's index-only (migration 29),
	// the target's from the table, row by row; a prefix's busy e-mails
	// with a rare action read them all (PostgreSQL: 170-200x the
	// unfiltered page at 10,000,000 entries, a target prefix up to 515x;
	// SQLite's target prefix 60x at 5,000,000). On PostgreSQL the value and
	// the action are now an index's first columns, and prefixPage reads a
	// page of keys for each value and action (INCLUDE the name: the
	// expression's column, for an index-only walk). On SQLite, whose
	// query merges the values in one "IN (…)" walk, the target's indexes
	// hold the action as the actor's do (a trailing column: the entries of
	// other actions are skipped in the index). Issue 13 #6.
	{33, "audit indexes of an actor's or target's name and action", ``, map[Engine][]string{
		SQLite: {
			`DROP INDEX idx_audit_target_name_at`,
			`CREATE INDEX idx_audit_target_name_at ON audit_entries(lower(target_name), at, id, target_name, action)`,
			`DROP INDEX idx_audit_tree_target_name_at`,
			`CREATE INDEX idx_audit_tree_target_name_at ON audit_entries(tree_id, lower(target_name), at, id, target_name, action)`,
		},
		Postgres: {
			`SET maintenance_work_mem = '256MB'`,
			`DROP INDEX CONCURRENTLY IF EXISTS idx_audit_actor_label_action_at`,
			`CREATE INDEX CONCURRENTLY idx_audit_actor_label_action_at ON audit_entries((lower(actor_label) COLLATE "C"), action, at, id) INCLUDE (actor_label)`,
			`DROP INDEX CONCURRENTLY IF EXISTS idx_audit_target_name_action_at`,
			`CREATE INDEX CONCURRENTLY idx_audit_target_name_action_at ON audit_entries((lower(target_name) COLLATE "C"), action, at, id) INCLUDE (target_name)`,
			`ANALYZE audit_entries`,
		},
	}},
	// An actor's user ID with actions walked the actor's (actor_user_id,
	// at, id) index and read each entry from the table to test its action:
	// the busiest owner's ID with a 1 % action read ~5,000 rows for a page
	// (31x the unfiltered page on SQLite at 5,000,000 entries, 3-4x on
	// PostgreSQL at 10,000,000). With the ID and the action first, a page
	// of keys is read for each action, as a name's (migration 33). On
	// SQLite the actor's and the target's names get the same index
	// (PostgreSQL has them from migration 33): there, a prefix's values
	// with actions were one "IN (…)" walk of the name's index that read
	// every entry of the values for a rare action (a ten-e-mail prefix:
	// 8x). The SQLite name indexes hold no raw column: the page's keys
	// query reads at and id, which they hold, and its name term is
	// answered by the search, so the table row of their (deferred) seek is
	// never read (testAuditActionsInTheValuesIndex); the raw column made
	// them a third larger and the walk slower. The ID's holds the tree, for
	// an owner's page (the ID's walk tests it: no index has the tree and
	// the ID). Issue 13 #6.
	//
	// Built as migration 32's: CONCURRENTLY on PostgreSQL, each step safe
	// to run again; in the migration's transaction on SQLite.
	{34, "audit indexes of an actor ID and action (and on SQLite, of a name and action)", ``, map[Engine][]string{
		SQLite: {
			`CREATE INDEX idx_audit_actor_user_action_at ON audit_entries(actor_user_id, action, at, id, tree_id)`,
			`CREATE INDEX idx_audit_actor_label_action_at ON audit_entries(lower(actor_label), action, at, id)`,
			`CREATE INDEX idx_audit_target_name_action_at ON audit_entries(lower(target_name), action, at, id)`,
		},
		Postgres: {
			`SET maintenance_work_mem = '256MB'`,
			`DROP INDEX CONCURRENTLY IF EXISTS idx_audit_actor_user_action_at`,
			`CREATE INDEX CONCURRENTLY idx_audit_actor_user_action_at ON audit_entries(actor_user_id, action, at, id)`,
			`ANALYZE audit_entries`,
		},
	}},
	// The pairs of filters no index held both of (issue 13 #6: "any filter
	// combination"), each of which walked one value's entries and tested
	// the other: an address with an actor ID or with a target (its name or
	// ID: the busiest owner's e-mail or user ID with another tree's
	// address, 385-590x the unfiltered page on SQLite at 5,000,000
	// entries, 52-59x on PostgreSQL at 10,000,000), a busy address with a
	// rare action (SQLite 12.8x), and within a tree an actor's or a
	// target's names with a rare action (2-3x on both engines: the tree's
	// name index holds the action, but its walk still passes the other
	// actions' entries); and on SQLite, found by the pairs added to
	// BenchmarkAuditFilters, a tree with an actor ID or a target ID of
	// another tree (the busiest owner's, 115-190x at 1,000,000 entries),
	// a target ID with a rare action (112x). Each pair's equalities are
	// now an index's first columns, its entries in (at, id) order: the
	// address with the actor ID, the target's name, the target ID or the
	// action; the tree with the name and the action (as migration 34's
	// name indexes without the tree), with the actor ID, with the target
	// ID; the target ID with the action (as migration 34's actor ID's).
	// Audit appends are console actions, rare beside reads: each now
	// updates 27 audit indexes instead of 18 (BENCHMARKS.md "Filters,
	// seventh pass"). None of the older indexes is made
	// redundant: each still answers a filter alone or a pair these do not
	// (an index whose first columns are another's only helps a query that
	// has equalities on all of them). SQLite's address indexes hold the
	// tree (and the action) as trailing columns, as migration 32's does,
	// for an owner's page, and so does the target ID's with the action, as
	// migration 34's actor ID's; PostgreSQL's address-and-name and tree-and-name
	// ones INCLUDE the name, the expression's column, for an index-only
	// walk of a prefix's values (migration 33).
	//
	// Built as migration 32's: CONCURRENTLY on PostgreSQL, each step safe
	// to run again; in the migration's transaction on SQLite.
	{35, "audit indexes of the remaining filter pairs (an address with an actor ID, a target or an action; a tree with a name and an action, an actor ID or a target ID; a target ID with an action)", ``, map[Engine][]string{
		SQLite: {
			`CREATE INDEX idx_audit_ip_actor_user_at ON audit_entries(ip, actor_user_id, at, id, tree_id, action)`,
			`CREATE INDEX idx_audit_ip_target_name_at ON audit_entries(ip, lower(target_name), at, id, tree_id, action)`,
			`CREATE INDEX idx_audit_ip_target_id_at ON audit_entries(ip, target_id, at, id, tree_id, action)`,
			`CREATE INDEX idx_audit_ip_action_at ON audit_entries(ip, action, at, id, tree_id)`,
			`CREATE INDEX idx_audit_tree_actor_label_action_at ON audit_entries(tree_id, lower(actor_label), action, at, id)`,
			`CREATE INDEX idx_audit_tree_target_name_action_at ON audit_entries(tree_id, lower(target_name), action, at, id)`,
			`CREATE INDEX idx_audit_tree_actor_user_at ON audit_entries(tree_id, actor_user_id, at, id)`,
			`CREATE INDEX idx_audit_tree_target_id_at ON audit_entries(tree_id, target_id, at, id)`,
			`CREATE INDEX idx_audit_target_id_action_at ON audit_entries(target_id, action, at, id, tree_id)`,
		},
		Postgres: {
			`SET maintenance_work_mem = '256MB'`,
			`DROP INDEX CONCURRENTLY IF EXISTS idx_audit_ip_actor_user_at`,
			`CREATE INDEX CONCURRENTLY idx_audit_ip_actor_user_at ON audit_entries(ip, actor_user_id, at, id)`,
			`DROP INDEX CONCURRENTLY IF EXISTS idx_audit_ip_target_name_at`,
			`CREATE INDEX CONCURRENTLY idx_audit_ip_target_name_at ON audit_entries(ip, (lower(target_name) COLLATE "C"), at, id) INCLUDE (target_name)`,
			`DROP INDEX CONCURRENTLY IF EXISTS idx_audit_ip_target_id_at`,
			`CREATE INDEX CONCURRENTLY idx_audit_ip_target_id_at ON audit_entries(ip, target_id, at, id)`,
			`DROP INDEX CONCURRENTLY IF EXISTS idx_audit_ip_action_at`,
			`CREATE INDEX CONCURRENTLY idx_audit_ip_action_at ON audit_entries(ip, action, at, id)`,
			`DROP INDEX CONCURRENTLY IF EXISTS idx_audit_tree_actor_label_action_at`,
			`CREATE INDEX CONCURRENTLY idx_audit_tree_actor_label_action_at ON audit_entries(tree_id, (lower(actor_label) COLLATE "C"), action, at, id) INCLUDE (actor_label)`,
			`DROP INDEX CONCURRENTLY IF EXISTS idx_audit_tree_target_name_action_at`,
			`CREATE INDEX CONCURRENTLY idx_audit_tree_target_name_action_at ON audit_entries(tree_id, (lower(target_name) COLLATE "C"), action, at, id) INCLUDE (target_name)`,
			`DROP INDEX CONCURRENTLY IF EXISTS idx_audit_tree_actor_user_at`,
			`CREATE INDEX CONCURRENTLY idx_audit_tree_actor_user_at ON audit_entries(tree_id, actor_user_id, at, id)`,
			`DROP INDEX CONCURRENTLY IF EXISTS idx_audit_tree_target_id_at`,
			`CREATE INDEX CONCURRENTLY idx_audit_tree_target_id_at ON audit_entries(tree_id, target_id, at, id)`,
			`DROP INDEX CONCURRENTLY IF EXISTS idx_audit_target_id_action_at`,
			`CREATE INDEX CONCURRENTLY idx_audit_target_id_action_at ON audit_entries(target_id, action, at, id)`,
			`ANALYZE audit_entries`,
		},
	}},
	// The last pairs of filters no index held both of (issue 13 #6): an
	// actor (an e-mail or label, or a user ID) with a target (a name or a
	// target ID), and a sub-account with any other filter. Each was one
	// value's walk testing the other: an actor with a target walked the
	// target's entries (a key's few thousand) testing the actor, 3.6-4.2x
	// the unfiltered page on SQLite at 5,000,000 entries and 2.0-3.5x on
	// PostgreSQL at 10,000,000; a sub-account walked its own entries
	// testing the other filter (SQLite 1.5-2.5x), or on PostgreSQL the
	// tree's entries of the other value testing the account (1.5-4.3x)
	// (BENCHMARKS.md "Filters, eighth pass"). An index per pair, as
	// migration 35's: the actor's column, then the target's; the account,
	// then the other column. 37 audit indexes instead of 27: each append
	// updates ten more b-trees (BENCHMARKS.md "Filters, ninth pass"
	// measures the append and the size). SQLite's indexes hold the tree,
	// for an owner's page and a sub-account's (whose query has its tree
	// too), as migration 35's address indexes do, so that their keys are
	// read from the index alone; PostgreSQL's INCLUDE the tree, and their
	// name indexes the raw name, the expression's column, for the same
	// index-only walk (migration 33).
	//
	// Built as migration 32's: CONCURRENTLY on PostgreSQL, each step safe
	// to run again; in the migration's transaction on SQLite.
	{36, "audit indexes of an actor with a target, and of a sub-account with another filter", ``, map[Engine][]string{
		SQLite: {
			`CREATE INDEX idx_audit_actor_user_target_id_at ON audit_entries(actor_user_id, target_id, at, id, tree_id)`,
			`CREATE INDEX idx_audit_actor_user_target_name_at ON audit_entries(actor_user_id, lower(target_name), at, id, tree_id)`,
			`CREATE INDEX idx_audit_actor_label_target_id_at ON audit_entries(lower(actor_label), target_id, at, id, tree_id)`,
			`CREATE INDEX idx_audit_actor_label_target_name_at ON audit_entries(lower(actor_label), lower(target_name), at, id, tree_id)`,
			`CREATE INDEX idx_audit_account_actor_user_at ON audit_entries(account_id, actor_user_id, at, id, tree_id)`,
			`CREATE INDEX idx_audit_account_actor_label_at ON audit_entries(account_id, lower(actor_label), at, id, tree_id)`,
			`CREATE INDEX idx_audit_account_target_id_at ON audit_entries(account_id, target_id, at, id, tree_id)`,
			`CREATE INDEX idx_audit_account_target_name_at ON audit_entries(account_id, lower(target_name), at, id, tree_id)`,
			`CREATE INDEX idx_audit_account_ip_at ON audit_entries(account_id, ip, at, id, tree_id)`,
			`CREATE INDEX idx_audit_account_action_at ON audit_entries(account_id, action, at, id, tree_id)`,
		},
		Postgres: concurrentIndexes(
			`idx_audit_actor_user_target_id_at ON audit_entries(actor_user_id, target_id, at, id) INCLUDE (tree_id)`,
			`idx_audit_actor_user_target_name_at ON audit_entries(actor_user_id, (lower(target_name) COLLATE "C"), at, id) INCLUDE (target_name, tree_id)`,
			`idx_audit_actor_label_target_id_at ON audit_entries((lower(actor_label) COLLATE "C"), target_id, at, id) INCLUDE (actor_label, tree_id)`,
			`idx_audit_actor_label_target_name_at ON audit_entries((lower(actor_label) COLLATE "C"), (lower(target_name) COLLATE "C"), at, id) INCLUDE (actor_label, target_name, tree_id)`,
			`idx_audit_account_actor_user_at ON audit_entries(account_id, actor_user_id, at, id) INCLUDE (tree_id)`,
			`idx_audit_account_actor_label_at ON audit_entries(account_id, (lower(actor_label) COLLATE "C"), at, id) INCLUDE (actor_label, tree_id)`,
			`idx_audit_account_target_id_at ON audit_entries(account_id, target_id, at, id) INCLUDE (tree_id)`,
			`idx_audit_account_target_name_at ON audit_entries(account_id, (lower(target_name) COLLATE "C"), at, id) INCLUDE (target_name, tree_id)`,
			`idx_audit_account_ip_at ON audit_entries(account_id, ip, at, id) INCLUDE (tree_id)`,
			`idx_audit_account_action_at ON audit_entries(account_id, action, at, id) INCLUDE (tree_id)`,
		),
	}},
	// A tree's export read from one index (issue 13 #4: 100,000 rows a
	// second). A tree's entries are scattered over the table (a small
	// tree's are one in 330, each on a table page of its own), and SQLite's
	// Go port reads a page with two system calls (lseek, then read: its C
	// is built without pread): an export of one tree read a table page per
	// row, 40 % of the server's CPU, 82,000-84,000 rows/s for a small tree
	// at 5,000,000 entries (BENCHMARKS.md "Export rate, ninth pass"). This
	// index holds every column an export reads (exportSelect) after the
	// tree, at and id, so a tree's batches are read in order from its
	// leaves, several entries a page ("Export rate, tenth pass" gives the
	// rates, the size and the append's cost).
	//
	// Its first column is an expression of the tree that only that export
	// writes (ifnull(tree_id, 0) = ?, scopedAuditQuery), and tree_id itself
	// is a later column (so that the expression's column is covered too).
	// SQLite keeps no statistics here and prefers an index that covers a
	// query: keyed by tree_id, it took this index for a tree's export with
	// any other filter too (an address, an action, a sub-account) and
	// walked every entry of the tree to test it, instead of the filter's
	// pair index. The narrow idx_audit_tree_at stays for the pages.
	//
	// SQLite only: PostgreSQL reads a small tree at 115,000 rows/s without
	// it, and its B-tree entries may not exceed 2,704 bytes, which details
	// (unbounded JSON) would.
	{37, "audit index of a tree's exported columns (SQLite)", ``, map[Engine][]string{
		SQLite: {
			`CREATE INDEX idx_audit_tree_export ON audit_entries(ifnull(tree_id, 0), at, id, tree_id, account_id, actor_type, actor_label, actor_role, action, target_type, target_id, target_name, ip, user_agent, details, prev_hash, hash)`,
		},
	}},
}

// concurrentIndexes are the PostgreSQL statements of an online migration
// (migration.online) that adds indexes, each given as "name ON table(…)":
// each dropped if a run cut short left it half-built, then built
// CONCURRENTLY; then ANALYZE of their tables.
func concurrentIndexes(defs ...string) []string {
	return onlineIndexes(defs, func(name, on string) []string {
		return []string{`DROP INDEX CONCURRENTLY IF EXISTS ` + name, `CREATE INDEX CONCURRENTLY ` + name + ` ON ` + on}
	})
}

// onlineIndexRebuilds are the PostgreSQL statements of an online migration
// (migration.online) that rebuilds indexes, each given as "name ON
// table(…)": built CONCURRENTLY under the name with the migration's
// version appended, the old index dropped CONCURRENTLY, the new one renamed
// to the old name; then ANALYZE. Every step may run again after an
// interruption: a half-built index under the temporary name is dropped
// first, and an index already renamed is simply rebuilt.
func onlineIndexRebuilds(version int, defs ...string) []string {
	return onlineIndexes(defs, func(name, on string) []string {
		tmp := name + "_" + strconv.Itoa(version)
		return []string{
			`DROP INDEX CONCURRENTLY IF EXISTS ` + tmp,
			`CREATE INDEX CONCURRENTLY ` + tmp + ` ON ` + on,
			`DROP INDEX CONCURRENTLY IF EXISTS ` + name,
			`ALTER INDEX ` + tmp + ` RENAME TO ` + name,
		}
	})
}

// onlineIndexes is a larger maintenance_work_mem for the builds, each index
// definition's statements (each "name ON table(…)", split for each), then
// ANALYZE of the tables they are on.
func onlineIndexes(defs []string, each func(name, on string) []string) []string {
	stmts := []string{`SET maintenance_work_mem = '256MB'`}
	tables := map[string]bool{}
	for _, d := range defs {
		name, on, _ := strings.Cut(d, " ON ")
		table, _, _ := strings.Cut(on, "(")
		stmts = append(stmts, each(name, on)...)
		tables[table] = true
	}
	for _, t := range slices.Sorted(maps.Keys(tables)) {
		stmts = append(stmts, `ANALYZE `+t)
	}
	return stmts
}

func (s *Store) expand(sql string) string {
	r := strings.NewReplacer(
		"{{pk}}", map[Engine]string{SQLite: "INTEGER PRIMARY KEY AUTOINCREMENT", Postgres: "BIGSERIAL PRIMARY KEY"}[s.engine],
		"{{ts}}", map[Engine]string{SQLite: "DATETIME", Postgres: "TIMESTAMPTZ"}[s.engine],
		"{{bytes}}", map[Engine]string{SQLite: "BLOB", Postgres: "BYTEA"}[s.engine],
	)
	return r.Replace(sql)
}

// SchemaVersion is the newest migration this build knows.
// Versions are reserved in blocks per area, so the newest is the highest,
// not necessarily the last in the list.
func SchemaVersion() int {
	v := 0
	for _, m := range migrations {
		v = max(v, m.Version)
	}
	return v
}

// Migrate applies every pending migration, each in its own transaction, and
// returns the versions it applied. Safe to run from several instances at
// once: PostgreSQL takes an advisory lock, SQLite's immediate transaction
// holds the write lock.
func (s *Store) Migrate(ctx context.Context) ([]int, error) {
	applied, err := s.migrateUpTo(ctx, SchemaVersion())
	if err != nil {
		return applied, err
	}
	// A log written before entries were keyed is verified and covered once.
	if err := s.keyLegacyAudit(ctx); err != nil && !errors.Is(err, ErrAuditUnverified) {
		return applied, fmt.Errorf("models: key the audit log: %w", err)
	}
	return applied, nil
}

// migrateUpTo applies the pending migrations up to version through (tests
// of a migration start from the schema before it).
func (s *Store) migrateUpTo(ctx context.Context, through int) ([]int, error) {
	db := s.db.WithContext(ctx)
	if s.engine == Postgres {
		conn, err := s.db.DB()
		if err != nil {
			return nil, err
		}
		c, err := conn.Conn(ctx)
		if err != nil {
			return nil, fmt.Errorf("models: migrate: %w", err)
		}
		defer c.Close()
		if err := tryLockUntil(ctx, c, s.lock(lockMigrate)); err != nil {
			return nil, fmt.Errorf("models: migrate lock: %w", err)
		}
		defer c.ExecContext(context.Background(), "SELECT pg_advisory_unlock($1)", s.lock(lockMigrate)) //nolint:errcheck
	}
	if err := db.Exec(s.expand(`CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY,
		name TEXT NOT NULL,
		applied_at {{ts}} NOT NULL)`)).Error; err != nil {
		return nil, fmt.Errorf("models: migrate: create schema_migrations: %w", err)
	}
	var applied []int
	for _, m := range migrations {
		if m.Version > through {
			break
		}
		if m.online(s.engine) {
			ran, err := s.migrateOnline(ctx, m)
			if err != nil {
				return applied, fmt.Errorf("models: migration %d (%s): %w", m.Version, m.Name, err)
			}
			if ran {
				applied = append(applied, m.Version)
			}
			continue
		}
		ran := false
		err := s.tx(ctx, func(tx *gorm.DB) error {
			ran = false
			var n int64
			if err := tx.Table("schema_migrations").Where("version = ?", m.Version).Count(&n).Error; err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			stmts := append(strings.Split(s.expand(m.SQL), ";"), m.Only[s.engine]...)
			for _, stmt := range stmts {
				if strings.TrimSpace(stmt) == "" {
					continue
				}
				if err := tx.Exec(stmt).Error; err != nil {
					return fmt.Errorf("%s: %w", strings.TrimSpace(stmt)[:min(60, len(strings.TrimSpace(stmt)))], err)
				}
			}
			ran = true
			return tx.Exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", m.Version, m.Name, s.Now()).Error
		})
		if err != nil {
			return applied, fmt.Errorf("models: migration %d (%s): %w", m.Version, m.Name, err)
		}
		if ran {
			// Recorded only now that its transaction committed.
			applied = append(applied, m.Version)
		}
	}
	return applied, nil
}

// tryLockUntil takes the session advisory lock id on c, trying again every
// 100 ms until ctx ends. It never waits inside pg_advisory_lock: a
// statement blocked there holds its snapshot, and another instance's
// CREATE INDEX CONCURRENTLY (an online migration, run while that instance
// holds this lock) waits for every older snapshot to go, so the two would
// wait for each other forever.
func tryLockUntil(ctx context.Context, c *sql.Conn, id int64) error {
	for {
		var ok bool
		if err := c.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", id).Scan(&ok); err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// migrateOnline applies m outside a transaction (migration.online), unless
// it is recorded already, and records it after its last statement.
func (s *Store) migrateOnline(ctx context.Context, m migration) (bool, error) {
	var n int64
	if err := s.db.WithContext(ctx).Table("schema_migrations").Where("version = ?", m.Version).Count(&n).Error; err != nil || n > 0 {
		return false, err
	}
	sqlDB, err := s.db.DB()
	if err != nil {
		return false, err
	}
	c, err := sqlDB.Conn(ctx)
	if err != nil {
		return false, err
	}
	defer c.Close()
	// The session's settings end with it: the connection is not reused.
	defer c.Raw(func(any) error { return driver.ErrBadConn }) //nolint:errcheck
	stmts := append(strings.Split(s.expand(m.SQL), ";"), m.Only[s.engine]...)
	for _, stmt := range stmts {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := c.ExecContext(ctx, stmt); err != nil {
			return false, fmt.Errorf("%s: %w", strings.TrimSpace(stmt)[:min(60, len(strings.TrimSpace(stmt)))], err)
		}
	}
	err = s.db.WithContext(ctx).Exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", m.Version, m.Name, s.Now()).Error
	return err == nil, err
}

// CurrentSchemaVersion reads the newest applied migration (0 when none).
func (s *Store) CurrentSchemaVersion(ctx context.Context) (int, error) {
	var v *int
	err := s.db.WithContext(ctx).Raw("SELECT MAX(version) FROM schema_migrations").Scan(&v).Error
	if err != nil {
		return 0, err
	}
	if v == nil {
		return 0, nil
	}
	return *v, nil
}
