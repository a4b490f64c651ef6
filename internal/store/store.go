// Package store is SmartCloudOps' database layer: database/sql over embedded
// SQLite (the default) or PostgreSQL through pgx, with embedded, versioned
// migrations that bring either to the same schema.
//
// Beside it, querycache caches read results for it, dbadmin administers the
// database it opened (statistics report, index advisor, maintenance), and
// fingerprint is the SQL lexer all of them share.
package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver

	"github.com/smartcloudops/smartcloudops/internal/dburl"
	"github.com/smartcloudops/smartcloudops/internal/health"
	"github.com/smartcloudops/smartcloudops/internal/store/querycache"
)

// Options configure Open.
type Options struct {
	// URL is a DATABASE_URL: sqlite:///path or postgres://….
	URL string
	// PoolSize bounds open connections: the PostgreSQL pool, or SQLite's read pool
	// (SQLite always has exactly one writer connection). Default 20.
	PoolSize int
	// BusyTimeout is how long a SQLite statement waits for a lock before failing. Default 5s.
	BusyTimeout time.Duration
	// MinIdle is the number of PostgreSQL connections kept open while idle, so
	// a burst after a quiet period does not pay for connecting. Default 2.
	MinIdle int
	// ConnMaxLifetime recycles PostgreSQL connections (server-side memory,
	// failover to a new primary behind the same name). Default 30m.
	ConnMaxLifetime time.Duration
	// HealthCheckPeriod is how often pgx checks idle connections. Default 30s.
	HealthCheckPeriod time.Duration

	// Logger receives the slow-query log. Default: discard.
	Logger *slog.Logger
	// Registerer takes the store's smartcloudops_db_* metrics, the query
	// cache's among them; nil registers none. The index advisor's counter is
	// registered by dbadmin.
	Registerer prometheus.Registerer
	// SlowQueryThreshold (SLOW_QUERY_THRESHOLD): statements at least this slow
	// are logged with their fingerprint, duration, rows and plan; 0 turns the
	// slow log off, as in the configuration (whose default is 1s).
	SlowQueryThreshold time.Duration
	// LogQueryParams adds bound values to slow-query entries. Off by default:
	// parameters can carry personal data and secrets.
	LogQueryParams bool
	// StatsCapacity bounds the fingerprints kept in the query statistics. Default 500.
	StatsCapacity int
	// Cache enables the query-result cache (QueryCached); nil disables it.
	// A querycache.SharedBackend keeps the table versions in the cache as
	// well, so a write through any replica invalidates every replica's
	// results; see querycache.Options.Backend for what an outage leaves.
	Cache querycache.Backend
	// CacheTTL bounds how long a cached result lives. Default 300s.
	CacheTTL time.Duration
	// CachePrefix starts every query-cache key. Default "sco:dbq:". Replicas
	// that share a cache and a database must use the same prefix.
	CachePrefix string
	// Now is the clock for statistics and timings. Default time.Now.
	Now func() time.Time
	// TracerProvider records a span per statement run under a recording
	// span (see tracing.go); nil or a no-op provider records nothing and
	// costs nothing.
	TracerProvider trace.TracerProvider
}

