package models

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// AuditPageSize is how many entries one page shows.
const AuditPageSize = 50

// AuditFilter narrows the audit log; every field set is combined with AND.
type AuditFilter struct {
	From, To  *time.Time // inclusive range on the entry time
	Actions   []string
	Actor     string // the start of the actor's e-mail or label (any case), or the actor's user ID
	Target    string // the start of the target's name (any case), or its exact ID
	IP        string
	AccountID uint // staff only: one account and its sub-accounts
}

// AuditCursor is a keyset position: entries are ordered by (time, ID).
type AuditCursor struct {
	At time.Time
	ID uint64
}

// String encodes the cursor for a URL.
func (c AuditCursor) String() string {
	return strconv.FormatInt(c.At.UnixNano(), 10) + "-" + strconv.FormatUint(c.ID, 10)
}

// ParseAuditCursor decodes a URL cursor; ok is false for malformed input.
func ParseAuditCursor(s string) (AuditCursor, bool) {
	a, b, found := strings.Cut(s, "-")
	ns, err1 := strconv.ParseInt(a, 10, 64)
	id, err2 := strconv.ParseUint(b, 10, 63) // IDs are BIGINT: beyond MaxInt64 is malformed
	if !found || err1 != nil || err2 != nil {
		return AuditCursor{}, false
	}
	return AuditCursor{At: time.Unix(0, ns).UTC(), ID: id}, true
}

// AuditPage is one page of entries, newest first, with the cursors of the
// neighbouring pages (nil when there is none).
type AuditPage struct {
	Entries      []AuditEntry
	Older, Newer *AuditCursor
}

// auditScope limits a query to what actor may see: owners their account
// tree, auditors and support everything. The scope is in the WHERE clause
// whatever filter or cursor the request carries.
func (s *Store) auditScope(db *gorm.DB, actor Actor, f AuditFilter) (*gorm.DB, error) {
	ctx := db.Statement.Context
	if ctx == nil {
		ctx = context.Background()
	}
	conds, _, err := s.scopeConds(ctx, actor, f)
	if err != nil {
		return nil, err
	}
	for _, c := range conds {
		db = db.Where(c.sql, c.args...)
	}
	return db, nil
}

// scopeConds are auditScope's conditions, and the one tree they limit the
// log to (nil: every tree).
func (s *Store) scopeConds(ctx context.Context, actor Actor, f AuditFilter) ([]sqlCond, *uint, error) {
	// tree_id is the main account of the entry's account: one equality
	// that the (tree_id, at, id) index serves in keyset order, however many
	// sub-accounts the tree has.
	switch {
	case actor.Role == RoleAuditor || actor.Role == RoleSupport:
		if f.AccountID != 0 {
			// A sub-account is not a tree of its own: its entries are in its
			// parent's tree, narrowed to its account.
			var acc Account
			if err := s.db.WithContext(ctx).Select("id", "parent_id").Where("id = ?", f.AccountID).Limit(1).Find(&acc).Error; err != nil {
				return nil, nil, err
			}
			if acc.ParentID != nil {
				return []sqlCond{{"tree_id = ?", []any{*acc.ParentID}}, {"account_id = ?", []any{f.AccountID}}}, acc.ParentID, nil
			}
			tree := f.AccountID
			return []sqlCond{{"tree_id = ?", []any{tree}}}, &tree, nil
		}
		return nil, nil, nil
	case actor.Can(PermAuditView) && actor.AccountID != 0:
		tree := actor.AccountID
		conds := []sqlCond{{"tree_id = ?", []any{tree}}}
		if f.AccountID != 0 {
			// A member may narrow to one account of the tree in their
			// scope; any other ID answers as unknown.
			var acc Account
			if err := s.db.WithContext(ctx).Select("id", "parent_id").Where("id = ?", f.AccountID).Limit(1).Find(&acc).Error; err != nil {
				return nil, nil, err
			}
			inTree := acc.ID == tree || (acc.ParentID != nil && *acc.ParentID == tree)
			if acc.ID == 0 || !inTree || (actor.Scoped && !actor.InScope(acc.ID)) {
				return nil, nil, ErrNotFound
			}
			conds = append(conds, sqlCond{"account_id = ?", []any{f.AccountID}})
		}
		// A member with a listed scope sees only those sub-accounts' entries.
		if actor.Scoped {
			if len(actor.Scope) == 0 {
				conds = append(conds, sqlCond{"1 = 0", nil})
			} else {
				conds = append(conds, sqlCond{"account_id IN ?", []any{actor.Scope}})
			}
		}
		return conds, &tree, nil
	}
	return nil, nil, ErrForbidden
}

