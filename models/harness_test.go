package models_test

// The models test harness: what many test files share. Each test opens its
// own database with testdb.Open.

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"keydesk/models"
	"keydesk/models/testdb"
)

var ctx = context.Background()

const pw = "correct horse battery staple"

var meta = models.RequestMeta{IP: "203.0.113.7", UserAgent: "test"}

// mustAccount signs up an account with its owner and master key.
func mustAccount(t testing.TB, s *models.Store, name, email string) *models.SignUpResult {
	t.Helper()
	res, err := s.CreateAccount(ctx, models.SignUpInput{AccountName: name, Email: email, Password: pw}, models.Actor{}, models.ActionSignup)
	if err != nil {
		t.Fatalf("create account %s: %v", email, err)
	}
	return res
}

// owner signs up and returns an actor inside the sudo window.
func owner(t testing.TB, s *models.Store, name, email string) (models.Actor, *models.SignUpResult) {
	t.Helper()
	res := mustAccount(t, s, name, email)
	return models.Actor{UserID: res.User.ID, Email: res.User.Email, Role: models.RoleOwner, AccountID: res.Account.ID,
		AuthAt: s.Now(), Meta: meta}, res
}

var supportUsers atomic.Int64

// support creates a support user (a new address each call) and returns its
// actor inside the sudo window.
func support(t testing.TB, s *models.Store) models.Actor {
	t.Helper()
	u, err := s.CreateStaffUser(ctx, fmt.Sprintf("ana%d@support.example", supportUsers.Add(1)), pw, models.RoleSupport, models.SystemActor())
	if err != nil {
		t.Fatal(err)
	}
	return models.Actor{UserID: u.ID, Email: u.Email, Role: models.RoleSupport, AuthAt: s.Now(), Meta: meta}
}

// setPlan changes an account's plan straight in the database.
func setPlan(t testing.TB, s *models.Store, accountID uint, plan models.Plan) {
	t.Helper()
	testdb.Must(t, s.DB().Table("accounts").Where("id = ?", accountID).Update("plan", plan))
}

// verifyChain is a full verification of the store's audit log; an error
// (as opposed to a report of tampering) fails the test.
func verifyChain(t testing.TB, s *models.Store) models.ChainReport {
	t.Helper()
	r, err := s.VerifyAuditChain(ctx)
	if err != nil {
		t.Fatalf("verify the audit chain: %v", err)
	}
	return r
}
