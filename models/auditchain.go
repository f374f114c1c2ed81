package models

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"gorm.io/gorm"
)

// The audit trail's keyed chain. Every entry carries two links:
//
//   - Hash, SHA-256 over the canonical entry and the previous entry's Hash
//     (anyone can recompute it; exports carry it);
//   - Link, HMAC-SHA256 under the audit key named by KeyID over the key ID,
//     Hash and the previous entry's Link. Without the key nobody can insert,
//     edit, reorder or rewrite entries and produce links that verify.
//
// Signed heads (sequence, entry, link, time, key ID) are written outside the
// database at most about a second after entries are appended (the anchor
// file, see anchor.go, and a structured log line) and mirrored as rows of
// audit_checkpoints. A head is signed only after the entries since the
// previous signed head verify: a tampered log is reported, never sealed.

// ErrAuditUnverified is returned when the audit log does not verify and a
// head would have to be signed over it. errors.As gives the report.
var ErrAuditUnverified = errors.New("models: the audit log does not verify")

// AuditTamperError carries the report of a log that does not verify.
type AuditTamperError struct{ Report ChainReport }

func (e *AuditTamperError) Error() string {
	return "the audit log does not verify: " + e.Report.Problem
}

func (e *AuditTamperError) Unwrap() error { return ErrAuditUnverified }

// AuditKeyID names an audit key without revealing it (16 hex digits).
func AuditKeyID(key []byte) string {
	h := sha256.New()
	h.Write([]byte("keydesk-audit-key-id\n"))
	h.Write(key)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// auditKeys is the key ring: the current key signs heads and starts new
// chains; older keys verify entries written before a rotation.
type auditKeys struct {
	current string
	byID    map[string][]byte
	order   []string // current first
}

func newAuditKeys(current []byte, older [][]byte) *auditKeys {
	k := &auditKeys{byID: map[string][]byte{}}
	for i, key := range append([][]byte{current}, older...) {
		if len(key) == 0 {
			continue
		}
		id := AuditKeyID(key)
		if _, dup := k.byID[id]; dup {
			continue
		}
		if i == 0 {
			k.current = id
		}
		k.byID[id] = key
		k.order = append(k.order, id)
	}
	return k
}

func auditLinkMAC(key []byte, kid, hash, prevLink string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("keydesk-audit-link-v1\n" + kid + "\n" + hash + "\n" + prevLink))
	return hex.EncodeToString(m.Sum(nil))
}

// prevLink is what the next entry's Link covers: the previous Link, or the
// previous Hash for an unkeyed (pre-migration) entry.
func (e *AuditEntry) nextPrevLink() string {
	if e.ID == 0 {
		return ""
	}
	if e.Link == "" {
		return e.Hash
	}
	return e.Link
}

// nextKeyID is the key the entry after e must be linked under: the same key
// as e, the key a hand-over names, or (first entry, or after unkeyed ones)
// "" meaning the current key.
func (e *AuditEntry) nextKeyID() string {
	if e.ID == 0 || e.Link == "" {
		return ""
	}
	if e.Action == ActionAuditKeyRotated {
		var d struct {
			To string `json:"to"`
		}
		if json.Unmarshal([]byte(e.Details), &d) == nil && d.To != "" {
			return d.To
		}
	}
	return e.KeyID
}

// linkEntry sets e's KeyID and Link after prev (prev.ID 0 for the first).
func (s *Store) linkEntry(e *AuditEntry, prev *AuditEntry) error {
	kid := prev.nextKeyID()
	if kid == "" {
		kid = s.keys.current
	}
	key, ok := s.keys.byID[kid]
	if !ok {
		return fmt.Errorf("models: the audit chain continues under audit key %s, which this instance does not hold (KEYDESK_AUDIT_KEY)", kid)
	}
	e.KeyID = kid
	e.Link = auditLinkMAC(key, kid, e.Hash, prev.nextPrevLink())
	return nil
}

// AuditHead is a signed statement of the chain head at one moment: one
// line of the anchor file, one log line and one audit_checkpoints row.
type AuditHead struct {
	Seq    uint64    `json:"seq"`
	Entry  uint64    `json:"entry"`
	Link   string    `json:"link"`
	Hash   string    `json:"hash"`
	At     time.Time `json:"at"`
	KeyID  string    `json:"kid"`
	Anchor string    `json:"anchor"`
	Sig    string    `json:"sig"`
}

