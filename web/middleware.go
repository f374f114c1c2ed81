package web

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"keydesk/models"
	"keydesk/views"
)

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// requestIDs makes request IDs: a random per-process prefix and a
// counter. They only correlate log lines with error pages, so they need
// to be unique, not secret, and cost no system call per request. They are
// made requestIDBlock at a time, as substrings of one string and elements
// of one slice, so a request's ID costs no allocation of its own (issue
// 13 #1): each is handed out as a one-element slice of capacity one, the
// header's value as it is, which an append cannot spill into the next.
// Blocks wait in a sync.Pool, so a request takes its ID from a block of
// its own processor's and two cores serving requests share no lock and
// no written memory; blocks are made idStock at a time (four allocations
// for all of them), under a lock taken once a block. A block the garbage
// collector (or the race detector) drops from the pool leaves its numbers
// unused: IDs are unique, not consecutive.
type requestIDs struct {
	prefix string
	blocks sync.Pool // of *idBlock, each used by one request at a time

	mu    sync.Mutex // guards n and stock
	n     uint64     // IDs numbered so far
	stock []idBlock  // blocks made, not handed out yet
}

// idBlock is a block's IDs not handed out yet.
type idBlock struct{ ids []string }

const requestIDBlock, idStock = 128, 16

func newRequestIDs() *requestIDs { return &requestIDs{prefix: randomID(6)} }

// next returns a fresh ID as a header value.
func (g *requestIDs) next() []string {
	b, _ := g.blocks.Get().(*idBlock)
	if b == nil || len(b.ids) == 0 {
		b = g.block()
	}
	v := b.ids[:1:1]
	b.ids = b.ids[1:]
	g.blocks.Put(b)
	return v
}

// block hands out a new block, making idStock of them when none is left.
func (g *requestIDs) block() *idBlock {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.stock) == 0 {
		var sb strings.Builder
		sb.Grow(idStock * requestIDBlock * (len(g.prefix) + 1 + 6))
		ends := make([]int, idStock*requestIDBlock)
		for i := range ends {
			g.n++
			sb.WriteString(g.prefix)
			sb.WriteByte('-')
			var num [16]byte
			sb.Write(strconv.AppendUint(num[:0], g.n, 36))
			ends[i] = sb.Len()
		}
		all, ids := sb.String(), make([]string, len(ends))
		start := 0
		for i, end := range ends {
			ids[i] = all[start:end]
			start = end
		}
		g.stock = make([]idBlock, idStock)
		for i := range g.stock {
			g.stock[i].ids = ids[i*requestIDBlock : (i+1)*requestIDBlock : (i+1)*requestIDBlock]
		}
	}
	b := &g.stock[0]
	g.stock = g.stock[1:]
	return b
}

// middleware sets the response's X-Request-Id: the client's own when it
// sent one (as Echo's RequestID middleware does), else a new one.
func (g *requestIDs) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header[echo.HeaderXRequestID]
		if len(id) == 0 || id[0] == "" {
			id = g.next()
		} else {
			id = id[:1:1]
		}
		c.Response().Header()[echo.HeaderXRequestID] = id
		return next(c)
	}
}

func requestID(c echo.Context) string {
	if v := c.Response().Header()[echo.HeaderXRequestID]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// logRequests writes one structured line per request. It logs the path,
// never the query string, headers, cookies or body, so no password,
// secret or session ID can reach the log.
func (s *Server) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return s.requestLines(next, 0)
}

// requestLines is logRequests writing the lines of answers of status min
// and up only (Config.APIAccessLog); errors are handled the same.
func (s *Server) requestLines(next echo.HandlerFunc, min int) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		// The connection's own context: a handler may replace the
		// request's, only the client's disconnect cancels this one.
		conn := c.Request().Context()
		err := next(c)
		if err != nil {
			if errors.Is(conn.Err(), context.Canceled) && !c.Response().Committed {
				// Nobody is left to answer: not a server error. 499
				// (nginx's "client closed request") is logged at info.
				// The drivers do not all wrap context.Canceled (SQLite
				// says "interrupted"), so the context decides.
				s.Log.Debug("client closed request", "request_id", requestID(c), "err", err)
				c.Response().Status = StatusClientClosedRequest
			} else {
				c.Error(err)
			}
		}
		status := c.Response().Status
		if status < min {
			return nil
		}
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		if strings.HasPrefix(c.Request().URL.Path, "/static/") && status < 400 {
			level = slog.LevelDebug
		}
		ctx := c.Request().Context()
		if s.Config.AccessLog != nil {
			if s.Log.Enabled(ctx, level) {
				end := time.Now()
				writeAccessLine(s.Config.AccessLog, end, level, requestID(c), c.Request().Method, c.Request().URL.Path, status, end.Sub(start), c.RealIP())
			}
			return nil
		}
		s.Log.LogAttrs(ctx, level, "request",
			slog.String("request_id", requestID(c)),
			slog.String("method", c.Request().Method),
			slog.String("path", c.Request().URL.Path),
			slog.Int("status", status),
			slog.Duration("latency", time.Since(start)),
			slog.String("ip", c.RealIP()),
		)
		return nil
	}
}

