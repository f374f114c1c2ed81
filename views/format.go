package views

import (
	"fmt"
	"net/url"
	"strconv"
	"time"

	"keydesk/models"
)

// Ago renders a past time relative to now: "just now", "4 minutes ago",
// "12 days ago".
func Ago(t, now time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute") + " ago"
	case d < 24*time.Hour:
		return plural(int(d/time.Hour), "hour") + " ago"
	default:
		return plural(int(d/(24*time.Hour)), "day") + " ago"
	}
}

// Until renders a future time relative to now: "in 59 minutes".
func Until(t, now time.Time) string {
	d := t.Sub(now)
	switch {
	case d < time.Minute:
		return "in less than a minute"
	case d < time.Hour:
		return "in " + plural(int(d/time.Minute), "minute")
	case d < 48*time.Hour:
		return "in " + plural(int(d/time.Hour), "hour")
	default:
		return "in " + plural(int(d/(24*time.Hour)), "day")
	}
}

// Plural is "1 sub-account", "3 sub-accounts".
func Plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

// UTC formats a time for tables: "2026-11-26 14:03 UTC".
func UTC(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// Date formats a day: "26 Nov 2026".
func Date(t time.Time) string { return t.UTC().Format("2 Jan 2006") }

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
	SecretAge   string // "set 12 days ago"
	RotationDue bool
	GraceUntil  *time.Time // the latest deadline of an old secret, if any
	// OldSecrets are the replaced secrets that still work, latest deadline first.
	OldSecrets []OldSecretRow
	LastUsed   string // "4 minutes ago from 203.0.113.7" or "never"
}

// OldSecretRow is a replaced secret inside its grace period.
type OldSecretRow struct {
	ID    uint
	Hint  string    // "kd_live_…Ab3k", or "earlier secret" when unknown
	Until time.Time // when it stops working
	// Use says whether clients still use it: "last used 2 minutes ago" or
	// "not used since the reset".
	Use string
}

// NewOldSecretRow prepares an old secret for display.
func NewOldSecretRow(o models.OldSecret, now time.Time) OldSecretRow {
	r := OldSecretRow{ID: o.ID, Hint: o.Hint, Until: o.ExpiresAt, Use: "not used since the reset"}
	if r.Hint == "" {
		r.Hint = "earlier secret"
	}
	if o.UsedSinceRetired() {
		r.Use = "last used " + Ago(*o.LastUsedAt, now)
	}
	return r
}

// NewKeyRow prepares a key for display.
func NewKeyRow(k models.APIKey, now time.Time, policyDays int) KeyRow {
	r := KeyRow{
		ID: k.ID, Name: k.Name, APIKey: k.APIKey, SecretHint: k.SecretHint, IsMaster: k.IsMaster, IsActive: k.IsActive,
		CreatedAt: k.CreatedAt, SecretSetAt: k.SecretSetAt, RotationDue: k.RotationDue(now, policyDays),
		GraceUntil: k.GraceUntil(now), LastUsed: "never",
	}
	switch days := k.SecretAgeDays(now); days {
	case 0:
		r.SecretAge = "set today"
	default:
		r.SecretAge = "set " + plural(days, "day") + " ago"
	}
	for _, o := range k.OldSecrets {
		if o.Live(now) {
			r.OldSecrets = append(r.OldSecrets, NewOldSecretRow(o, now))
		}
	}
	if k.LastUsedAt != nil {
		r.LastUsed = Ago(*k.LastUsedAt, now)
		if k.LastUsedIP != "" {
			r.LastUsed += " from " + k.LastUsedIP
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
func sudoPasswordLabel() string {
	return fmt.Sprintf("Password (you signed in more than %d minutes ago)", int(models.SudoWindow/time.Minute))
}