func (h *AuditHead) message() string {
	return "keydesk-audit-head-v1\n" + strconv.FormatUint(h.Seq, 10) + "\n" + strconv.FormatUint(h.Entry, 10) + "\n" + h.Link + "\n" +
		h.Hash + "\n" + h.At.UTC().Format(time.RFC3339Nano) + "\n" + h.KeyID + "\n" + h.Anchor
}

func (k *auditKeys) signHead(h *AuditHead) {
	h.KeyID = k.current
	m := hmac.New(sha256.New, k.byID[k.current])
	m.Write([]byte(h.message()))
	h.Sig = hex.EncodeToString(m.Sum(nil))
}

// headValid reports whether h's signature verifies under a key of the ring.
func (k *auditKeys) headValid(h *AuditHead) bool {
	key, ok := k.byID[h.KeyID]
	if !ok {
		return false
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(h.message()))
	return hmac.Equal([]byte(hex.EncodeToString(m.Sum(nil))), []byte(h.Sig))
}

// whyInvalid says why a head's signature does not verify.
func (k *auditKeys) whyInvalid(h *AuditHead) string {
	if _, ok := k.byID[h.KeyID]; !ok {
		return fmt.Sprintf("carries a signature by audit key %s, which is not configured: signed with another key (or add that key to KEYDESK_AUDIT_KEY)", h.KeyID)
	}
	return "has an invalid signature: forged or edited"
}

// Checkpoint is a signed head as stored in the database. Rows without Seq
// were written before the chain was keyed (signature over entry and hash).
type Checkpoint struct {
	ID        uint `gorm:"primaryKey"`
	Seq       *uint64
	EntryID   uint64
	HeadHash  string
	Link      string
	KeyID     string
	Anchor    string
	Signature string
	Reason    string
	CreatedAt time.Time
}

func (Checkpoint) TableName() string { return "audit_checkpoints" }

// Head is the checkpoint as an AuditHead (zero for a legacy row).
func (c *Checkpoint) Head() AuditHead {
	h := AuditHead{Entry: c.EntryID, Link: c.Link, Hash: c.HeadHash, At: c.CreatedAt.UTC(), KeyID: c.KeyID, Anchor: c.Anchor, Sig: c.Signature}
	if c.Seq != nil {
		h.Seq = *c.Seq
	}
	return h
}

// legacySignatureValid checks a checkpoint written before the chain was
// keyed (HMAC over entry ID and hash) under any key of the ring.
func (k *auditKeys) legacySignatureValid(c *Checkpoint) bool {
	for _, id := range k.order {
		m := hmac.New(sha256.New, k.byID[id])
		m.Write([]byte("keydesk-audit-checkpoint:" + strconv.FormatUint(c.EntryID, 10) + ":" + c.HeadHash))
		if hmac.Equal([]byte(hex.EncodeToString(m.Sum(nil))), []byte(c.Signature)) {
			return true
		}
	}
	return false
}

// ---- the walker: one pass over entries, shared by verify and seal ----

// chainWalker checks entries in ID order, continuing from a verified entry.
type chainWalker struct {
	keys     *auditKeys
	prev     AuditEntry // last verified entry (ID 0 before the first)
	keyed    bool       // a keyed entry was seen: no unkeyed one may follow
	heads    map[uint64]string
	headSeq  map[uint64]uint64
	count    int64
	bad      uint64
	problem  string
	legacyCP map[uint64]string // legacy checkpoints: entry -> hash
}

func (w *chainWalker) fail(id uint64, format string, args ...any) bool {
	w.bad, w.problem = id, fmt.Sprintf(format, args...)
	return false
}

// step checks e, the entry after w.prev; false when it fails.
func (w *chainWalker) step(e *AuditEntry) bool {
	next := w.prev.ID + 1
	switch {
	case e.ID != next:
		return w.fail(next, "entry #%d is missing (the log jumps from #%d to #%d)", next, w.prev.ID, e.ID)
	case e.PrevHash != w.prev.Hash:
		return w.fail(e.ID, "entry #%d does not link to entry #%d: entries were inserted, removed or reordered", e.ID, w.prev.ID)
	case e.computeHash() != e.Hash:
		return w.fail(e.ID, "entry #%d was altered: its content does not match its hash", e.ID)
	}
	if e.Link == "" {
		if w.keyed {
			return w.fail(e.ID, "entry #%d has no keyed link after keyed entries: it was inserted or rewritten without the audit key", e.ID)
		}
		if h, ok := w.legacyCP[e.ID]; ok && h != e.Hash {
			return w.fail(e.ID, "entry #%d does not match the signed checkpoint: the chain was rewritten", e.ID)
		}
	} else {
		want := w.prev.nextKeyID()
		if want != "" && e.KeyID != want {
			return w.fail(e.ID, "entry #%d is linked under audit key %s where the chain continues under %s: it was inserted or rewritten", e.ID, e.KeyID, want)
		}
		key, ok := w.keys.byID[e.KeyID]
		if !ok {
			return w.fail(e.ID, "entry #%d is linked under audit key %s, which is not configured (add it to KEYDESK_AUDIT_KEY to verify)", e.ID, e.KeyID)
		}
		if !hmac.Equal([]byte(auditLinkMAC(key, e.KeyID, e.Hash, w.prev.nextPrevLink())), []byte(e.Link)) {
			return w.fail(e.ID, "entry #%d was altered, forged or reordered: its keyed link does not verify", e.ID)
		}
		w.keyed = true
	}
	if link, ok := w.heads[e.ID]; ok && link != e.Link {
		return w.fail(e.ID, "entry #%d does not match signed head seq %d: the chain was rewritten", e.ID, w.headSeq[e.ID])
	}
	w.prev = *e
	w.count++
	return true
}

