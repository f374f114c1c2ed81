// Package models holds keydesk's entities and every domain rule. It is the
// only package that touches the database.
package models

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Engine names the database behind a Store.
type Engine string

const (
	SQLite   Engine = "sqlite"
	Postgres Engine = "postgres"
)

// The production defaults of Options, also keydesk's flag defaults.
const (
	DefaultSessionIdle  = 30 * time.Minute // sign out after this much inactivity
	DefaultSessionMax   = 12 * time.Hour   // absolute session lifetime
	DefaultRotationDays = 90               // secrets older than this are flagged
	DefaultHashWait     = 2 * time.Second  // wait for a free password-hashing slot
)

// DefaultHashConcurrency is how many password hashes run at once by
// default: one per CPU.
func DefaultHashConcurrency() int { return runtime.NumCPU() }

// Options tune a Store. Zero values mean the production defaults.
type Options struct {
	// Now is the clock; tests inject one to move time.
	Now func() time.Time
	// Argon are the password hashing parameters (OWASP defaults when zero).
	Argon ArgonParams
	// SessionIdle and SessionMax bound a session (DefaultSessionIdle and
	// DefaultSessionMax when zero).
	SessionIdle time.Duration
	SessionMax  time.Duration
	// Throttle limits password failures (DefaultThrottle when zero),
	// APIThrottle API secret failures (DefaultAPIThrottle), Signup self
	// sign-up attempts per address (DefaultSignup).
	Throttle    ThrottlePolicy
	APIThrottle ThrottlePolicy
	Signup      SignupPolicy
	// HashConcurrency bounds the argon2id evaluations running at once (the
	// number of CPUs by default); HashWait is how long a request waits for
	// a free slot before it is answered 503 (DefaultHashWait when zero).
	HashConcurrency int
	HashWait        time.Duration
	// CacheEntries bounds each in-memory cache, verified keys and account
	// trees (DefaultCacheEntries when zero); past it the least recently
	// used entries are evicted.
	CacheEntries int
	// CacheRefreshEvery is how often KeepCachesWarm reloads the cache
	// entries in use (a quarter of the cache TTL when zero; tests go faster).
	CacheRefreshEvery time.Duration
	// RotationDays is the secret rotation policy (DefaultRotationDays when zero).
	RotationDays int
	// AuditKey links new audit entries and signs heads; it must live
	// outside the database. AuditOldKeys are earlier keys, kept to verify
	// entries linked before a rotation (and to continue a chain that has
	// not been handed over yet).
	AuditKey     []byte
	AuditOldKeys [][]byte
	// AuditAnchor is the append-only file that signed heads are written
	// to, outside the database ("" writes heads to the log line only).
	AuditAnchor string
	// StaffRequire2FA sends support and auditor staff without two-factor
	// sign-in to enrolment before anything else.
	StaffRequire2FA bool
	Logger          *slog.Logger
}

// Store is the handle every domain operation hangs from. No globals: main
// builds one and passes it down.
type Store struct {
	db *gorm.DB
	// hot runs the few fixed queries of a cold authentication (verify.go,
	// treecache.go) as prepared statements, kept per connection: SQLite
	// would otherwise parse each one anew (a third of a cold request's CPU).
	hot         *gorm.DB
	engine      Engine
	now         func() time.Time
	argon       ArgonParams
	idle        time.Duration
	maxAge      time.Duration
	throttle    ThrottlePolicy
	apiThrottle ThrottlePolicy
	signup      SignupPolicy
	rotation    int
	log         *slog.Logger
	dummy       string // a password hash to burn time on unknown e-mails
	cache       *keyCache
	trees       *treeCache
	keyLoads    *batchLoader[string, *cachedKey] // misses of cache, in batches (batchload.go)
	warmEvery   time.Duration                    // KeepCachesWarm's refresh period (warm.go)
	treeLoads   *batchLoader[uint, *treeEntry]   // misses of trees
	keys        *auditKeys
	anchor      *anchorFile
	seal        sealState
	// benchUnkeyed appends as before the chain was keyed (benchmarks only).
	benchUnkeyed atomic.Bool
	// lastReport is the newest verification seen here (metrics).
	lastReport atomic.Pointer[ChainReport]
	usageBuf   *usageBuffer
	limiter    *authLimiter
	hashes     *hashSlots
	// throttleSweep is when expired throttle counters were last deleted (Unix ns).
	throttleSweep atomic.Int64
	denials       *denialLog // denials.go
	staff2FA      bool       // Options.StaffRequire2FA
	stats         storeStats // stats.go

	pg pgScope // PostgreSQL: NOTIFY channel and advisory locks of the schema
	// pgBytesAsSent: PostgreSQL sends text as stored (the client encoding
	// is the database's, or the database is SQL_ASCII), so octet_length
	// counts the bytes the driver reads (exportSelect).
	pgBytesAsSent bool

	stopListen context.CancelFunc
	listenDone chan struct{}
}

