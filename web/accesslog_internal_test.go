package web

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// The access log's own formatter (issue 13 #1) writes exactly the line
// slog's text handler writes for the same request, quoting included.
func TestAccessLineIsSlogsTextLine(t *testing.T) {
	at := time.Date(2026, 12, 6, 9, 31, 45, 896_512_000, time.UTC)
	for _, tt := range []time.Time{at, at.Add(time.Second), at.Add(104 * time.Millisecond), at.In(time.FixedZone("X", 5400)), at.Add(24 * time.Hour).In(time.FixedZone("Y", -3600))} {
		var want, got bytes.Buffer
		h := slog.NewTextHandler(&want, nil)
		if err := h.Handle(context.Background(), slog.NewRecord(tt, slog.LevelInfo, "request", 0)); err != nil {
			t.Fatal(err)
		}
		writeAccessLine(&got, tt, slog.LevelInfo, "x", "GET", "/", 200, time.Millisecond, "::1")
		if !strings.HasPrefix(got.String(), strings.TrimSuffix(want.String(), "\n")+" ") {
			t.Errorf("time %v:\n got %s\nwant %s", tt, got.String(), want.String())
		}
	}
	for _, path := range []string{"/v3/REST/apikey", "/a b", `/q"uote`, "/eq=ual", "/back\\slash", "/tab\there", "/ünï", "/\u00a0nbsp", "/bad\xffutf8", "", "/<>&"} {
		for _, level := range []slog.Level{slog.LevelInfo, slog.LevelError, slog.LevelDebug} {
			var want, got bytes.Buffer
			h := slog.NewTextHandler(&want, &slog.HandlerOptions{Level: slog.LevelDebug})
			r := slog.NewRecord(at, level, "request", 0)
			r.AddAttrs(slog.String("request_id", "LbIsWSvN-3q6m"), slog.String("method", "GET"), slog.String("path", path),
				slog.Int("status", 200), slog.Duration("latency", 5540*time.Nanosecond), slog.String("ip", "::1"))
			if err := h.Handle(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			writeAccessLine(&got, at, level, "LbIsWSvN-3q6m", "GET", path, 200, 5540*time.Nanosecond, "::1")
			if got.String() != want.String() {
				t.Errorf("path %q:\n got %s\nwant %s", path, got.String(), want.String())
			}
		}
	}
}

// Every byte, alone and inside a path, is quoted (or not) as slog's text
// handler quotes it: the ASCII table of textNeedsQuoting must agree with
// its rules byte for byte.
func TestAccessLineQuotesEveryByteAsSlog(t *testing.T) {
	at := time.Date(2026, 12, 7, 4, 30, 0, 0, time.UTC)
	for c := 0; c < 256; c++ {
		for _, path := range []string{string([]byte{byte(c)}), "/v3/" + string([]byte{byte(c)}) + "/x", "/é" + string([]byte{byte(c)})} {
			var want, got bytes.Buffer
			h := slog.NewTextHandler(&want, nil)
			r := slog.NewRecord(at, slog.LevelInfo, "request", 0)
			r.AddAttrs(slog.String("request_id", "id"), slog.String("method", "GET"), slog.String("path", path),
				slog.Int("status", 200), slog.Duration("latency", time.Millisecond), slog.String("ip", "::1"))
			if err := h.Handle(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			writeAccessLine(&got, at, slog.LevelInfo, "id", "GET", path, 200, time.Millisecond, "::1")
			if got.String() != want.String() {
				t.Errorf("byte %#x in %q:\n got %s\nwant %s", c, path, got.String(), want.String())
			}
		}
	}
}