const walkBatch = 2000

// walk checks every entry after w.prev up to through (0: to the end).
func (s *Store) walk(ctx context.Context, w *chainWalker, through uint64) error {
	db := s.db.WithContext(ctx)
	batch := make([]AuditEntry, 0, walkBatch)
	for {
		batch = batch[:0]
		q := db.Where("id > ?", w.prev.ID)
		if through > 0 {
			q = q.Where("id <= ?", through)
		}
		if err := q.Order("id").Limit(walkBatch).Find(&batch).Error; err != nil {
			return wrapOp("verify audit", err)
		}
		for i := range batch {
			if !w.step(&batch[i]) {
				return nil
			}
		}
		if len(batch) < walkBatch {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// ---- sealing: verify since the last signed head, then sign ----

// sealState is what this instance last verified and signed.
type sealState struct {
	mu       sync.Mutex
	last     AuditEntry // the entry of the newest head verified (ID 0: none yet)
	lastHead *AuditHead
	failed   *ChainReport // set when the log did not verify: nothing is signed
}

// verifiedStart finds where incremental verification may start: the newest
// signed head (anchor file or database) whose signature verifies and whose
// entry still carries the signed link. A head that no longer matches is a
// rewrite and is reported.
func (s *Store) verifiedStart(ctx context.Context, anchorHeads []AuditHead) (AuditEntry, *AuditHead, *ChainReport, error) {
	var best *AuditHead
	for i := range anchorHeads {
		h := &anchorHeads[i]
		if s.keys.headValid(h) && (best == nil || h.Entry > best.Entry) {
			best = h
		}
	}
	var cps []Checkpoint
	if err := s.db.WithContext(ctx).Where("seq IS NOT NULL").Order("seq DESC").Limit(20).Find(&cps).Error; err != nil {
		return AuditEntry{}, nil, nil, wrapOp("verify audit", err)
	}
	for i := range cps {
		h := cps[i].Head()
		if s.keys.headValid(&h) {
			if best == nil || h.Entry > best.Entry {
				best = &h
			}
			break
		}
	}
	if best == nil {
		return AuditEntry{}, nil, nil, nil
	}
	// The head entry and the one before it: the head entry must still
	// verify (content, link) and carry the signed link.
	var pair []AuditEntry
	if err := s.db.WithContext(ctx).Where("id IN ?", []uint64{best.Entry - 1, best.Entry}).Order("id").Find(&pair).Error; err != nil {
		return AuditEntry{}, nil, nil, wrapOp("verify audit", err)
	}
	var e, before AuditEntry
	for _, p := range pair {
		if p.ID == best.Entry {
			e = p
		} else {
			before = p
		}
	}
	if e.ID != 0 && (before.ID != 0 || e.ID == 1) {
		w := &chainWalker{keys: s.keys, prev: before, keyed: before.Link != ""}
		if !w.step(&e) {
			return AuditEntry{}, best, &ChainReport{BadEntry: w.bad, Problem: w.problem}, nil
		}
	}
	switch {
	case e.ID == 0:
		var dbHead uint64
		if err := s.db.WithContext(ctx).Model(&AuditEntry{}).Select("COALESCE(MAX(id), 0)").Scan(&dbHead).Error; err != nil {
			return AuditEntry{}, nil, nil, wrapOp("verify audit", err)
		}
		return AuditEntry{}, best, &ChainReport{BadEntry: dbHead + 1, Head: dbHead, LastCheckpoint: best.Entry,
			Problem: fmt.Sprintf("the log was truncated: signed head seq %d covers entry #%d but the log ends at #%d", best.Seq, best.Entry, dbHead)}, nil
	case e.Link != best.Link || e.Hash != best.Hash:
		return AuditEntry{}, best, &ChainReport{BadEntry: e.ID,
			Problem: fmt.Sprintf("entry #%d does not match signed head seq %d: the chain was rewritten", e.ID, best.Seq)}, nil
	}
	return e, best, nil, nil
}

// SealAuditHead verifies the entries appended since the last signed head
// and, when they verify, signs the new head: a checkpoint row, a line in
// the anchor file (fsynced) and a structured log line. When they do not,
// nothing is signed and an *AuditTamperError says why. It returns the head
// (nil for an empty log).
func (s *Store) SealAuditHead(ctx context.Context, reason string) (*AuditHead, error) {
	st := &s.seal
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.failed != nil {
		return nil, &AuditTamperError{Report: *st.failed}
	}
	var head AuditEntry
	if err := s.db.WithContext(ctx).Select("id", "link").Order("id DESC").Limit(1).Find(&head).Error; err != nil {
		return nil, wrapOp("audit seal", err)
	}
	if head.ID == 0 {
		return nil, nil
	}
	if st.lastHead != nil && st.last.ID == head.ID && st.lastHead.Entry == head.ID && head.Link == st.lastHead.Link {
		return st.lastHead, nil
	}
	if st.lastHead == nil {
		anchorHeads, _ := s.anchor.newest()
		start, _, rep, err := s.verifiedStart(ctx, anchorHeads)
		if err != nil {
			return nil, err
		}
		if rep != nil {
			return nil, s.sealFailed(*rep)
		}
		st.last = start
	}
	w := &chainWalker{keys: s.keys, prev: st.last, keyed: st.last.Link != ""}
	if err := s.walk(ctx, w, head.ID); err != nil {
		return nil, err
	}
	if w.problem != "" {
		return nil, s.sealFailed(ChainReport{BadEntry: w.bad, Problem: w.problem, Head: w.prev.ID})
	}
	if w.prev.ID == 0 {
		return nil, nil
	}
	h, err := s.signHead(ctx, &w.prev, reason)
	if err != nil {
		return nil, err
	}
	st.last, st.lastHead = w.prev, h
	return h, nil
}

func (s *Store) sealFailed(r ChainReport) error {
	r.VerifiedAt = s.Now()
	s.seal.failed = &r
	s.lastReport.Store(&r)
	s.log.Error("AUDIT LOG DOES NOT VERIFY: no head is signed over it", "entry", r.BadEntry, "problem", r.Problem)
	return &AuditTamperError{Report: r}
}

// signHead writes the signed head of e: checkpoint row and anchor line in
// one transaction (sequence numbers have no gaps), then the log line.
func (s *Store) signHead(ctx context.Context, e *AuditEntry, reason string) (*AuditHead, error) {
	var h AuditHead
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if s.engine == Postgres {
			if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", s.lock(lockAuditSign)).Error; err != nil {
				return err
			}
		}
		var last Checkpoint
		if err := tx.Where("seq IS NOT NULL").Order("seq DESC").Limit(1).Find(&last).Error; err != nil {
			return err
		}
		if last.Seq != nil && last.EntryID == e.ID && last.Link == e.Link {
			// Another instance (or call) signed this head already.
			h = last.Head()
			return nil
		}
		aid, err := s.anchor.id(0)
		if err != nil {
			return err
		}
		if restored, err := s.restoreLostHead(tx, &last, aid); err != nil {
			return err
		} else if restored != nil {
			last = *restored
		}
		var seq uint64 = 1
		if last.Seq != nil {
			seq = *last.Seq + 1
		}
		h = AuditHead{Seq: seq, Entry: e.ID, Link: e.Link, Hash: e.Hash, At: s.Now().Truncate(time.Microsecond), Anchor: aid}
		s.keys.signHead(&h)
		cp := Checkpoint{Seq: &h.Seq, EntryID: h.Entry, HeadHash: h.Hash, Link: h.Link, KeyID: h.KeyID, Anchor: h.Anchor,
			Signature: h.Sig, Reason: reason, CreatedAt: h.At}
		if err := tx.Create(&cp).Error; err != nil {
			return err
		}
		return s.anchor.write(&h)
	})
	if err != nil {
		return nil, wrapOp("audit seal", err)
	}
	s.log.Info("audit head signed", "seq", h.Seq, "entry", h.Entry, "link", h.Link, "hash", h.Hash,
		"at", h.At.Format(time.RFC3339Nano), "kid", h.KeyID, "anchor", h.Anchor, "sig", h.Sig)
	return &h, nil
}

