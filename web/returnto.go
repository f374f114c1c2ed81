package web

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
)

// maxReturnPath bounds a return path (a long one is never a real page).
const maxReturnPath = 2048

// SafeReturnPath accepts a page to return to after sign-in only when it is
// a path on this site: it starts with one "/", names no scheme or host, and
// has no backslash or control character. This refuses open redirects such
// as "//evil.example", "/\evil.example" (browsers read "\" as "/"),
// "https://evil.example" and "javascript:…". The sign-in pages themselves
// are refused too (no loop).
func SafeReturnPath(raw string) (string, bool) {
	if raw == "" || len(raw) > maxReturnPath || raw[0] != '/' || strings.HasPrefix(raw, "//") {
		return "", false
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c == '\\' || c < 0x20 || c == 0x7f {
			return "", false
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") {
		return "", false
	}
	// A decoded path that starts with "//" or "/\" is refused as well, for
	// any code that later builds a URL from the decoded form.
	if strings.HasPrefix(u.Path, "/\\") {
		return "", false
	}
	switch u.Path {
	case "/login", "/logout", "/signup":
		return "", false
	}
	if strings.HasPrefix(u.Path, "/static/") || strings.HasPrefix(u.Path, "/v3/") {
		return "", false
	}
	return u.RequestURI(), true
}

// LoginURL is the sign-in page that returns to the page asked for.
func LoginURL(returnTo string) string {
	if p, ok := SafeReturnPath(returnTo); ok && p != "/" {
		return "/login?next=" + url.QueryEscape(p)
	}
	return "/login"
}

// DropEmptyQuery redirects a GET whose query carries empty parameters
// (a filter form submits every field) to the same URL without them, so
// list and filter URLs stay short and shareable.
func DropEmptyQuery(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.Method != http.MethodGet || r.URL.RawQuery == "" {
			return next(c)
		}
		parts := strings.Split(r.URL.RawQuery, "&")
		kept := parts[:0:0]
		for _, p := range parts {
			if k, v, _ := strings.Cut(p, "="); k != "" && v != "" {
				kept = append(kept, p)
			}
		}
		if len(kept) == len(parts) {
			return next(c)
		}
		u := r.URL.Path
		if len(kept) > 0 {
			u += "?" + strings.Join(kept, "&")
		}
		return c.Redirect(http.StatusSeeOther, u)
	}
}
