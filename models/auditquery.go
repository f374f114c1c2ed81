package models

import (
	"cmp"
	"context"
	"database/sql"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"gorm.io/gorm"
)

// How the audit page's filters reach an index (docs/DESIGN.md target 7: every
// filter within 2× of the unfiltered first page, never a scan).
//
// Every filterable column has an index ending in (at, id), migration 11:
// an equality on its first column hands rows over in keyset order, so a
// page reads its 51 rows and stops, however large the log. A filter is
// therefore turned into equalities:
//
//   - actions: action = each chosen action;
//   - actor: lower(actor_label) = each e-mail or label that starts with
//     what was typed (case-insensitive), or actor_user_id = the number typed
//     when an entry has it;
//   - target: target_id = what was typed when an entry has it, or
//     lower(target_name) = each name that starts with it;
//   - IP, account, scope: one equality each; dates: a range on at.
//
// A prefix is resolved first to the distinct values it matches, by a loose
// index scan (one index probe per value, at most auditPrefixValues+1), within
// the one tree an owner (or an account filter) limits the log to; the same
// statement probes the ID's index, so that a name typed whole is one
// equality, not a union with an ID no entry has. Owners'
// filters have indexes that start with tree_id: (tree_id, action, at, id),
// (tree_id, lower(actor_label), at, id), (tree_id, lower(target_name), at,
// id), and (migrations 32, 35) (tree_id, ip, at, id), (tree_id,
// actor_user_id, at, id), (tree_id, target_id, at, id): an ID or an
// address of another tree (the busiest owner's ID typed on a small
// tree's page) is not a walk of all its entries. Each pair of the other
// filters has an index too (migrations 29-35), except an actor with a
// target: see BENCHMARKS.md "Filters, seventh pass". When
// a filter has several equalities, each reads at most a page of index
// keys, in index order, and the page of keys is merged from them: on
// PostgreSQL a UNION (or a LATERAL subquery per value) that sorts at most
// values × page keys; on SQLite one "col IN (…) ORDER BY at, id LIMIT n"
// on the column's index when the equalities are all on one column (SQLite
// leaves each value once its next entry cannot enter the page), else a
// UNION whose members it merges in index order. The page's rows are then
// read by ID. The actor indexes also hold the action (migration 29), so
// an actor filtered by actions skips the other entries in the index; an
// actor ID, and on SQLite an actor's or a target's names, with actions
// are read from an index keyed by the value and then the action
// (migration 34; PostgreSQL's names: migration 33, prefixPage), a page of
// keys for each pair, so that a rare action does not walk a busy value. A
// prefix that matches more than auditPrefixValues
// values is refused with a message (type more of it): answering it would
// mean reading every match.
//
// On PostgreSQL an actor or a target typed with no other filter than the
// tree and dates (an actor that is not a number also with actions) is one
// statement (prefixPage): the lookup is the page query's own WITH query,
// and the statement keeps a generic plan, which for this shape is the plan
// a custom one would be; so are two actions or more with no other filter
// than the tree and dates (actionsPage).

// auditPrefixValues is how many distinct e-mails, labels or names a typed
// prefix may match.
const auditPrefixValues = 20

// broadPrefix is the refusal of a prefix that matches too many values.
func broadPrefix(field, what, prefix string) error {
	return &ValidationError{Fields: map[string]string{field: "More than " + strconv.Itoa(auditPrefixValues) + " " + what +
		" start with “" + prefix + "”: type more of it."}}
}

// lowerExpr is the indexed expression for a case-insensitive column:
// PostgreSQL compares it bytewise (COLLATE "C"), as SQLite does, so a
// prefix is one contiguous range of the index.
func (s *Store) lowerExpr(col string) string {
	if s.engine == Postgres {
		return `(lower(` + col + `) COLLATE "C")`
	}
	return "lower(" + col + ")"
}

// prefixEnd is the smallest string greater than every string starting with
// p ("" when there is none).
func prefixEnd(p string) string {
	for p != "" {
		r, n := utf8.DecodeLastRuneInString(p)
		p = p[:len(p)-n]
		if r == utf8.MaxRune || r == utf8.RuneError {
			continue
		}
		r++
		if r >= 0xD800 && r <= 0xDFFF {
			r = 0xE000
		}
		return p + string(r)
	}
	return ""
}

// idProbe is an ID column and the value typed for it.
type idProbe struct {
	col string
	v   any
}

// prefixValues lists the distinct values of lower(col) that start with p,
// at most auditPrefixValues+1 of them: a loose index scan, one probe of
// the (lower(col), at, id) index per value. With id, the same statement
// also says whether any entry has that ID (one probe of its index): a
// union branch for an ID no entry has would cost a walk, a sort and
// fetching the page again for nothing.
func (s *Store) prefixValues(ctx context.Context, col, p string, tree *uint, id *idProbe) (vals []string, idSeen bool, err error) {
	q, args := s.prefixValuesSQL(col, p, tree, id)
	var rows []sql.NullString
	if err := s.db.WithContext(ctx).Raw(q, args...).Scan(&rows).Error; err != nil {
		return nil, false, wrapOp("audit filter", err)
	}
	for _, r := range rows {
		if r.Valid {
			vals = append(vals, r.String)
		} else {
			idSeen = true
		}
	}
	return vals, idSeen, nil
}