// AuditEntries returns one page of the log visible to actor, newest first.
// With before, the page holds entries older than it; with after, newer.
// Keyset pagination: no OFFSET, no count.
func (s *Store) AuditEntries(ctx context.Context, actor Actor, f AuditFilter, before, after *AuditCursor) (AuditPage, error) {
	cursor := before
	if after != nil {
		cursor = after
	}
	q, err := s.buildAuditQuery(ctx, actor, f, cursor, after != nil, 0, AuditPageSize+1, nil)
	if err != nil {
		return AuditPage{}, err
	}
	var rows []AuditEntry
	if !q.none {
		err = s.scanAudit(ctx, q, &rows)
		q.inOrder(rows)
	}
	if err == nil && len(rows) == 0 {
		if err := s.refusePrefix(ctx, q); err != nil {
			return AuditPage{}, err
		}
	}
	if after != nil {
		for i, j := 0, len(rows)-1; i < j; i, j = i+1, j-1 {
			rows[i], rows[j] = rows[j], rows[i]
		}
	}
	if err != nil {
		return AuditPage{}, wrapOp("audit entries", err)
	}
	var p AuditPage
	more := len(rows) > AuditPageSize
	if more {
		if after != nil {
			rows = rows[1:] // the extra row is the newest one
		} else {
			rows = rows[:AuditPageSize]
		}
	}
	p.Entries = rows
	if len(rows) == 0 {
		return p, nil
	}
	first, last := rows[0], rows[len(rows)-1]
	// Older exists when this page was cut, or when we came from an older page.
	if (after == nil && more) || after != nil {
		c := AuditCursor{At: last.At, ID: last.ID}
		p.Older = &c
	}
	if (after != nil && more) || before != nil {
		c := AuditCursor{At: first.At, ID: first.ID}
		p.Newer = &c
	}
	return p, nil
}

// AuditEntryByID loads one visible entry.
func (s *Store) AuditEntryByID(ctx context.Context, actor Actor, id uint64) (*AuditEntry, error) {
	db, err := s.auditScope(s.db.WithContext(ctx).Model(&AuditEntry{}), actor, AuditFilter{})
	if err != nil {
		return nil, err
	}
	var e AuditEntry
	if err := db.Where("id = ?", id).Take(&e).Error; err != nil {
		return nil, notFound(err)
	}
	return &e, nil
}

// RecordVerification stores the result of a verification where every
// instance's audit page reads it.
func (s *Store) RecordVerification(ctx context.Context, r ChainReport) error {
	s.lastReport.Store(&r)
	row := auditStatusRow{ID: 1, VerifiedAt: r.VerifiedAt.UTC(), OK: r.OK, FullWalk: r.Full, FromEntry: r.From, Head: r.Head,
		Entries: r.Entries, BadEntry: r.BadEntry, Problem: r.Problem, AnchorHead: r.AnchorHead}
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, UpdateAll: true}).Create(&row).Error
	return wrapOp("record audit verification", err)
}

// LastVerification is the newest recorded verification, or nil.
func (s *Store) LastVerification(ctx context.Context) (*ChainReport, error) {
	var row auditStatusRow
	if err := s.db.WithContext(ctx).Where("id = 1").Limit(1).Find(&row).Error; err != nil {
		return nil, wrapOp("audit verification status", err)
	}
	if row.ID == 0 {
		return nil, nil
	}
	return &ChainReport{OK: row.OK, Full: row.FullWalk, From: row.FromEntry, Head: row.Head, Entries: row.Entries, BadEntry: row.BadEntry,
		Problem: row.Problem, AnchorHead: row.AnchorHead, VerifiedAt: row.VerifiedAt.UTC()}, nil
}

