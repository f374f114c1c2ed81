package models

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// ArgonParams are argon2id's cost parameters.
type ArgonParams struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
}

// DefaultArgon is OWASP's recommended argon2id setting: m=19 MiB, t=2, p=1.
var DefaultArgon = ArgonParams{MemoryKiB: 19 * 1024, Time: 2, Threads: 1}

const (
	PasswordMinLen = 12
	// PasswordMaxLen is generous (≥ 64 required); it only stops megabyte
	// "passwords" from being hashed.
	PasswordMaxLen = 256
)

// CheckPasswordPolicy enforces length only, no composition rules (NIST 800-63B).
func CheckPasswordPolicy(pw string) string {
	n := utf8.RuneCountInString(pw)
	switch {
	case n < PasswordMinLen:
		return fmt.Sprintf("Use at least %d characters.", PasswordMinLen)
	case n > PasswordMaxLen:
		return fmt.Sprintf("Use at most %d characters.", PasswordMaxLen)
	}
	return ""
}

// hashPassword returns a PHC-format argon2id hash with a random salt.
func hashPassword(pw string, p ArgonParams) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("models: salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.MemoryKiB, p.Threads, 32)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

var errBadHash = errors.New("models: malformed password hash")

// checkPassword compares pw with a stored hash in constant time, using the
// parameters recorded in the hash (so raising the cost later keeps old
// hashes valid).
func checkPassword(pw, encoded string) (bool, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errBadHash
	}
	var p ArgonParams
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &p.Threads); err != nil {
		return false, errBadHash
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return false, errBadHash
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil {
		return false, errBadHash
	}
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.MemoryKiB, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// BusyError says every password-hashing slot stayed taken for the whole
// short wait: the password was not evaluated (and no failure was counted).
// The web answers 503 with Retry-After.
type BusyError struct {
	RetryAfter time.Duration
}

func (e *BusyError) Error() string {
	return "models: too many password checks at once; try again shortly"
}

// RetryAfterSeconds is the value for a Retry-After header (at least 1).
func (e *BusyError) RetryAfterSeconds() int {
	return max(1, int((e.RetryAfter+time.Second-1)/time.Second))
}

// hashSlots bounds how many argon2id evaluations run at once. Each holds
// ArgonParams.MemoryKiB (19 MiB by default) for its duration, so without a
// bound a burst of logins (even for unknown e-mails) takes gigabytes.
type hashSlots struct {
	slots chan struct{}
	wait  time.Duration
	done  atomic.Uint64 // evaluations run, for tests and metrics
}

func newHashSlots(n int, wait time.Duration) *hashSlots {
	return &hashSlots{slots: make(chan struct{}, n), wait: wait}
}

// run waits at most h.wait for a slot, then runs fn in it.
func (h *hashSlots) run(ctx context.Context, fn func()) error {
	select {
	case h.slots <- struct{}{}:
	default:
		t := time.NewTimer(h.wait)
		defer t.Stop()
		select {
		case h.slots <- struct{}{}:
		case <-t.C:
			return &BusyError{RetryAfter: time.Second}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer func() { <-h.slots }()
	h.done.Add(1)
	fn()
	return nil
}

// hashPassword hashes pw in a hashing slot (see hashSlots).
func (s *Store) hashPassword(ctx context.Context, pw string) (string, error) {
	var (
		hash string
		err  error
	)
	if rerr := s.hashes.run(ctx, func() { hash, err = hashPassword(pw, s.argon) }); rerr != nil {
		return "", rerr
	}
	return hash, err
}

// checkPassword checks pw against encoded in a hashing slot.
func (s *Store) checkPassword(ctx context.Context, pw, encoded string) (bool, error) {
	var (
		ok  bool
		err error
	)
	if rerr := s.hashes.run(ctx, func() { ok, err = checkPassword(pw, encoded) }); rerr != nil {
		return false, rerr
	}
	return ok, err
}

// PasswordEvaluations counts the argon2id evaluations this Store has run
// (hashes and checks), so tests can tell how many guesses were evaluated.
func (s *Store) PasswordEvaluations() uint64 { return s.hashes.done.Load() }
