package models_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"keydesk/models"
	"keydesk/models/testdb"
)

func TestPlanLimitsAndOverride(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	for plan, want := range map[models.Plan]int{models.PlanFree: 1, models.PlanEssential: 5, models.PlanPremium: 25} {
		a := models.Account{Plan: plan}
		if got := a.SubaccountLimitValue(); got != want {
			t.Errorf("%s limit %d, want %d", plan, got, want)
		}
	}
	actor, res := owner(t, s, "Acme", "owner@acme.example")
	u, err := s.SubaccountQuota(ctx, actor)
	if err != nil || u.Used != 0 || u.Limit != 1 || u.Full() {
		t.Fatalf("fresh free account usage %+v %v", u, err)
	}
	if _, _, err := s.CreateSubaccount(ctx, actor, "newsletters", ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateSubaccount(ctx, actor, "billing", ""); !errors.Is(err, models.ErrLimitReached) {
		t.Fatalf("second sub-account on free: %v", err)
	}
	staff := support(t, s)
	if err := s.SetSubaccountLimit(ctx, staff, res.Account.ID, 3, "TICKET-42"); err != nil {
		t.Fatal(err)
	}
	u, err = s.SubaccountQuota(ctx, actor)
	if err != nil {
		t.Fatal(err)
	}
	if u.Used != 1 || u.Limit != 3 {
		t.Fatalf("after override %+v", u)
	}
	// The override wins over the plan, even a bigger plan.
	setPlan(t, s, res.Account.ID, models.PlanPremium)
	if u, err = s.SubaccountQuota(ctx, actor); err != nil || u.Limit != 3 {
		t.Fatalf("plan change overrode support's limit: %+v", u)
	}
	if _, _, err := s.CreateSubaccount(ctx, actor, "billing", "Invoices"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSubaccountLimit(ctx, staff, res.Account.ID, 1, "shrink"); models.FieldErrors(err)["limit"] == "" {
		t.Fatalf("lowering below usage: %v", err)
	}
	if err := s.SetSubaccountLimit(ctx, staff, res.Account.ID, 5, "  "); models.FieldErrors(err)["reason"] == "" {
		t.Fatalf("limit change without a reason: %v", err)
	}
	if err := s.SetSubaccountLimit(ctx, actor, res.Account.ID, 50, "I want more"); !errors.Is(err, models.ErrForbidden) {
		t.Fatalf("owner raised their own limit: %v", err)
	}
	var details string
	testdb.Must(t, s.DB().Table("audit_entries").Where("action = ?", models.ActionLimitChanged).Pluck("details", &details))
	if !strings.Contains(details, `"from":1`) || !strings.Contains(details, `"to":3`) || !strings.Contains(details, "TICKET-42") {
		t.Fatalf("limit.changed details %s", details)
	}
}

func TestCreateSubaccountRules(t *testing.T) {
	t.Parallel()
	s, clock := testdb.Open(t)
	actor, res := owner(t, s, "Acme", "owner@acme.example")
	setPlan(t, s, res.Account.ID, models.PlanEssential)
	sub, secret, err := s.CreateSubaccount(ctx, actor, "  newsletters ", " Weekly digest ")
	if err != nil {
		t.Fatal(err)
	}
	if sub.Account.Name != "newsletters" || sub.Account.Description != "Weekly digest" || *sub.Account.ParentID != res.Account.ID {
		t.Fatalf("sub-account %+v", sub.Account)
	}
	if sub.Key.IsMaster || sub.Key.AccountID != sub.Account.ID || secret.APIKey != sub.Key.APIKey {
		t.Fatalf("sub-account key %+v", sub.Key)
	}
	p, err := s.Verify(ctx, secret.APIKey, secret.Secret)
	if err != nil || p.AccountID != sub.Account.ID || p.ParentID != res.Account.ID || p.IsMaster {
		t.Fatalf("sub-account credentials: %+v %v", p, err)
	}
	for _, bad := range []string{"", "NEWSLETTERS", "Acme", strings.Repeat("x", 65), "a\tb"} {
		if _, _, err := s.CreateSubaccount(ctx, actor, bad, ""); models.FieldErrors(err)["name"] == "" {
			t.Errorf("name %q: %v", bad, err)
		}
	}
	if _, _, err := s.CreateSubaccount(ctx, actor, "ok", strings.Repeat("d", 281)); models.FieldErrors(err)["description"] == "" {
		t.Errorf("long description: %v", err)
	}
	clock.Advance(models.SudoWindow + time.Minute)
	if _, _, err := s.CreateSubaccount(ctx, actor, "late", ""); !errors.Is(err, models.ErrReauthRequired) {
		t.Fatalf("outside sudo mode: %v", err)
	}
	keys, err := s.ListKeys(ctx, actor)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || !keys[0].IsMaster || keys[1].Name != "newsletters" {
		t.Fatalf("keys list %+v", keys)
	}
	subs, err := s.ListSubaccounts(ctx, actor, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	if subs.Total != 1 || len(subs.Items) != 1 || subs.Items[0].Key.APIKey != secret.APIKey || subs.Items[0].Account.Description != "Weekly digest" {
		t.Fatalf("sub-accounts list %+v", subs)
	}
	if none, err := s.ListSubaccounts(ctx, actor, "no such name", 1); err != nil || none.Total != 0 || len(none.Items) != 0 {
		t.Fatalf("search for a missing name: %+v", none)
	}
	var actions []string
	testdb.Must(t, s.DB().Table("audit_entries").Where("action IN ?", []string{models.ActionSubaccountNew, models.ActionKeyCreated}).Order("id").Pluck("action", &actions))
	if strings.Join(actions, ",") != "key.created,subaccount.created,key.created" {
		t.Fatalf("audit actions %v", actions)
	}
}

func TestSubaccountTenancy(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	alice, _ := owner(t, s, "Alice", "alice@example.com")
	bob, _ := owner(t, s, "Bob", "bob@example.com")
	sub, _, err := s.CreateSubaccount(ctx, bob, "bob-news", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.KeyByID(ctx, alice, sub.Key.ID); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("Alice reads Bob's sub-account key: %v", err)
	}
	if _, _, err := s.ResetSecret(ctx, alice, sub.Key.ID, 0); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("Alice resets Bob's sub-account key: %v", err)
	}
	if _, err := s.AccountByID(ctx, alice, sub.Account.ID); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("Alice reads Bob's sub-account: %v", err)
	}
	if subs, err := s.ListSubaccounts(ctx, alice, "", 1); err != nil || subs.Total != 0 || len(subs.Items) != 0 {
		t.Fatalf("Alice lists %d sub-accounts", len(subs.Items))
	}
	// Bob manages his sub-account's key.
	if _, err := s.SetKeyActive(ctx, bob, sub.Key.ID, false); err != nil {
		t.Fatalf("Bob deactivates his sub-account key: %v", err)
	}
}

func TestLimitRequestLifecycle(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	actor, _ := owner(t, s, "Acme", "owner@acme.example")
	staff := support(t, s)
	for _, tc := range []struct {
		extra  int
		reason string
		field  string
	}{{0, "x", "extra"}, {101, "x", "extra"}, {2, "", "reason"}, {2, strings.Repeat("r", 501), "reason"}} {
		if _, err := s.RequestMoreSubaccounts(ctx, actor, tc.extra, tc.reason); models.FieldErrors(err)[tc.field] == "" {
			t.Errorf("request %+v: %v", tc, err)
		}
	}
	req, err := s.RequestMoreSubaccounts(ctx, actor, 4, "new EU clients")
	if err != nil {
		t.Fatal(err)
	}
	if req.Status != models.RequestPending || req.LimitBefore != 1 {
		t.Fatalf("request %+v", req)
	}
	if _, err := s.RequestMoreSubaccounts(ctx, actor, 1, "again"); models.FieldErrors(err)["form"] == "" {
		t.Fatalf("second pending request: %v", err)
	}
	queue, err := s.PendingLimitRequests(ctx, staff)
	if err != nil || len(queue) != 1 || queue[0].AccountName != "Acme" || queue[0].Usage.Limit != 1 {
		t.Fatalf("queue %+v %v", queue, err)
	}
	if _, err := s.PendingLimitRequests(ctx, actor); !errors.Is(err, models.ErrForbidden) {
		t.Fatalf("owner reads the support queue: %v", err)
	}
	if err := s.DecideLimitRequest(ctx, staff, req.ID, true, 5, ""); models.FieldErrors(err)["note"] == "" {
		t.Fatalf("approval without a note: %v", err)
	}
	if err := s.DecideLimitRequest(ctx, staff, req.ID, true, 5, "OK for EU rollout"); err != nil {
		t.Fatal(err)
	}
	if err := s.DecideLimitRequest(ctx, staff, req.ID, false, 0, "changed my mind"); models.FieldErrors(err)["form"] == "" {
		t.Fatalf("second decision: %v", err)
	}
	u, err := s.SubaccountQuota(ctx, actor)
	if err != nil {
		t.Fatal(err)
	}
	if u.Limit != 5 {
		t.Fatalf("limit after approval %d", u.Limit)
	}
	reqs, err := s.LimitRequests(ctx, actor)
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 1 || reqs[0].Status != models.RequestApproved || *reqs[0].NewLimit != 5 || reqs[0].Note != "OK for EU rollout" || reqs[0].DeciderEmail != staff.Email {
		t.Fatalf("owner's view of the request %+v", reqs)
	}
	// A denial keeps the limit.
	req2, err := s.RequestMoreSubaccounts(ctx, actor, 10, "more")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DecideLimitRequest(ctx, staff, req2.ID, false, 0, "Upgrade to premium instead"); err != nil {
		t.Fatal(err)
	}
	if u, err := s.SubaccountQuota(ctx, actor); err != nil || u.Limit != 5 {
		t.Fatalf("denial changed the limit to %d", u.Limit)
	}
	if err := s.DecideLimitRequest(ctx, staff, 999999, true, 5, "x"); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("unknown request: %v", err)
	}
	var actions []string
	testdb.Must(t, s.DB().Table("audit_entries").Where("action LIKE ? OR action = ?", "limit%", models.ActionLimitChanged).Order("id").Pluck("action", &actions))
	want := "limit_request.created,limit.changed,limit_request.approved,limit_request.created,limit_request.denied"
	if strings.Join(actions, ",") != want {
		t.Fatalf("audit %v, want %s", actions, want)
	}
	var actorLabel string
	testdb.Must(t, s.DB().Table("audit_entries").Where("action = ?", models.ActionLimitApproved).Pluck("actor_label", &actorLabel))
	if actorLabel != staff.Email {
		t.Fatalf("approval audited as %q", actorLabel)
	}
}

