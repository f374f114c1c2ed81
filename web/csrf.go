package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"
)

// CSRF protection for every unsafe method on the console.
//
//  1. Fetch metadata first (no database work): a request a browser marks
//     Sec-Fetch-Site: cross-site or same-site is refused, token or not (a
//     sibling subdomain can plant cookies, so it is not trusted);
//     same-origin is allowed, as the browser vouches for it.
//  2. Otherwise (no fetch metadata, or "none") the request must carry a
//     token (form field _csrf or header X-CSRF-Token) bound to the server
//     side of the browser's state:
//     - signed in: HMAC(key, "session" ‖ session ID). The session ID lives
//     only in the encrypted session cookie and in the database, so a
//     token from another session, or from this browser's previous one,
//     never matches.
//     - signed out (login, sign-up, reset forms): HMAC(key, "pre" ‖ nonce),
//     the nonce in its own HttpOnly, SameSite=Strict cookie (__Host-
//     prefixed under https, so no subdomain can set it). Such a token
//     is refused once the browser is signed in.
//
// The key is derived from the newest session hash key, so no new setting
// is needed; rotating the session keys invalidates open forms.

const (
	csrfField  = "_csrf"
	csrfHeader = "X-CSRF-Token"
)

func (s *Server) preCookieName() string {
	if s.secure {
		return "__Host-keydesk_presession"
	}
	return "keydesk_presession"
}

func unsafeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

// ErrCSRF is every CSRF refusal (wrapped with the reason, for the log):
// the error handler recognises it with errors.Is and answers 403.
var ErrCSRF = errors.New("csrf: request refused")

func errCSRF(why string) error {
	return fmt.Errorf("%w: %s", ErrCSRF, why)
}

// fetchMetadata refuses unsafe requests a browser marks as coming from
// another site (or a sibling subdomain), before any session work.
func (s *Server) fetchMetadata(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if skipCSRF(c) || !unsafeMethod(c.Request().Method) {
			return next(c)
		}
		switch c.Request().Header.Get("Sec-Fetch-Site") {
		case "cross-site", "same-site":
			return errCSRF("request from another site")
		}
		return next(c)
	}
}

// csrfToken runs after loadSession: it sets the token this request's
// forms carry and, for an unsafe method without same-origin fetch
// metadata, checks the one the request carries.
func (s *Server) csrfToken(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if skipCSRF(c) {
			return next(c)
		}
		var want string
		if sid := s.sessionID(c); sid != "" {
			want = s.csrfMAC("session", sid)
		} else {
			want = s.csrfMAC("pre", s.preSessionNonce(c))
		}
		c.Set(csrfKey, want)
		req := c.Request()
		if !unsafeMethod(req.Method) || req.Header.Get("Sec-Fetch-Site") == "same-origin" {
			return next(c)
		}
		got := req.Header.Get(csrfHeader)
		if got == "" {
			got = c.FormValue(csrfField)
		}
		if got == "" {
			return errCSRF("missing token")
		}
		if !hmac.Equal([]byte(got), []byte(want)) {
			return errCSRF("token does not match this session")
		}
		return next(c)
	}
}

// sessionID is the opaque ID of the request's valid session, or "".
func (s *Server) sessionID(c echo.Context) string {
	if Principal(c) == nil {
		return ""
	}
	return s.SessionToken(c)
}

// preSessionNonce returns the signed-out browser's nonce, setting a new
// cookie when it has none (or a malformed one).
func (s *Server) preSessionNonce(c echo.Context) string {
	name := s.preCookieName()
	if ck, err := c.Cookie(name); err == nil && validNonce(ck.Value) {
		return ck.Value
	}
	n := randomID(32)
	c.SetCookie(&http.Cookie{Name: name, Value: n, Path: "/", HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteStrictMode})
	// The check of this very request must not use a nonce it did not carry.
	return n
}

func validNonce(v string) bool {
	b, err := base64.RawURLEncoding.DecodeString(v)
	return err == nil && len(b) == 32
}

func (s *Server) csrfMAC(kind, value string) string {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// deriveCSRFKey derives the token key from the newest session hash key.
func deriveCSRFKey(sessionKeys [][]byte) []byte {
	var k []byte
	if len(sessionKeys) > 0 {
		k = sessionKeys[0]
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte("keydesk csrf token key v1"))
	return m.Sum(nil)
}

// refreshCSRF re-binds the token forms carry after the session changed
// within this request (sign-up or login rendering a page at once).
func (s *Server) refreshCSRF(c echo.Context, sessionID string) {
	if sessionID == "" {
		c.Set(csrfKey, s.csrfMAC("pre", s.preSessionNonce(c)))
		return
	}
	c.Set(csrfKey, s.csrfMAC("session", sessionID))
}
