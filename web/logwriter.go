package web

import (
	"bytes"
	"io"
	"sync"
	"time"
)

// LogWriter batches log output: lines are appended to a buffer in memory
// and written by one goroutine every interval, so the access log costs no
// system call per request. A line at WARN or ERROR level is written at
// once (with everything before it, in order), as is the buffer once it
// holds maxBuffered bytes, so a slow output slows the writers down instead
// of growing memory. Close writes what is left; after Close every line is
// written straight through.
type LogWriter struct {
	out     io.Writer
	flushMu sync.Mutex // one write to out at a time, in order
	mu      sync.Mutex // guards buf and closed
	buf     []byte
	spare   []byte // the other buffer (under flushMu)
	closed  bool
	stop    chan struct{}
	done    chan struct{}
}

// maxBuffered is when a Write flushes in its caller rather than waiting.
const maxBuffered = 64 << 10

// NewLogWriter starts writing what is written to it to out every interval.
func NewLogWriter(out io.Writer, every time.Duration) *LogWriter {
	w := &LogWriter{out: out, stop: make(chan struct{}), done: make(chan struct{})}
	go w.loop(every)
	return w
}

func (w *LogWriter) loop(every time.Duration) {
	defer close(w.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			_ = w.Flush()
		}
	}
}

// Write buffers p (one log line, as slog's handlers write them).
func (w *LogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		w.flushMu.Lock()
		defer w.flushMu.Unlock()
		return w.out.Write(p)
	}
	w.buf = append(w.buf, p...)
	now := len(w.buf) >= maxBuffered || urgent(p)
	w.mu.Unlock()
	if now {
		if err := w.Flush(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// urgent reports a line at WARN or ERROR level (slog's text format puts
// the level right after the time).
func urgent(p []byte) bool {
	i := bytes.Index(p[:min(len(p), 80)], []byte(" level="))
	if i < 0 || i+7 >= len(p) {
		return false
	}
	switch p[i+7] {
	case 'W', 'E':
		return true
	}
	return false
}

// Flush writes everything buffered so far.
func (w *LogWriter) Flush() error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.mu.Lock()
	out := w.buf
	w.buf = w.spare[:0] // spare is only touched under flushMu
	w.mu.Unlock()
	var err error
	if len(out) > 0 {
		_, err = w.out.Write(out)
	}
	if cap(out) > 4*maxBuffered {
		out = nil // a rare burst: leave it to the GC
	}
	w.spare = out[:0]
	return err
}

// Close stops the background writes and writes what is left.
func (w *LogWriter) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	return w.Flush()
}