func (o *Options) defaults() {
	if o.PoolSize == 0 {
		o.PoolSize = 20
	}
	if o.BusyTimeout == 0 {
		o.BusyTimeout = 5 * time.Second
	}
	if o.MinIdle == 0 {
		o.MinIdle = 2
	}
	if o.ConnMaxLifetime == 0 {
		o.ConnMaxLifetime = 30 * time.Minute
	}
	if o.HealthCheckPeriod == 0 {
		o.HealthCheckPeriod = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.StatsCapacity == 0 {
		o.StatsCapacity = 500
	}
	if o.CacheTTL == 0 {
		o.CacheTTL = 300 * time.Second
	}
	if o.CachePrefix == "" {
		o.CachePrefix = "sco:dbq:"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

func (o Options) validate() error {
	if o.PoolSize < 1 {
		return fmt.Errorf("store: pool size %d: must be at least 1", o.PoolSize)
	}
	if o.BusyTimeout < 0 {
		return fmt.Errorf("store: busy timeout %s: must not be negative", o.BusyTimeout)
	}
	if o.MinIdle < 0 || o.MinIdle > o.PoolSize {
		return fmt.Errorf("store: min idle %d: must be between 0 and the pool size %d", o.MinIdle, o.PoolSize)
	}
	if o.StatsCapacity < 1 {
		return fmt.Errorf("store: stats capacity %d: must be at least 1", o.StatsCapacity)
	}
	if o.CacheTTL < 0 || o.ConnMaxLifetime < 0 || o.HealthCheckPeriod < 0 || o.SlowQueryThreshold < 0 {
		return errors.New("store: durations must not be negative")
	}
	return nil
}

// Store is an open database. It is safe for concurrent use.
//
// It owns the connections, runs every statement through one instrumented
// path (Exec, Query, InTx) and holds the application's tables. What reports
// on those statements is Diagnostics; the query-result cache is a
// querycache.Cache the Store feeds and invalidates; the index advisor,
// table statistics and maintenance are in package dbadmin.
type Store struct {
	kind dburl.Kind
	// write takes every statement that changes data. On SQLite it is a single
	// connection, because SQLite has one writer at a time and queueing in Go is
	// cheaper and fairer than spinning on SQLITE_BUSY. On PostgreSQL it is the
	// same pool as read.
	write *sql.DB
	read  *sql.DB
	pg    *pgxpool.Pool // nil on SQLite
	path  string        // SQLite file, for stats

	now       func() time.Time
	memo      memo
	diag      *Diagnostics
	metrics   *storeMetrics
	qc        *querycache.Cache
	stop      context.CancelFunc
	bg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Open connects to the database named by o.URL and checks it answers. It does
// not migrate; call Migrate.
func Open(ctx context.Context, o Options) (*Store, error) {
	o.defaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	kind, addr, err := dburl.Parse(o.URL)
	if err != nil {
		return nil, fmt.Errorf("store: DATABASE_URL: %w", err)
	}
	var s *Store
	switch kind {
	case dburl.SQLite:
		s, err = openSQLite(addr, o)
	case dburl.Postgres:
		s, err = openPostgres(ctx, addr, o)
	}
	if err != nil {
		return nil, err
	}
	s.now = o.Now
	s.memo.kind = kind
	s.diag = &Diagnostics{
		kind: kind, read: s.read, write: s.write, pg: s.pg, now: o.Now,
		stats:   newStatsBook(o.StatsCapacity, o.Now),
		slow:    newSlowLog(o.SlowQueryThreshold, o.LogQueryParams, o.Logger, 50),
		tracing: newStoreTracer(o.TracerProvider, kind),
	}
	if s.metrics, err = newStoreMetrics(o.Registerer, s.diag); err != nil {
		closeHandles(s.write, s.read, s.pg)
		return nil, err
	}
	s.diag.metrics = s.metrics
	s.qc, err = querycache.New(querycache.Options{
		Backend: o.Cache, TTL: o.CacheTTL, Prefix: o.CachePrefix, DatabaseID: databaseID(kind, o.URL, addr),
		Source: cacheSource{s}, Registerer: o.Registerer,
	})
	if err != nil {
		closeHandles(s.write, s.read, s.pg)
		return nil, err
	}
	s.diag.qc = s.qc
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	bgctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.qc.Run(bgctx)
	}()
	return s, nil
}

// databaseID names the database in shared cache keys, so that replicas share
// results only when they read the same database: the host name and absolute
// path of a SQLite file, the user, host, port and database of a PostgreSQL one.
// Replicas that name one database differently merely share fewer results;
// the version keys, which invalidate, are per table and not per database.
func databaseID(kind dburl.Kind, rawURL, addr string) string {
	id := string(kind) + "|"
	if kind == dburl.SQLite {
		host, _ := os.Hostname()
		abs, err := filepath.Abs(addr)
		if err != nil {
			abs = addr
		}
		id += host + "|" + abs
	} else if c, err := pgconn.ParseConfig(rawURL); err == nil {
		id += pgTarget(*c)
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:6])
}

func sqliteDSN(path string, busy time.Duration, readOnly bool) string {
	// WAL lets readers proceed while the writer commits; synchronous=NORMAL is
	// the documented safe pairing with WAL (durable across application crashes,
	// may lose the last commits on power loss). _txlock=immediate takes the
	// write lock at BEGIN, so a transaction never fails half-way on upgrade.
	dsn := fmt.Sprintf("file:%s?_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_time_format=sqlite",
		path, busy.Milliseconds())
	if readOnly {
		return dsn + "&_pragma=query_only(1)"
	}
	return dsn + "&_txlock=immediate"
}

func openSQLite(path string, o Options) (*Store, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("store: create directory for sqlite file %s: %w", path, err)
		}
	}
	w, err := sql.Open("sqlite", sqliteDSN(path, o.BusyTimeout, false))
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	// The writer creates the file and switches it to WAL before readers open it.
	if err := w.Ping(); err != nil {
		w.Close()
		return nil, fmt.Errorf("store: open sqlite %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", sqliteDSN(path, o.BusyTimeout, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("store: open sqlite %s for reading: %w", path, err)
	}
	r.SetMaxOpenConns(o.PoolSize)
	r.SetMaxIdleConns(o.PoolSize)
	r.SetConnMaxIdleTime(5 * time.Minute)
	return &Store{kind: dburl.SQLite, write: w, read: r, path: path}, nil
}

func openPostgres(ctx context.Context, url string, o Options) (*Store, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgconn's parse errors show the URL with its password redacted.
		return nil, fmt.Errorf("store: parse postgres url: %w", err)
	}
	pc.MaxConns = int32(o.PoolSize)
	pc.MinConns = int32(min(o.MinIdle, o.PoolSize))
	pc.MinIdleConns = pc.MinConns
	pc.MaxConnLifetime = o.ConnMaxLifetime
	pc.MaxConnLifetimeJitter = o.ConnMaxLifetime / 30
	pc.MaxConnIdleTime = 5 * time.Minute
	pc.HealthCheckPeriod = o.HealthCheckPeriod
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("store: connect postgres %s: %w", pgTarget(pc.ConnConfig.Config), err)
	}
	db := stdlib.OpenDBFromPool(pool)
	return &Store{kind: dburl.Postgres, write: db, read: db, pg: pool}, nil
}