// apiHeaders are the security headers of the Mailjet API's answers: JSON
// only, so nothing may load or frame it and no nonce is needed.
func (s *Server) apiHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h["Content-Security-Policy"] = apiCSP
		h["X-Content-Type-Options"] = nosniff
		h["Referrer-Policy"] = referrerPolicy
		if s.secure {
			h["Strict-Transport-Security"] = hsts
		}
		h["Date"] = httpDate(time.Now())
		return next(c)
	}
}

// dateSecond is the Date header of one second.
type dateSecond struct {
	unix  int64
	value []string
}

var lastDate atomic.Pointer[dateSecond]

// httpDate is the Date header for now (RFC 9110 section 6.6.1: an origin
// server with a clock sends one), formatted once a second and shared by
// every answer in that second: net/http formats its own at every answer
// that sets none, about 1,900 instructions, against about 1,200 for one
// more header line (issue 13 #1). The slice is never modified.
func httpDate(now time.Time) []string {
	sec := now.Unix()
	if d := lastDate.Load(); d != nil && d.unix == sec {
		return d.value
	}
	d := &dateSecond{unix: sec, value: []string{now.UTC().Format(http.TimeFormat)}}
	lastDate.Store(d)
	return d.value
}

// Header values shared by every API answer (never modified: a handler
// that changes one sets a new slice).
var (
	apiCSP         = []string{"default-src 'none'; frame-ancestors 'none'"}
	nosniff        = []string{"nosniff"}
	referrerPolicy = []string{"strict-origin-when-cross-origin"}
	hsts           = []string{"max-age=63072000; includeSubDomains"}
)

// securityHeaders sets the CSP with a fresh nonce and the other headers
// on every response, and puts the nonce where templ finds it.
func (s *Server) securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		nonce := randomID(18)
		// Scripts only from this origin with this response's nonce; no
		// plugins, no <base> hijack, no framing (clickjacking).
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'nonce-"+nonce+"'; style-src 'self'; img-src 'self' data:; "+
			"connect-src 'self'; form-action 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		if s.secure {
			h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		req := c.Request()
		c.SetRequest(req.WithContext(templ.WithNonce(req.Context(), nonce)))
		c.Set(assetsKey, views.AssetFunc(s.assets.url))
		return next(c)
	}
}

const (
	cookieName = "keydesk_session"
	cookieKey  = "sid"
)

// loadSession resolves the session cookie to a principal. An unknown,
// expired or revoked session is treated as signed out and its cookie cleared.
func (s *Server) loadSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if skipCSRF(c) {
			return next(c)
		}
		// Console pages differ by session: shared caches must key on the
		// cookie, and nothing shown to a signed-in person is stored at all,
		// so Back after logout (or another user of the browser) finds no
		// private page in any cache.
		c.Response().Header().Add("Vary", "Cookie")
		tok := s.SessionToken(c)
		if tok != "" {
			p, err := s.Store.ResolveSession(c.Request().Context(), tok)
			switch {
			case err == nil && p.Session.Pending:
				// Password right, second factor to come: signed out for
				// every page but the code prompt.
				c.Set(pendingKey, p)
				NoStore(c)
			case err == nil:
				c.Set(principalKey, p)
				NoStore(c)
			case errors.Is(err, models.ErrSessionInvalid):
				s.ClearSession(c)
			default:
				return err
			}
		}
		return next(c)
	}
}

// chooseLanguage picks the console's language: the signed-in person's
// saved choice, else the browser's Accept-Language, else English. The
// views find it in the request context, with the person's time zone. The Mailjet API (JSON for
// programs) always answers in English and is skipped.
func (s *Server) chooseLanguage(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if skipCSRF(c) {
			return next(c)
		}
		SetLanguage(c, LanguageOf(c))
		if p := Principal(c); p != nil {
			// Times are shown in the person's zone (UTC until they choose one).
			req := c.Request()
			c.SetRequest(req.WithContext(views.WithZone(req.Context(), p.User.Zone())))
		}
		return next(c)
	}
}

// LanguageOf is the language a request's pages are written in.
func LanguageOf(c echo.Context) string {
	cat := views.Messages()
	if p := Principal(c); p != nil && cat.Has(p.User.Language) {
		return p.User.Language
	}
	return cat.Match(c.Request().Header.Get("Accept-Language"))
}

