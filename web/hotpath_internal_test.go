package web

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"
)

// basicAuth decodes on the stack (issue 13 #1) but must answer exactly as
// net/http's Request.BasicAuth for any header.
func TestBasicAuthAnswersAsNetHTTP(t *testing.T) {
	enc := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	key := strings.Repeat("ab", 16)
	headers := []string{
		"Basic " + enc(key+":sk_secret"),
		"basic " + enc(key+":sk_secret"),
		"BASIC " + enc(key+":a:b"),
		"Basic " + enc(key),
		"Basic " + enc(":"),
		"Basic " + enc(""),
		"Basic " + enc(strings.Repeat("u", 190)+":p"), // decodes to 192 bytes: the stack buffer's size
		"Basic " + enc(strings.Repeat("u", 191)+":p"), // past it: the standard path
		"Basic " + enc(strings.Repeat("u", 4096)+":p"),
		"Basic " + enc(key + ":sk")[:10],
		"Basic " + enc(key+":sk") + "=",
		"Basic !!!!",
		"Basic",
		"Basic ",
		"Bearer " + enc(key+":sk"),
		"Basi\u017f " + enc(key+":sk"), // a Unicode fold of "s" is not "s" here
		"Basic  " + enc(key+":sk"),
		"",
	}
	for _, h := range headers {
		r := httptest.NewRequest(http.MethodGet, "/v3/REST/apikey", nil)
		if h != "" {
			r.Header.Set("Authorization", h)
		}
		u, p, ok := basicAuth(r)
		wu, wp, wok := r.BasicAuth()
		if u != wu || p != wp || ok != wok {
			t.Errorf("header %.60q: got (%q, %q, %v), net/http (%q, %q, %v)", h, u, p, ok, wu, wp, wok)
		}
	}
	if testing.AllocsPerRun(100, func() {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", headers[0])
		_, _, _ = basicAuth(r)
	}) > testing.AllocsPerRun(100, func() {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", headers[0])
	})+1 {
		t.Error("basicAuth allocates more than the one string of the credentials")
	}
}

// Request IDs are made in blocks (issue 13 #1): each is unique, has the
// prefix, and is its own header value, which an append cannot spill into
// the next ID.
func TestRequestIDsUniqueAcrossBlocks(t *testing.T) {
	g := newRequestIDs()
	seen := map[string]bool{}
	for i := 0; i < 3*requestIDBlock+5; i++ {
		v := g.next()
		if len(v) != 1 || cap(v) != 1 || !strings.HasPrefix(v[0], g.prefix+"-") || seen[v[0]] {
			t.Fatalf("id %d: %q (cap %d), seen before: %v", i, v, cap(v), seen[v[0]])
		}
		seen[v[0]] = true
	}
	v1, v2 := g.next(), g.next()
	want := v2[0]
	_ = append(v1, "added")
	if v2[0] != want {
		t.Fatal("an append to one ID's value changed the next ID")
	}

	e := echo.New()
	e.Use(g.middleware)
	e.GET("/", func(c echo.Context) error { return c.String(http.StatusOK, requestID(c)) })
	for _, sent := range []string{"", "client-id-1"} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if sent != "" {
			r.Header.Set(echo.HeaderXRequestID, sent)
		}
		w := httptest.NewRecorder()
		e.ServeHTTP(w, r)
		got := w.Header().Get(echo.HeaderXRequestID)
		if got == "" || w.Body.String() != got || (sent != "" && got != sent) || (sent == "" && seen[got]) {
			t.Errorf("sent %q: header %q, handler saw %q", sent, got, w.Body.String())
		}
	}
}

