package models

import (
	"context"
	"time"
)

// LimitState is where an owner stands against the sub-account limit. The
// keys page and the sub-accounts page render the same state the same way.
type LimitState int

const (
	// LimitBelow: more sub-accounts may be created.
	LimitBelow LimitState = iota
	// LimitAt: all are in use and no request is waiting.
	LimitAt
	// LimitPending: a request for more waits for support.
	LimitPending
	// LimitAnswered: support answered the latest request recently.
	LimitAnswered
)

// AnsweredFor is how long an answered request stays the headline of the
// limit state (after that, below or at the limit says enough).
const AnsweredFor = 7 * 24 * time.Hour

// LimitStatus is the state with what its rendering needs.
type LimitStatus struct {
	State LimitState
	Usage SubaccountQuota
	// Request is the pending request (LimitPending) or the answered one
	// (LimitAnswered); nil otherwise.
	Request *LimitRequest
}

// CanCreate reports whether a sub-account may be created now.
func (s LimitStatus) CanCreate() bool { return !s.Usage.Full() }

// CanRequest reports whether the owner may ask for more now: at the limit
// and with no request waiting.
func (s LimitStatus) CanRequest() bool { return s.Usage.Full() && s.State != LimitPending }

// NewLimitStatus derives the state from the usage and the account's
// requests (newest first, as LimitRequests returns them).
func NewLimitStatus(u SubaccountQuota, requests []LimitRequest, now time.Time) LimitStatus {
	st := LimitStatus{Usage: u, State: LimitBelow}
	for i := range requests {
		if requests[i].Status == RequestPending {
			st.State, st.Request = LimitPending, &requests[i]
			return st
		}
	}
	if len(requests) > 0 {
		latest := &requests[0]
		if latest.DecidedAt != nil && now.Sub(*latest.DecidedAt) < AnsweredFor {
			st.State, st.Request = LimitAnswered, latest
			return st
		}
	}
	if u.Full() {
		st.State = LimitAt
	}
	return st
}

// SubaccountLimitStatus loads the owner's limit state.
func (s *Store) SubaccountLimitStatus(ctx context.Context, actor Actor) (LimitStatus, error) {
	u, err := s.SubaccountQuota(ctx, actor)
	if err != nil {
		return LimitStatus{}, err
	}
	var reqs []LimitRequest
	// The newest few are enough: at most one request is ever pending.
	if err := s.db.WithContext(ctx).Where("account_id = ?", actor.AccountID).Order("id DESC").Limit(5).Find(&reqs).Error; err != nil {
		return LimitStatus{}, wrapOp("limit status", err)
	}
	return NewLimitStatus(u, reqs, s.Now()), nil
}
