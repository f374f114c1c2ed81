package models

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"
)

// Instances share a deployment when they share a PostgreSQL schema, but
// NOTIFY channels and advisory locks belong to the whole database: two
// deployments in two schemas of one database (each test of the PostgreSQL
// suite is one) would hear each other's invalidations and lockouts and
// wait on each other's locks. pgScope names both after the schema the
// Store works in (current_schema(), the first existing schema of the DSN's
// search_path). In the default schema, public, they keep the names they
// always had, so instances of two versions still hear each other during an
// upgrade.
type pgScope struct {
	channel  string // NOTIFY channel of cache invalidations and lockouts
	lockSalt uint64 // mixed into advisory lock IDs (0 in public)
}

// notifyChannel is the channel in the default schema.
const notifyChannel = "keydesk_keys"

// maxIdentifier is PostgreSQL's identifier length (NAMEDATALEN - 1):
// pg_notify refuses a longer channel name.
const maxIdentifier = 63

func newPGScope(schema string) pgScope {
	if schema == "" || schema == "public" {
		return pgScope{channel: notifyChannel}
	}
	sum := sha256.Sum256([]byte(schema))
	sc := pgScope{channel: notifyChannel + ":" + schema, lockSalt: binary.BigEndian.Uint64(sum[:8])}
	if len(sc.channel) > maxIdentifier {
		sc.channel = notifyChannel + ":" + hex.EncodeToString(sum[:16])
	}
	return sc
}

// lookupPGScope reads the schema the store's connections work in.
func lookupPGScope(ctx context.Context, db *gorm.DB) (pgScope, error) {
	var schema sql.NullString
	if err := db.WithContext(ctx).Raw("SELECT current_schema()").Scan(&schema).Error; err != nil {
		return pgScope{}, fmt.Errorf("models: current schema: %w", err)
	}
	return newPGScope(schema.String), nil
}

// lock is the advisory lock ID of one of locks.go's constants in this
// store's schema: the constant itself in public, else the constant mixed
// with the schema's hash (distinct constants stay distinct).
func (s *Store) lock(id int64) int64 { return int64(uint64(id) ^ s.pg.lockSalt) }

// listenSQL is the LISTEN statement for this store's channel.
func (s *Store) listenSQL() string { return "LISTEN " + pgx.Identifier{s.pg.channel}.Sanitize() }
