package views

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"keydesk/models"
)

// Ago renders a past time relative to now in the reader's language:
// "just now", "4 minutes ago", "il y a 12 jours".
func Ago(ctx context.Context, t, now time.Time) string {
	l := Loc(ctx)
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return l.T("time.just_now")
	case d < time.Hour:
		return l.TN("time.minutes_ago", int(d/time.Minute))
	case d < 24*time.Hour:
		return l.TN("time.hours_ago", int(d/time.Hour))
	default:
		return l.TN("time.days_ago", int(d/(24*time.Hour)))
	}
}

// Until renders a future time relative to now: "in 59 minutes".
func Until(ctx context.Context, t, now time.Time) string {
	l := Loc(ctx)
	d := t.Sub(now)
	switch {
	case d < time.Minute:
		return l.T("time.less_than_minute")
	case d < time.Hour:
		return l.TN("time.in_minutes", int(d/time.Minute))
	case d < 48*time.Hour:
		return l.TN("time.in_hours", int(d/time.Hour))
	default:
		return l.TN("time.in_days", int(d/(24*time.Hour)))
	}
}

// At formats an instant in the reader's time zone, naming the zone:
// "2026-11-26 14:03 UTC", "26 nov. 2026 à 15:03 CET".
func At(ctx context.Context, t time.Time) string {
	l := Loc(ctx)
	t = t.In(Zone(ctx))
	return l.T("date.at", Args{"Date": l.Date(t), "ISO": t.Format("2006-01-02"), "Time": t.Format("15:04"), "Zone": zoneAbbr(t)})
}

// AtSeconds is an audit entry's time to the second in the reader's time
// zone, which the column's header names: "2026-11-26 15:03:09".
func AtSeconds(ctx context.Context, t time.Time) string {
	return t.In(Zone(ctx)).Format("2006-01-02 15:04:05")
}

// zoneAbbr names a time's zone briefly: "UTC", "CET", "EDT", or the offset
// where the zone has no letters ("UTC-03").
func zoneAbbr(t time.Time) string {
	a := t.Format("MST")
	if a == "" || a[0] == '+' || a[0] == '-' {
		return "UTC" + t.Format("-07:00")
	}
	return a
}

// Date formats the day of an instant in the reader's time zone: "26 Nov
// 2026", "26 nov. 2026".
func Date(ctx context.Context, t time.Time) string { return Loc(ctx).Date(t.In(Zone(ctx))) }

// Day formats a calendar day as the usage counters keep it (UTC days).
func Day(ctx context.Context, t time.Time) string { return Loc(ctx).Date(t.UTC()) }

// DayMonth is a day of the usage counters (UTC days): "26 Nov", "26 nov.".
func DayMonth(ctx context.Context, t time.Time) string {
	l := Loc(ctx)
	return l.T("date.day_month", Args{"Day": t.Day(), "Month": l.month(t.Month())})
}

// KeyRow is one key as the keys page shows it.
type KeyRow struct {
	ID          uint
	Name        string
	APIKey      string
	SecretHint  string
	IsMaster    bool
	IsActive    bool
	CreatedAt   time.Time
	SecretSetAt time.Time
	SecretDays  int // whole days the current secret has existed
	RotationDue bool
	GraceUntil  *time.Time // the latest deadline of an old secret, if any
	// OldSecrets are the replaced secrets that still work, latest deadline first.
	OldSecrets []OldSecretRow
	LastUsedAt *time.Time
	LastUsedIP string
	Now        time.Time
}

// SecretAge is "set today", "set 12 days ago" in the reader's language.
func (k KeyRow) SecretAge(ctx context.Context) string {
	if k.SecretDays == 0 {
		return T(ctx, "keys.set_today")
	}
	return TN(ctx, "keys.set_days_ago", k.SecretDays)
}

// LastUsed is "4 minutes ago from 203.0.113.7" or "never".
func (k KeyRow) LastUsed(ctx context.Context) string {
	if k.LastUsedAt == nil {
		return T(ctx, "common.never")
	}
	ago := Ago(ctx, *k.LastUsedAt, k.Now)
	if k.LastUsedIP == "" {
		return ago
	}
	return T(ctx, "keys.used_from", Args{"Ago": ago, "IP": k.LastUsedIP})
}

// OldSecretRow is a replaced secret inside its grace period.
type OldSecretRow struct {
	ID    uint
	Hint  string    // "kd_live_…Ab3k", or "" when unknown
	Until time.Time // when it stops working
	// LastUsedAt is when clients last used it since the reset, if they did.
	LastUsedAt *time.Time
	Now        time.Time
}

// Label is the secret's hint, or "earlier secret" when unknown.
func (o OldSecretRow) Label(ctx context.Context) string {
	if o.Hint == "" {
		return T(ctx, "keys.earlier_secret")
	}
	return o.Hint
}

// Use says whether clients still use it: "last used 2 minutes ago" or
// "not used since the reset".
func (o OldSecretRow) Use(ctx context.Context) string {
	if o.LastUsedAt == nil {
		return T(ctx, "keys.not_used_since_reset")
	}
	return T(ctx, "keys.last_used_ago", Args{"Ago": Ago(ctx, *o.LastUsedAt, o.Now)})
}

// NewOldSecretRow prepares an old secret for display.
func NewOldSecretRow(o models.OldSecret, now time.Time) OldSecretRow {
	r := OldSecretRow{ID: o.ID, Hint: o.Hint, Until: o.ExpiresAt, Now: now}
	if o.UsedSinceRetired() {
		r.LastUsedAt = o.LastUsedAt
	}
	return r
}

// NewKeyRow prepares a key for display.
func NewKeyRow(k models.APIKey, now time.Time, policyDays int) KeyRow {
	r := KeyRow{
		ID: k.ID, Name: k.Name, APIKey: k.APIKey, SecretHint: k.SecretHint, IsMaster: k.IsMaster, IsActive: k.IsActive,
		CreatedAt: k.CreatedAt, SecretSetAt: k.SecretSetAt, RotationDue: k.RotationDue(now, policyDays),
		GraceUntil: k.GraceUntil(now), SecretDays: k.SecretAgeDays(now), LastUsedAt: k.LastUsedAt, LastUsedIP: k.LastUsedIP, Now: now,
	}
	for _, o := range k.OldSecrets {
		if o.Live(now) {
			r.OldSecrets = append(r.OldSecrets, NewOldSecretRow(o, now))
		}
	}
	return r
}

func keyAnchor(id uint) string { return fmt.Sprintf("key-%d", id) }

func keyURL(id uint, action string) string { return fmt.Sprintf("/keys/%d/%s", id, action) }

func oldSecretURL(keyID, secretID uint) string {
	return fmt.Sprintf("/keys/%d/old-secrets/%d/end", keyID, secretID)
}

// pageURL is a paged list's URL, keeping its search.
func pageURL(path, search string, page int) string {
	q := url.Values{}
	if search != "" {
		q.Set("q", search)
	}
	q.Set("page", strconv.Itoa(page))
	return path + "?" + q.Encode()
}

// sudoPasswordLabel labels the password field of a sensitive action's
// dialog; the minutes come from models.SudoWindow, never a literal.
func sudoPasswordLabel(ctx context.Context) string {
	return T(ctx, "common.password_sudo", Args{"Minutes": int(models.SudoWindow / time.Minute)})
}