// Requests on several cores take IDs at once, each from its own block
// (issue 13 #1): every ID is still unique, and each is its own header value.
func TestRequestIDsUniqueUnderConcurrency(t *testing.T) {
	g := newRequestIDs()
	const workers, each = 8, 5 * requestIDBlock
	got := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				v := g.next()
				if len(v) != 1 || cap(v) != 1 {
					t.Errorf("an ID's value %q has capacity %d", v, cap(v))
					return
				}
				got[w] = append(got[w], v[0])
			}
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, ids := range got {
		for _, id := range ids {
			if seen[id] {
				t.Fatalf("ID %q handed out twice", id)
			}
			seen[id] = true
		}
	}
	if len(seen) != workers*each {
		t.Fatalf("%d IDs, want %d", len(seen), workers*each)
	}
}

// decodeStdBase64 decodes what it accepts exactly as
// base64.StdEncoding.Decode does, and accepts every padded encoding the
// standard encoder writes: every length up to 64 bytes, every byte value
// at every position of the last quanta, and strings it must leave to the
// standard decoder (which then answers for them).
func TestDecodeStdBase64AgreesWithTheStandardDecoder(t *testing.T) {
	check := func(src string) {
		t.Helper()
		var got, want [256]byte
		n, ok := decodeStdBase64(got[:], src)
		m, err := base64.StdEncoding.Decode(want[:], []byte(src))
		if ok && (err != nil || n != m || string(got[:n]) != string(want[:m])) {
			t.Errorf("%q: decoded %q, the standard decoder %q (%v)", src, got[:n], want[:m], err)
		}
		if !ok && err == nil && !strings.ContainsAny(src, "\r\n") && src != "" {
			t.Errorf("%q: left to the standard decoder, which decodes it", src)
		}
	}
	for l := 0; l <= 64; l++ {
		for _, c := range []int{0, 0x41, 0xfb, 0xff} {
			check(base64.StdEncoding.EncodeToString([]byte(strings.Repeat(string(rune(c&0x7f)), l))))
			b := make([]byte, l)
			for i := range b {
				b[i] = byte(c + i*37)
			}
			check(base64.StdEncoding.EncodeToString(b))
		}
	}
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for c := 0; c < 256; c++ {
		ch := string([]byte{byte(c)})
		for _, src := range []string{
			ch + "AAA", "A" + ch + "AA", "AA" + ch + "A", "AAA" + ch,
			ch + "A==", "A" + ch + "==", "AA" + ch + "=", ch + "AA=",
			"QUJD" + ch + "AAA", "QUJD" + "AA" + ch + "=", "QUJD" + ch + "===",
			ch, ch + ch, ch + "==", "====" + ch + "AAA",
		} {
			check(src)
		}
	}
	for i := 0; i < 64; i++ {
		for j := 0; j < 64; j += 7 {
			check(string([]byte{alphabet[i], alphabet[j]}) + "==")
			check(string([]byte{alphabet[i], alphabet[j], alphabet[(i+j)%64]}) + "=")
		}
	}
	for _, src := range []string{"", "=", "==", "===", "====", "A===", "AA==AA==", "QQ==QQ==", "QUJD\nQUJD", "QUJD\r\n", "QQ=", "QQ", "QUJ"} {
		check(src)
	}
}

// FuzzBasicAuthAnswersAsNetHTTP: for any Authorization value, basicAuth
// answers exactly as net/http's Request.BasicAuth.
// Run: go test -run '^$' -fuzz FuzzBasicAuthAnswersAsNetHTTP -fuzztime 5m ./web/
func FuzzBasicAuthAnswersAsNetHTTP(f *testing.F) {
	enc := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, s := range []string{"Basic " + enc(strings.Repeat("ab", 16)+":sk_secret"), "Basic QQ==", "Basic QR==", "Basic QUJD\nQUJD", "basic " + enc("a:b"), "Basic " + enc("x:y") + "=", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		r := httptest.NewRequest(http.MethodGet, "/v3/REST/apikey", nil)
		r.Header["Authorization"] = []string{h}
		u, p, ok := basicAuth(r)
		wu, wp, wok := r.BasicAuth()
		if u != wu || p != wp || ok != wok {
			t.Errorf("header %q: got (%q, %q, %v), net/http (%q, %q, %v)", h, u, p, ok, wu, wp, wok)
		}
	})
}
