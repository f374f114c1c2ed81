package models

import (
	"context"
	"sort"
	"strconv"
	"sync"
	"time"

	"gorm.io/gorm"
)

// Denied-access entries are aggregated so that a signed-in user who
// hammers a route they may not use cannot flood the audit log (or slow
// every other write behind the chain's lock): per (actor, route, minute)
// the first denial is appended at once, as before; the repeats in that
// minute are only counted in memory and appended as ONE entry carrying
// the count ("repeats") once the minute is over — by the next denial, by
// FlushDenials (run with the usage flusher every few seconds) or at
// shutdown. So a flood costs at most two entries per actor, route and
// minute, and a repeat costs no database write at all.
//
// What is lost on a crash is at most the repeat count of the open
// minutes; the first denial of each is always written.

// maxOpenDenialWindows bounds the aggregator's memory: past it, every
// open window is written out at once.
const maxOpenDenialWindows = 10_000

type denialKey struct {
	actor  string // "user:ID", or the actor's label
	route  string // the route pattern (bounded), not the raw path
	minute int64
}

type denialWindow struct {
	actor       Actor
	route       string
	accountID   uint
	repeats     int64
	first, last time.Time
}

type denialLog struct {
	mu   sync.Mutex
	open map[denialKey]*denialWindow
}

func newDenialLog() *denialLog { return &denialLog{open: map[denialKey]*denialWindow{}} }

func denialActorKey(a Actor) string {
	if a.UserID != 0 {
		return "user:" + strconv.FormatUint(uint64(a.UserID), 10)
	}
	return string(a.Role) + ":" + a.Email
}

// RecordAccessDenied audits an attempt to open a route the role may not
// use; path is both the route and the path.
func (s *Store) RecordAccessDenied(ctx context.Context, actor Actor, path string) error {
	return s.RecordRouteDenied(ctx, actor, path, path)
}

// RecordRouteDenied audits an attempt to open route (its pattern, e.g.
// /support/accounts/:id) at path, aggregating repeats (see above).
func (s *Store) RecordRouteDenied(ctx context.Context, actor Actor, route, path string) error {
	now := s.Now()
	route = truncate(route, 200)
	k := denialKey{actor: denialActorKey(actor), route: route, minute: now.Truncate(time.Minute).Unix()}
	d := s.denials
	d.mu.Lock()
	if w := d.open[k]; w != nil {
		w.repeats++
		w.last = now
		d.mu.Unlock()
		return nil
	}
	closed := d.takeLocked(func(dk denialKey) bool { return dk.minute < k.minute || len(d.open) >= maxOpenDenialWindows })
	d.open[k] = &denialWindow{actor: actor, route: route, accountID: actor.AccountID, first: now, last: now}
	d.mu.Unlock()

	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := s.appendDenialSummaries(tx, closed); err != nil {
			return err
		}
		return s.appendAudit(tx, actor, ActionAccessDenied, actor.AccountID, auditTarget{Type: "route", Name: truncate(path, 200)},
			map[string]any{"route": route})
	})
	return wrapOp("record access denied", err)
}

// FlushDenials appends the repeat counts of the minutes that are over
// (of every open minute when all, as at shutdown).
func (s *Store) FlushDenials(ctx context.Context, all bool) error {
	minute := s.Now().Truncate(time.Minute).Unix()
	d := s.denials
	d.mu.Lock()
	closed := d.takeLocked(func(dk denialKey) bool { return all || dk.minute < minute })
	d.mu.Unlock()
	if len(closed) == 0 {
		return nil
	}
	err := s.tx(ctx, func(tx *gorm.DB) error { return s.appendDenialSummaries(tx, closed) })
	return wrapOp("record repeated access denials", err)
}

// takeLocked removes and returns the windows whose key matches, oldest
// first (deterministic order for the chain).
func (d *denialLog) takeLocked(match func(denialKey) bool) []*denialWindow {
	var out []*denialWindow
	for k, w := range d.open {
		if match(k) {
			delete(d.open, k)
			out = append(out, w)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].first.Before(out[j].first) })
	return out
}

// appendDenialSummaries writes one entry per window that had repeats.
func (s *Store) appendDenialSummaries(tx *gorm.DB, ws []*denialWindow) error {
	for _, w := range ws {
		if w.repeats == 0 {
			continue
		}
		if err := s.appendAudit(tx, w.actor, ActionAccessDenied, w.accountID, auditTarget{Type: "route", Name: w.route},
			map[string]any{"route": w.route, "repeats": w.repeats,
				"from": w.first.UTC().Format(time.RFC3339), "to": w.last.UTC().Format(time.RFC3339)}); err != nil {
			return err
		}
	}
	return nil
}
