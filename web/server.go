// Package web assembles the Echo application: middleware order, sessions,
// CSRF, security headers with a CSP nonce, guards, the central error
// handler, the Render helper and static files. It never imports handlers.
package web

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/a-h/templ"
	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"keydesk/models"
	"keydesk/views"
)

// Config is the web part of keydesk's configuration, read once in main.
type Config struct {
	// BaseURL is the public URL; https turns on Secure cookies and HSTS.
	BaseURL string
	// SessionKeys are securecookie hash/block key pairs, newest first
	// (hash, block, hash, block, …) so keys can be rotated.
	SessionKeys [][]byte
	// SignupEnabled allows open sign-up.
	SignupEnabled bool
	// TrustProxy takes the client IP from X-Forwarded-For (only behind a
	// proxy that sets it); otherwise the socket's address is used, so a
	// client cannot pick its own IP to dodge throttling.
	TrustProxy bool
	// SMTP is shown next to the keys.
	SMTP views.SMTPInfo
	// SessionMax is the cookie lifetime (the session row enforces it too).
	SessionMax time.Duration
	// Relay takes the messages the Send API accepts: the same relay (or
	// sink) as SMTP. Nil means no relay is configured.
	Relay models.Relay
	// MailRelay takes keydesk's own messages (invitations, password reset
	// links); nil when no relay is configured: nothing is e-mailed.
	MailRelay models.Relay
	// MailFrom is their sender (keydesk@ the base URL's host by default).
	MailFrom string
	Logger   *slog.Logger
	// AccessLog, when set, receives the request lines directly, formatted
	// as Logger's text handler formats them (one line, one Write), without
	// slog's per-record work; serve passes a LogWriter on Logger's output.
	// Logger still decides which levels are on. Nil logs requests through
	// Logger.
	AccessLog io.Writer
	// APIAccessLog is which Mailjet API requests (/v3, /v3.1) get a
	// request line: APILogAll (also "") or APILogErrors, answers of 400
	// and up only (a client that went away, 499, included). The console's
	// requests always get one. Metrics, when on, count every request.
	APIAccessLog string
	// Metrics, when set, observes every request (main serves it on its
	// own listener); nil turns the middleware off.
	Metrics *Metrics
}

// Server is the assembled application.
type Server struct {
	Echo    *echo.Echo
	Store   *models.Store
	Config  Config
	Log     *slog.Logger
	cookies *sessions.CookieStore
	assets  *assets
	secure  bool
	csrfKey []byte
}

// New builds the Echo app with every middleware in order. Routes are added
// by handlers.Register.
func New(cfg Config, store *models.Store) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SessionMax == 0 {
		cfg.SessionMax = models.DefaultSessionMax
	}
	secure := false
	if u, err := url.Parse(cfg.BaseURL); err == nil && u.Scheme == "https" {
		secure = true
	}
	as, err := loadAssets()
	if err != nil {
		return nil, err
	}
	s := &Server{Store: store, Config: cfg, Log: cfg.Logger, assets: as, secure: secure, csrfKey: deriveCSRFKey(cfg.SessionKeys)}
	s.cookies = sessions.NewCookieStore(cfg.SessionKeys...)
	s.cookies.Options = &sessions.Options{
		Path: "/", MaxAge: int(cfg.SessionMax / time.Second), HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode,
	}

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	if cfg.TrustProxy {
		e.IPExtractor = echo.ExtractIPFromXFFHeader()
	} else {
		e.IPExtractor = echo.ExtractIPDirect()
	}
	s.Echo = e

	// Order matters: an ID first so every log line and error page carries
	// it; recovery next so a panic still gets headers and a logged 500;
	// then headers, body limit, CSRF and the session. The Mailjet API
	// (/v3, /v3.1: Basic auth, JSON) gets a lean chain of its own: no
	// session, CSRF, nonce or compression applies there.
	requestIDs := newRequestIDs().middleware
	recoverPanics := middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true, DisablePrintStack: true,
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.Log.Error("panic", "request_id", requestID(c), "err", err, "stack", string(stack))
			return err
		}})
	// 1 MB for everything but the Send API, whose handler reads up to
	// Mailjet's payload limit itself (and answers its mj-0011 error). A
	// request without a body (http.NoBody: most GETs) has nothing to limit.
	bodyLimit := middleware.BodyLimitWithConfig(middleware.BodyLimitConfig{Limit: "1M", Skipper: func(c echo.Context) bool {
		return c.Request().Body == http.NoBody || isSendAPI(c)
	}})
	first := []echo.MiddlewareFunc{requestIDs}
	if cfg.Metrics != nil {
		first = append(first, cfg.Metrics.observe) // outside the log: it sees the final status
	}
	apiLog := s.logRequests
	switch mode, err := ParseAPIAccessLog(cfg.APIAccessLog); {
	case err != nil:
		return nil, fmt.Errorf("web: API access log %w", err)
	case mode == APILogErrors:
		apiLog = func(next echo.HandlerFunc) echo.HandlerFunc { return s.requestLines(next, http.StatusBadRequest) }
	}
	api := append(slices.Clone(first), apiLog, recoverPanics, s.apiHeaders, bodyLimit)
	console := append(slices.Clone(first), s.logRequests, recoverPanics, s.securityHeaders,
		middleware.GzipWithConfig(middleware.GzipConfig{Level: gzipLevel, MinLength: gzipMinLength, Skipper: skipCompression}),
		bodyLimit, s.fetchMetadata, s.loadSession, s.chooseLanguage, s.csrfToken)
	e.Use(chainByPath(api, console))
	// Nothing else may be added with e.Use: chainByPath runs the route's
	// handler itself.

	e.GET("/static/:version/*", s.serveStatic)
	return s, nil
}

