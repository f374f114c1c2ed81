// Package views holds keydesk's templ components, their props and the
// context accessors they read. Views display; they never query.
package views

import (
	"context"
	"time"

	"github.com/a-h/templ"

	"keydesk/models"
)

type ctxKey int

const (
	csrfKey ctxKey = iota
	principalKey
	assetKey
	nowKey
	returnKey
	zoneKey
)

// WithZone stores the reader's time zone (their saved choice).
func WithZone(ctx context.Context, loc *time.Location) context.Context {
	return context.WithValue(ctx, zoneKey, loc)
}

// Zone is the reader's time zone: UTC when they are signed out or chose none.
func Zone(ctx context.Context) *time.Location {
	if loc, ok := ctx.Value(zoneKey).(*time.Location); ok && loc != nil {
		return loc
	}
	return time.UTC
}

// ZoneName is the reader's time zone's IANA name ("UTC", "Europe/Paris").
func ZoneName(ctx context.Context) string { return Zone(ctx).String() }

// WithReturnPath stores the page's own path (GET pages only, without the
// query: a page never echoes it outside its own forms), so a form in the
// layout can come back to it.
func WithReturnPath(ctx context.Context, path string) context.Context {
	return context.WithValue(ctx, returnKey, path)
}

// ReturnPath is the page's own path, or "" when it has none (a POST's answer).
func ReturnPath(ctx context.Context) string {
	s, _ := ctx.Value(returnKey).(string)
	return s
}

// WithCSRF stores the CSRF token forms must carry.
func WithCSRF(ctx context.Context, token string) context.Context {
	return context.WithValue(ctx, csrfKey, token)
}

// CSRF is the token for the current request's forms.
func CSRF(ctx context.Context) string {
	s, _ := ctx.Value(csrfKey).(string)
	return s
}

// WithPrincipal stores the signed-in user for the layout.
func WithPrincipal(ctx context.Context, p *models.Principal) context.Context {
	return context.WithValue(ctx, principalKey, p)
}

// Principal is the signed-in user, or nil.
func Principal(ctx context.Context) *models.Principal {
	p, _ := ctx.Value(principalKey).(*models.Principal)
	return p
}

// AssetFunc maps a static file name to its versioned URL.
type AssetFunc func(name string) string

// WithAssets stores the static URL mapper.
func WithAssets(ctx context.Context, f AssetFunc) context.Context {
	return context.WithValue(ctx, assetKey, f)
}

// Asset is the cache-busting URL of a static file.
func Asset(ctx context.Context, name string) string {
	if f, ok := ctx.Value(assetKey).(AssetFunc); ok {
		return f(name)
	}
	return "/static/" + name
}

// Nonce is the request's CSP nonce, for script tags.
func Nonce(ctx context.Context) string { return templ.GetNonce(ctx) }