type auditStatusRow struct {
	ID         uint `gorm:"primaryKey;autoIncrement:false"`
	VerifiedAt time.Time
	OK         bool
	FullWalk   bool
	FromEntry  uint64
	Head       uint64
	Entries    int64
	BadEntry   uint64
	Problem    string
	AnchorHead uint64
}

func (auditStatusRow) TableName() string { return "audit_status" }

// AuditChainStatus is the chain panel of the audit page.
type AuditChainStatus struct {
	Last       *ChainReport // newest verification (any instance), nil before the first
	AnchorHead *AuditHead   // newest head in this instance's anchor, nil when none
	DBHead     uint64       // newest entry in the database
	Sealing    *ChainReport // set when this instance refused to sign: the log did not verify
}

// Behind is how many entries the database holds past the anchor's head.
func (c AuditChainStatus) Behind() uint64 {
	if c.AnchorHead == nil || c.DBHead < c.AnchorHead.Entry {
		return c.DBHead
	}
	return c.DBHead - c.AnchorHead.Entry
}

// ChainStatus gathers the chain panel: one row, one MAX, the anchor's tail.
func (s *Store) ChainStatus(ctx context.Context) (AuditChainStatus, error) {
	var st AuditChainStatus
	var err error
	if st.Last, err = s.LastVerification(ctx); err != nil {
		return st, err
	}
	if err := s.db.WithContext(ctx).Model(&AuditEntry{}).Select("COALESCE(MAX(id), 0)").Scan(&st.DBHead).Error; err != nil {
		return st, wrapOp("audit chain status", err)
	}
	st.AnchorHead = s.anchor.newestHead()
	if st.AnchorHead == nil {
		// No anchor file: the newest head signed in the database.
		var cp Checkpoint
		if err := s.db.WithContext(ctx).Where("seq IS NOT NULL").Order("seq DESC").Limit(1).Find(&cp).Error; err != nil {
			return st, wrapOp("audit chain status", err)
		}
		if cp.Seq != nil {
			h := cp.Head()
			st.AnchorHead = &h
		}
	}
	s.seal.mu.Lock()
	if s.seal.failed != nil {
		r := *s.seal.failed
		st.Sealing = &r
	}
	s.seal.mu.Unlock()
	return st, nil
}

// ExportAudit records the export, verifies and signs the head (a tampered
// log is never signed: an *AuditTamperError comes back), then streams every
// matching entry up to that head, newest first, in batches (constant
// memory). begin runs once the head is signed, before the first entry.
// The entries emitted carry the exported fields only (exportSelect):
// ActorUserID, TreeID, KeyID and Link are left zero.
func (s *Store) ExportAudit(ctx context.Context, actor Actor, f AuditFilter, format string, begin func(*AuditHead) error, emit func(AuditEntry) error) (*AuditHead, error) {
	// The filter is checked (scope, prefixes) before the export is recorded.
	if err := s.checkAuditFilter(ctx, actor, f); err != nil {
		return nil, err
	}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		return s.appendAudit(tx, actor, ActionAuditExported, actor.AccountID, auditTarget{Type: "audit", Name: "export " + format},
			map[string]any{"format": format, "filter": describeFilter(f)})
	})
	if err != nil {
		return nil, wrapOp("audit export", err)
	}
	h, err := s.SealAuditHead(ctx, "export")
	if err != nil {
		return nil, err
	}
	if err := begin(h); err != nil {
		return h, err
	}
	return h, s.streamAudit(ctx, actor, f, h.Entry, emit)
}

// exportBatch is how many entries one query of an export reads.
const exportBatch = 1000

// The columns an export reads are what the CSV and JSON Lines carry
// (handlers/audit.go): not the chain's link and key, the tree or the
// actor's user ID, which only cost the driver's time. Its text columns are
// read as one value (exportSelect).
var packedColumns = []string{"actor_type", "actor_label", "actor_role", "action", "target_type", "target_id", "target_name",
	"ip", "user_agent", "details", "prev_hash", "hash"}