// prefixValuesSQL is prefixValues' query: a row for each value, and a
// NULL row when an entry has the ID.
func (s *Store) prefixValuesSQL(col, p string, tree *uint, id *idProbe) (string, []any) {
	cte, args := s.prefixValuesCTE(col, p, tree, "tree_id = ?")
	q := "WITH RECURSIVE " + cte + "\nSELECT val FROM v WHERE val IS NOT NULL"
	if id != nil {
		// Within the tree, on the (tree_id, ID, at, id) index (migration
		// 35): an ID of another tree is no branch, where the page's walk
		// found nothing after reading the whole tree or all the ID's
		// entries (a small tree's page and the busiest owner's user ID as
		// a target: 157x the unfiltered page on PostgreSQL at 10,000,000
		// entries, where the dependency statistics of migration 12 make
		// the tree's walk look as cheap as the pair's index).
		q += "\nUNION ALL SELECT NULL WHERE EXISTS (SELECT 1 FROM audit_entries WHERE " + id.col + " = ?"
		args = append(args, id.v)
		if tree != nil {
			q += " AND tree_id = ?"
			args = append(args, *tree)
		}
		q += ")"
	}
	return q, args
}

// prefixValuesCTE is the recursive WITH query v(val, n) of the loose index
// scan: a row for each value of lower(col) that starts with p, up to
// auditPrefixValues+1, then a NULL one when there are fewer. treeCond is
// how the tree is written, with one placeholder (see prefixPage).
func (s *Store) prefixValuesCTE(col, p string, tree *uint, treeCond string) (string, []any) {
	expr := s.lowerExpr(col)
	end := prefixEnd(p)
	var bound []any // the arguments of one probe's WHERE after the lower bound
	where := ""
	if end != "" {
		where, bound = " AND "+expr+" < ?", []any{end}
	}
	if tree != nil {
		// Within one tree: the (tree_id, lower(col), at, id) index.
		where, bound = where+" AND "+treeCond, append(bound, *tree)
	}
	q := `v(val, n) AS (
	SELECT (SELECT ` + expr + ` FROM audit_entries WHERE ` + expr + ` >= ?` + where + ` ORDER BY ` + expr + ` LIMIT 1), 1
	UNION ALL
	SELECT (SELECT ` + expr + ` FROM audit_entries WHERE ` + expr + ` > v.val` + where + ` ORDER BY ` + expr + ` LIMIT 1), n + 1
	FROM v WHERE v.val IS NOT NULL AND n <= ?
)`
	args := append([]any{p}, bound...)
	args = append(args, bound...)
	return q, append(args, auditPrefixValues)
}

// sqlCond is one condition with its arguments.
type sqlCond struct {
	sql  string
	args []any
}

// auditQuery is the SQL of one page (or export batch) of the log.
type auditQuery struct {
	sql  string
	args []any
	none bool // the filter matches nothing: no query to run
	// cached: the query's plan does not depend on its values, so the
	// driver's prepared statement may keep one (scanAudit).
	cached bool
	// prefix is set when the query finds a typed prefix's values itself
	// (prefixPage): a prefix that matches too many answers nothing, and
	// refusePrefix tells that from an empty page.
	prefix *typedPrefix
	// sortDir is set (DESC or ASC) when the query has no ORDER BY of its
	// own: its rows are put in (at, id) order after they are read
	// (inOrder).
	sortDir string
}

// inOrder puts rows read by q in (at, id) order when the query leaves the
// order to its shape (q.sortDir: SQLite's merged page of keys).
func (q auditQuery) inOrder(rows []AuditEntry) {
	if q.sortDir == "" {
		return
	}
	slices.SortFunc(rows, func(a, b AuditEntry) int {
		c := a.At.Compare(b.At)
		if c == 0 {
			c = cmp.Compare(a.ID, b.ID)
		}
		if q.sortDir == "DESC" {
			return -c
		}
		return c
	})
}

// typedPrefix is a typed actor or target: the form field, what its values
// are called, the column, the text as typed and lower-cased, its tree.
type typedPrefix struct {
	field, what, col, typed, p string
	tree                       *uint
}

// refusePrefix is the answer to a query that found nothing: the refusal of
// the typed prefix when it matches too many values, or nil.
func (s *Store) refusePrefix(ctx context.Context, q auditQuery) error {
	if q.prefix == nil {
		return nil
	}
	p := q.prefix
	vals, _, err := s.prefixValues(ctx, p.col, p.p, p.tree, nil)
	if err != nil {
		return err
	}
	if len(vals) > auditPrefixValues {
		return broadPrefix(p.field, p.what, p.typed)
	}
	return nil
}

// checkAuditFilter refuses what a page of f would be refused (scope, a
// prefix that matches too many values) without reading one.
func (s *Store) checkAuditFilter(ctx context.Context, actor Actor, f AuditFilter) error {
	q, err := s.buildAuditQuery(ctx, actor, f, nil, false, 0, 1, nil)
	if err != nil {
		return err
	}
	return s.refusePrefix(ctx, q)
}

