package models_test

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"gorm.io/gorm"

	"keydesk/models"
	"keydesk/models/testdb"
)

var errInjected = errors.New("injected database failure")

// failNth makes the n-th database statement from now fail (0: none).
type failNth struct {
	n, seen atomic.Int64
}

func (f *failNth) install(t *testing.T, db *gorm.DB) {
	t.Helper()
	hook := func(db *gorm.DB) {
		if n := f.n.Load(); n > 0 && f.seen.Add(1) == n {
			_ = db.AddError(errInjected)
		}
	}
	cb := db.Callback()
	for name, err := range map[string]error{
		"query":  cb.Query().Before("gorm:query").Register("test:fail_nth", hook),
		"row":    cb.Row().Before("gorm:row").Register("test:fail_nth", hook),
		"raw":    cb.Raw().Before("gorm:raw").Register("test:fail_nth", hook),
		"create": cb.Create().Before("gorm:create").Register("test:fail_nth", hook),
		"update": cb.Update().Before("gorm:update").Register("test:fail_nth", hook),
		"delete": cb.Delete().Before("gorm:delete").Register("test:fail_nth", hook),
	} {
		if err != nil {
			t.Fatalf("register %s callback: %v", name, err)
		}
	}
}

func (f *failNth) arm(n int64) { f.seen.Store(0); f.n.Store(n) }
func (f *failNth) disarm()     { f.n.Store(0) }

// issue 9 #6: whatever database statement fails, a REST create either
// answers with the secret or commits nothing (so the retry works): the
// response is read inside the transaction and answered from memory.
func TestAPICreateSubaccountNeverCommitsWithoutTheSecret(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	_, res := owner(t, s, "Acme", "owner@acme.example")
	setPlan(t, s, res.Account.ID, models.PlanPremium)
	p, err := s.Verify(ctx, res.Secret.APIKey, res.Secret.Secret)
	if err != nil {
		t.Fatal(err)
	}
	var f failNth
	f.install(t, s.DB())
	inactive := false
	failures := 0
	for n := int64(1); n <= 25; n++ {
		name := fmt.Sprintf("stream-%d", n)
		f.arm(n)
		rec, secret, err := s.APICreateSubaccount(ctx, p, models.APIKeyCreate{Name: name, IsActive: &inactive}, meta)
		f.disarm()
		var count int64
		if cerr := s.DB().Table("api_keys").Where("name = ?", name).Count(&count).Error; cerr != nil {
			t.Fatal(cerr)
		}
		if err != nil {
			failures++
			if count != 0 {
				t.Errorf("statement %d failed (%v) after the key was committed: the secret is lost", n, err)
				continue
			}
			// Nothing committed: the retry with the same name succeeds.
			if rec, secret, err = s.APICreateSubaccount(ctx, p, models.APIKeyCreate{Name: name, IsActive: &inactive}, meta); err != nil {
				t.Errorf("retry after statement %d failed: %v", n, err)
				continue
			}
		}
		if count > 1 || rec == nil || rec.Key.Name != name || rec.Key.IsActive || rec.UserID != res.User.ID || !models.ValidSecretFormat(secret.Secret) {
			t.Errorf("statement %d: count %d, record %+v", n, count, rec)
		}
	}
	if failures == 0 {
		t.Fatal("no statement was made to fail: the injection does not work")
	}
}

// A REST update is all or nothing: a refused deactivation of the master
// key leaves its name as it was, and whatever statement fails, a rename
// and a deactivation requested together are both applied or neither.
func TestAPIUpdateKeyIsAllOrNothing(t *testing.T) {
	s, _ := testdb.Open(t)
	_, res := owner(t, s, "Acme", "owner@acme.example")
	p, err := s.Verify(ctx, res.Secret.APIKey, res.Secret.Secret)
	if err != nil {
		t.Fatal(err)
	}
	name, inactive := "Renamed", false
	_, err = s.APIUpdateKey(ctx, p, res.Secret.APIKey, &name, &inactive, meta)
	if models.FieldErrors(err)["active"] == "" {
		t.Fatalf("deactivating the master key: %v, want a refusal", err)
	}
	var names []string
	testdb.Must(t, s.DB().Table("api_keys").Where("id = ?", res.Key.ID).Pluck("name", &names))
	if len(names) != 1 || names[0] != res.Key.Name {
		t.Fatalf("master key named %v after a refused update, want %q", names, res.Key.Name)
	}

	rec, _, err := s.APICreateSubaccount(ctx, p, models.APIKeyCreate{Name: "stream"}, meta)
	if err != nil {
		t.Fatal(err)
	}
	var f failNth
	f.install(t, s.DB())
	failures := 0
	for n := int64(1); n <= 20; n++ {
		name := fmt.Sprintf("stream-%d", n)
		active := n%2 == 0 // alternately deactivate and reactivate
		f.arm(n)
		_, err := s.APIUpdateKey(ctx, p, fmt.Sprint(rec.Key.ID), &name, &active, meta)
		f.disarm()
		var k struct {
			Name     string
			IsActive bool
		}
		testdb.Must(t, s.DB().Table("api_keys").Select("name, is_active").Where("id = ?", rec.Key.ID).Take(&k))
		if err != nil {
			failures++
			if k.Name == name || k.IsActive == active {
				t.Errorf("statement %d failed (%v) but part of the update stayed: %+v", n, err, k)
			}
			testdb.Must(t, s.DB().Table("api_keys").Where("id = ?", rec.Key.ID).Updates(map[string]any{"name": name, "is_active": active}))
			continue
		}
		if k.Name != name || k.IsActive != active {
			t.Errorf("statement %d: key %+v after a successful update to %q/%v", n, k, name, active)
		}
	}
	if failures == 0 {
		t.Fatal("no statement was made to fail: the injection does not work")
	}
}
