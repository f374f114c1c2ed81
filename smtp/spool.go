package smtp

import (
	"bytes"
	"errors"
	"io"
	"os"
)

// DefaultSpoolThreshold is how much of a message is kept in memory before
// the rest goes to a temporary file, when Config leaves it 0.
const DefaultSpoolThreshold = 64 << 10

// spool holds one message's DATA: the first threshold bytes in memory
// (enough for the header section of nearly every message), the whole
// message in an unlinked temporary file once it grows past that. Memory
// per connection is thus bounded by the threshold plus a copy buffer,
// whatever the message size.
type spool struct {
	dir       string
	threshold int

	head []byte   // the first bytes of the message (all of it when f is nil)
	f    *os.File // the whole message, when it outgrew head
	size int64
}

// fill reads r to its end (or its first error) into the spool.
func (sp *spool) fill(r io.Reader) error {
	if cap(sp.head) < sp.threshold {
		sp.head = make([]byte, 0, sp.threshold)
	}
	sp.head = sp.head[:0]
	for len(sp.head) < sp.threshold {
		n, err := r.Read(sp.head[len(sp.head):sp.threshold])
		sp.head = sp.head[:len(sp.head)+n]
		sp.size += int64(n)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	// Past the threshold: peek one byte to learn whether there is more.
	var one [1]byte
	n, err := io.ReadFull(r, one[:])
	if n == 0 {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	f, err := os.CreateTemp(sp.dir, "keydesk-smtp-*.eml") // mode 0600
	if err != nil {
		return storageError{err}
	}
	// Unlink at once: the open file stays readable, and nothing is left
	// behind if the process dies.
	_ = os.Remove(f.Name())
	sp.f = f
	if _, err := f.Write(sp.head); err != nil {
		return storageError{err}
	}
	if _, err := f.Write(one[:]); err != nil {
		return storageError{err}
	}
	sp.size++
	n64, err := io.Copy(storageWriter{f}, r)
	sp.size += n64
	return err
}

// storageError is a failure of the spool itself (not of the client's
// connection): the client is told 451, try later.
type storageError struct{ err error }

func (e storageError) Error() string { return "smtp spool: " + e.err.Error() }
func (e storageError) Unwrap() error { return e.err }

// storageWriter marks write errors as the spool's own.
type storageWriter struct{ f *os.File }

func (w storageWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil {
		err = storageError{err}
	}
	return n, err
}

// reader returns the whole message from its start.
func (sp *spool) reader() (io.Reader, error) {
	if sp.f == nil {
		return bytes.NewReader(sp.head), nil
	}
	if _, err := sp.f.Seek(0, io.SeekStart); err != nil {
		return nil, storageError{err}
	}
	return io.LimitReader(sp.f, sp.size), nil
}

// close releases the temporary file; head is kept for reuse.
func (sp *spool) close() {
	if sp.f != nil {
		_ = sp.f.Close()
		sp.f = nil
	}
	sp.size = 0
}