// prefixPage is, on PostgreSQL, the query of a typed actor or target with
// no other filter than dates, or than the tree and dates for an actor
// that is not a number: one statement that finds the prefix's values
// itself (prefixValuesCTE) and reads a page of keys for each (LATERAL),
// merged with the ID's page of keys when idCond is set, then the page's
// rows by primary key. Its plan does not depend on the values — the
// prefix's values are unknown to the planner even in a plan made for the
// statement's own, and each index read has the equality first and the
// dates and the cursor next, the ID's alone giving all a branch reads —
// so the prepared statement keeps a generic plan:
// no lookup query, no planning and no round trips for a custom plan (each
// had cost more than reading the page: 2.4-3x the unfiltered page at
// 10,000,000 entries).
//
// With actions, each value's page of keys is read for each action (the
// actions an InitPlan's array: unknown to the planner, see
// scopedAuditQuery), from an index whose key is the value and the action
// (migration 33): a value's entries of other actions are not walked (a
// prefix's busy e-mails and a rare action: 170-200x the unfiltered page at
// 10,000,000 entries when the action only filtered each value's walk).
//
// Within a tree, the tree is an InitPlan's value too, "tree_id = (SELECT
// CAST(? AS bigint))", for the same reason: seeing it, each custom plan was
// estimated cheaper than the generic one (a small tree's, and the busiest
// tree's too), and the statement was planned for every page (8 custom
// plans of 8, ~1 ms each at 10,000,000 entries), although its plan is the
// same for any tree: each walk has the tree and the value (and the
// action) first in its index (migration 35). So are a sub-account
// (migration 36) and the dates: with the dates in sight, each custom plan
// of a busy e-mail or target name and one day was estimated cheaper, and
// the statement was planned for every page (~1 ms among the log's 37
// indexes at 10,000,000 entries: 2.2-2.3x the unfiltered page), although
// the dates only bound each value's walk.
func (s *Store) prefixPage(tp typedPrefix, idCond *sqlCond, common []sqlCond, actions []string, dir string, limit int, sel func(string) string) auditQuery {
	const hiddenTree = "tree_id = (SELECT CAST(? AS bigint))"
	hidden := map[string]string{
		"tree_id = ?":    hiddenTree,
		"account_id = ?": "account_id = (SELECT CAST(? AS bigint))",
		"at >= ?":        "at >= (SELECT CAST(? AS timestamptz))",
		"at <= ?":        "at <= (SELECT CAST(? AS timestamptz))",
	}
	common = slices.Clone(common)
	for i, c := range common {
		if h, ok := hidden[c.sql]; ok {
			common[i].sql = h
		}
	}
	cte, args := s.prefixValuesCTE(tp.col, tp.p, tp.tree, hiddenTree)
	order := " ORDER BY at " + dir + ", id " + dir + " LIMIT " + strconv.Itoa(limit)
	array, acts := actionsArray(actions)
	var b strings.Builder
	b.WriteString("WITH RECURSIVE " + cte + "\nSELECT " + selectList("e.", sel) + " FROM (")
	if idCond != nil {
		conds := append([]sqlCond{*idCond}, common...)
		if len(acts) > 0 {
			// A page of keys for each action too, from the (target_id,
			// action, at, id) index (migration 35): "action = ANY (…)"
			// filtered the ID's walk (the busiest owner's ID, the target
			// of their logins, with a rare action walked all of them).
			w, a := joinConds(append(conds, sqlCond{"action = a.act", nil}))
			b.WriteString("SELECT at, id FROM (SELECT l.at, l.id FROM unnest(" + array + ") AS a(act) CROSS JOIN LATERAL (SELECT at, id FROM audit_entries" +
				w + order + ") AS l" + order + ") AS u UNION ")
			args = append(append(args, acts...), a...)
		} else {
			w, a := joinConds(conds)
			b.WriteString("SELECT at, id FROM (SELECT at, id FROM audit_entries" + w + order + ") AS u UNION ")
			args = append(args, a...)
		}
	}
	from, valConds := "v", []sqlCond{{s.lowerExpr(tp.col) + " = v.val", nil}}
	if len(acts) > 0 {
		from += " CROSS JOIN unnest(" + array + ") AS a(act)"
		valConds = append(valConds, sqlCond{"action = a.act", nil})
		args = append(args, acts...)
	}
	w, a := joinConds(append(valConds, common...))
	b.WriteString("SELECT l.at, l.id FROM " + from + " CROSS JOIN LATERAL (SELECT at, id FROM audit_entries" + w + order + ") AS l")
	args = append(args, a...)
	// Too many values: nothing (a condition checked once, before any row).
	b.WriteString(order + ") AS k JOIN audit_entries e ON e.id = k.id WHERE (SELECT count(*) FROM v WHERE val IS NOT NULL) <= " +
		strconv.Itoa(auditPrefixValues) + " ORDER BY k.at " + dir + ", k.id " + dir)
	return auditQuery{sql: b.String(), args: args, cached: true, prefix: &tp}
}

// actionsPage is, on PostgreSQL, the query of two actions or more with no
// other filter than the tree and dates: one statement that reads a page of
// keys from each action's index (LATERAL over the actions, (tree_id,)
// action, at, id: the equality first, the dates and the cursor next), then
// the page's rows by primary key. As for prefixPage, its plan does not
// depend on the values, so the prepared statement keeps it: a UNION of an
// action's walk each, planned for its values, cost 0.3 ms to plan and three
// round trips (SET, query, RESET) for 0.2 ms of reading, 2.5x the
// unfiltered page at 10,000,000 entries.
func (s *Store) actionsPage(actions []string, common []sqlCond, dir string, limit int, sel func(string) string) auditQuery {
	args := stringArgs(slices.Compact(slices.Sorted(slices.Values(actions)))) // each action's walk once
	order := " ORDER BY at " + dir + ", id " + dir + " LIMIT " + strconv.Itoa(limit)
	w, a := joinConds(append([]sqlCond{{"action = v.val", nil}}, common...))
	q := "SELECT " + selectList("e.", sel) + " FROM (SELECT l.at, l.id FROM unnest(ARRAY[" + params(len(args)) +
		"]::text[]) AS v(val) CROSS JOIN LATERAL (SELECT at, id FROM audit_entries" + w + order + ") AS l" + order +
		") AS k JOIN audit_entries e ON e.id = k.id ORDER BY k.at " + dir + ", k.id " + dir
	return auditQuery{sql: q, args: append(args, a...), cached: true}
}

// actionsArray is, on PostgreSQL, the actions (each once, in order) as an
// InitPlan's text array, "(SELECT ARRAY[?, …])::text[]", and its
// arguments: unlike a plain array, its values are unknown to the planner,
// even in a plan made for the statement's values (see prefixPage).
func actionsArray(actions []string) (string, []any) {
	acts := stringArgs(slices.Compact(slices.Sorted(slices.Values(actions))))
	return "(SELECT ARRAY[" + params(len(acts)) + "])::text[]", acts
}

// params is n parameters' placeholders, "?, ?, …".
func params(n int) string { return strings.TrimSuffix(strings.Repeat("?, ", n), ", ") }