// restoreLostHead puts back the checkpoint row of the anchor's newest head
// when the database lacks it and it is the next in sequence: signHead
// writes the anchor line before its transaction commits, so a commit that
// failed, or a process that stopped in between, leaves exactly that. The
// head must verify (signature, and the entry it signs is in the log with
// its link); otherwise nothing is signed. It returns the restored row, or
// nil when there was nothing to restore.
func (s *Store) restoreLostHead(tx *gorm.DB, last *Checkpoint, aid string) (*Checkpoint, error) {
	h := s.anchor.newestHead()
	if h == nil || h.Anchor != aid || (last.Seq != nil && h.Seq <= *last.Seq) {
		return nil, nil
	}
	if last.Seq != nil && h.Seq != *last.Seq+1 || last.Seq == nil && h.Seq != 1 {
		return nil, fmt.Errorf("%w: the anchor's newest head seq %d is ahead of the database's signed heads by more than one: checkpoints were deleted", ErrAuditUnverified, h.Seq)
	}
	if !s.keys.headValid(h) {
		return nil, fmt.Errorf("%w: the anchor's newest head seq %d is missing from the database and %s", ErrAuditUnverified, h.Seq, s.keys.whyInvalid(h))
	}
	var e AuditEntry
	if err := tx.Select("id", "link", "hash").Where("id = ?", h.Entry).Limit(1).Find(&e).Error; err != nil {
		return nil, err
	}
	if e.ID != h.Entry || e.Link != h.Link || e.Hash != h.Hash {
		return nil, fmt.Errorf("%w: the anchor's newest head seq %d signs entry #%d, which the log does not hold as signed", ErrAuditUnverified, h.Seq, h.Entry)
	}
	seq := h.Seq
	cp := Checkpoint{Seq: &seq, EntryID: h.Entry, HeadHash: h.Hash, Link: h.Link, KeyID: h.KeyID, Anchor: h.Anchor,
		Signature: h.Sig, Reason: "restored from the anchor", CreatedAt: h.At}
	if err := tx.Create(&cp).Error; err != nil {
		return nil, err
	}
	s.log.Warn("audit head restored from the anchor: its checkpoint row had not been committed", "seq", h.Seq, "entry", h.Entry)
	return &cp, nil
}

