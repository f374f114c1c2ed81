package models

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
)

// AuditEntry is one append-only record. The application never updates or
// deletes one; Hash chains it to the entry before it.
type AuditEntry struct {
	ID          uint64 `gorm:"primaryKey;autoIncrement:false"`
	At          time.Time
	ActorType   string // user, apikey, system
	ActorUserID *uint
	ActorLabel  string // e-mail at the time, "API key 3f9c…", or "system"
	ActorRole   string
	AccountID   *uint
	TreeID      *uint // the main account of AccountID (itself, or its parent)
	Action      string
	TargetType  string
	TargetID    string
	TargetName  string
	IP          string
	UserAgent   string
	Details     string // small JSON object; never a secret or password
	PrevHash    string
	Hash        string
	KeyID       string // the audit key Link is under ("" before the chain was keyed)
	Link        string // HMAC-SHA256 chain under that key; see auditchain.go
}

func (AuditEntry) TableName() string { return "audit_entries" }

// RequestMeta is where a request came from, recorded with each entry.
type RequestMeta struct {
	IP        string
	UserAgent string
}

// Actor is who performs an operation.
type Actor struct {
	UserID    uint
	Email     string
	Role      Role
	AccountID uint // the account worked in (a main account); 0 for staff
	// MemberID is the actor's membership in AccountID (0 for staff, API
	// keys and the system); Scoped with Scope limits it to those
	// sub-accounts (members.go).
	MemberID uint
	Scoped   bool
	Scope    []uint
	// AuthAt is when the actor last entered their password; sensitive
	// operations refuse actors outside the sudo window.
	AuthAt time.Time
	Meta   RequestMeta
}

// RoleSystem is the role of the CLI and of the server itself acting.
const RoleSystem Role = "system"

// Actor types of audit entries: a person, an API key, or the system.
const (
	actorUser   = "user"
	actorAPIKey = "apikey"
	actorSystem = "system"
)

// maxUserAgent is how much of a client's User-Agent is kept (sessions,
// audit entries): enough to recognise the client, bounded whatever it sends.
const maxUserAgent = 512

// SystemActor is the CLI or the server itself.
func SystemActor() Actor { return systemActor(RequestMeta{}) }

// systemActor is the server acting on a request it could not attribute
// to anyone (a failed sign-in, a reset link asked for).
func systemActor(meta RequestMeta) Actor {
	return Actor{Email: actorSystem, Role: RoleSystem, Meta: meta}
}

type auditTarget struct {
	Type, ID, Name string
}

func target(typ string, id uint, name string) auditTarget {
	return auditTarget{Type: typ, ID: strconv.FormatUint(uint64(id), 10), Name: name}
}

// appendAudit writes one chained entry inside tx. Appends are serialised so
// the chain never forks: PostgreSQL takes a transaction-scoped advisory
// lock, SQLite's immediate transaction already holds the write lock.
func (s *Store) appendAudit(tx *gorm.DB, a Actor, action string, accountID uint, t auditTarget, details map[string]any) error {
	start := time.Now()
	err := s.appendAuditEntry(tx, a, action, accountID, t, details)
	s.stats.auditAppends.Add(1)
	s.stats.auditAppendNanos.Add(uint64(time.Since(start)))
	return err
}

func (s *Store) appendAuditEntry(tx *gorm.DB, a Actor, action string, accountID uint, t auditTarget, details map[string]any) error {
	if s.engine == Postgres {
		if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", s.lock(lockAuditAppend)).Error; err != nil {
			return fmt.Errorf("models: audit lock: %w", err)
		}
	}
	var prev AuditEntry
	err := tx.Select("id", "hash", "key_id", "link", "action", "details").Order("id DESC").Limit(1).Find(&prev).Error
	if err != nil {
		return fmt.Errorf("models: audit head: %w", err)
	}
	if details == nil {
		details = map[string]any{}
	}
	d, err := json.Marshal(details) // map keys sorted: a canonical encoding
	if err != nil {
		return fmt.Errorf("models: audit details: %w", err)
	}
	e := AuditEntry{
		ID: prev.ID + 1, At: s.Now().Truncate(time.Microsecond), ActorLabel: a.Email, ActorRole: string(a.Role),
		Action: action, TargetType: t.Type, TargetID: t.ID, TargetName: t.Name,
		IP: a.Meta.IP, UserAgent: truncate(a.Meta.UserAgent, maxUserAgent), Details: string(d), PrevHash: prev.Hash,
	}
	switch {
	case a.UserID != 0:
		e.ActorType = actorUser
		uid := a.UserID
		e.ActorUserID = &uid
	case a.Role == RoleAPIKey:
		e.ActorType = actorAPIKey
	default:
		e.ActorType, e.ActorLabel = actorSystem, actorSystem
	}
	if accountID != 0 {
		acc := accountID
		e.AccountID = &acc
		root, err := treeOf(tx, accountID)
		if err != nil {
			return fmt.Errorf("models: audit account tree: %w", err)
		}
		if root != 0 {
			e.TreeID = &root
		}
	}
	e.Hash = e.computeHash()
	if !s.benchUnkeyed.Load() {
		if err := s.linkEntry(&e, &prev); err != nil {
			return err
		}
	}
	if err := tx.Create(&e).Error; err != nil {
		return fmt.Errorf("models: audit append: %w", err)
	}
	return nil
}

// computeHash is SHA-256 over a canonical JSON encoding of every field but
// Hash, followed by the previous entry's hash.
func (e *AuditEntry) computeHash() string {
	opt := func(p *uint) string {
		if p == nil {
			return ""
		}
		return strconv.FormatUint(uint64(*p), 10)
	}
	canon, _ := json.Marshal([]string{
		strconv.FormatUint(e.ID, 10), e.At.UTC().Format(time.RFC3339Nano), e.ActorType, opt(e.ActorUserID), e.ActorLabel, e.ActorRole,
		opt(e.AccountID), opt(e.TreeID), e.Action, e.TargetType, e.TargetID, e.TargetName, e.IP, e.UserAgent, e.Details,
	})
	h := sha256.New()
	h.Write(canon)
	h.Write([]byte(e.PrevHash))
	return hex.EncodeToString(h.Sum(nil))
}

// ComputeAuditHash is an entry's plain SHA-256 link, as anyone (an export's
// reader, or an attacker rewriting the log) can compute it; the keyed Link
// needs the audit key.
func ComputeAuditHash(e *AuditEntry) string { return e.computeHash() }

// truncate cuts s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