// stringArgs is vals as a query's arguments.
func stringArgs(vals []string) []any {
	args := make([]any, len(vals))
	for i, v := range vals {
		args[i] = v
	}
	return args
}

// selectList is the SELECT list sel writes for a table name qualifier
// ("e." or ""); nil sel: every column.
func selectList(qualifier string, sel func(qualifier string) string) string {
	if sel == nil {
		return qualifier + "*"
	}
	return sel(qualifier)
}

// buildAuditQuery writes the query for the entries visible to actor that
// match f, after (asc) or before the cursor, up to through (0: no bound),
// limit rows in (at, id) order, descending unless asc; each row has the
// columns sel writes (nil: all of them).
func (s *Store) buildAuditQuery(ctx context.Context, actor Actor, f AuditFilter, cursor *AuditCursor, asc bool, through uint64, limit int, sel func(string) string) (auditQuery, error) {
	conds, tree, err := s.scopeConds(ctx, actor, f)
	if err != nil {
		return auditQuery{}, err
	}
	return s.scopedAuditQuery(ctx, auditScope{conds, tree}, f, cursor, asc, through, limit, sel)
}

// auditScope is what scopeConds found for an actor and a filter: its
// conditions, and the one tree they limit the log to (nil: every tree).
type auditScope struct {
	conds []sqlCond
	tree  *uint
}

