package models_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"keydesk/models"
	"keydesk/models/testdb"
)

func TestLoginFailuresAreGeneric(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	mustAccount(t, s, "Acme", "owner@acme.example")
	staff, err := s.CreateStaffUser(ctx, "off@support.example", pw, models.RoleSupport, models.SystemActor())
	if err != nil {
		t.Fatal(err)
	}
	testdb.Must(t, s.DB().Table("users").Where("id = ?", staff.ID).Update("is_active", false))
	for name, email := range map[string]string{"wrong password": "owner@acme.example", "unknown e-mail": "nobody@acme.example", "inactive user": "off@support.example"} {
		password := pw
		if name == "wrong password" {
			password = "not the password!"
		}
		_, _, err := s.Login(ctx, email, password, "", models.RequestMeta{IP: fmt.Sprintf("198.51.100.%d", len(name))})
		if !errors.Is(err, models.ErrInvalidCredentials) {
			t.Errorf("%s: got %v, want ErrInvalidCredentials", name, err)
		}
	}
	tok, p, err := s.Login(ctx, " OWNER@acme.example", pw, "", meta)
	if err != nil || tok == "" || p.Account == nil || p.Account.Name != "Acme" {
		t.Fatalf("right password: %v %v", err, p)
	}
	var failed int64
	testdb.Must(t, s.DB().Table("audit_entries").Where("action = ?", models.ActionLoginFailed).Count(&failed))
	if failed != 3 {
		t.Fatalf("%d login.failed entries, want 3", failed)
	}
	var details []string
	testdb.Must(t, s.DB().Table("audit_entries").Where("action = ?", models.ActionLoginFailed).Pluck("details", &details))
	for _, d := range details {
		if strings.Contains(d, "owner@acme.example") || strings.Contains(d, "not the password") {
			t.Fatalf("audit entry leaks e-mail or password: %s", d)
		}
	}
}