// exportSelect writes the SELECT list of an export's batches, each column
// after qualifier: id, account_id, and in one text value ("packed") every
// column of packedColumns, each as its length in bytes, a colon, then its
// text; on SQLite the time first, the same way. Lengths make the format
// exact whatever the text holds (colons, digits, NUL bytes); every column
// is NOT NULL, so the value is never NULL.
//
// SQLite's Go driver reads a text column with four calls into the library
// (type, text, bytes, declared type), each taking the connection's mutex
// through a global one, and parses a DATETIME column with time.Parse
// after a failed attempt at another layout: 13 text columns were half of
// an export's CPU time (BENCHMARKS.md, "Audit export rate"). PostgreSQL's
// driver allocates each column's string and boxes it in an interface, and
// database/sql converts each one; the time stays a column of its own there
// (binary, no text to parse), and text converted on the way (a client
// encoding other than the database's) is read column by column.
func (s *Store) exportSelect(qualifier string) string {
	if s.engine == Postgres && !s.pgBytesAsSent {
		// Text converted on the way to another encoding: its lengths
		// would not be the bytes read. The columns one by one.
		return qualifier + strings.Join(append([]string{"id", "at", "account_id"}, packedColumns...), ", "+qualifier)
	}
	cols := packedColumns
	length, name := "octet_length(%s)::text", "packed"
	if s.engine == SQLite {
		cols = append([]string{"at"}, packedColumns...)
		length, name = "length(CAST(%s AS BLOB))", "packed_at"
	}
	parts := make([]string, len(cols))
	for i, c := range cols {
		c = qualifier + c
		parts[i] = strings.Replace(length, "%s", c, 1) + " || ':' || " + c
	}
	sel := qualifier + "id, " + qualifier + "account_id, " + strings.Join(parts, " || ") + " AS " + name
	if s.engine == Postgres {
		sel = qualifier + "at, " + sel
	}
	return sel
}

// streamAudit emits every entry matching f up to through, newest first,
// exportBatch at a time: memory stays flat whatever the size of the log.
// The next batch is read while the current one is emitted, so the database
// and the client's connection work at the same time instead of taking
// turns (two batches in memory). The scope is looked up once, and every
// batch runs on one connection, on PostgreSQL planned as scanAudit says
// (set once): a batch is one round trip, where it was four (the account
// filter's lookup, SET, the query, RESET) and a connection taken from the
// pool.
func (s *Store) streamAudit(ctx context.Context, actor Actor, f AuditFilter, through uint64, emit func(AuditEntry) error) error {
	conds, tree, err := s.scopeConds(ctx, actor, f)
	if err != nil {
		return err
	}
	scope := auditScope{conds, tree}
	build := func(ctx context.Context, cursor *AuditCursor) (auditQuery, error) {
		return s.scopedAuditQuery(ctx, scope, f, cursor, false, through, exportBatch, s.exportSelect)
	}
	first, err := build(ctx, nil)
	if err != nil || first.none {
		return err
	}
	return s.db.WithContext(ctx).Connection(func(conn *gorm.DB) error {
		if s.engine == Postgres && !first.cached {
			if err := conn.Exec("SET plan_cache_mode = force_custom_plan").Error; err != nil {
				return wrapOp("audit export", err)
			}
			// Also when the request was cancelled: the connection goes back
			// to the pool.
			defer conn.WithContext(context.WithoutCancel(ctx)).Exec("RESET plan_cache_mode")
		}
		return streamBatches(ctx, conn, first, build, emit)
	})
}

// streamBatches runs first, then build's query after each full batch's
// last entry, on conn, reading each batch while the one before is emitted.
func streamBatches(ctx context.Context, conn *gorm.DB, first auditQuery, build func(context.Context, *AuditCursor) (auditQuery, error),
	emit func(AuditEntry) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type read struct {
		batch []AuditEntry
		err   error
	}
	fetch := func(cursor *AuditCursor, buf []AuditEntry) <-chan read {
		done := make(chan read, 1)
		go func() {
			q, err := first, error(nil)
			if cursor != nil {
				q, err = build(ctx, cursor)
			}
			buf = buf[:0]
			if err == nil && !q.none {
				if buf, err = auditRows(conn.WithContext(ctx), q, buf); err != nil {
					err = wrapOp("audit export", err)
				}
			}
			done <- read{buf, err}
		}()
		return done
	}
	spare := make([]AuditEntry, 0, exportBatch)
	next := fetch(nil, make([]AuditEntry, 0, exportBatch))
	for next != nil {
		r := <-next
		if err := ctx.Err(); err != nil {
			// The request ended while the batch before was emitted: its
			// error, not the driver's for the read it interrupted.
			return err
		}
		if r.err != nil {
			return r.err
		}
		next = nil
		if len(r.batch) == exportBatch {
			last := r.batch[len(r.batch)-1]
			next = fetch(&AuditCursor{At: last.At, ID: last.ID}, spare)
		}
		for _, e := range r.batch {
			if err := emit(e); err != nil {
				if next != nil {
					cancel()
					<-next // nothing of the export outlives it
				}
				return err
			}
		}
		spare = r.batch
	}
	return nil
}