// 50 parallel creations against a limit of 5 leave exactly 5 sub-accounts.
func TestSubaccountLimitHoldsUnderConcurrency(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	actor, res := owner(t, s, "Acme", "owner@acme.example")
	setPlan(t, s, res.Account.ID, models.PlanEssential)
	const n = 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	created, limited := 0, 0
	var other []error
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			_, _, err := s.CreateSubaccount(ctx, actor, fmt.Sprintf("stream-%02d", i), "")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				created++
			case errors.Is(err, models.ErrLimitReached):
				limited++
			default:
				other = append(other, err)
			}
		}(i)
	}
	close(start)
	wg.Wait()
	if len(other) > 0 {
		t.Fatalf("unexpected errors: %v", other)
	}
	var count int64
	testdb.Must(t, s.DB().Table("accounts").Where("parent_id = ?", res.Account.ID).Count(&count))
	if created != 5 || limited != n-5 || count != 5 {
		t.Fatalf("created %d, refused %d, in database %d; want 5, %d, 5", created, limited, count, n-5)
	}
}

func TestSupportSearchAndAccountViewHideSecrets(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	actor, res := owner(t, s, "Acme Mail", "owner@acme.example")
	sub, _, err := s.CreateSubaccount(ctx, actor, "newsletters", "")
	if err != nil {
		t.Fatal(err)
	}
	owner(t, s, "Other Co", "x@other.example")
	staff := support(t, s)
	for q, want := range map[string]string{"acme": "Acme Mail", "OWNER@acme": "Acme Mail", sub.Key.APIKey: "Acme Mail", "other": "Other Co", "100%_": ""} {
		got, err := s.SearchAccounts(ctx, staff, q)
		if err != nil {
			t.Fatal(err)
		}
		if want == "" {
			if len(got) != 0 {
				t.Errorf("search %q found %d", q, len(got))
			}
			continue
		}
		if len(got) != 1 || got[0].Account.Name != want {
			t.Errorf("search %q: %+v", q, got)
		}
	}
	if _, err := s.SearchAccounts(ctx, actor, "acme"); !errors.Is(err, models.ErrForbidden) {
		t.Fatalf("owner searched accounts: %v", err)
	}
	v, err := s.SupportAccount(ctx, staff, res.Account.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Keys) != 2 || v.Usage.Used != 1 || len(v.Owners) != 1 || v.Owners[0].PasswordHash != "" {
		t.Fatalf("support view %+v", v)
	}
	for _, k := range v.Keys {
		if len(k.SecretDigest) != 0 || len(k.OldSecrets) > 0 && len(k.OldSecrets[0].Digest) != 0 {
			t.Fatal("support view carries a secret digest")
		}
	}
	if _, err := s.SupportAccount(ctx, staff, sub.Account.ID); !errors.Is(err, models.ErrNotFound) {
		t.Fatalf("a sub-account opened as a main account: %v", err)
	}
}