// scopedAuditQuery is buildAuditQuery within a scope found already (an
// export looks its scope up once, not once a batch).
func (s *Store) scopedAuditQuery(ctx context.Context, scope auditScope, f AuditFilter, cursor *AuditCursor, asc bool, through uint64, limit int, sel func(string) string) (auditQuery, error) {
	common, tree := slices.Clone(scope.conds), scope.tree
	// Only an actor or only a target is typed, and only the tree (or
	// nothing) and dates limit the log: on PostgreSQL, prefixPage. (An
	// address or actions would let a plan made for unknown values read
	// their index instead, as a generic plan of "tree_id = $1 AND ip = $2"
	// did: scanAudit.) Within a tree too, now that an index has the tree
	// and a target or user ID (migration 35; the tree hidden from the
	// planner, see prefixPage): before it, a generic plan of
	// "actor_user_id = $1 AND tree_id = $2" read both indexes' matches
	// through bitmaps and sorted them (2.0 s for the busiest tree's owner
	// typing "1" at 10,000,000 entries; a target ID 1.4 s), so a number
	// typed within a tree was planned for its values, with its lookup
	// first: a target prefix with a rare action on the busiest owner's
	// page, its reads 0.9 ms, took 2.5 ms more to plan (2.6-3.1x the
	// unfiltered page).
	t, a := strings.TrimSpace(f.Target), strings.TrimSpace(f.Actor)
	_, numErr := strconv.ParseUint(a, 10, 63)
	// Actions may come with an actor that is not a number: both actor
	// indexes hold the action (migration 29), so each value's walk tests it
	// in the index, whatever plan is cached.
	// Or a sub-account (its tree and its account, on PostgreSQL): each
	// walk then has the account and the value first in its index
	// (migration 36), so the one statement's generic plan fits any
	// account; planned for its values (scanAudit), after a round trip of
	// its own for the prefix's values, a sub-account with an e-mail or a
	// target name cost 2.3-2.4x the unfiltered page at 10,000,000 entries,
	// 0.3-0.5 ms of it planning among the log's 37 indexes.
	onlyTree := len(common) == 0 || len(common) == 1 && tree != nil && common[0].sql == "tree_id = ?" ||
		s.engine == Postgres && len(common) == 2 && tree != nil && common[0].sql == "tree_id = ?" && common[1].sql == "account_id = ?"
	alone := (t == "") != (a == "") && strings.TrimSpace(f.IP) == "" && (len(f.Actions) == 0 || numErr != nil) && onlyTree
	// Two actions or more, and nothing else but the tree and dates: on
	// PostgreSQL, actionsPage.
	actionsOnly := t == "" && a == "" && strings.TrimSpace(f.IP) == "" && len(f.Actions) > 1 && onlyTree
	if f.From != nil {
		common = append(common, sqlCond{"at >= ?", []any{f.From.UTC()}})
	}
	if f.To != nil {
		common = append(common, sqlCond{"at <= ?", []any{f.To.UTC()}})
	}
	// A target or an actor is the most selective filter: on SQLite, which
	// keeps no statistics, the actions of the same query are then written
	// so that they cannot pick the index ("+action", SQLite's way to keep
	// a term off the index) and only filter the target's or the actor's
	// rows, or are read with the value from an index keyed by both
	// (sqliteActionIndex). (An address is not demoted: an index holds it
	// with each of them, see withIP.) PostgreSQL decides from its
	// statistics (and migration 12's on correlated columns).
	selective := strings.TrimSpace(f.Target) != "" || strings.TrimSpace(f.Actor) != ""
	demote := func(col string) string {
		if selective && s.engine == SQLite {
			return "+" + col
		}
		return col
	}
	if through > 0 {
		// An export's bound only filters: on SQLite "id <= ?" beside
		// tree_id = ? took the (tree_id, id) index and sorted the whole tree
		// for the first batch.
		bound := "id"
		if s.engine == SQLite {
			bound = "+id"
		}
		common = append(common, sqlCond{bound + " <= ?", []any{through}})
		if s.engine == SQLite && tree != nil && len(scope.conds) == 1 && scope.conds[0].sql == "tree_id = ?" &&
			t == "" && a == "" && strings.TrimSpace(f.IP) == "" && len(f.Actions) == 0 {
			// A whole tree (dates aside): its batches from the index of its
			// exported columns, whose first column is this expression so
			// that no other query takes it (migration 37).
			common[0].sql = "ifnull(tree_id, 0) = ?"
		}
	}
	dir, cmp := "DESC", "<"
	if asc {
		dir, cmp = "ASC", ">"
	}
	if cursor != nil {
		common = append(common, sqlCond{"(at, id) " + cmp + " (?, ?)", []any{cursor.At.UTC(), cursor.ID}})
	}
	if actionsOnly && s.engine == Postgres {
		return s.actionsPage(f.Actions, common, dir, limit, sel), nil
	}
	if alone && s.engine == Postgres {
		// The actions (prefixPage) as an InitPlan's array, unknown to the
		// planner even in a plan made for the statement's values: seeing
		// their frequencies, a custom plan was always estimated cheaper
		// than the generic one, and PostgreSQL kept planning the statement
		// for every page (0.5 ms; no generic plan in 8 runs). Within a
		// tree too, a page of keys for each value and action, from the
		// (tree_id, name, action, at, id) index (migration 35): the
		// actions only filtered each value's walk of the tree's index
		// before, which passed the other actions' entries (2-3x the
		// unfiltered page for the busiest owner's e-mails and a rare
		// action at 10,000,000 entries).
		actions := f.Actions
		if t != "" {
			return s.prefixPage(typedPrefix{"target", "key or account names", "target_name", t, strings.ToLower(t), tree},
				&sqlCond{"target_id = ?", []any{t}}, common, actions, dir, limit, sel), nil
		}
		var idCond *sqlCond
		if id, err := strconv.ParseUint(a, 10, 63); err == nil {
			idCond = &sqlCond{"actor_user_id = ?", []any{id}}
		}
		return s.prefixPage(typedPrefix{"actor", "actors", "actor_label", a, strings.ToLower(a), tree}, idCond, common, actions, dir, limit, sel), nil
	}
	// The filters that may be several equalities, most selective first:
	// one of them drives the union, the others are plain conditions.
	var groups [][]sqlCond
	if t := strings.TrimSpace(f.Target); t != "" {
		var alts []sqlCond
		names, seen, err := s.prefixValues(ctx, "target_name", strings.ToLower(t), tree, &idProbe{"target_id", t})
		if err != nil {
			return auditQuery{}, err
		}
		if len(names) > auditPrefixValues {
			return auditQuery{}, broadPrefix("target", "key or account names", t)
		}
		if seen {
			alts = append(alts, sqlCond{"target_id = ?", []any{t}})
		}
		for _, n := range names {
			alts = append(alts, sqlCond{s.lowerExpr("target_name") + " = ?", []any{n}})
		}
		if len(alts) == 0 {
			return auditQuery{none: true}, nil
		}
		groups = append(groups, alts)
	}
	if a := strings.TrimSpace(f.Actor); a != "" {
		var alts []sqlCond
		var probe *idProbe
		id, err := strconv.ParseUint(a, 10, 63)
		if err == nil {
			probe = &idProbe{"actor_user_id", id}
		}
		labels, seen, err := s.prefixValues(ctx, "actor_label", strings.ToLower(a), tree, probe)
		if err != nil {
			return auditQuery{}, err
		}
		if len(labels) > auditPrefixValues {
			return auditQuery{}, broadPrefix("actor", "actors", a)
		}
		if seen {
			alts = append(alts, sqlCond{"actor_user_id = ?", []any{id}})
		}
		for _, l := range labels {
			alts = append(alts, sqlCond{s.lowerExpr("actor_label") + " = ?", []any{l}})
		}
		if len(alts) == 0 {
			return auditQuery{none: true}, nil
		}
		groups = append(groups, alts)
	}
	// An address is searched together with what it comes with, in one
	// index whose first columns are both: (ip, lower(actor_label), at, id)
	// or (tree_id, ip, at, id) (migration 32), (ip, actor_user_id, at,
	// id), (ip, lower(target_name), at, id), (ip, target_id, at, id) or
	// (ip, action, at, id) (migration 35), on SQLite too, where an
	// equality on two columns picks the index that holds both. (Before
	// migration 35 it was demoted beside a target or an actor ID: the
	// busiest owner's ID or e-mail as a target with another tree's
	// address walked all their entries, 385-590x the unfiltered page at
	// 5,000,000 entries.)
	withIP := false
	if ip := strings.TrimSpace(f.IP); ip != "" {
		withIP = true
		common = append(common, sqlCond{"ip = ?", []any{ip}})
	}
	order := " ORDER BY at " + dir + ", id " + dir + " LIMIT " + strconv.Itoa(limit)
	// A sub-account (an account filter, or a member's narrowing to one
	// account), on SQLite: its entries, walked in (at, id) order on its
	// (account_id, at, id) index, each tested for the other filters (see
	// below).
	sub := false
	for _, c := range common {
		sub = sub || s.engine == SQLite && c.sql == "account_id = ?"
	}
	if idx, in := s.sqliteActionIndex(groups, len(f.Actions) > 0 && !sub, tree != nil, withIP); idx != "" {
		// An actor or a target with actions, on an index keyed by the
		// value, then the action (migration 34): "col IN (…) AND action IN
		// (…) ORDER BY at, id LIMIT n". SQLite walks each value and action
		// in (at, id) order and leaves the pair once its next entry cannot
		// enter the page (the ORDER BY LIMIT optimization, over both IN
		// lists: the inner one's next value), so the entries of other
		// actions are not walked: a busy actor's ~5,000 for a page of a 1 %
		// action, which the action only filtered before (from the table,
		// for an actor ID: 31x the unfiltered page at 5,000,000 entries).
		// One value and one action are two equalities, read in order.
		// The page's keys, then its rows, as for an IN list below.
		return s.sqliteKeysPage(idx, append([]sqlCond{in, {"action IN ?", []any{f.Actions}}}, common...), order, dir, sel), nil
	}
	if s.engine == Postgres && len(f.Actions) > 0 && len(groups) == 1 && len(groups[0]) == 1 && groups[0][0].sql == "actor_user_id = ?" {
		// An actor ID with actions, on PostgreSQL: a page of keys for each
		// action from the (actor_user_id, action, at, id) index (migration
		// 34), as actionsPage; "action IN (…)" on the index's second
		// column hands its matches over out of (at, id) order, to be
		// sorted whole. With no other filter than dates, its
		// plan does not depend on the values (each action's walk has the
		// ID and the action first, the dates and the cursor next), so the
		// prepared statement keeps it, as actionsPage's: planned for every
		// page it cost 0.5 ms of planning and two more round trips for 0.5
		// ms of reading (2.5x the unfiltered page at 2,000,000 entries).
		// With the tree or an address, planned for its values (scanAudit),
		// as the ID's other queries: no index has them with the ID.
		q := s.actionsPage(f.Actions, append([]sqlCond{groups[0][0]}, common...), dir, limit, sel)
		q.cached = len(scope.conds) == 0 && strings.TrimSpace(f.IP) == ""
		return q, nil
	}
	actCond := -1 // common's condition on the actions, when they only filter
	if len(f.Actions) > 0 {
		if selective {
			// Actions only filter the target's or actor's rows.
			actCond = len(common)
			common = append(common, sqlCond{demote("action") + " IN ?", []any{f.Actions}})
		} else {
			var alts []sqlCond
			for _, a := range f.Actions {
				alts = append(alts, sqlCond{"action = ?", []any{a}})
			}
			groups = append(groups, alts)
		}
	}
	if sub {
		// A sub-account (SQLite, which keeps no statistics: the query's
		// shape picks its index) with another filter: both searched in the
		// index keyed by the account and that filter's column (migration
		// 36), a target first, then an actor, an address, actions. Without
		// an index SQLite took the one holding the tree and the other
		// column ((tree_id, actor_user_id, at, id), …) and walked the tree's
		// entries of that value testing the account (the busiest owner in
		// one of their 1,000 sub-accounts: ~300,000 entries for none,
		// 150-180x the unfiltered page at 5,000,000 entries), and then the
		// sub-account's own walk, testing the other filter, which read all
		// of a busy sub-account's entries for a rare value (1.5-2.5x;
		// BENCHMARKS.md "Filters, eighth pass"). A typed number that is
		// both a target ID and names (two columns) keeps that walk, as do
		// dates alone.
		idx, by := "idx_audit_account_at", -1
		var in sqlCond
		for i, g := range groups {
			if col, c := s.sqliteOneColumn(g); col != "" && (col != "action" || !withIP) {
				idx, by, in = "idx_audit_account_"+col+"_at", i, c
				break
			}
		}
		if by < 0 && withIP {
			idx = "idx_audit_account_ip_at"
		}
		conds := common
		if by >= 0 {
			conds = append([]sqlCond{in}, common...)
		}
		for i, g := range groups {
			if i != by {
				conds = append(conds, orConds(g))
			}
		}
		return s.sqliteKeysPage(idx, conds, order, dir, sel), nil
	}
	if s.engine == SQLite && len(groups) == 2 && strings.TrimSpace(f.Target) != "" && strings.TrimSpace(f.Actor) != "" {
		// A target and an actor, on SQLite: both searched in the index
		// keyed by the actor's column and the target's (migration 36),
		// "actor IN (…) AND target IN (…) ORDER BY at, id LIMIT n", read
		// in (at, id) order for each pair of values as sqliteActionIndex's
		// (an address keeps its own pairs: sqliteInList). Before it, the
		// target's walk testing the actor: a key's few thousand entries
		// for the busiest owner's few (3.6-4.2x the unfiltered page at
		// 5,000,000 entries); left to itself SQLite walked either, and the
		// busiest owner's ID with another tree's key name read all the
		// owner's ~300,000 entries (0.8 s, ~1,000x). A typed number that
		// is both an ID and names (two columns) keeps the target's walk,
		// testing the actor ("+col": off the index): a target (a key, an
		// account, a user) has fewer entries than an actor, as a rule.
		acol, ain := s.sqliteOneColumn(groups[1])
		tcol, tin := s.sqliteOneColumn(groups[0])
		if !withIP && acol != "" && tcol != "" {
			return s.sqliteKeysPage("idx_audit_"+acol+"_"+tcol+"_at", append([]sqlCond{ain, tin}, common...), order, dir, sel), nil
		}
		actor := slices.Clone(groups[1])
		for i := range actor {
			actor[i].sql = "+" + actor[i].sql
		}
		common = append(common, orConds(actor))
		groups = groups[:1]
	}
	driver := -1
	for i, g := range groups {
		if len(g) > 1 {
			driver = i
			break
		}
	}
	// On PostgreSQL, another group of many names beside the driver's (a
	// target prefix with an actor prefix): a second array of the LATERAL
	// below, so that each pair of values is one walk of the index that
	// holds both (migration 36); as one condition of many ORs, it only
	// filtered each of the driver's values' walk. Its condition stays on
	// the UNION's other members (an ID among the driver's values).
	var second []any
	var secondCond sqlCond
	for i, g := range groups {
		if i == driver {
			continue
		}
		if s.engine == Postgres && second == nil {
			if rest, vals := s.lateralValues(g); len(rest) == 0 && vals != nil {
				second, secondCond = vals, orConds(g)
				continue
			}
		}
		common = append(common, orConds(g))
	}
	if driver < 0 {
		w, args := joinConds(common)
		return auditQuery{sql: "SELECT " + selectList("", sel) + " FROM audit_entries" + w + order, args: args}, nil
	}
	// Each branch reads keys only, (at, id), from its index; the merged page
	// of keys then fetches its rows by primary key: a branch costs a page of
	// index entries, not a page of rows.
	var b strings.Builder
	var args []any
	if s.engine == SQLite {
		// The merged keys, in order, are the outer loop (CROSS JOIN keeps
		// them there), each fetching its row: the rows come out in the
		// keys' order, and are not sorted again. An ORDER BY here sorted
		// the page's whole rows, and the pure-Go SQLite grows its sorter's
		// buffer by mmap: 0.8 ms of a ten-name prefix's 2 ms page.
		b.WriteString("SELECT " + selectList("audit_entries.", sel) + " FROM (")
	} else {
		b.WriteString("SELECT " + selectList("", sel) + " FROM audit_entries WHERE id IN (SELECT id FROM (")
	}
	alts, lateral := groups[driver], []any(nil)
	if s.engine == Postgres {
		alts, lateral = s.lateralValues(alts)
	}
	if idx, in := s.sqliteInList(alts, tree != nil, withIP); idx != "" {
		// One column's values (a prefix's names, several actions): one
		// walk of its index, "col IN (…) ORDER BY at, id LIMIT n". SQLite
		// reads each value's entries in (at, id) order and leaves a value
		// as soon as its next entry could not enter the page (the ORDER BY
		// LIMIT optimization of an IN on an index's first column, SQLite's
		// test/limit2.test): at most a page of keys per value, sorted in a
		// b-tree of at most a page. A UNION member per value cost more to
		// compile than to run (a statement is compiled for each query by
		// this driver: 0.4 ms for ten members, against 0.05 ms for the
		// unfiltered page). INDEXED BY keeps SQLite, which has no
		// statistics, on that index: within a tree it preferred the
		// (tree_id, at, id) index for its order and filtered the whole tree.
		w, a := joinConds(append([]sqlCond{in}, common...))
		b.WriteString("SELECT at, id FROM audit_entries INDEXED BY " + idx + w)
		args = append(args, a...)
		alts = nil
	}
	for i, alt := range alts {
		if i > 0 {
			b.WriteString(" UNION ")
		}
		member := append([]sqlCond{alt}, common...)
		if second != nil {
			member = append(member, secondCond)
		}
		w, a := joinConds(member)
		if s.engine == SQLite {
			// A plain member of the compound: SQLite merges the members as
			// their indexes hand them over, in (at, id) order, and stops
			// at the page. A member of its own ORDER BY and LIMIT was read
			// whole and then sorted again for the merge, each one.
			b.WriteString("SELECT at, id FROM audit_entries" + w)
		} else {
			b.WriteString("SELECT at, id FROM (SELECT at, id FROM audit_entries" + w + order + ") AS u" + strconv.Itoa(i))
		}
		args = append(args, a...)
	}
	if lateral != nil {
		// The many values of one prefix: one subquery run for each value
		// of an array (LATERAL), planned once, where a UNION branch per
		// value made planning cost more than running (1-4 ms for 14 names).
		if len(alts) > 0 {
			b.WriteString(" UNION ")
		}
		expr := lateral[0].(string)
		vals := lateral[1:]
		from, conds := "", append([]sqlCond{{expr + " = v.val", nil}}, common...)
		if actCond >= 0 {
			// With actions, a page of keys for each value and action,
			// from the (name, action, at, id) index (migration 33; within
			// a tree (tree_id, name, action, at, id), migration 35): the
			// actions only filtered each value's walk before, which passed
			// the other actions' entries (a busy tree's target prefix with
			// a rare action: 2.7-3.0x the unfiltered page at 10,000,000
			// entries).
			acts := stringArgs(slices.Compact(slices.Sorted(slices.Values(f.Actions))))
			from = " CROSS JOIN unnest(ARRAY[" + params(len(acts)) + "]::text[]) AS a(act)"
			conds = slices.Delete(conds, actCond+1, actCond+2)
			conds = append(conds, sqlCond{"action = a.act", nil})
			args = append(append(args, vals...), acts...)
		} else {
			args = append(args, vals...)
		}
		if second != nil {
			from += " CROSS JOIN unnest(ARRAY[" + params(len(second)-1) + "]::text[]) AS w(val)"
			conds = append(conds, sqlCond{second[0].(string) + " = w.val", nil})
			args = append(args, second[1:]...)
		}
		w, a := joinConds(conds)
		b.WriteString("SELECT l.at, l.id FROM unnest(ARRAY[" + params(len(vals)) +
			"]::text[]) AS v(val)" + from + " CROSS JOIN LATERAL (SELECT at, id FROM audit_entries" + w + order + ") AS l")
		args = append(args, a...)
	}
	if s.engine == SQLite {
		// Without an ORDER BY, the order is the plan's: inOrder makes sure.
		b.WriteString(order + ") AS k CROSS JOIN audit_entries ON audit_entries.id = k.id")
		return auditQuery{sql: b.String(), args: args, sortDir: dir}, nil
	}
	b.WriteString(order + ") AS k)" + " ORDER BY at " + dir + ", id " + dir)
	return auditQuery{sql: b.String(), args: args}, nil
}