func TestLoginThrottlePerAccountAndAddress(t *testing.T) {
	t.Parallel()
	s, clock := testdb.Open(t)
	mustAccount(t, s, "Acme", "owner@acme.example")
	for i := 0; i < models.DefaultThrottle.PerPair; i++ {
		_, _, err := s.Login(ctx, "owner@acme.example", "wrong password!!", "", meta)
		if !errors.Is(err, models.ErrInvalidCredentials) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	_, _, err := s.Login(ctx, "owner@acme.example", pw, "", meta)
	var te *models.ThrottledError
	if !errors.As(err, &te) || te.RetryAfterSeconds() < 60 {
		t.Fatalf("after %d failures from one address the right password from it got %v, want a throttle", models.DefaultThrottle.PerPair, err)
	}
	clock.Advance(models.DefaultThrottle.Lockout + time.Second)
	if _, _, err := s.Login(ctx, "owner@acme.example", pw, "", meta); err != nil {
		t.Fatalf("after the lockout: %v", err)
	}
}

func TestLoginThrottlePerIP(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	mustAccount(t, s, "Acme", "owner@acme.example")
	ip := models.RequestMeta{IP: "198.51.100.9"}
	for i := 0; i < models.DefaultThrottle.PerIP; i++ {
		_, _, err := s.Login(ctx, fmt.Sprintf("guess%d@acme.example", i), "wrong password!!", "", ip)
		if !errors.Is(err, models.ErrInvalidCredentials) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	var te *models.ThrottledError
	if _, _, err := s.Login(ctx, "owner@acme.example", pw, "", ip); !errors.As(err, &te) {
		t.Fatalf("IP over its limit got %v", err)
	}
	if _, _, err := s.Login(ctx, "owner@acme.example", pw, "", models.RequestMeta{IP: "198.51.100.10"}); err != nil {
		t.Fatalf("another IP is blocked too: %v", err)
	}
}

func TestSessionLifecycle(t *testing.T) {
	t.Parallel()
	s, clock := testdb.Open(t)
	mustAccount(t, s, "Acme", "owner@acme.example")

	t.Run("idle timeout", func(t *testing.T) {
		tok, _, err := s.Login(ctx, "owner@acme.example", pw, "", meta)
		if err != nil {
			t.Fatal(err)
		}
		clock.Advance(29 * time.Minute)
		if _, err := s.ResolveSession(ctx, tok); err != nil {
			t.Fatalf("active session refused: %v", err)
		}
		clock.Advance(31 * time.Minute)
		if _, err := s.ResolveSession(ctx, tok); !errors.Is(err, models.ErrSessionInvalid) {
			t.Fatalf("idle session accepted: %v", err)
		}
	})
	t.Run("absolute lifetime", func(t *testing.T) {
		tok, _, err := s.Login(ctx, "owner@acme.example", pw, "", meta)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 12*3-1; i++ { // active every 20 minutes for just under 12 h
			clock.Advance(20 * time.Minute)
			if _, err := s.ResolveSession(ctx, tok); err != nil {
				t.Fatalf("after %d min: %v", (i+1)*20, err)
			}
		}
		clock.Advance(20 * time.Minute)
		if _, err := s.ResolveSession(ctx, tok); !errors.Is(err, models.ErrSessionInvalid) {
			t.Fatalf("session older than 12 h accepted: %v", err)
		}
	})
	t.Run("login replaces the old session", func(t *testing.T) {
		old, _, err := s.Login(ctx, "owner@acme.example", pw, "", meta)
		if err != nil {
			t.Fatal(err)
		}
		fresh, _, err := s.Login(ctx, "owner@acme.example", pw, old, meta)
		if err != nil {
			t.Fatal(err)
		}
		if fresh == old {
			t.Fatal("session ID did not change at login")
		}
		if _, err := s.ResolveSession(ctx, old); !errors.Is(err, models.ErrSessionInvalid) {
			t.Fatalf("pre-login session still valid: %v", err)
		}
	})
	t.Run("logout deletes the row", func(t *testing.T) {
		tok, _, err := s.Login(ctx, "owner@acme.example", pw, "", meta)
		if err != nil {
			t.Fatal(err)
		}
		p, err := s.ResolveSession(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Logout(ctx, p, meta); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ResolveSession(ctx, tok); !errors.Is(err, models.ErrSessionInvalid) {
			t.Fatalf("session valid after logout: %v", err)
		}
	})
	t.Run("sessions store only a digest", func(t *testing.T) {
		tok, _, err := s.Login(ctx, "owner@acme.example", pw, "", meta)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		testdb.Must(t, s.DB().Table("sessions").Where("id_hash = ?", tok).Count(&n))
		if n != 0 {
			t.Fatal("the raw session token is stored")
		}
	})
}

func TestChangePasswordEndsOtherSessions(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	mustAccount(t, s, "Acme", "owner@acme.example")
	mine, _, err := s.Login(ctx, "owner@acme.example", pw, "", meta)
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := s.Login(ctx, "owner@acme.example", pw, "", meta)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.ResolveSession(ctx, mine)
	if err != nil {
		t.Fatal(err)
	}
	err = s.ChangePassword(ctx, p, "wrong current pw", "a brand new passphrase", meta)
	if models.FieldErrors(err)["current"] == "" {
		t.Fatalf("wrong current password: %v", err)
	}
	err = s.ChangePassword(ctx, p, pw, "short", meta)
	if models.FieldErrors(err)["new"] == "" {
		t.Fatalf("short new password: %v", err)
	}
	if err := s.ChangePassword(ctx, p, pw, "a brand new passphrase", meta); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ResolveSession(ctx, mine); err != nil {
		t.Fatalf("current session ended: %v", err)
	}
	if _, err := s.ResolveSession(ctx, other); !errors.Is(err, models.ErrSessionInvalid) {
		t.Fatalf("other session survived a password change: %v", err)
	}
	if _, _, err := s.Login(ctx, "owner@acme.example", pw, "", meta); !errors.Is(err, models.ErrInvalidCredentials) {
		t.Fatalf("old password still works: %v", err)
	}
	if _, _, err := s.Login(ctx, "owner@acme.example", "a brand new passphrase", "", meta); err != nil {
		t.Fatalf("new password refused: %v", err)
	}
	var revoked int64
	testdb.Must(t, s.DB().Table("audit_entries").Where("action = ?", models.ActionSessionRevoked).Count(&revoked))
	if revoked != 1 {
		t.Fatalf("%d session.revoked entries, want 1", revoked)
	}
}

func TestSudoWindow(t *testing.T) {
	t.Parallel()
	s, clock := testdb.Open(t)
	mustAccount(t, s, "Acme", "owner@acme.example")
	tok, _, err := s.Login(ctx, "owner@acme.example", pw, "", meta)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(14 * time.Minute)
	p, err := s.ResolveSession(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if !p.InSudo(s.Now()) {
		t.Fatal("not in sudo mode 14 minutes after login")
	}
	clock.Advance(2 * time.Minute)
	if p.InSudo(s.Now()) {
		t.Fatal("still in sudo mode 16 minutes after login")
	}
	if _, err := s.ReauthenticateWithCode(ctx, p, "wrong password!!", "", meta); models.FieldErrors(err)["password"] == "" {
		t.Fatalf("wrong password re-authenticated: %v", err)
	}
	sudo, err := s.ReauthenticateWithCode(ctx, p, pw, "", meta)
	if err != nil {
		t.Fatal(err)
	}
	// The actor returned is in sudo; the principal it came from is as it was.
	if !sudo.AuthAt.Equal(s.Now()) || sudo.UserID != p.User.ID || p.InSudo(s.Now()) {
		t.Fatalf("re-authentication: actor AuthAt %v, principal in sudo %v", sudo.AuthAt, p.InSudo(s.Now()))
	}
	p2, err := s.ResolveSession(ctx, tok)
	if err != nil || !p2.InSudo(s.Now()) {
		t.Fatalf("re-authentication did not restart the sudo window: %v", err)
	}
}

func TestChangePasswordGuessesAreThrottled(t *testing.T) {
	t.Parallel()
	s, _ := testdb.Open(t)
	mustAccount(t, s, "Acme", "owner@acme.example")
	tok, _, err := s.Login(ctx, "owner@acme.example", pw, "", meta)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.ResolveSession(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < models.DefaultThrottle.PerPair; i++ {
		if err := s.ChangePassword(ctx, p, "a wrong guess!!", "a brand new passphrase", meta); models.FieldErrors(err)["current"] == "" {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	var te *models.ThrottledError
	if err := s.ChangePassword(ctx, p, pw, "a brand new passphrase", meta); !errors.As(err, &te) {
		t.Fatalf("after %d wrong guesses the right password got %v, want a throttle", models.DefaultThrottle.PerPair, err)
	}
}

// An idle timeout under a minute must not end a session that is in use:
// last-seen is written at most a tenth of the timeout apart.
func TestShortIdleTimeoutKeepsActiveSessionsAlive(t *testing.T) {
	t.Parallel()
	clock := testdb.NewClock()
	opt := testdb.Options(clock)
	opt.SessionIdle = 30 * time.Second
	s := testdb.OpenDSN(t, testdb.DSN(t), opt)
	mustAccount(t, s, "Acme", "owner@acme.example")
	tok, _, err := s.Login(ctx, "owner@acme.example", pw, "", meta)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 10; i++ { // a click every 20 s for 200 s
		clock.Advance(20 * time.Second)
		if _, err := s.ResolveSession(ctx, tok); err != nil {
			t.Fatalf("active session ended after %d s: %v", 20*i, err)
		}
	}
	clock.Advance(31 * time.Second)
	if _, err := s.ResolveSession(ctx, tok); !errors.Is(err, models.ErrSessionInvalid) {
		t.Fatalf("session idle for 31 s of a 30 s timeout accepted: %v", err)
	}
}
