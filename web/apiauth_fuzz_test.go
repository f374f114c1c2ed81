package web_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/labstack/echo/v4"

	"keydesk/models"
	"keydesk/models/testdb"
	"keydesk/web"
)

// FuzzAPIKeyAuth: whatever Authorization header arrives, Basic-auth parsing
// and the API-key check answer 200, 401 or 429 (never a panic or a 5xx);
// a 401 asks for Basic credentials in Mailjet's error shape; 200 only for
// the real API key and secret, and a username that is not a well-formed
// API key never passes. Each input comes from its own address, so the
// per-address throttle does not hide the rest.
// Run: go test -run '^$' -fuzz FuzzAPIKeyAuth -fuzztime 10m ./web/
func FuzzAPIKeyAuth(f *testing.F) {
	store, _ := testdb.Open(f)
	res, err := store.CreateAccount(f.Context(), models.SignUpInput{AccountName: "Acme", Email: "owner@acme.example", Password: "correct horse battery"},
		models.SystemActor(), models.ActionAccountCreated)
	if err != nil {
		f.Fatal(err)
	}
	key, secret := res.Secret.APIKey, res.Secret.Secret
	s, err := web.New(web.Config{
		BaseURL: "http://127.0.0.1", SignupEnabled: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		SessionKeys: [][]byte{[]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"), []byte("0123456789abcdef0123456789abcdef")},
	}, store)
	if err != nil {
		f.Fatal(err)
	}
	s.Echo.GET("/v3/REST/fuzz", func(c echo.Context) error { return c.String(http.StatusOK, web.APIPrincipal(c).APIKey) }, s.APIKeyAuth)
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	for _, seed := range []string{
		basic(key, secret),
		basic(key, secret[:len(secret)-1]+"x"),
		basic(strings.ToUpper(key), secret),
		basic(key+"0", secret),
		basic(strings.Repeat("a", 4096), secret),
		basic("", ""),
		basic(key, ""),
		basic(key+":"+secret, secret),
		"Basic " + base64.StdEncoding.EncodeToString([]byte(key+secret)),
		"Basic !!!",
		"basic " + base64.StdEncoding.EncodeToString([]byte(key+":"+secret)),
		"Bearer " + secret,
		"",
		"Basic",
		"Basic \x00",
	} {
		f.Add(seed)
	}
	var n atomic.Uint32
	f.Fuzz(func(t *testing.T, authorization string) {
		i := n.Add(1)
		req := httptest.NewRequest(http.MethodGet, "/v3/REST/fuzz", nil)
		req.RemoteAddr = fmt.Sprintf("10.%d.%d.%d:40000", i>>16&255, i>>8&255, i&255)
		if authorization != "" {
			req.Header["Authorization"] = []string{authorization}
		}
		user, pass, parsed := req.BasicAuth()
		rec := httptest.NewRecorder()
		s.Echo.ServeHTTP(rec, req)
		real := parsed && user == key && pass == secret
		switch rec.Code {
		case http.StatusOK:
			if !real || rec.Body.String() != key {
				t.Fatalf("%q passed as %q", authorization, rec.Body.String())
			}
		case http.StatusUnauthorized:
			if real {
				t.Fatal("the real credentials were refused")
			}
			if rec.Header().Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
			var body struct{ StatusCode int }
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.StatusCode != 401 {
				t.Fatalf("401 body %q is not Mailjet's error shape", rec.Body.String())
			}
		case http.StatusTooManyRequests:
			if rec.Header().Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
		default:
			t.Fatalf("%q: status %d %s", authorization, rec.Code, rec.Body.String())
		}
		if rec.Code == http.StatusOK && !models.ValidAPIKeyFormat(user) {
			t.Fatalf("malformed username %q passed", user)
		}
	})
}
