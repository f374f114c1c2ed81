package models

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Typed errors. web maps them in one place to pages, status codes and JSON.
var (
	// ErrNotFound also answers for other tenants' IDs, so existence never leaks.
	ErrNotFound = errors.New("not found")
	// ErrForbidden is for a known principal acting outside their role.
	ErrForbidden = errors.New("forbidden")
	// ErrInvalidCredentials is the single answer to every failed login or
	// verification, whatever the cause (unknown e-mail, wrong password,
	// disabled user), so callers cannot enumerate accounts.
	ErrInvalidCredentials = errors.New("invalid credentials")
	// ErrSessionInvalid means the session cookie names no live session.
	ErrSessionInvalid = errors.New("session invalid or expired")
	// ErrReauthRequired means the action needs a recent authentication (sudo mode).
	ErrReauthRequired = errors.New("recent authentication required")
	// ErrLimitReached means a plan limit would be exceeded.
	ErrLimitReached = errors.New("limit reached")
	// ErrConflict is a concurrent change that lost.
	ErrConflict = errors.New("conflict")
)

// ThrottledError says a caller must wait before trying again.
type ThrottledError struct {
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many attempts; retry after %s", e.RetryAfter.Round(time.Second))
}

// RetryAfterSeconds is the value for a Retry-After header (at least 1).
func (e *ThrottledError) RetryAfterSeconds() int {
	s := int((e.RetryAfter + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

// ValidationError carries one message per input field, for re-rendering a
// form with inline errors (422).
type ValidationError struct {
	Fields map[string]string
}

func (e *ValidationError) Error() string {
	parts := make([]string, 0, len(e.Fields))
	for k, v := range e.Fields {
		parts = append(parts, k+": "+v)
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// Add records a message for field unless one is already there.
func (e *ValidationError) Add(field, msg string) {
	if e.Fields == nil {
		e.Fields = map[string]string{}
	}
	if _, ok := e.Fields[field]; !ok {
		e.Fields[field] = msg
	}
}

// OrNil returns e when it holds at least one message.
func (e *ValidationError) OrNil() error {
	if e == nil || len(e.Fields) == 0 {
		return nil
	}
	return e
}

// FieldErrors extracts the field messages of err, or nil.
func FieldErrors(err error) map[string]string {
	var v *ValidationError
	if errors.As(err, &v) {
		return v.Fields
	}
	return nil
}
