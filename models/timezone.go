package models

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // the IANA zones, even on a host without zoneinfo files
)

// DefaultTimeZone is the zone of a person who chose none.
const DefaultTimeZone = "UTC"

// TimeZones are the zones the account menu offers, UTC first, then by
// offset from the west. Any other IANA name is accepted too (and shown in
// the menu once chosen).
var TimeZones = []string{
	"UTC",
	"Pacific/Honolulu", "America/Anchorage", "America/Los_Angeles", "America/Denver", "America/Chicago",
	"America/Mexico_City", "America/New_York", "America/Toronto", "America/Guadeloupe", "America/Martinique",
	"America/Cayenne", "America/Sao_Paulo", "America/Argentina/Buenos_Aires", "Atlantic/Azores",
	"Europe/London", "Europe/Dublin", "Europe/Lisbon", "Africa/Casablanca", "Africa/Abidjan", "Africa/Dakar",
	"Europe/Paris", "Europe/Brussels", "Europe/Luxembourg", "Europe/Zurich", "Europe/Berlin", "Europe/Amsterdam",
	"Europe/Madrid", "Europe/Rome", "Europe/Stockholm", "Europe/Warsaw", "Africa/Algiers", "Africa/Tunis", "Africa/Lagos",
	"Africa/Kinshasa", "Europe/Athens", "Europe/Helsinki", "Europe/Bucharest", "Africa/Cairo", "Africa/Johannesburg",
	"Europe/Istanbul", "Europe/Moscow", "Africa/Nairobi", "Asia/Dubai", "Indian/Reunion", "Indian/Mauritius",
	"Asia/Karachi", "Asia/Kolkata", "Asia/Bangkok", "Asia/Singapore", "Asia/Shanghai", "Asia/Tokyo",
	"Australia/Sydney", "Pacific/Noumea", "Pacific/Auckland", "Pacific/Tahiti",
}

var zones sync.Map // name → *time.Location

// ParseTimeZone checks an IANA zone name ("Europe/Paris") against the
// time zone database. "Local" (the server's own zone) and "" are refused.
func ParseTimeZone(name string) (*time.Location, bool) {
	if l, ok := zones.Load(name); ok {
		return l.(*time.Location), true
	}
	if name == "" || name == "Local" || len(name) > 64 || strings.ContainsAny(name, " \\") {
		return nil, false
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, false
	}
	zones.Store(name, loc)
	return loc, true
}

// Zone is the person's time zone (UTC when none is saved, or when the
// saved name is no longer in the database).
func (u *User) Zone() *time.Location {
	if loc, ok := ParseTimeZone(u.TimeZone); ok {
		return loc
	}
	return time.UTC
}

// SetTimeZone saves the time zone a person chose: the console shows every
// time in it. The change is audited like the language.
func (s *Store) SetTimeZone(ctx context.Context, p *Principal, name string, meta RequestMeta) error {
	name = strings.TrimSpace(name)
	if _, ok := ParseTimeZone(name); !ok {
		return &ValidationError{Fields: map[string]string{"time_zone": "Choose a time zone from the list."}}
	}
	if name == p.User.TimeZone {
		return nil
	}
	if err := s.savePreference(ctx, p, meta, "time_zone", ActionTimeZoneChanged, p.User.TimeZone, name); err != nil {
		return fmt.Errorf("models: set time zone: %w", err)
	}
	p.User.TimeZone = name
	return nil
}