// auditRows appends the rows of q, run on db, to batch, each column read
// straight into its field: GORM's scan by reflection was a fifth of an
// export's time on SQLite (BENCHMARKS.md, "Audit export rate").
func auditRows(db *gorm.DB, q auditQuery, batch []AuditEntry) ([]AuditEntry, error) {
	start := len(batch)
	rows, err := db.Raw(q.sql, q.args...).Rows()
	if err != nil {
		return batch, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return batch, err
	}
	set := make([]func(*AuditEntry, any) error, len(cols))
	for i, c := range cols {
		if set[i] = auditColumns[c]; set[i] == nil {
			set[i] = func(*AuditEntry, any) error { return nil } // no field for it, as GORM does
		}
	}
	vals, dest := make([]any, len(cols)), make([]any, len(cols))
	for i := range vals {
		dest[i] = &vals[i] // the driver's value as it is: no conversion
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return batch, err
		}
		batch = append(batch, AuditEntry{})
		e := &batch[len(batch)-1]
		for i, v := range vals {
			if err := set[i](e, v); err != nil {
				return batch, fmt.Errorf("audit_entries.%s: %w", cols[i], err)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return batch, err
	}
	q.inOrder(batch[start:])
	return batch, nil
}

// auditColumns sets the field of an entry that each column of
// audit_entries is read into, from the value the driver gives (both
// engines give int64, string, time.Time or nil).
var auditColumns = map[string]func(*AuditEntry, any) error{
	"id": func(e *AuditEntry, v any) error {
		n, ok := v.(int64)
		e.ID = uint64(n)
		return typeErr(ok, v)
	},
	"at": func(e *AuditEntry, v any) (err error) {
		e.At, err = sqlTime(v)
		return err
	},
	"actor_user_id": func(e *AuditEntry, v any) (err error) { e.ActorUserID, err = optID(v); return err },
	"account_id":    func(e *AuditEntry, v any) (err error) { e.AccountID, err = optID(v); return err },
	"tree_id":       func(e *AuditEntry, v any) (err error) { e.TreeID, err = optID(v); return err },
	"actor_type":    textColumn(func(e *AuditEntry) *string { return &e.ActorType }),
	"actor_label":   textColumn(func(e *AuditEntry) *string { return &e.ActorLabel }),
	"actor_role":    textColumn(func(e *AuditEntry) *string { return &e.ActorRole }),
	"action":        textColumn(func(e *AuditEntry) *string { return &e.Action }),
	"target_type":   textColumn(func(e *AuditEntry) *string { return &e.TargetType }),
	"target_id":     textColumn(func(e *AuditEntry) *string { return &e.TargetID }),
	"target_name":   textColumn(func(e *AuditEntry) *string { return &e.TargetName }),
	"ip":            textColumn(func(e *AuditEntry) *string { return &e.IP }),
	"user_agent":    textColumn(func(e *AuditEntry) *string { return &e.UserAgent }),
	"details":       textColumn(func(e *AuditEntry) *string { return &e.Details }),
	"prev_hash":     textColumn(func(e *AuditEntry) *string { return &e.PrevHash }),
	"hash":          textColumn(func(e *AuditEntry) *string { return &e.Hash }),
	"key_id":        textColumn(func(e *AuditEntry) *string { return &e.KeyID }),
	"link":          textColumn(func(e *AuditEntry) *string { return &e.Link }),
	"packed":        func(e *AuditEntry, v any) error { return readPacked(e, v, false) },
	"packed_at":     func(e *AuditEntry, v any) error { return readPacked(e, v, true) },
}

// packedFields are the fields of packedColumns, in its order.
var packedFields = []func(*AuditEntry) *string{
	func(e *AuditEntry) *string { return &e.ActorType }, func(e *AuditEntry) *string { return &e.ActorLabel },
	func(e *AuditEntry) *string { return &e.ActorRole }, func(e *AuditEntry) *string { return &e.Action },
	func(e *AuditEntry) *string { return &e.TargetType }, func(e *AuditEntry) *string { return &e.TargetID },
	func(e *AuditEntry) *string { return &e.TargetName }, func(e *AuditEntry) *string { return &e.IP },
	func(e *AuditEntry) *string { return &e.UserAgent }, func(e *AuditEntry) *string { return &e.Details },
	func(e *AuditEntry) *string { return &e.PrevHash }, func(e *AuditEntry) *string { return &e.Hash },
}

// readPacked sets the fields of exportSelect's packed value, and with at
// the time before them (one string; each field is a substring of it).
func readPacked(e *AuditEntry, v any, at bool) error {
	p, ok := v.(string)
	if !ok {
		return typeErr(false, v)
	}
	next := func() (string, error) {
		n, i := 0, 0
		for ; i < len(p) && p[i] >= '0' && p[i] <= '9' && i < 10; i++ {
			n = n*10 + int(p[i]-'0')
		}
		if i == 0 || i == len(p) || p[i] != ':' || n > len(p)-i-1 {
			return "", fmt.Errorf("malformed packed columns at %q", p[:min(len(p), 20)])
		}
		f := p[i+1 : i+1+n]
		p = p[i+1+n:]
		return f, nil
	}
	if at {
		t, err := next()
		if err != nil {
			return err
		}
		if e.At, err = sqliteTimeText(t); err != nil {
			return err
		}
	}
	var err error
	for _, field := range packedFields {
		if *field(e), err = next(); err != nil {
			return err
		}
	}
	if p != "" {
		return fmt.Errorf("malformed packed columns: %d bytes left", len(p))
	}
	return nil
}

// sqliteTimeText reads a DATETIME column's text as SQLite's driver does
// (glebarez/go-sqlite: rows.Next, conn.parseTime): the text keydesk
// writes, "2006-01-02 15:04:05.999999999+00:00", without time.Parse;
// any other as the driver would, and what it would not parse is an error.
func sqliteTimeText(s string) (time.Time, error) {
	if t, ok := utcTimeText(s); ok {
		return t, nil
	}
	ts := s // a time.Time's String()
	if x := strings.Index(s, "m="); x > 0 {
		ts = s[:x]
	}
	if t, err := time.Parse("2006-01-02 15:04:05.999999999 -0700 MST", strings.TrimSpace(ts)); err == nil {
		return t, nil
	}
	ts = strings.TrimSuffix(s, "Z")
	for _, f := range []string{"2006-01-02 15:04:05.999999999-07:00", "2006-01-02T15:04:05.999999999-07:00",
		"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05", "2006-01-02T15:04:05",
		"2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(f, ts, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("unexpected time %q", s)
}

// utcTimeText reads "2006-01-02 15:04:05[.f…]+00:00" (1-9 digits of
// fraction), the layout keydesk writes, in UTC; ok is false for anything
// else, valid or not.
func utcTimeText(s string) (t time.Time, ok bool) {
	if len(s) < 25 || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':' || s[len(s)-6:] != "+00:00" {
		return t, false
	}
	num := func(a, b int) int {
		n := 0
		for i := a; i < b; i++ {
			if s[i] < '0' || s[i] > '9' {
				return -1
			}
			n = n*10 + int(s[i]-'0')
		}
		return n
	}
	y, mo, d, h, mi, sec := num(0, 4), num(5, 7), num(8, 10), num(11, 13), num(14, 16), num(17, 19)
	ns := 0
	if frac := s[19 : len(s)-6]; frac != "" {
		if len(frac) < 2 || len(frac) > 10 || frac[0] != '.' {
			return t, false
		}
		if ns = num(20, len(s)-6); ns < 0 {
			return t, false
		}
		for i := len(frac) - 1; i < 9; i++ {
			ns *= 10
		}
	}
	if y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59 {
		return t, false
	}
	t = time.Date(y, time.Month(mo), d, h, mi, sec, ns, time.UTC)
	if t.Day() != d { // past the month's last day
		return time.Time{}, false
	}
	return t, true
}

func textColumn(field func(*AuditEntry) *string) func(*AuditEntry, any) error {
	return func(e *AuditEntry, v any) error {
		switch t := v.(type) {
		case string:
			*field(e) = t
		case []byte:
			*field(e) = string(t)
		default:
			return typeErr(false, v)
		}
		return nil
	}
}

func optID(v any) (*uint, error) {
	if v == nil {
		return nil, nil
	}
	n, ok := v.(int64)
	if !ok || n < 0 {
		return nil, typeErr(false, v)
	}
	id := uint(n)
	return &id, nil
}

// sqlTime is a timestamp column's value: SQLite's driver parses the text
// of a DATETIME column, PostgreSQL's gives the time.
func sqlTime(v any) (time.Time, error) {
	t, ok := v.(time.Time)
	return t, typeErr(ok, v)
}

func typeErr(ok bool, v any) error {
	if ok {
		return nil
	}
	return fmt.Errorf("unexpected value of type %T", v)
}

func describeFilter(f AuditFilter) map[string]any {
	d := map[string]any{}
	if f.From != nil {
		d["from"] = f.From.UTC().Format(time.RFC3339)
	}
	if f.To != nil {
		d["to"] = f.To.UTC().Format(time.RFC3339)
	}
	if len(f.Actions) > 0 {
		d["actions"] = f.Actions
	}
	if f.Actor != "" {
		d["actor"] = f.Actor
	}
	if f.Target != "" {
		d["target"] = f.Target
	}
	if f.IP != "" {
		d["ip"] = f.IP
	}
	if f.AccountID != 0 {
		d["account_id"] = f.AccountID
	}
	return d
}

// AuditReview records that someone reviewed the log through an entry.
type AuditReview struct {
	ID            uint `gorm:"primaryKey"`
	AccountID     *uint
	ThroughID     uint64
	ReviewerID    uint
	ReviewerEmail string
	ReviewerRole  string
	Note          string
	CreatedAt     time.Time
}

// reviewScope: owners review their account's log, auditors the whole log.
func reviewScope(db *gorm.DB, actor Actor) *gorm.DB {
	if actor.Role.IsStaff() {
		return db.Where("account_id IS NULL")
	}
	return db.Where("account_id = ?", actor.AccountID)
}

// MarkReviewed records a review through entry throughID (audited).
func (s *Store) MarkReviewed(ctx context.Context, actor Actor, throughID uint64, rawNote string) (*AuditReview, error) {
	if !actor.MayReviewAudit() {
		return nil, ErrForbidden
	}
	note, msg := validateReason("note", rawNote, false)
	if msg != "" {
		return nil, &ValidationError{Fields: map[string]string{"note": msg}}
	}
	if _, err := s.AuditEntryByID(ctx, actor, throughID); err != nil {
		return nil, err
	}
	rv := &AuditReview{ThroughID: throughID, ReviewerID: actor.UserID, ReviewerEmail: actor.Email, ReviewerRole: string(actor.Role), Note: note}
	if !actor.Role.IsStaff() {
		acc := actor.AccountID // the account's review, not the whole log's
		rv.AccountID = &acc
	}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		rv.CreatedAt = s.Now()
		if err := tx.Create(rv).Error; err != nil {
			return err
		}
		return s.appendAudit(tx, actor, ActionAuditReviewed, actor.AccountID, auditTarget{Type: "audit", ID: strconv.FormatUint(throughID, 10), Name: "through #" + strconv.FormatUint(throughID, 10)},
			map[string]any{"through": throughID, "note": note})
	})
	if err != nil {
		return nil, wrapOp("mark reviewed", err)
	}
	return rv, nil
}