// Checkpoint signs the head now (verify first); kept for callers that want
// a head at a given moment (exports, tests).
func (s *Store) Checkpoint(ctx context.Context, reason string) (*AuditHead, error) {
	return s.SealAuditHead(ctx, reason)
}

// RunAuditSealer signs the head at most once per every (1 s in serve)
// whenever entries were appended, by any instance, until ctx ends; then it
// signs a last time. It stops signing (and keeps reporting) once the log
// fails to verify.
func (s *Store) RunAuditSealer(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = time.Second
	}
	seal := func(ctx context.Context) {
		if _, err := s.SealAuditHead(ctx, "append"); err != nil && ctx.Err() == nil && !errors.Is(err, ErrAuditUnverified) {
			s.log.Error("audit head not signed", "err", err)
		}
	}
	seal(ctx)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			seal(fctx)
			cancel()
			return
		case <-t.C:
			seal(ctx)
		}
	}
}

// ---- verification ----

// VerifyOptions choose how much VerifyAudit reads.
type VerifyOptions struct {
	// Full walks every entry from the first; otherwise verification starts
	// at the newest signed head whose entry still matches it.
	Full bool
	// Anchor is the anchor file to check against (a copy kept elsewhere, or
	// the log lines of "audit head signed"); "" uses the store's own.
	Anchor string
}

// ChainReport is the result of a verification.
type ChainReport struct {
	OK             bool
	Full           bool
	From           uint64 // verification started after this entry
	Entries        int64  // entries walked
	Head           uint64 // last entry that verified
	Checkpoints    int    // signed heads checked in the database
	LastCheckpoint uint64 // entry of the newest signed head
	AnchorHeads    int    // heads read from the anchor
	AnchorHead     uint64 // entry of the anchor's newest head
	BadEntry       uint64 // first entry concerned (0 when OK or not entry-specific)
	Problem        string
	VerifiedAt     time.Time
}

