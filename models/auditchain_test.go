package models_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keydesk/models"
	"keydesk/models/testdb"
)

// anchorLines reads the anchor file's heads.
func anchorLines(t *testing.T, path string) []models.AuditHead {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var hs []models.AuditHead
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var h models.AuditHead
		if err := json.Unmarshal(line, &h); err != nil {
			t.Fatalf("anchor line %q: %v", line, err)
		}
		hs = append(hs, h)
	}
	return hs
}

// openAnchored opens a store on dsn with its own anchor file.
func openAnchored(t *testing.T, dsn string, key []byte, old ...[]byte) (*models.Store, string) {
	t.Helper()
	anchor := filepath.Join(t.TempDir(), "keydesk.audit-anchor")
	opt := testdb.Options(testdb.NewClock())
	opt.AuditKey, opt.AuditOldKeys, opt.AuditAnchor = key, old, anchor
	return testdb.OpenDSN(t, dsn, opt), anchor
}

func checkpoints(t *testing.T, s *models.Store) int64 {
	t.Helper()
	var n int64
	if err := s.DB().Table("audit_checkpoints").Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAuditEntriesAreKeyedAndHeadsAnchored(t *testing.T) {
	t.Parallel()
	s, anchor := openAnchored(t, testdb.DSN(t), testdb.AuditKey)
	seedLog(t, s)
	var es []models.AuditEntry
	testdb.Must(t, s.DB().Order("id").Find(&es))
	kid := models.AuditKeyID(testdb.AuditKey)
	for _, e := range es {
		if e.KeyID != kid || len(e.Link) != 64 || e.Link == e.Hash {
			t.Fatalf("entry #%d is not keyed: key %q link %q", e.ID, e.KeyID, e.Link)
		}
	}
	if _, err := os.Stat(anchor); !os.IsNotExist(err) {
		t.Fatalf("an anchor before any head: %v", err)
	}
	h, err := s.SealAuditHead(ctx, "test")
	if err != nil || h == nil || h.Entry != es[len(es)-1].ID || h.Link != es[len(es)-1].Link || h.Seq != 1 {
		t.Fatalf("first head %+v %v", h, err)
	}
	st, err := os.Stat(anchor)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("anchor file %v %v, want 0600", st, err)
	}
	// Nothing new: no second head. A new entry: one more line.
	if again, err := s.SealAuditHead(ctx, "test"); err != nil || again.Seq != 1 {
		t.Fatalf("re-sealing an unchanged head: %+v %v", again, err)
	}
	if err := s.RecordAccessDenied(ctx, models.SystemActor(), "/x"); err != nil {
		t.Fatal(err)
	}
	h2, err := s.SealAuditHead(ctx, "test")
	if err != nil || h2.Seq != 2 || h2.Entry != h.Entry+1 {
		t.Fatalf("second head %+v %v", h2, err)
	}
	lines := anchorLines(t, anchor)
	if len(lines) != 2 || lines[0].Sig != h.Sig || lines[1].Sig != h2.Sig || lines[0].Anchor == "" || lines[1].Anchor != lines[0].Anchor {
		t.Fatalf("anchor lines %+v", lines)
	}
	for _, l := range lines {
		if !models.VerifyAuditHead(&l, testdb.AuditKey) || models.VerifyAuditHead(&l, []byte("another key, long enough to be one")) {
			t.Fatalf("anchor line %+v: signature", l)
		}
	}
	if n := checkpoints(t, s); n != 2 {
		t.Fatalf("%d checkpoint rows, want 2", n)
	}
	r, err := s.VerifyAudit(ctx, models.VerifyOptions{Full: true})
	if err != nil || !r.OK || r.AnchorHeads != 2 || r.AnchorHead != h2.Entry || r.Checkpoints != 2 {
		t.Fatalf("full verify %+v %v", r, err)
	}
	r, err = s.VerifyAudit(ctx, models.VerifyOptions{})
	if err != nil || !r.OK || r.From != h2.Entry || r.Entries != 0 {
		t.Fatalf("incremental verify %+v %v", r, err)
	}
}

