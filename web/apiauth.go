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
	m, fast := decodeStdBase64(out[:], enc)
	if !fast {
		// Anything but plain padded base64 (line breaks, which the
		// standard decoder skips, or an error): the standard decoder
		// answers.
		n := copy(in[:], enc)
		var err error
		if m, err = base64.StdEncoding.Decode(out[:], in[:n]); err != nil {
			return "", "", false
		}
	}
	if user, pass, ok = strings.Cut(string(out[:m]), ":"); !ok {
		return "", "", false
	}
	return user, pass, true
}

// base64Std is the value of each byte of the standard base64 alphabet;
// 0xff for the others.
var base64Std = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/" {
		t[c] = byte(i)
	}
	return t
}()

// decodeStdBase64 decodes src, standard padded base64 with nothing else
// in it, into dst (room for len(src)/4*3 bytes), as
// base64.StdEncoding.Decode would (the unused bits of the last quantum are
// not checked: StdEncoding is not Strict). For any other src it reports
// false and has decoded nothing of use: the caller asks the standard
// decoder, which may yet accept it (line breaks) or says what is wrong.
// It reads the string in place, four bytes a step, where the standard
// decoder wants a copy as bytes and costs about three times as many
// instructions (issue 13 #1: a request's credentials).
func decodeStdBase64(dst []byte, src string) (n int, ok bool) {
	if len(src) == 0 || len(src)%4 != 0 || len(dst) < len(src)/4*3 {
		return 0, false
	}
	full := len(src) // the quanta without padding
	if src[full-1] == '=' {
		full -= 4
	}
	for i := 0; i < full; i += 4 {
		a, b, c, d := base64Std[src[i]], base64Std[src[i+1]], base64Std[src[i+2]], base64Std[src[i+3]]
		if (a|b|c|d)&0xc0 != 0 {
			return 0, false
		}
		v := uint32(a)<<18 | uint32(b)<<12 | uint32(c)<<6 | uint32(d)
		dst[n], dst[n+1], dst[n+2] = byte(v>>16), byte(v>>8), byte(v)
		n += 3
	}
	if full == len(src) {
		return n, true
	}
	// The padded quantum: three characters and "=", or two and "==".
	q := src[full:]
	a, b, c := base64Std[q[0]], base64Std[q[1]], byte(0)
	if q[2] != '=' {
		c = base64Std[q[2]]
	}
	if (a|b|c)&0xc0 != 0 {
		return 0, false
	}
	v := uint32(a)<<18 | uint32(b)<<12 | uint32(c)<<6
	dst[n] = byte(v >> 16)
	if q[2] == '=' {
		return n + 1, true
	}
	dst[n+1] = byte(v >> 8)
	return n + 2, true
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