// VerifyAudit checks the chain under the audit keys, the signed heads in
// the database (signatures, gapless sequence) and the anchor: it names the
// first altered, missing, inserted or reordered entry, a missing head
// sequence, and a log or anchor shorter than the other says.
func (s *Store) VerifyAudit(ctx context.Context, opt VerifyOptions) (ChainReport, error) {
	r := ChainReport{VerifiedAt: s.Now(), Full: opt.Full}
	failf := func(bad uint64, format string, args ...any) (ChainReport, error) {
		r.BadEntry, r.Problem = bad, fmt.Sprintf(format, args...)
		return r, nil
	}
	// 1. The anchor.
	anchor, err := s.readAnchorFor(opt.Anchor, !opt.Full)
	if err != nil {
		return r, err
	}
	if anchor.problem != "" {
		r.Problem = anchor.problem
		return r, nil
	}
	r.AnchorHeads = len(anchor.heads)
	for i := range anchor.heads {
		h := &anchor.heads[i]
		if !s.keys.headValid(h) {
			where := ""
			if anchor.lines[i] > 0 {
				where = fmt.Sprintf(" on line %d", anchor.lines[i])
			}
			return failf(h.Entry, "anchor head seq %d (entry #%d)%s %s", h.Seq, h.Entry, where, s.keys.whyInvalid(h))
		}
		r.AnchorHead = max(r.AnchorHead, h.Entry)
	}
	// 2. Where to start.
	w := &chainWalker{keys: s.keys, heads: map[uint64]string{}, headSeq: map[uint64]uint64{}}
	var fromSeq uint64
	if !opt.Full {
		start, best, rep, err := s.verifiedStart(ctx, anchor.heads)
		if err != nil {
			return r, err
		}
		if rep != nil {
			rep.VerifiedAt, rep.Full = r.VerifiedAt, r.Full
			return *rep, nil
		}
		if start.ID != 0 {
			w.prev, w.keyed, r.From, fromSeq = start, start.Link != "", start.ID, best.Seq
		}
	}
	// 3. The database's signed heads: valid signatures, no gap.
	var cps []Checkpoint
	db := s.db.WithContext(ctx)
	q := db.Order("seq").Order("id")
	if fromSeq > 0 {
		q = q.Where("seq >= ?", fromSeq)
	}
	if err := q.Find(&cps).Error; err != nil {
		return r, wrapOp("verify audit", err)
	}
	r.Checkpoints = len(cps)
	w.legacyCP = map[uint64]string{}
	dbSeqs := map[uint64]bool{}
	var prevSeq uint64
	for i := range cps {
		cp := &cps[i]
		if cp.Seq == nil {
			if !s.keys.legacySignatureValid(cp) {
				return failf(cp.EntryID, "checkpoint %d (entry #%d) has an invalid signature: forged, or signed with another audit key", cp.ID, cp.EntryID)
			}
			w.legacyCP[cp.EntryID] = cp.HeadHash
			r.LastCheckpoint = max(r.LastCheckpoint, cp.EntryID)
			continue
		}
		h := cp.Head()
		if !s.keys.headValid(&h) {
			return failf(h.Entry, "signed head seq %d (entry #%d) in the database %s", h.Seq, h.Entry, s.keys.whyInvalid(&h))
		}
		switch {
		case prevSeq == 0 && fromSeq == 0 && h.Seq != 1:
			return failf(0, "signed head seq 1 to %d are missing from the database (audit_checkpoints)", h.Seq-1)
		case prevSeq != 0 && h.Seq != prevSeq+1:
			return failf(0, "signed head seq %d is missing from the database (audit_checkpoints jumps from seq %d to %d)", prevSeq+1, prevSeq, h.Seq)
		}
		prevSeq = h.Seq
		dbSeqs[h.Seq] = true
		if h.Entry > w.prev.ID {
			w.heads[h.Entry], w.headSeq[h.Entry] = h.Link, h.Seq
		}
		r.LastCheckpoint = max(r.LastCheckpoint, h.Entry)
	}
	// 4. The anchor against the database: each anchored head is in the
	// database, and the database holds no newer head written to this anchor.
	for _, h := range anchor.heads {
		if h.Seq < fromSeq {
			continue
		}
		if !dbSeqs[h.Seq] && !(h.Seq == anchor.newestSeq && h.Seq > prevSeq) {
			// The anchor's newest head, newer than every head in the
			// database, is one whose transaction did not commit after
			// its line was written (restoreLostHead): the walk below
			// still checks the entry it signs.
			return failf(0, "signed head seq %d (entry #%d) is in the anchor but missing from the database: checkpoints were deleted", h.Seq, h.Entry)
		}
		if h.Entry > w.prev.ID {
			w.heads[h.Entry], w.headSeq[h.Entry] = h.Link, h.Seq
		}
	}
	if anchor.id != "" || anchor.path != "" {
		var newest Checkpoint
		qa := db.Where("seq IS NOT NULL")
		if anchor.id != "" {
			qa = qa.Where("anchor = ?", anchor.id)
		}
		if err := qa.Order("seq DESC").Limit(1).Find(&newest).Error; err != nil {
			return r, wrapOp("verify audit", err)
		}
		if newest.Seq != nil && *newest.Seq > anchor.newestSeq {
			if anchor.id == "" {
				return failf(0, "the anchor %s holds no signed head but the database holds heads up to seq %d: the anchor was truncated, emptied or replaced", anchor.path, *newest.Seq)
			}
			return failf(0, "the anchor ends at head seq %d but the database holds head seq %d written to it: the anchor was truncated", anchor.newestSeq, *newest.Seq)
		}
	}
	// 5. The chain.
	if err := s.walk(ctx, w, 0); err != nil {
		return r, err
	}
	r.Entries, r.Head = w.count, w.prev.ID
	if w.problem != "" {
		r.BadEntry, r.Problem = w.bad, w.problem
		return r, nil
	}
	signed := max(r.LastCheckpoint, r.AnchorHead)
	if signed > r.Head {
		return failf(r.Head+1, "the log was truncated: a signed head covers entry #%d but the log ends at #%d", signed, r.Head)
	}
	r.OK = true
	return r, nil
}