// Verify before sign: entries appended since the last head that do not
// verify are reported and never sealed, by the sealer or an export.
func TestAuditNeverSealsATamperedLog(t *testing.T) {
	t.Parallel()
	for name, tamper := range map[string]func(t *testing.T, s *models.Store, head uint64){
		"forged entry at the head": func(t *testing.T, s *models.Store, head uint64) {
			var e models.AuditEntry
			testdb.Must(t, s.DB().Where("id = ?", head).Take(&e))
			e.ID, e.PrevHash, e.TargetName = head+1, e.Hash, "forged"
			e.Hash = models.ComputeAuditHash(&e)
			if err := s.DB().Create(&e).Error; err != nil {
				t.Fatal(err)
			}
		},
		"unsigned entry edited": func(t *testing.T, s *models.Store, head uint64) {
			if err := s.RecordAccessDenied(ctx, models.SystemActor(), "/x"); err != nil {
				t.Fatal(err)
			}
			testdb.AllowTampering(t, s)
			if err := s.DB().Exec("UPDATE audit_entries SET target_name = 'y' WHERE id = ?", head+1).Error; err != nil {
				t.Fatal(err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			dsn := testdb.DSN(t)
			s, anchor := openAnchored(t, dsn, testdb.AuditKey)
			actor, _ := seedLog(t, s)
			h, err := s.SealAuditHead(ctx, "test")
			if err != nil {
				t.Fatal(err)
			}
			tamper(t, s, h.Entry)
			_, err = s.SealAuditHead(ctx, "test")
			var te *models.AuditTamperError
			if !errors.As(err, &te) || !errors.Is(err, models.ErrAuditUnverified) || te.Report.BadEntry != h.Entry+1 {
				t.Fatalf("seal over a tampered log: %v", err)
			}
			_, err = s.ExportAudit(ctx, actor, models.AuditFilter{}, "csv", func(*models.AuditHead) error {
				t.Fatal("an export of a tampered log began")
				return nil
			}, func(models.AuditEntry) error { return nil })
			if !errors.Is(err, models.ErrAuditUnverified) {
				t.Fatalf("export of a tampered log: %v", err)
			}
			if n := checkpoints(t, s); n != 1 || len(anchorLines(t, anchor)) != 1 {
				t.Fatalf("%d checkpoints, %d anchor lines after the tampering: something was signed", n, len(anchorLines(t, anchor)))
			}
			// A fresh instance (a restart) refuses too.
			s2, _ := openAnchored(t, dsn, testdb.AuditKey)
			if _, err := s2.SealAuditHead(ctx, "restart"); !errors.Is(err, models.ErrAuditUnverified) {
				t.Fatalf("a restarted instance sealed a tampered log: %v", err)
			}
			if n := checkpoints(t, s); n != 1 {
				t.Fatalf("%d checkpoints after the restart", n)
			}
		})
	}
}

func TestAuditSealerSignsAfterAppends(t *testing.T) {
	t.Parallel()
	s, anchor := openAnchored(t, testdb.DSN(t), testdb.AuditKey)
	seedLog(t, s)
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.RunAuditSealer(sctx, 20*time.Millisecond)
	}()
	var head uint64
	testdb.Must(t, s.DB().Table("audit_entries").Select("MAX(id)").Scan(&head))
	waitFor := func(entry uint64) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if ls := anchorLines(t, anchor); len(ls) > 0 && ls[len(ls)-1].Entry == entry {
				return
			}
		}
		t.Fatalf("no head for entry #%d in the anchor: %+v", entry, anchorLines(t, anchor))
	}
	waitFor(head)
	if err := s.RecordAccessDenied(ctx, models.SystemActor(), "/y"); err != nil {
		t.Fatal(err)
	}
	waitFor(head + 1)
	// At shutdown the last entries are signed too.
	if err := s.RecordAccessDenied(ctx, models.SystemActor(), "/z"); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	if ls := anchorLines(t, anchor); ls[len(ls)-1].Entry != head+2 {
		t.Fatalf("after shutdown the anchor ends at #%d, want #%d", ls[len(ls)-1].Entry, head+2)
	}
}