// SetLanguage puts lang in the request context for the views (and says it
// in Content-Language). Pages differ by Accept-Language, so caches must
// key on it too.
func SetLanguage(c echo.Context, lang string) {
	loc := views.Messages().Locale(lang)
	h := c.Response().Header()
	h.Set("Content-Language", loc.Lang)
	if !strings.Contains(h.Get("Vary"), "Accept-Language") {
		h.Add("Vary", "Accept-Language")
	}
	req := c.Request()
	c.SetRequest(req.WithContext(views.WithLocale(req.Context(), loc)))
}

// SessionToken is the opaque session ID from the cookie, or "".
func (s *Server) SessionToken(c echo.Context) string {
	sess, err := s.cookies.Get(c.Request(), cookieName)
	if err != nil {
		return ""
	}
	tok, _ := sess.Values[cookieKey].(string)
	return tok
}

// SetSession writes the cookie carrying the opaque session ID (and nothing
// else: no user data, no secret).
func (s *Server) SetSession(c echo.Context, token string) error {
	sess, _ := s.cookies.New(c.Request(), cookieName)
	sess.Values = map[any]any{cookieKey: token}
	if err := sess.Save(c.Request(), c.Response()); err != nil {
		return err
	}
	// A page rendered in this same response carries the new session's token.
	s.refreshCSRF(c, token)
	return nil
}

// SignIn writes the cookie of a session just opened and makes p the
// request's principal, so a page rendered in this same response (the
// sign-up's reveal) shows them signed in.
func (s *Server) SignIn(c echo.Context, token string, p *models.Principal) error {
	if err := s.SetSession(c, token); err != nil {
		return err
	}
	c.Set(principalKey, p)
	return nil
}

// ClearSession expires the cookie.
func (s *Server) ClearSession(c echo.Context) {
	s.refreshCSRF(c, "")
	c.SetCookie(&http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
}

// PendingPrincipal is the person of a session waiting for its second
// factor, or nil.
func PendingPrincipal(c echo.Context) *models.Principal {
	p, _ := c.Get(pendingKey).(*models.Principal)
	return p
}

// RequireSession sends signed-out visitors to the login page and lets
// every signed-in person through, even one who must enrol in two-factor
// sign-in first or whose account is suspended: for logging out, enrolling
// and switching accounts only.
func RequireSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if Principal(c) == nil {
			if c.Request().Method != http.MethodGet {
				return echo.NewHTTPError(http.StatusUnauthorized, "Your session has ended. Log in again.")
			}
			// Back to the page asked for after signing in (deep links).
			return Redirect(c, LoginURL(c.Request().URL.RequestURI()))
		}
		return next(c)
	}
}

// RequireAuth is RequireSession plus the two gates before anything else:
// a person who must turn on two-factor sign-in goes to enrolment, and the
// people of a suspended account see the page that says so.
func RequireAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return RequireSession(func(c echo.Context) error {
		p := Principal(c)
		if p.MustEnrol2FA {
			if c.Request().Method != http.MethodGet {
				return echo.NewHTTPError(http.StatusForbidden, "Turn on two-factor sign-in first.")
			}
			return Redirect(c, "/account/2fa")
		}
		if p.Suspended() {
			return Render(c, http.StatusForbidden, views.SuspendedPage(views.SuspendedProps{AccountName: p.Account.Name, Others: len(p.Memberships) > 1}))
		}
		return next(c)
	})
}

// RequireRole lets only the given roles through; others get a 403 page.
// The role is the person's role in the account the session works in
// (models.Principal.Role); the role sets come from models (members.go).
func RequireRole(roles ...models.Role) echo.MiddlewareFunc {
	return requireRole(roles, func(echo.Context) error {
		return echo.NewHTTPError(http.StatusForbidden, "This page is not available to your role.")
	})
}

// RequireStaffRole guards staff routes. Anyone else signed in gets the 403
// page, and the attempt is audited as a denied access.
func (s *Server) RequireStaffRole(roles ...models.Role) echo.MiddlewareFunc {
	return requireRole(roles, func(c echo.Context) error {
		if err := s.Store.RecordRouteDenied(c.Request().Context(), Actor(c), c.Path(), c.Request().URL.Path); err != nil {
			return err
		}
		return echo.NewHTTPError(http.StatusForbidden, "This page is for keydesk staff.")
	})
}

// requireRole signs visitors in first, then lets roles through and answers
// everyone else with denied.
func requireRole(roles []models.Role, denied func(echo.Context) error) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return RequireAuth(func(c echo.Context) error {
			p := Principal(c)
			for _, r := range roles {
				if p.Role() == r {
					return next(c)
				}
			}
			return denied(c)
		})
	}
}