// IsPostgresDSN reports whether dsn selects PostgreSQL rather than a SQLite file.
func IsPostgresDSN(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Open connects to dsn: a postgres:// URL, or a file path for SQLite. It does
// not migrate; call Migrate.
func Open(ctx context.Context, dsn string, opt Options) (*Store, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Argon == (ArgonParams{}) {
		opt.Argon = DefaultArgon
	}
	if opt.SessionIdle == 0 {
		opt.SessionIdle = DefaultSessionIdle
	}
	if opt.SessionMax == 0 {
		opt.SessionMax = DefaultSessionMax
	}
	if opt.Throttle == (ThrottlePolicy{}) {
		opt.Throttle = DefaultThrottle
	}
	if opt.APIThrottle == (ThrottlePolicy{}) {
		opt.APIThrottle = DefaultAPIThrottle
	}
	if opt.Signup == (SignupPolicy{}) {
		opt.Signup = DefaultSignup
	}
	if opt.HashConcurrency <= 0 {
		opt.HashConcurrency = DefaultHashConcurrency()
	}
	if opt.HashWait <= 0 {
		opt.HashWait = DefaultHashWait
	}
	if opt.RotationDays == 0 {
		opt.RotationDays = DefaultRotationDays
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	gcfg := &gorm.Config{
		Logger:                 logger.Discard,
		SkipDefaultTransaction: true,
		NowFunc:                func() time.Time { return opt.Now().UTC() },
		TranslateError:         true,
	}
	var (
		db     *gorm.DB
		err    error
		engine Engine
	)
	if IsPostgresDSN(dsn) {
		engine = Postgres
		db, err = gorm.Open(postgres.Open(dsn), gcfg)
	} else {
		engine = SQLite
		if dir := filepath.Dir(dsn); dir != "." {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, fmt.Errorf("models: create database folder: %w", err)
			}
		}
		if err := createOwnerOnly(dsn); err != nil {
			return nil, err
		}
		db, err = gorm.Open(sqlite.Open(sqliteDSN(dsn)), gcfg)
	}
	if err != nil {
		return nil, fmt.Errorf("models: open %s database: %w", engine, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("models: database handle: %w", err)
	}
	if engine == SQLite {
		// One writer at a time anyway; a few connections let WAL readers
		// proceed while a write transaction holds the lock.
		sqlDB.SetMaxOpenConns(8)
		sqlDB.SetMaxIdleConns(8)
	} else {
		sqlDB.SetMaxOpenConns(20)
		sqlDB.SetMaxIdleConns(20)
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sqlDB.PingContext(pingCtx); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("models: connect to %s database: %w", engine, err)
	}
	s := &Store{
		db: db, engine: engine, now: opt.Now, argon: opt.Argon,
		idle: opt.SessionIdle, maxAge: opt.SessionMax, throttle: opt.Throttle, apiThrottle: opt.APIThrottle, signup: opt.Signup,
		rotation: opt.RotationDays, log: opt.Logger, keys: newAuditKeys(opt.AuditKey, opt.AuditOldKeys), anchor: newAnchorFile(opt.AuditAnchor),
		usageBuf: newUsageBuffer(), denials: newDenialLog(), limiter: newAuthLimiter(opt.APIThrottle, AuthThrottleMaxEntries),
		hashes: newHashSlots(opt.HashConcurrency, opt.HashWait), staff2FA: opt.StaffRequire2FA,
	}
	s.hot = db.Session(&gorm.Session{PrepareStmt: true})
	s.keyLoads, s.treeLoads = newBatchLoader(s.loadKeys), newBatchLoader(s.loadTrees)
	if s.warmEvery = opt.CacheRefreshEvery; s.warmEvery <= 0 {
		s.warmEvery = cacheTTL / 4
	}
	if len(opt.AuditKey) == 0 {
		return nil, fmt.Errorf("models: an audit key is required to sign checkpoints")
	}
	s.dummy, err = hashPassword("keydesk-dummy-password-for-timing", s.argon)
	if err != nil {
		return nil, err
	}
	if engine == Postgres {
		if s.pg, err = lookupPGScope(pingCtx, db); err != nil {
			_ = sqlDB.Close()
			return nil, err
		}
		var enc struct{ Server, Client string }
		if err := db.WithContext(pingCtx).Raw("SELECT current_setting('server_encoding') AS server, current_setting('client_encoding') AS client").
			Scan(&enc).Error; err != nil {
			_ = sqlDB.Close()
			return nil, fmt.Errorf("models: server encoding: %w", err)
		}
		s.pgBytesAsSent = enc.Server == enc.Client || enc.Server == "SQL_ASCII"
		// Off until the listener is connected; see keyCache.
		s.cache = newCache[string, *cachedKey](opt.CacheEntries, cacheTTL, false)
		s.trees = newCache[uint, *treeEntry](opt.CacheEntries, cacheTTL, false)
		s.cache.same, s.trees.same = sameKey, sameTree
		lctx, cancel := context.WithCancel(context.Background())
		s.stopListen, s.listenDone = cancel, make(chan struct{})
		go s.listenForKeyChanges(lctx, dsn)
	} else {
		// One process owns a SQLite file; in-process invalidation suffices.
		s.cache = newCache[string, *cachedKey](opt.CacheEntries, cacheTTL, true)
		s.trees = newCache[uint, *treeEntry](opt.CacheEntries, cacheTTL, true)
		s.cache.same, s.trees.same = sameKey, sameTree
	}
	return s, nil
}

// createOwnerOnly creates the SQLite file with 0600 permissions when it does
// not exist yet. SQLite gives the WAL and shared-memory files it creates
// later the database file's permissions, so they are 0600 too: they hold
// password hashes, secret digests and the audit log.
func createOwnerOnly(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("models: create database file: %w", err)
	}
	return f.Close()
}

// sqliteDSN turns a file path into the driver's DSN: WAL for concurrent
// readers, a busy timeout instead of instant SQLITE_BUSY, enforced foreign
// keys, and BEGIN IMMEDIATE so a write transaction takes the write lock up
// front (no deadlocked lock upgrades between two readers turned writers).
func sqliteDSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	// No _time_format: the driver stops reading options after it (so
	// _txlock would be ignored), and its default is already the SQLite
	// format "2006-01-02 15:04:05.999999999-07:00".
	return "file:" + path + "?" + q.Encode()
}

// Engine reports which database this Store uses.
func (s *Store) Engine() Engine { return s.engine }

// Now is the Store's clock, in UTC.
func (s *Store) Now() time.Time { return s.now().UTC() }

// RotationDays is the secret rotation policy.
func (s *Store) RotationDays() int { return s.rotation }

// Ping checks the database answers (readiness).
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// Close stops the key listener and releases the connections.
func (s *Store) Close() error {
	if s.stopListen != nil {
		s.stopListen()
		<-s.listenDone
	}
	_ = s.anchor.close()
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// tx runs fn in one transaction (immediate on SQLite).
func (s *Store) tx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return s.db.WithContext(ctx).Transaction(fn)
}

func notFound(err error) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return ErrNotFound
	}
	return err
}

// DB exposes the connection to tests in other packages that must inspect or
// tamper with raw rows. Application code never calls it.
func (s *Store) DB() *gorm.DB { return s.db }