// Logs written before entries were keyed: verified once, then covered by
// a keyed hand-over entry and a signed head.
func TestAuditMigratesUnkeyedLog(t *testing.T) {
	t.Parallel()
	dsn := testdb.DSN(t)
	s, anchor := openAnchored(t, dsn, testdb.AuditKey)
	if err := s.SeedLegacyAuditLog(30, []uint{1}, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var es []models.AuditEntry
	testdb.Must(t, s.DB().Order("id").Find(&es))
	if len(es) != 31 || es[30].Action != models.ActionAuditChainKeyed || es[30].Link == "" || es[29].Link != "" {
		t.Fatalf("after migration: %d entries, last %+v", len(es), es[len(es)-1])
	}
	if ls := anchorLines(t, anchor); len(ls) != 1 || ls[0].Entry != 31 {
		t.Fatalf("the hand-over is not signed: %+v", ls)
	}
	if r, err := s.VerifyAudit(ctx, models.VerifyOptions{Full: true}); err != nil || !r.OK || r.Entries != 31 {
		t.Fatalf("migrated log: %+v %v", r, err)
	}
	// Migrating again changes nothing.
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var n int64
	testdb.Must(t, s.DB().Table("audit_entries").Count(&n))
	if n != 31 {
		t.Fatalf("%d entries after a second migration", n)
	}
	// The old entries can no longer be rewritten consistently.
	testdb.AllowTampering(t, s)
	prev := ""
	for _, e := range es[:30] {
		if e.ID == 10 {
			e.IP = "10.6.6.6"
		}
		e.PrevHash = prev
		e.Hash = models.ComputeAuditHash(&e)
		prev = e.Hash
		if err := s.DB().Save(&e).Error; err != nil {
			t.Fatal(err)
		}
	}
	r, err := s.VerifyAudit(ctx, models.VerifyOptions{Full: true})
	if err != nil || r.OK || r.BadEntry != 31 {
		t.Fatalf("rewritten unkeyed entries: %+v %v", r, err)
	}
}

func TestAuditMigrationRefusesATamperedUnkeyedLog(t *testing.T) {
	t.Parallel()
	dsn := testdb.DSN(t)
	s, anchor := openAnchored(t, dsn, testdb.AuditKey)
	if err := s.SeedLegacyAuditLog(10, []uint{1}, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	testdb.AllowTampering(t, s)
	if err := s.DB().Exec("UPDATE audit_entries SET ip = '10.6.6.6' WHERE id = 4").Error; err != nil {
		t.Fatal(err)
	}
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var n int64
	testdb.Must(t, s.DB().Table("audit_entries").Count(&n))
	if n != 10 || len(anchorLines(t, anchor)) != 0 || checkpoints(t, s) != 0 {
		t.Fatalf("a tampered unkeyed log was sealed: %d entries, %d heads", n, len(anchorLines(t, anchor)))
	}
	last, err := s.LastVerification(ctx)
	if err != nil || last == nil || last.OK || last.BadEntry != 4 {
		t.Fatalf("the refusal is not recorded: %+v %v", last, err)
	}
	if _, err := s.SealAuditHead(ctx, "test"); !errors.Is(err, models.ErrAuditUnverified) {
		t.Fatalf("seal after a refused migration: %v", err)
	}
}

func TestAuditKeyRotation(t *testing.T) {
	t.Parallel()
	dsn := testdb.DSN(t)
	k1 := []byte("first audit key, 32 bytes or more!!")
	k2 := []byte("second audit key, 32 bytes or more!")
	s1, _ := openAnchored(t, dsn, k1)
	seedLog(t, s1)
	if _, _, _, err := s1.RotateAuditKey(ctx, models.SystemActor()); !errors.Is(err, models.ErrAuditKeyCurrent) {
		t.Fatalf("rotating to the key in use: %v", err)
	}
	s2, _ := openAnchored(t, dsn, k2, k1)
	from, to, entry, err := s2.RotateAuditKey(ctx, models.SystemActor())
	if err != nil || from != models.AuditKeyID(k1) || to != models.AuditKeyID(k2) || entry == 0 {
		t.Fatalf("rotate: %s → %s at #%d, %v", from, to, entry, err)
	}
	var hand models.AuditEntry
	testdb.Must(t, s2.DB().Where("id = ?", entry).Take(&hand))
	if hand.Action != models.ActionAuditKeyRotated || hand.KeyID != from {
		t.Fatalf("hand-over entry %+v: it must be linked under the old key", hand)
	}
	if err := s2.RecordAccessDenied(ctx, models.SystemActor(), "/after"); err != nil {
		t.Fatal(err)
	}
	var after models.AuditEntry
	testdb.Must(t, s2.DB().Order("id DESC").Take(&after))
	if after.KeyID != to {
		t.Fatalf("entry after the hand-over is under %s, want %s", after.KeyID, to)
	}
	// An instance that only holds the old key cannot continue the chain.
	if err := s1.RecordAccessDenied(ctx, models.SystemActor(), "/old"); err == nil || !strings.Contains(err.Error(), to) {
		t.Fatalf("append with only the old key: %v", err)
	}
	if r, err := s2.VerifyAudit(ctx, models.VerifyOptions{Full: true}); err != nil || !r.OK {
		t.Fatalf("verify with both keys: %+v %v", r, err)
	}
	// Without the old key the entries before the hand-over cannot verify.
	s3, _ := openAnchored(t, dsn, k2)
	if r, err := s3.VerifyAudit(ctx, models.VerifyOptions{Full: true}); err != nil || r.OK || !strings.Contains(r.Problem, "not configured") {
		t.Fatalf("verify without the old key: %+v %v", r, err)
	}
	// A forged hand-over (to a key the attacker chose) does not verify.
	testdb.AllowTampering(t, s2)
	if err := s2.DB().Exec("UPDATE audit_entries SET details = ? WHERE id = ?", `{"from":"`+from+`","to":"0000000000000000"}`, entry).Error; err != nil {
		t.Fatal(err)
	}
	if r, err := s2.VerifyAudit(ctx, models.VerifyOptions{Full: true}); err != nil || r.OK || r.BadEntry != entry {
		t.Fatalf("forged hand-over: %+v %v", r, err)
	}
}

// The background check is incremental and, on PostgreSQL, runs on one
// instance at a time.
func TestAuditCheckIsIncrementalAndExclusive(t *testing.T) {
	t.Parallel()
	dsn := testdb.DSN(t)
	s, _ := openAnchored(t, dsn, testdb.AuditKey)
	seedLog(t, s)
	h, err := s.SealAuditHead(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RecordAccessDenied(ctx, models.SystemActor(), "/x"); err != nil {
		t.Fatal(err)
	}
	r, ran, err := s.CheckAudit(ctx)
	if err != nil || !ran || !r.OK || r.Full || r.From != h.Entry || r.Entries != 1 {
		t.Fatalf("check: %+v ran=%v %v", r, ran, err)
	}
	last, err := s.LastVerification(ctx)
	if err != nil || last == nil || !last.OK || last.Head != h.Entry+1 {
		t.Fatalf("recorded verification %+v %v", last, err)
	}
	if s.Engine() != models.Postgres {
		return // one process owns a SQLite file: nothing to share
	}
	// Another instance holds the lock: this one does not run the check.
	other, _ := openAnchored(t, dsn, testdb.AuditKey)
	sqlDB, err := other.DB().DB()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", other.AuditCheckLock()); err != nil {
		t.Fatal(err)
	}
	if _, ran, err := s.CheckAudit(ctx); err != nil || ran {
		t.Fatalf("check while another instance holds the lock: ran=%v %v", ran, err)
	}
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock($1)", other.AuditCheckLock()); err != nil {
		t.Fatal(err)
	}
	if _, ran, err := s.CheckAudit(ctx); err != nil || !ran {
		t.Fatalf("check after the lock is free: ran=%v %v", ran, err)
	}
}

// RunAuditChecker (serve's periodic check) verifies at once, records the
// result for the audit page, and returns when its context ends.
func TestRunAuditCheckerChecksAtOnceAndStops(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := openAnchored(t, testdb.DSN(t), testdb.AuditKey)
	seedLog(t, s)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.RunAuditChecker(runCtx, time.Hour) // the first check is not on the ticker
	}()
	var last *models.ChainReport
	for deadline := time.Now().Add(20 * time.Second); last == nil; time.Sleep(10 * time.Millisecond) {
		var err error
		if last, err = s.LastVerification(ctx); err != nil {
			t.Fatal(err)
		}
		if last == nil && time.Now().After(deadline) {
			t.Fatal("RunAuditChecker recorded no verification")
		}
	}
	if !last.OK || last.Head == 0 {
		t.Fatalf("recorded verification of a clean log: %+v", last)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("RunAuditChecker did not return after its context ended")
	}
}