// sqliteInList is, on SQLite, the index and the IN condition that answer
// alts when they are all equalities on one indexed column (an action, a
// lower-cased actor or target name), within a tree or not, or with an
// address (ip: the (ip, col, at, id) index, migrations 32 and 35, which
// holds the tree too); "" otherwise (an ID among names: another column,
// kept as a UNION member of its own).
func (s *Store) sqliteInList(alts []sqlCond, inTree, ip bool) (string, sqlCond) {
	col, in := s.sqliteOneColumn(alts)
	if s.engine != SQLite || len(alts) < 2 || col != "action" && col != "actor_label" && col != "target_name" {
		return "", sqlCond{}
	}
	switch {
	case ip:
		col = "ip_" + col
	case inTree:
		col = "tree_" + col
	}
	return "idx_audit_" + col + "_at", in
}

// sqliteOneColumn is, on SQLite, the name of the column of alts when they
// are all equalities on one (an actor ID, a lower-cased actor name, a
// target ID, a lower-cased target name, an action: the name migration
// 36's indexes use, "actor_user", "actor_label", "target_id",
// "target_name", "action"), with the condition that is all of them, "col =
// ?" or "col IN (…)"; "" otherwise.
func (s *Store) sqliteOneColumn(alts []sqlCond) (string, sqlCond) {
	names := map[string]string{"actor_user_id": "actor_user", s.lowerExpr("actor_label"): "actor_label",
		"target_id": "target_id", s.lowerExpr("target_name"): "target_name", "action": "action"}
	if len(alts) == 0 {
		return "", sqlCond{}
	}
	col, _ := strings.CutSuffix(alts[0].sql, " = ?")
	var vals []any
	for _, a := range alts {
		if a.sql != col+" = ?" || names[col] == "" {
			return "", sqlCond{}
		}
		vals = append(vals, a.args...)
	}
	if len(alts) == 1 {
		return names[col], alts[0]
	}
	return names[col], sqlCond{col + " IN ?", []any{vals}}
}