// VerifyAuditChain is a full verification against the store's own anchor.
func (s *Store) VerifyAuditChain(ctx context.Context) (ChainReport, error) {
	return s.VerifyAudit(ctx, VerifyOptions{Full: true})
}

// keyLegacyAudit runs once on a log written before entries were keyed: it
// verifies the unkeyed entries (chain and old checkpoints) and, when they
// hold, appends the first keyed entry (audit.chain_keyed) over them and
// signs a head: old logs keep verifying, and nobody can rewrite the old
// entries any more without the key. A log that does not verify is
// reported and not sealed.
func (s *Store) keyLegacyAudit(ctx context.Context) error {
	var head AuditEntry
	if err := s.db.WithContext(ctx).Select("id", "link").Order("id DESC").Limit(1).Find(&head).Error; err != nil {
		return err
	}
	if head.ID == 0 || head.Link != "" {
		return nil
	}
	r, err := s.VerifyAudit(ctx, VerifyOptions{Full: true})
	if err != nil {
		return err
	}
	if !r.OK {
		_ = s.RecordVerification(ctx, r)
		return s.sealFailed(r)
	}
	var handed bool
	err = s.tx(ctx, func(tx *gorm.DB) error {
		if s.engine == Postgres {
			if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", s.lock(lockAuditAppend)).Error; err != nil {
				return err
			}
		}
		var h AuditEntry
		if err := tx.Select("id", "hash", "link").Order("id DESC").Limit(1).Find(&h).Error; err != nil {
			return err
		}
		if h.Link != "" {
			return nil // another instance handed over first
		}
		handed = true
		return s.appendAudit(tx, SystemActor(), ActionAuditChainKeyed, 0, auditTarget{Type: "audit", Name: "keyed chain"},
			map[string]any{"legacy_through": h.ID, "legacy_head": h.Hash, "kid": s.keys.current})
	})
	if err != nil {
		return err
	}
	if handed {
		s.log.Info("audit log keyed: the unkeyed entries verified and are covered by the first keyed entry", "through", head.ID)
	}
	_, err = s.SealAuditHead(ctx, "keyed")
	return err
}

// AuditChainKeyID is the ID of the key the next entry will be linked under,
// and the current key's ID.
func (s *Store) AuditChainKeyID(ctx context.Context) (chain, current string, err error) {
	var head AuditEntry
	if err := s.db.WithContext(ctx).Select("id", "key_id", "link", "action", "details").Order("id DESC").Limit(1).Find(&head).Error; err != nil {
		return "", "", wrapOp("audit key", err)
	}
	chain = head.nextKeyID()
	if chain == "" {
		chain = s.keys.current
	}
	return chain, s.keys.current, nil
}

// ErrAuditKeyCurrent: the chain already continues under the current key.
var ErrAuditKeyCurrent = errors.New("models: the audit chain already continues under the current audit key")

