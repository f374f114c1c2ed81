package models

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// anchorFile is the append-only file of signed heads outside the database
// (KEYDESK_AUDIT_ANCHOR): one JSON object a line, 0600, fsynced after each
// line. A nil *anchorFile (no path configured) writes nothing; heads then
// go to the log line and the database only.
type anchorFile struct {
	path string
	mu   sync.Mutex
	f    *os.File
	aid  string
	last *AuditHead
}

func newAnchorFile(path string) *anchorFile {
	if path == "" {
		return nil
	}
	return &anchorFile{path: path}
}

// open opens the file for appending, learning its anchor ID from its last
// head, or choosing a new one for a new or empty file.
func (a *anchorFile) open() error {
	if a.f != nil {
		return nil
	}
	rd, err := readAnchor(a.path, true)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(a.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open the audit anchor: %w", err)
	}
	a.f = f
	if rd != nil && rd.id != "" {
		a.aid = rd.id
		last := rd.heads[len(rd.heads)-1]
		a.last = &last
		return nil
	}
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	a.aid = hex.EncodeToString(b)
	return nil
}

// id is the anchor ID heads are signed with ("" without an anchor file).
func (a *anchorFile) id(uint64) (string, error) {
	if a == nil {
		return "", nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.open(); err != nil {
		return "", err
	}
	return a.aid, nil
}

// write appends one head and syncs it to disk.
func (a *anchorFile) write(h *AuditHead) error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.open(); err != nil {
		return err
	}
	line, err := json.Marshal(h)
	if err != nil {
		return err
	}
	if _, err := a.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("write the audit anchor %s: %w", a.path, err)
	}
	if err := a.f.Sync(); err != nil {
		return fmt.Errorf("sync the audit anchor %s: %w", a.path, err)
	}
	hc := *h
	a.last = &hc
	return nil
}

// newest returns the newest heads the file holds (read from its tail).
func (a *anchorFile) newest() ([]AuditHead, error) {
	if a == nil {
		return nil, nil
	}
	rd, err := readAnchor(a.path, true)
	if err != nil {
		return nil, err
	}
	return rd.heads, nil
}

// newestHead is the newest head this anchor holds (nil when none).
func (a *anchorFile) newestHead() *AuditHead {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.last != nil {
		h := *a.last
		return &h
	}
	if rd, err := readAnchor(a.path, true); err == nil && len(rd.heads) > 0 {
		h := rd.heads[len(rd.heads)-1]
		return &h
	}
	return nil
}

func (a *anchorFile) close() error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return nil
	}
	err := a.f.Close()
	a.f = nil
	return err
}

// anchorRead is what an anchor file holds.
type anchorRead struct {
	path      string
	id        string // the anchor ID of its heads ("" when it holds none)
	heads     []AuditHead
	lines     []int // line number of each head (0 when read from the tail)
	newestSeq uint64
	problem   string
}

const anchorTail = 64 << 10

// readAnchor parses an anchor: JSON lines as keydesk writes them, or log
// lines of "audit head signed" (a copy kept by a log pipeline). Other lines
// of a log are skipped; a JSON line that does not parse is a problem (an
// anchor cut in the middle of a line, or edited). With tail, only the last
// 64 KiB are read: enough for the newest heads.
func readAnchor(path string, tail bool) (*anchorRead, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rd := &anchorRead{path: path}
	var r io.Reader = f
	skipFirst := false
	if tail {
		if st, err := f.Stat(); err == nil && st.Size() > anchorTail {
			if _, err := f.Seek(st.Size()-anchorTail, io.SeekStart); err != nil {
				return nil, err
			}
			skipFirst = true
		}
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if skipFirst {
			skipFirst = false
			continue
		}
		if len(line) == 0 {
			continue
		}
		var h AuditHead
		switch {
		case line[0] == '{':
			if err := json.Unmarshal(line, &h); err != nil || h.Seq == 0 || h.Sig == "" {
				if rd.problem == "" {
					rd.problem = fmt.Sprintf("the anchor %s has a damaged line %d: it was cut or edited", path, n)
				}
				continue
			}
		case bytes.Contains(line, []byte(`msg="audit head signed"`)):
			var ok bool
			if h, ok = parseHeadLogLine(string(line)); !ok {
				continue
			}
		default:
			continue
		}
		if rd.id != "" && h.Anchor != rd.id && rd.problem == "" {
			rd.problem = fmt.Sprintf("the anchor %s mixes heads of two anchors (%s and %s) at line %d", path, rd.id, h.Anchor, n)
		}
		if h.Seq <= rd.newestSeq && rd.problem == "" {
			rd.problem = fmt.Sprintf("the anchor %s goes back from head seq %d to %d at line %d: it was edited", path, rd.newestSeq, h.Seq, n)
		}
		rd.id = h.Anchor
		rd.newestSeq = max(rd.newestSeq, h.Seq)
		rd.heads = append(rd.heads, h)
		if tail {
			rd.lines = append(rd.lines, 0)
		} else {
			rd.lines = append(rd.lines, n)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read the audit anchor %s: %w", path, err)
	}
	return rd, nil
}

// parseHeadLogLine reads the key=value pairs of a slog text line.
func parseHeadLogLine(line string) (AuditHead, bool) {
	var h AuditHead
	kv := map[string]string{}
	for _, f := range strings.Fields(line) {
		if k, v, ok := strings.Cut(f, "="); ok {
			kv[k] = strings.Trim(v, `"`)
		}
	}
	var err1, err2, err3 error
	h.Seq, err1 = strconv.ParseUint(kv["seq"], 10, 64)
	h.Entry, err2 = strconv.ParseUint(kv["entry"], 10, 64)
	h.At, err3 = time.Parse(time.RFC3339Nano, kv["at"])
	h.Link, h.Hash, h.KeyID, h.Anchor, h.Sig = kv["link"], kv["hash"], kv["kid"], kv["anchor"], kv["sig"]
	return h, err1 == nil && err2 == nil && err3 == nil && h.Sig != ""
}

// readAnchorFor reads the anchor to verify against: path, or the store's
// own. A missing own anchor is fine while the database holds no head
// (checked by the caller); a missing named one is an error.
func (s *Store) readAnchorFor(path string, tail bool) (*anchorRead, error) {
	own := path == ""
	if own {
		if s.anchor == nil {
			return &anchorRead{}, nil
		}
		path = s.anchor.path
	}
	rd, err := readAnchor(path, tail)
	switch {
	case err == nil:
		return rd, nil
	case errors.Is(err, os.ErrNotExist) && own && s.engine == Postgres:
		// Each instance keeps its own anchor: a new instance has none yet.
		return &anchorRead{}, nil
	case errors.Is(err, os.ErrNotExist) && own:
		// One SQLite file, one anchor beside it: the check below reports a
		// missing anchor when the database holds signed heads.
		return &anchorRead{path: path}, nil
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("the anchor %s does not exist", path)
	}
	return nil, err
}
