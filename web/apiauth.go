package web

import (
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"keydesk/models"
)

// APIKeyAuth authenticates REST requests with HTTP Basic: username = API
// key, password = secret key, checked only through models (VerifyRequest →
// Verify). Console session cookies are never looked at here.
func (s *Server) APIKeyAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		user, pass, ok := basicAuth(c.Request())
		if !ok {
			c.Response().Header()["Www-Authenticate"] = basicChallenge
			return models.ErrVerifyFailed
		}
		p, err := s.Store.VerifyRequest(c.Request().Context(), user, pass, c.RealIP(), models.ChannelAPI)
		if err != nil {
			if err == models.ErrVerifyFailed {
				c.Response().Header()["Www-Authenticate"] = basicChallenge
			}
			return err
		}
		// The principal travels with the context the handler gets, not
		// in Echo's per-request map (which would be made for each request).
		return next(&apiContext{Context: c, principal: p})
	}
}

// basicChallenge is the WWW-Authenticate value of a refused REST request
// (shared, never modified: a handler that changes it sets a new slice).
var basicChallenge = []string{`Basic realm="keydesk"`}

// apiContext is the context an authenticated API handler runs with.
type apiContext struct {
	echo.Context
	principal models.KeyPrincipal
}

// APIPrincipal is the key that authenticated a REST request.
func APIPrincipal(c echo.Context) models.KeyPrincipal {
	if ac, ok := c.(*apiContext); ok {
		return ac.principal
	}
	return models.KeyPrincipal{}
}

// basicAuth is http.Request.BasicAuth (the same answers for every header)
// decoding on the stack, so a request's credentials cost one allocation,
// the string both halves are cut from (issue 13 #1). An unusually long
// header takes the standard library's path.
func basicAuth(r *http.Request) (user, pass string, ok bool) {
	v := r.Header["Authorization"]
	if len(v) == 0 {
		return "", "", false
	}
	auth := v[0]
	const prefix = "Basic "
	if len(auth) < len(prefix) || !asciiEqualFold(auth[:len(prefix)], prefix) {
		return "", "", false
	}
	enc := auth[len(prefix):]
	var in [256]byte
	var out [192]byte // base64.StdEncoding.DecodedLen(len(in))
	if len(enc) > len(in) {
		return r.BasicAuth()
	}
	n := copy(in[:], enc)
	m, err := base64.StdEncoding.Decode(out[:], in[:n])
	if err != nil {
		return "", "", false
	}
	if user, pass, ok = strings.Cut(string(out[:m]), ":"); !ok {
		return "", "", false
	}
	return user, pass, true
}

// asciiEqualFold compares ASCII case-insensitively, as net/http does for
// the scheme (not Unicode folding).
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// JSONBlob answers body as application/json, as c.JSONBlob does, with a
// shared Content-Type value instead of one made for each answer, and
// without c.Blob's look-up of the header it has just set (a canonical
// key check and hash per answer).
func JSONBlob(c echo.Context, status int, body []byte) error {
	res := c.Response()
	res.Header()[echo.HeaderContentType] = jsonContentType
	res.WriteHeader(status)
	_, err := res.Write(body)
	return err
}

var jsonContentType = []string{echo.MIMEApplicationJSON}

// APIError answers in Mailjet's error shape.
func APIError(status int, msg string) error {
	return echo.NewHTTPError(status, msg)
}