// RotateAuditKey hands the chain over to the current audit key: after the
// log since the last signed head verifies, it appends audit.key_rotated,
// linked under the old key and naming the new one, and signs a head. From
// then on entries are linked under the new key; the old key is still
// needed to verify the entries before the hand-over.
func (s *Store) RotateAuditKey(ctx context.Context, actor Actor) (from, to string, entry uint64, err error) {
	if _, err := s.SealAuditHead(ctx, "rotate"); err != nil {
		return "", "", 0, err
	}
	err = s.tx(ctx, func(tx *gorm.DB) error {
		if s.engine == Postgres {
			if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", s.lock(lockAuditAppend)).Error; err != nil {
				return err
			}
		}
		var head AuditEntry
		if err := tx.Select("id", "key_id", "link", "action", "details").Order("id DESC").Limit(1).Find(&head).Error; err != nil {
			return err
		}
		from, to = head.nextKeyID(), s.keys.current
		if from == "" || from == to {
			return ErrAuditKeyCurrent
		}
		if err := s.appendAudit(tx, actor, ActionAuditKeyRotated, 0, auditTarget{Type: "audit", ID: to, Name: "audit key " + to},
			map[string]any{"from": from, "to": to}); err != nil {
			return err
		}
		return tx.Model(&AuditEntry{}).Select("COALESCE(MAX(id), 0)").Scan(&entry).Error
	})
	if err != nil {
		if errors.Is(err, ErrAuditKeyCurrent) {
			return from, to, 0, err
		}
		return "", "", 0, wrapOp("rotate audit key", err)
	}
	if _, err := s.SealAuditHead(ctx, "rotate"); err != nil {
		return from, to, entry, err
	}
	return from, to, entry, nil
}

// DefaultAuditCheckEvery is how often serve re-verifies the audit log
// (RunAuditChecker) unless told otherwise.
const DefaultAuditCheckEvery = 5 * time.Minute

// CheckAudit is the background check: an incremental verification against
// the store's own anchor, run by one instance at a time (a PostgreSQL
// advisory lock; ran is false when another instance holds it), recorded
// for every instance's audit page.
func (s *Store) CheckAudit(ctx context.Context) (r ChainReport, ran bool, err error) {
	if s.engine == Postgres {
		sqlDB, err := s.db.DB()
		if err != nil {
			return r, false, err
		}
		conn, err := sqlDB.Conn(ctx)
		if err != nil {
			return r, false, wrapOp("audit check", err)
		}
		defer conn.Close()
		var got bool
		if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", s.lock(lockAuditCheck)).Scan(&got); err != nil {
			return r, false, wrapOp("audit check lock", err)
		}
		if !got {
			return r, false, nil
		}
		defer conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock($1)", s.lock(lockAuditCheck)) //nolint:errcheck
	}
	r, err = s.VerifyAudit(ctx, VerifyOptions{})
	if err != nil {
		return r, true, err
	}
	if err := s.RecordVerification(ctx, r); err != nil {
		return r, true, err
	}
	return r, true, nil
}

// RunAuditChecker runs CheckAudit at once and then every interval
// (DefaultAuditCheckEvery when not positive) until ctx ends: serve's
// periodic re-verification from the newest verified head, one instance at a
// time; the audit page shows the latest result. A log that does not verify
// is reported at ERROR each time. Signing heads is RunAuditSealer's job.
func (s *Store) RunAuditChecker(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultAuditCheckEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		r, ran, err := s.CheckAudit(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Error("audit verification failed to run", "err", err)
		case err == nil && ran && !r.OK:
			s.log.Error("AUDIT LOG DOES NOT VERIFY", "entry", r.BadEntry, "problem", r.Problem)
		case err == nil && ran:
			s.log.Debug("audit log verified", "from", r.From, "head", r.Head, "entries", r.Entries)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// AuditHeadBySeq is one signed head (the signature that goes with an
// export); ErrNotFound when there is none.
func (s *Store) AuditHeadBySeq(ctx context.Context, seq uint64) (*AuditHead, error) {
	var cp Checkpoint
	if err := s.db.WithContext(ctx).Where("seq = ?", seq).Take(&cp).Error; err != nil {
		return nil, notFound(err)
	}
	h := cp.Head()
	return &h, nil
}

// VerifyAuditHead reports whether h is signed by one of keys (for anyone
// holding the audit key who checks an export's head).
func VerifyAuditHead(h *AuditHead, keys ...[]byte) bool {
	if len(keys) == 0 {
		return false
	}
	return newAuditKeys(keys[0], keys[1:]).headValid(h)
}

// LastChainReport is the newest verification this instance recorded or
// ran into (for the metrics), nil before the first.
func (s *Store) LastChainReport() *ChainReport { return s.lastReport.Load() }