// The values of Config.APIAccessLog.
const (
	APILogAll    = "all"
	APILogErrors = "errors"
)

// ParseAPIAccessLog reads a Config.APIAccessLog value as an operator
// writes it: all (also empty) or errors, in any case.
func ParseAPIAccessLog(v string) (string, error) {
	switch m := strings.ToLower(strings.TrimSpace(v)); m {
	case "", APILogAll:
		return APILogAll, nil
	case APILogErrors:
		return m, nil
	}
	return "", fmt.Errorf("%q: use %s or %s", v, APILogAll, APILogErrors)
}

// chainByPath runs the api chain for the Mailjet API's paths and the
// console chain for everything else. Both are built once, here, around a
// last handler that calls the route's handler (c.Handler(): what Echo's
// router found, route middleware included), so a request builds no chain:
// Echo would otherwise wrap every middleware anew for each request.
func chainByPath(api, console []echo.MiddlewareFunc) echo.MiddlewareFunc {
	route := func(c echo.Context) error { return c.Handler()(c) }
	build := func(chain []echo.MiddlewareFunc) echo.HandlerFunc {
		h := route
		for i := len(chain) - 1; i >= 0; i-- {
			h = chain[i](h)
		}
		return h
	}
	apiChain, consoleChain := build(api), build(console)
	dispatch := func(c echo.Context) error {
		if IsAPIPath(c.Request().URL.Path) {
			return apiChain(c)
		}
		return consoleChain(c)
	}
	// Echo passes c.Handler() as next: the chains call it themselves.
	return func(echo.HandlerFunc) echo.HandlerFunc { return dispatch }
}

// Compression: gzip at a middle level (most of the gain of 9 at a fraction
// of its CPU) for bodies worth it; a smaller one fits one TCP packet anyway.
// The audit export is gzipped at the fastest level instead: it streams the
// whole log, and level 5 compressed its CSV at 26 MB/s on one core (about
// 70,000 rows/s, below the export's 100,000 rows/s target) where level 1
// does 130 MB/s for a file 12 % larger (BENCHMARKS.md, "Audit export rate").
const (
	gzipLevel     = 5
	gzipMinLength = 1024
)

// skipCompression decides what is not gzip-compressed:
//   - the Mailjet API under /v3 and /v3.1: its answers are mostly small
//     JSON, and compressing them costs REST throughput (BENCHMARKS.md);
//   - every POST (the audit export is gzipped by its route's GzipExport,
//     at its own level): a POST answered with a page is a
//     secret's one reveal (sign-up, reset, create) or a form sent back with
//     what the user typed. A compressed secret beside reflected input is
//     what BREACH measures, so those are sent as they are; they are
//     no-store and rare, so nothing is lost;
//   - fonts and images, compressed already.
//
// Pages and htmx fragments (GET), CSS and JS are compressed here.
func skipCompression(c echo.Context) bool {
	r := c.Request()
	switch {
	case IsAPIPath(r.URL.Path):
		return true
	case r.Method == http.MethodPost:
		return true // the audit export has its own level: GzipExport
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		return true
	}
	switch path.Ext(r.URL.Path) {
	case ".woff2", ".png", ".ico":
		return true
	}
	return false
}