// pgTarget names a PostgreSQL database without its secrets: user, host,
// port and database, the parts that say which server and data are meant.
func pgTarget(c pgconn.Config) string {
	return fmt.Sprintf("%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
}

// Kind says which database this is.
func (s *Store) Kind() dburl.Kind { return s.kind }

// File is the SQLite database file ("" on PostgreSQL), for size reports;
// its write-ahead log is File()+"-wal".
func (s *Store) File() string { return s.path }

// Writer is the handle for statements that change data.
func (s *Store) Writer() *sql.DB { return s.write }

// Reader is the handle for read-only queries; on SQLite it refuses writes.
func (s *Store) Reader() *sql.DB { return s.read }

// Ping checks both handles answer a trivial query within ctx.
func (s *Store) Ping(ctx context.Context) error {
	for _, db := range handles(s.write, s.read) {
		var one int
		if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
			return fmt.Errorf("store: ping %s: %w", s.kind, err)
		}
	}
	return nil
}

// handles lists the distinct pools: one on PostgreSQL, where reads and
// writes share it, two on SQLite.
func handles(write, read *sql.DB) []*sql.DB {
	if read == write {
		return []*sql.DB{write}
	}
	return []*sql.DB{write, read}
}

// Check implements health.Checker: UP when a query round-trips, DOWN otherwise.
func (s *Store) Check(ctx context.Context) health.Component {
	start := time.Now()
	err := s.Ping(ctx)
	details := map[string]any{
		"driver":     string(s.kind),
		"latency_ms": float64(time.Since(start).Microseconds()) / 1000,
	}
	st := s.write.Stats()
	details["open_connections"] = st.OpenConnections
	details["in_use"] = st.InUse
	if s.pg != nil {
		ps := s.pg.Stat()
		details["open_connections"] = ps.TotalConns()
		details["in_use"] = ps.AcquiredConns()
		details["max_connections"] = ps.MaxConns()
	}
	if err != nil {
		details["error"] = Describe(err)
		return health.Component{Status: health.StatusDown, Details: details}
	}
	return health.Component{Status: health.StatusUp, Details: details}
}

// Describe turns a driver error into text safe to show an operator: the kind
// of failure, never a statement or a connection string.
func Describe(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "database unreachable or failing; see the service log"
}

// Close stops the store's background work (shared cache version retries,
// slow-query plans), then releases every connection. It is safe to call
// more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.stop != nil {
			s.stop()
		}
		s.bg.Wait()
		if s.diag != nil {
			s.diag.slow.wg.Wait()
		}
		s.closeErr = closeHandles(s.write, s.read, s.pg)
	})
	return s.closeErr
}

func closeHandles(write, read *sql.DB, pg *pgxpool.Pool) error {
	var errs []error
	for _, db := range handles(write, read) {
		errs = append(errs, db.Close())
	}
	if pg != nil {
		pg.Close()
	}
	return errors.Join(errs...)
}

// Rebind rewrites ? placeholders into the database's own form ($1, $2, … on
// PostgreSQL), so one statement text serves both. It does not look inside
// string literals: statements passed to it must bind values, not inline them.
func (s *Store) Rebind(q string) string { return rebind(s.kind, q) }

func rebind(kind dburl.Kind, q string) string {
	if kind != dburl.Postgres {
		return q
	}
	out := make([]byte, 0, len(q)+8)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			out = append(out, '$')
			out = strconv.AppendInt(out, int64(n), 10)
			continue
		}
		out = append(out, q[i])
	}
	return string(out)
}