// sqliteKeysPage is the page of the entries of conds on SQLite, their keys
// (at, id) searched in index idx, then their rows by primary key: a
// condition that the index does not hold reads the table row of the
// entries it tests, the page's other columns are read for its rows only.
func (s *Store) sqliteKeysPage(idx string, conds []sqlCond, order, dir string, sel func(string) string) auditQuery {
	w, a := joinConds(conds)
	return auditQuery{sql: "SELECT " + selectList("audit_entries.", sel) + " FROM (SELECT at, id FROM audit_entries INDEXED BY " + idx + w + order +
		") AS k CROSS JOIN audit_entries ON audit_entries.id = k.id", args: a, sortDir: dir}
}

// sqliteActionIndex is, on SQLite, the index keyed by a value and then the
// action (migration 34; within a tree (inTree), by the tree, the value and
// the action, migration 35) and the condition on its value that answer
// groups with actions (withActions): one typed actor or target (groups'
// only member) whose alternatives are an actor ID, a target ID, or all
// names on one column (a lower-cased actor or target name). With an address (ip) the
// name's walk of its (ip, …) index, which holds the action, is kept
// (sqliteInList). The ID's index has no tree and no address (its walk
// tests the tree in the index). "" otherwise.
func (s *Store) sqliteActionIndex(groups [][]sqlCond, withActions, inTree, ip bool) (string, sqlCond) {
	if s.engine != SQLite || !withActions || len(groups) != 1 {
		return "", sqlCond{}
	}
	switch col, in := s.sqliteOneColumn(groups[0]); {
	case col == "actor_user", col == "target_id":
		// (The target ID's: migration 35; it holds the tree too.)
		return "idx_audit_" + col + "_action_at", in
	case ip || col != "actor_label" && col != "target_name":
		return "", sqlCond{}
	case inTree:
		return "idx_audit_tree_" + col + "_action_at", in
	default:
		return "idx_audit_" + col + "_action_at", in
	}
}

