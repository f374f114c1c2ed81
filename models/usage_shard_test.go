package models

import (
	"testing"
	"time"
)

// Usage counted in several shards' parts is merged by key at flush
// (issue 13 #1): counts add up, the last use is the latest (on a tie of
// the clock, the later call), each old secret keeps its latest use, and
// the parts are left empty.
func TestUsagePartsMerge(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	b := newUsageBuffer()
	b.parts[0].byKey = map[uint]*usageDelta{
		1: {apiRequests: 2, smtpMessages: 1, lastUsed: t0.Add(time.Second), lastIP: "192.0.2.1", lastCall: 5,
			oldSecretUses: 1, oldLastUsed: map[uint]time.Time{7: t0.Add(time.Second)}},
		2: {apiRequests: 1, lastUsed: t0, lastIP: "192.0.2.2", lastCall: 9},
	}
	b.parts[5].byKey = map[uint]*usageDelta{
		1: {apiRequests: 3, apiMessages: 4, lastUsed: t0.Add(2 * time.Second), lastIP: "192.0.2.3", lastCall: 6,
			oldSecretUses: 2, oldLastUsed: map[uint]time.Time{7: t0, 8: t0.Add(3 * time.Second)}},
		2: {apiRequests: 1, lastUsed: t0, lastIP: "192.0.2.4", lastCall: 8}, // the same time, an earlier call
	}
	b.parts[nShards-1].byKey = map[uint]*usageDelta{
		2: {smtpMessages: 5, lastUsed: t0, lastIP: "192.0.2.5", lastCall: 10}, // the same time, the latest call
		3: {apiRequests: 1, lastUsed: t0, lastIP: "192.0.2.6"},
	}
	got := b.take()
	k1, k2, k3 := got[1], got[2], got[3]
	if len(got) != 3 || k1 == nil || k2 == nil || k3 == nil {
		t.Fatalf("keys %v", got)
	}
	if k1.apiRequests != 5 || k1.smtpMessages != 1 || k1.apiMessages != 4 || k1.oldSecretUses != 3 ||
		!k1.lastUsed.Equal(t0.Add(2*time.Second)) || k1.lastIP != "192.0.2.3" {
		t.Errorf("key 1 %+v", k1)
	}
	if !k1.oldLastUsed[7].Equal(t0.Add(time.Second)) || !k1.oldLastUsed[8].Equal(t0.Add(3*time.Second)) {
		t.Errorf("key 1's old secrets %v", k1.oldLastUsed)
	}
	if k2.apiRequests != 2 || k2.smtpMessages != 5 || k2.lastIP != "192.0.2.5" {
		t.Errorf("key 2 %+v: the latest call's address is 192.0.2.5", k2)
	}
	if k3.apiRequests != 1 || k3.lastIP != "192.0.2.6" {
		t.Errorf("key 3 %+v", k3)
	}
	for i := range b.parts {
		if len(b.parts[i].byKey) != 0 {
			t.Fatalf("part %d not emptied: %v", i, b.parts[i].byKey)
		}
	}
}
