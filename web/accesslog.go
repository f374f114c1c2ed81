package web

import (
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"
)

var accessLines = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// writeAccessLine writes one request line exactly as slog's TextHandler
// writes the "request" record of logRequests (time, level, msg, then the
// attributes, values quoted where slog quotes them), in one Write.
func writeAccessLine(w io.Writer, now time.Time, level slog.Level, id, method, path string, status int, latency time.Duration, ip string) {
	bp := accessLines.Get().(*[]byte)
	b := append((*bp)[:0], "time="...)
	b = appendLogTime(b, now)
	b = append(b, " level="...)
	b = append(b, level.String()...)
	b = append(b, " msg=request request_id="...)
	b = appendTextValue(b, id)
	b = append(b, " method="...)
	b = appendTextValue(b, method)
	b = append(b, " path="...)
	b = appendTextValue(b, path)
	b = append(b, " status="...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, " latency="...)
	b = append(b, latency.String()...)
	b = append(b, " ip="...)
	b = appendTextValue(b, ip)
	b = append(b, '\n')
	_, _ = w.Write(b)
	if cap(b) <= 4<<10 {
		*bp = b
		accessLines.Put(bp)
	}
}

// logSecond is the formatted time of one second: date and time up to the
// seconds, and the zone, which only change once a second.
type logSecond struct {
	unix         int64
	prefix, zone string
}

var lastLogSecond atomic.Pointer[logSecond]

// appendLogTime appends now as slog does (RFC 3339 with milliseconds,
// local zone), formatting the date and zone once a second only.
func appendLogTime(b []byte, now time.Time) []byte {
	sec := now.Unix()
	ls := lastLogSecond.Load()
	if ls == nil || ls.unix != sec {
		f := now.Format("2006-01-02T15:04:05.000Z07:00")
		ls = &logSecond{unix: sec, prefix: f[:len("2006-01-02T15:04:05")], zone: f[len("2006-01-02T15:04:05.000"):]}
		lastLogSecond.Store(ls)
	}
	ms := now.Nanosecond() / 1e6
	b = append(b, ls.prefix...)
	b = append(b, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
	return append(b, ls.zone...)
}

// appendTextValue appends s as slog's text handler does: as it is, or
// quoted (strconv.Quote) when empty or holding a space, '=', '"', an
// unprintable rune or invalid UTF-8.
func appendTextValue(b []byte, s string) []byte {
	if textNeedsQuoting(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

func textNeedsQuoting(s string) bool {
	if len(s) == 0 {
		return true
	}
	// The common case, printable ASCII throughout (an ID, a method, a
	// path, an address), is one table look-up a byte (issue 13 #1: the
	// branches below cost 1.3 % of a warm API request's instructions).
	i := 0
	for i < len(s) && plainASCII[s[i]] {
		i++
	}
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if c == ' ' || c == '=' || c == '"' || c < 0x20 {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}

// plainASCII marks the bytes that never need quoting on their own: ASCII
// but for controls, space, '=' and '"' (textNeedsQuoting's own rules).
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != ' ' && c != '=' && c != '"'
	}
	return t
}()