// GzipExport is the audit export's route middleware: gzip at the fastest
// level (see gzipLevel), for the streaming download only.
var GzipExport = middleware.GzipWithConfig(middleware.GzipConfig{Level: gzip.BestSpeed, MinLength: gzipMinLength})

// skipCSRF exempts static files, probes and the Basic-auth REST and Send
// APIs (no cookies are accepted there, so there is nothing to forge).
func skipCSRF(c echo.Context) bool {
	p := c.Request().URL.Path
	return strings.HasPrefix(p, "/static/") || p == "/healthz" || p == "/readyz" || IsAPIPath(p)
}

// IsAPIPath reports a Mailjet-compatible API path (REST and Send API):
// Basic auth, JSON answers, no session cookie, no CSRF.
func IsAPIPath(p string) bool { return strings.HasPrefix(p, "/v3/") || strings.HasPrefix(p, "/v3.1/") }

func isSendAPI(c echo.Context) bool {
	switch c.Request().URL.Path {
	case "/v3.1/send", "/v3/send", "/v3/send/message":
		return true
	}
	return false
}

// Keys of what the middleware leaves in a request's echo.Context for the
// accessors below (Principal, APIPrincipal, …) and Render.
const (
	principalKey = "principal"         // *models.Principal of the session (loadSession)
	pendingKey   = "pending_principal" // *models.Principal waiting for its second factor
	csrfKey      = "csrf"              // the CSRF token pages embed
	assetsKey    = "assets"            // views.AssetFunc: versioned static URLs
)

// Principal is the signed-in user of the request, or nil.
func Principal(c echo.Context) *models.Principal {
	p, _ := c.Get(principalKey).(*models.Principal)
	return p
}

// Actor is the principal as the actor of a models operation.
func Actor(c echo.Context) models.Actor {
	p := Principal(c)
	if p == nil {
		return models.Actor{Meta: Meta(c)}
	}
	return p.Actor(Meta(c))
}

// Meta is where the request came from, for audit entries.
func Meta(c echo.Context) models.RequestMeta {
	return models.RequestMeta{IP: c.RealIP(), UserAgent: c.Request().UserAgent()}
}

// IsHTMX reports an htmx request (which wants a fragment, not a page).
func IsHTMX(c echo.Context) bool {
	return c.Request().Header.Get("HX-Request") == "true" && c.Request().Header.Get("HX-Boosted") == ""
}

// NoStore forbids caching the response: every response with a secret in it.
func NoStore(c echo.Context) {
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
}

// Redirect sends the browser to path after a successful POST; htmx
// requests get HX-Redirect so the whole page is loaded.
func Redirect(c echo.Context, path string) error {
	if IsHTMX(c) {
		c.Response().Header().Set("HX-Redirect", path)
		return c.NoContent(http.StatusOK)
	}
	return c.Redirect(http.StatusSeeOther, path)
}

// renderBuffers hold pages while they render. A buffer that grew past
// maxPooledRender (a rare huge page) is left to the GC instead of being
// kept alive by the pool.
var renderBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledRender = 256 << 10

// Render writes a templ component with the request's CSRF token, CSP
// nonce, principal and asset URLs in its context. The page is rendered
// into a buffer first and only then are the status and body written: a
// render error sends nothing of the page and goes to the central error
// handler (a whole 500 page, logged with the request ID), never a cut-off
// response under the status the handler meant.
func Render(c echo.Context, status int, comp templ.Component) error {
	ctx := c.Request().Context()
	if tok, ok := c.Get(csrfKey).(string); ok {
		ctx = views.WithCSRF(ctx, tok)
	}
	ctx = views.WithPrincipal(ctx, Principal(c))
	if r := c.Request(); r.Method == http.MethodGet {
		ctx = views.WithReturnPath(ctx, r.URL.Path)
	}
	if f, ok := c.Get(assetsKey).(views.AssetFunc); ok {
		ctx = views.WithAssets(ctx, f)
	}
	buf := renderBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledRender {
			buf.Reset()
			renderBuffers.Put(buf)
		}
	}()
	if err := comp.Render(ctx, buf); err != nil {
		// %v, not %w: whatever the component returned, a page that could
		// not be rendered is a 500, never a status classify gives its cause.
		return fmt.Errorf("render %d page: %v", status, err)
	}
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	c.Response().WriteHeader(status)
	_, err := buf.WriteTo(c.Response())
	return err
}