// lateralValues takes out of alts the equalities on a lower-cased actor or
// target name (a prefix's values) when there are several, and returns them
// as the expression followed by the values; the other alternatives stay.
func (s *Store) lateralValues(alts []sqlCond) ([]sqlCond, []any) {
	for _, expr := range []string{s.lowerExpr("target_name"), s.lowerExpr("actor_label")} {
		var rest []sqlCond
		vals := []any{expr}
		for _, a := range alts {
			if a.sql == expr+" = ?" {
				vals = append(vals, a.args...)
			} else {
				rest = append(rest, a)
			}
		}
		if len(vals) > 2 {
			return rest, vals
		}
	}
	return alts, nil
}

func orConds(g []sqlCond) sqlCond {
	if len(g) == 1 {
		return g[0]
	}
	parts := make([]string, len(g))
	var args []any
	for i, c := range g {
		parts[i] = c.sql
		args = append(args, c.args...)
	}
	return sqlCond{"(" + strings.Join(parts, " OR ") + ")", args}
}

func joinConds(cs []sqlCond) (string, []any) {
	if len(cs) == 0 {
		return "", nil
	}
	parts := make([]string, len(cs))
	var args []any
	for i, c := range cs {
		parts[i] = c.sql
		args = append(args, c.args...)
	}
	return " WHERE " + strings.Join(parts, " AND "), args
}

// scanAudit runs an audit query. On PostgreSQL it is planned for its own
// values every time: a statement the driver has prepared gets a generic
// plan after five runs, and for "tree_id = $1 AND ip = $2" the generic plan
// reads every match through a bitmap and sorts them (826 ms instead of
// 0.2 ms at 10,000,000 entries), as the correlation statistics of
// migration 12 only help a plan made for known values. A query whose plan
// does not depend on its values (q.cached: prefixPage) keeps the prepared
// statement's plan instead: one round trip, no planning.
func (s *Store) scanAudit(ctx context.Context, q auditQuery, dest any) error {
	return s.runAudit(ctx, q, func(db *gorm.DB) error { return db.Raw(q.sql, q.args...).Scan(dest).Error })
}

// runAudit calls run with a connection on which q is planned as scanAudit
// says (an export sets the plan mode once for all its batches: streamAudit).
func (s *Store) runAudit(ctx context.Context, q auditQuery, run func(*gorm.DB) error) error {
	if s.engine != Postgres || q.cached {
		return run(s.db.WithContext(ctx))
	}
	return s.db.WithContext(ctx).Connection(func(tx *gorm.DB) error {
		if err := tx.Exec("SET plan_cache_mode = force_custom_plan").Error; err != nil {
			return err
		}
		defer tx.Exec("RESET plan_cache_mode")
		return run(tx)
	})
}