// --anchor accepts the log lines of "audit head signed" as a copy.
func TestAuditVerifiesAgainstLogLines(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	opt := testdb.Options(testdb.NewClock())
	opt.AuditAnchor = filepath.Join(t.TempDir(), "anchor")
	opt.Logger = slogText(&logs)
	s := testdb.OpenDSN(t, testdb.DSN(t), opt)
	seedLog(t, s)
	if _, err := s.SealAuditHead(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "keydesk.log")
	if err := os.WriteFile(copyPath, []byte("level=INFO msg=unrelated\n"+logs.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := s.VerifyAudit(ctx, models.VerifyOptions{Full: true, Anchor: copyPath})
	if err != nil || !r.OK || r.AnchorHeads != 1 {
		t.Fatalf("verify against log lines: %+v %v (log %q)", r, err, logs.String())
	}
	// The log copy notices a cut database just as the file does.
	testdb.AllowTampering(t, s)
	if n := testdb.Must(t, s.DB().Exec("DELETE FROM audit_entries WHERE id >= 5")).RowsAffected; n == 0 {
		t.Fatal("nothing was cut from the log")
	}
	if r, err := s.VerifyAudit(ctx, models.VerifyOptions{Anchor: copyPath}); err != nil || r.OK || !strings.Contains(r.Problem, "truncated") {
		t.Fatalf("truncated log against the log copy: %+v %v", r, err)
	}
}

func slogText(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// loseHeadAtCommit seeds s's log, signs a head, appends an entry and signs
// the head over it, then deletes that head's checkpoint row: the state a
// transaction that did not commit after writing its anchor line leaves.
// It returns the lost head.
func loseHeadAtCommit(t *testing.T, s *models.Store) *models.AuditHead {
	t.Helper()
	seedLog(t, s)
	if _, err := s.SealAuditHead(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordAccessDenied(ctx, models.SystemActor(), "/lost"); err != nil {
		t.Fatal(err)
	}
	lost, err := s.SealAuditHead(ctx, "test")
	if err != nil || lost == nil {
		t.Fatalf("seal: %v %v", lost, err)
	}
	testdb.AllowTampering(t, s)
	if err := s.DB().Exec("DELETE FROM audit_checkpoints WHERE seq = ?", lost.Seq).Error; err != nil {
		t.Fatal(err)
	}
	return lost
}

// A head is written to the anchor (fsynced) inside the transaction that
// inserts its checkpoint row; when that transaction does not commit (the
// process stops, or the commit fails), the anchor holds a head the
// database lacks. Nothing was tampered with: the head signs an entry that
// is in the log, so verification accepts it, and the next seal restores
// its row instead of writing a second head with the same sequence number.
func TestAuditHeadLostAtCommitIsRestored(t *testing.T) {
	t.Parallel()
	dsn := testdb.DSN(t)
	s, anchor := openAnchored(t, dsn, testdb.AuditKey)
	lost := loseHeadAtCommit(t, s)
	verify := func(s *models.Store, when string) {
		t.Helper()
		for _, full := range []bool{false, true} {
			r, err := s.VerifyAudit(ctx, models.VerifyOptions{Full: full})
			if err != nil || !r.OK {
				t.Fatalf("%s: verify (full %v): %+v %v", when, full, r, err)
			}
		}
	}
	// A restart, before anything else is signed.
	s2 := testdb.OpenDSN(t, dsn, func() models.Options {
		opt := testdb.Options(testdb.NewClock())
		opt.AuditKey, opt.AuditAnchor = testdb.AuditKey, anchor
		return opt
	}())
	verify(s2, "after the lost commit")
	// The running instance and the restarted one both sign on.
	for i, st := range []*models.Store{s, s2} {
		if err := st.RecordAccessDenied(ctx, models.SystemActor(), "/after"); err != nil {
			t.Fatal(err)
		}
		h, err := st.SealAuditHead(ctx, "test")
		if err != nil || h == nil {
			t.Fatalf("instance %d: seal after the lost commit: %v %v", i, h, err)
		}
		verify(st, fmt.Sprintf("instance %d after its seal", i))
	}
	ls := anchorLines(t, anchor)
	for i := 1; i < len(ls); i++ {
		if ls[i].Seq != ls[i-1].Seq+1 {
			t.Fatalf("anchor line %d has seq %d after %d", i+1, ls[i].Seq, ls[i-1].Seq)
		}
	}
	var seqs []uint64
	testdb.Must(t, s.DB().Table("audit_checkpoints").Where("seq IS NOT NULL").Order("seq").Pluck("seq", &seqs))
	if len(seqs) != len(ls) || seqs[len(seqs)-1] != ls[len(ls)-1].Seq {
		t.Fatalf("database heads %v, anchor heads up to seq %d (%d lines)", seqs, ls[len(ls)-1].Seq, len(ls))
	}

	// Only the anchor's newest head may be missing: an older one missing
	// is still a deleted checkpoint.
	if err := s.DB().Exec("DELETE FROM audit_checkpoints WHERE seq = ?", lost.Seq).Error; err != nil {
		t.Fatal(err)
	}
	if r, err := s2.VerifyAudit(ctx, models.VerifyOptions{Full: true}); err != nil || r.OK || !strings.Contains(r.Problem, "missing from the database") {
		t.Fatalf("an older head deleted from the database: %+v %v", r, err)
	}
}

// The lost commit of TestAuditHeadLostAtCommitIsRestored with another
// instance (PostgreSQL, each instance with its own anchor, as serve runs
// them): before the first instance seals again, the second signs the
// sequence number the lost head had, under its own anchor. The lost head
// is then not restored (its number is taken); its entry is in the log and
// its anchor line stays, so every instance's verification passes, and the
// next heads follow on without a gap or a second head of one number.
func TestAuditHeadLostWhileAnotherInstanceSigns(t *testing.T) {
	if testdb.Engine() != models.Postgres {
		t.Skip("multi-instance tests run in the PostgreSQL suite (KEYDESK_TEST_DB); a SQLite file has one instance")
	}
	t.Parallel()
	dsn := testdb.DSN(t)
	a, anchorA := openAnchored(t, dsn, testdb.AuditKey)
	b, anchorB := openAnchored(t, dsn, testdb.AuditKey)
	lost := loseHeadAtCommit(t, a)
	// The second instance appends and signs: it takes the lost head's number.
	if err := b.RecordAccessDenied(ctx, models.SystemActor(), "/other"); err != nil {
		t.Fatal(err)
	}
	hb, err := b.SealAuditHead(ctx, "test")
	if err != nil || hb == nil || hb.Seq != lost.Seq || hb.Anchor == lost.Anchor {
		t.Fatalf("second instance's seal: %+v %v; want seq %d under another anchor than %q", hb, err, lost.Seq, lost.Anchor)
	}
	verify := func(when string) {
		t.Helper()
		for i, st := range []*models.Store{a, b} {
			for _, full := range []bool{false, true} {
				r, err := st.VerifyAudit(ctx, models.VerifyOptions{Full: full})
				if err != nil || !r.OK {
					t.Fatalf("%s: instance %d verify (full %v): %+v %v", when, i, full, r, err)
				}
			}
		}
	}
	verify("after the other instance signed the lost head's number")
	// Both sign on; a restart of the first verifies its anchor too.
	for i, st := range []*models.Store{a, b, a} {
		if err := st.RecordAccessDenied(ctx, models.SystemActor(), "/after"); err != nil {
			t.Fatal(err)
		}
		if h, err := st.SealAuditHead(ctx, "test"); err != nil || h == nil {
			t.Fatalf("seal %d after the lost commit: %v %v", i, h, err)
		}
	}
	verify("after both signed on")
	a2 := testdb.OpenDSN(t, dsn, func() models.Options {
		opt := testdb.Options(testdb.NewClock())
		opt.AuditKey, opt.AuditAnchor = testdb.AuditKey, anchorA
		return opt
	}())
	if r, err := a2.VerifyAudit(ctx, models.VerifyOptions{Full: true}); err != nil || !r.OK {
		t.Fatalf("the first instance restarted: %+v %v", r, err)
	}
	var seqs []uint64
	testdb.Must(t, a.DB().Table("audit_checkpoints").Where("seq IS NOT NULL").Order("seq").Pluck("seq", &seqs))
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("database heads %v: not one head a number", seqs)
		}
	}
	if n := len(anchorLines(t, anchorA)) + len(anchorLines(t, anchorB)); n != len(seqs)+1 {
		t.Fatalf("anchors hold %d heads, the database %d: want the one lost head more", n, len(seqs))
	}
}