// AuditLogView is everything the audit page shows.
type AuditLogView struct {
	AuditPage // the entries; none when the filter was refused
	Status    AuditStatus
	Chain     AuditChainStatus
	// Refused holds the field messages of a filter too broad to answer
	// from an index: the page says so above no entries.
	Refused map[string]string
	// MayReview: the page offers to mark the log reviewed.
	MayReview bool
}

// AuditLog reads one page of the audit log for actor with the review
// status and the chain panel.
func (s *Store) AuditLog(ctx context.Context, actor Actor, f AuditFilter, before, after *AuditCursor) (*AuditLogView, error) {
	v := &AuditLogView{MayReview: actor.MayReviewAudit()}
	var err error
	v.AuditPage, err = s.AuditEntries(ctx, actor, f, before, after)
	var ve *ValidationError
	if errors.As(err, &ve) {
		v.AuditPage, v.Refused = AuditPage{}, map[string]string{}
		maps.Copy(v.Refused, ve.Fields)
	} else if err != nil {
		return nil, err
	}
	if v.Status, err = s.AuditStatusFor(ctx, actor); err != nil {
		return nil, err
	}
	if v.Chain, err = s.ChainStatus(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

// AuditStatus is the review state shown at the top of the audit page.
type AuditStatus struct {
	Head       uint64 // newest visible entry
	LastReview *AuditReview
	// NewSinceReview counts visible entries after the last review, capped
	// (Capped true) so the page never counts a million rows.
	NewSinceReview int
	Capped         bool
}

const newSinceCap = 1000

// AuditStatusFor reports the head and the review state for actor.
func (s *Store) AuditStatusFor(ctx context.Context, actor Actor) (AuditStatus, error) {
	var st AuditStatus
	db := s.db.WithContext(ctx)
	var rv AuditReview
	if err := reviewScope(db.Model(&AuditReview{}), actor).Order("id DESC").Limit(1).Find(&rv).Error; err != nil {
		return st, wrapOp("audit status", err)
	}
	since := uint64(0)
	if rv.ID != 0 {
		st.LastReview = &rv
		since = rv.ThroughID
	}
	head, count, err := s.auditStatusQueries(ctx, actor, since)
	if err != nil {
		return st, err
	}
	// Planned for their own values (scanAudit): a generic plan of the
	// count reads every entry of the tree through a bitmap and sorts them
	// (2 s for a small tree at 10,000,000 entries).
	var heads []uint64
	if err := s.scanAudit(ctx, head, &heads); err != nil {
		return st, wrapOp("audit status", err)
	}
	if len(heads) > 0 {
		st.Head = heads[0]
	}
	var n int
	if err := s.scanAudit(ctx, count, &n); err != nil {
		return st, wrapOp("audit status", err)
	}
	st.NewSinceReview, st.Capped = min(n, newSinceCap), n > newSinceCap
	return st, nil
}

// auditStatusQueries are the status line's two queries: the newest visible
// entry, and the visible entries after since counted up to newSinceCap+1.
// Both walk the log by id within the actor's scope: for an owner the
// (tree_id, id) index (migration 25; with the action and actor, migration
// 27, so the count reads the index alone) reads the tree's newest entries
// and stops, where the primary key walked backward would skip every other
// tree's entries (a second for a small tree at 10,000,000 entries).
func (s *Store) auditStatusQueries(ctx context.Context, actor Actor, since uint64) (head, count auditQuery, err error) {
	scope, _, err := s.scopeConds(ctx, actor, AuditFilter{})
	if err != nil {
		return head, count, err
	}
	w, args := joinConds(scope)
	head = auditQuery{sql: "SELECT id FROM audit_entries" + w + " ORDER BY id DESC LIMIT 1", args: args}
	// One's own reviews and exports are not news to oneself: right after
	// a review the count is 0, not "1 new since" (the review entry).
	conds := append(slices.Clip(scope), sqlCond{"id > ?", []any{since}},
		sqlCond{"NOT (action IN ? AND actor_user_id = ?)", []any{[]string{ActionAuditReviewed, ActionAuditExported}, actor.UserID}})
	w, args = joinConds(conds)
	count = auditQuery{sql: "SELECT COUNT(*) FROM (SELECT id FROM audit_entries" + w + " ORDER BY id DESC LIMIT " +
		strconv.Itoa(newSinceCap+1) + ") AS n", args: args}
	return head, count, nil
}
