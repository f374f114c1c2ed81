package models_test

import (
	"testing"
	"time"

	"keydesk/models"
	"keydesk/models/testdb"
)

func TestLimitStatusStates(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	recent, old := now.Add(-time.Hour), now.Add(-8*24*time.Hour)
	five := 5
	pending := models.LimitRequest{ID: 3, Status: models.RequestPending}
	approved := models.LimitRequest{ID: 2, Status: models.RequestApproved, NewLimit: &five, DecidedAt: &recent}
	staleDenied := models.LimitRequest{ID: 1, Status: models.RequestDenied, DecidedAt: &old}
	for _, tc := range []struct {
		name        string
		u           models.SubaccountQuota
		reqs        []models.LimitRequest
		want        models.LimitState
		reqID       uint
		create, ask bool
	}{
		{"below, no request", models.SubaccountQuota{Used: 1, Limit: 5}, nil, models.LimitBelow, 0, true, false},
		{"at the limit", models.SubaccountQuota{Used: 5, Limit: 5}, nil, models.LimitAt, 0, false, true},
		{"at the limit, old answer", models.SubaccountQuota{Used: 5, Limit: 5}, []models.LimitRequest{staleDenied}, models.LimitAt, 0, false, true},
		{"pending at the limit", models.SubaccountQuota{Used: 5, Limit: 5}, []models.LimitRequest{pending, approved}, models.LimitPending, 3, false, false},
		{"pending below the limit", models.SubaccountQuota{Used: 1, Limit: 5}, []models.LimitRequest{pending}, models.LimitPending, 3, true, false},
		{"answered: approved, below", models.SubaccountQuota{Used: 2, Limit: 5}, []models.LimitRequest{approved, staleDenied}, models.LimitAnswered, 2, true, false},
		{"answered but full again", models.SubaccountQuota{Used: 5, Limit: 5}, []models.LimitRequest{approved}, models.LimitAnswered, 2, false, true},
	} {
		st := models.NewLimitStatus(tc.u, tc.reqs, now)
		var id uint
		if st.Request != nil {
			id = st.Request.ID
		}
		if st.State != tc.want || id != tc.reqID || st.CanCreate() != tc.create || st.CanRequest() != tc.ask {
			t.Errorf("%s: state %d request %d create %v ask %v; want %d %d %v %v", tc.name, st.State, id, st.CanCreate(), st.CanRequest(), tc.want, tc.reqID, tc.create, tc.ask)
		}
	}
}

func TestSubaccountLimitStatusFollowsARequest(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	actor, _ := owner(t, s, "Acme", "owner@acme.example") // free plan: 1 sub-account
	st, err := s.SubaccountLimitStatus(ctx, actor)
	if err != nil || st.State != models.LimitBelow {
		t.Fatalf("new account: %+v %v", st, err)
	}
	if _, _, err := s.CreateSubaccount(ctx, actor, "client", ""); err != nil {
		t.Fatal(err)
	}
	if st, err = s.SubaccountLimitStatus(ctx, actor); err != nil || st.State != models.LimitAt {
		t.Fatalf("at the limit: %+v", st)
	}
	req, err := s.RequestMoreSubaccounts(ctx, actor, 2, "two clients")
	if err != nil {
		t.Fatal(err)
	}
	if st, err = s.SubaccountLimitStatus(ctx, actor); err != nil || st.State != models.LimitPending || st.Request == nil || st.Request.ID != req.ID {
		t.Fatalf("after asking: %+v", st)
	}
}
