// Package config loads SmartCloudOps' configuration from environment variables
// and command-line flags into one typed struct, remembering where every value
// came from so /performance/config can show it with secrets masked.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/dburl"
)

// Source says where an effective value came from.
type Source string

// The sources, weakest first: a flag overrides the environment, which overrides the default.
const (
	SourceDefault Source = "default"
	SourceEnv     Source = "env"
	SourceFlag    Source = "flag"
)

// Config is the service's whole configuration. It is built by Load and then
// passed by value or pointer to the parts; there is no global copy.
type Config struct {
	// Addr is the HTTP listen address (SMARTCLOUDOPS_ADDR).
	Addr string
	// DatabaseURL selects the store: sqlite:///relative/path, sqlite:////absolute/path
	// or postgres://… (DATABASE_URL).
	DatabaseURL string
	// DatabasePoolSize bounds open database connections (DATABASE_POOL_SIZE).
	DatabasePoolSize int

	// DatabasePoolMinIdle is how many PostgreSQL connections stay open while idle (DATABASE_POOL_MIN_IDLE).
	DatabasePoolMinIdle int
	// DatabaseConnMaxLifetime recycles PostgreSQL connections (DATABASE_CONN_MAX_LIFETIME).
	DatabaseConnMaxLifetime time.Duration
	// SlowQueryThreshold logs statements at least this slow; 0 turns the slow log off (SLOW_QUERY_THRESHOLD).
	SlowQueryThreshold time.Duration
	// SlowQueryLogParams adds bound values to slow-query entries (SLOW_QUERY_LOG_PARAMS).
	SlowQueryLogParams bool
	// DBQueryCacheTTL bounds how long a cached query result lives (DB_QUERY_CACHE_TTL).
	DBQueryCacheTTL time.Duration
	// DBStatsCapacity bounds the statements kept in the query statistics (DB_STATS_CAPACITY).
	DBStatsCapacity int
	// DBAutoIndex lets the index advisor create the indexes it suggests (DB_AUTO_INDEX).
	DBAutoIndex bool
	// DBAdvisorInterval is how often the automatic index advisor runs (DB_ADVISOR_INTERVAL).
	DBAdvisorInterval time.Duration

	// RedisHost, RedisPort and RedisPassword describe Redis when RedisURL is empty.
	RedisHost     string
	RedisPort     int
	RedisPassword string
	// RedisURL wins over the host/port/password triple when set (REDIS_URL).
	RedisURL string

	// EnableCache turns the cache part on (ENABLE_CACHE).
	EnableCache bool
	// EnableAsyncLogging lets log writes leave the caller's goroutine (ENABLE_ASYNC_LOGGING).
	EnableAsyncLogging bool
	// EnableBatchProcessing micro-batches anomaly scoring (ENABLE_BATCH_PROCESSING).
	EnableBatchProcessing bool

	// LogDir holds the service's log files (LOG_DIR).
	LogDir string
	// LogLevel is the lowest level written (LOG_LEVEL: debug, info, warn, error).
	LogLevel string

	// LogMaxFileSize rotates the current log file past this many bytes (LOG_MAX_FILE_SIZE).
	LogMaxFileSize int64
	// LogRotationInterval rotates at wall-clock boundaries of this length; 0 turns it off (LOG_ROTATION_INTERVAL).
	LogRotationInterval time.Duration
	// LogCompressionLevel is the gzip level of rotated files, 1-9; 0 keeps them uncompressed (LOG_COMPRESSION_LEVEL).
	LogCompressionLevel int
	// LogMaxFiles bounds the rotated files kept; 0 keeps all (LOG_MAX_FILES).
	LogMaxFiles int
	// LogMaxAgeDays removes rotated files older than this; 0 keeps them (LOG_MAX_AGE_DAYS).
	LogMaxAgeDays int
	// LogQueuePolicy is what a full log queue does: block (briefly) or drop (LOG_QUEUE_POLICY).
	LogQueuePolicy string
	// LogStderrLevel is the lowest level copied to stderr, or "off" (LOG_STDERR_LEVEL).
	LogStderrLevel string

	// RedisPoolSize bounds the Redis connection pool (REDIS_POOL_SIZE).
	RedisPoolSize int
	// RedisTimeout bounds each Redis read and write before the cache falls back (REDIS_TIMEOUT).
	RedisTimeout time.Duration
	// CacheKeyPrefix starts every Redis key the cache writes (CACHE_KEY_PREFIX).
	CacheKeyPrefix string
	// CacheDefaultTTL applies when a caller gives no TTL (CACHE_DEFAULT_TTL).
	CacheDefaultTTL time.Duration
	// CacheCompressionThreshold compresses encoded values from this size (CACHE_COMPRESSION_THRESHOLD).
	CacheCompressionThreshold int64
	// CacheMaxValueBytes is the largest value accepted (CACHE_MAX_VALUE_BYTES).
	CacheMaxValueBytes int64
	// CacheLocalMaxBytes bounds the in-process tier (CACHE_LOCAL_MAX_BYTES).
	CacheLocalMaxBytes int64
	// CacheFallbackJournalBytes bounds the journal of writes taken during a
	// Redis outage and replayed when Redis is back (CACHE_FALLBACK_JOURNAL_BYTES).
	CacheFallbackJournalBytes int64

	// Anomaly holds the anomaly-detection settings (ANOMALY_*).
	Anomaly AnomalyConfig

	// AdminToken is the static bearer token with the admin role (SMARTCLOUDOPS_ADMIN_TOKEN).
	AdminToken string
	// JWTSecret verifies HS256 bearer tokens (JWT_SECRET).
	JWTSecret string
	// RequireAuth says which reads need a token (SMARTCLOUDOPS_REQUIRE_AUTH):
	// auto (the default), true or false.
	RequireAuth AuthMode
	// AuthFailureLimit is how many refused credentials one client may
	// present per minute before it gets 429; 0 turns the limit off
	// (SMARTCLOUDOPS_AUTH_FAILURE_LIMIT).
	AuthFailureLimit int
	// WriteRateLimit is how many state-changing requests per second one
	// client may send (bursts of twice that); 0 turns the limit off
	// (SMARTCLOUDOPS_WRITE_RATE_LIMIT).
	WriteRateLimit float64
	// TrustedProxies are the peers whose X-Forwarded-For names the client
	// for the per-client limits (SMARTCLOUDOPS_TRUSTED_PROXIES).
	TrustedProxies []netip.Prefix

	// MaxBodyBytes bounds request bodies; larger ones get 413 (SMARTCLOUDOPS_MAX_BODY_BYTES).
	MaxBodyBytes int64
	// ShutdownTimeout bounds the wait for in-flight requests on SIGTERM (SMARTCLOUDOPS_SHUTDOWN_TIMEOUT).
	ShutdownTimeout time.Duration

	sources map[string]Source
	raw     map[string]string // effective values as given, for Redacted
}

// AuthMode is SMARTCLOUDOPS_REQUIRE_AUTH: which reads need a token.
type AuthMode string

// The auth modes.
const (
	// AuthAuto: tenant data (hosts, series, anomalies, detection) needs a
	// token when JWT_SECRET is set, since tokens then carry tenants; with
	// no JWT_SECRET (the single-user embedded default) reads are open.
	AuthAuto AuthMode = "auto"
	// AuthRequired: every read needs a token.
	AuthRequired AuthMode = "true"
	// AuthOpen: reads are open even when JWT_SECRET is set.
	AuthOpen AuthMode = "false"
)

// AnomalyConfig configures anomaly detection; see the README for each variable.
type AnomalyConfig struct {
	BatchSize          int
	BatchTimeout       time.Duration
	MaxWorkers         int
	QueueSize          int
	MaxBatch           int
	CacheTTL           time.Duration
	Threshold          float64
	CPUThreshold       float64
	MemoryThreshold    float64
	DiskThreshold      float64
	ErrorRateThreshold float64
	WarmUp             int
	MaxSeries          int
	// MaxSeriesBytes bounds the estimated heap of the series' state (ANOMALY_MAX_SERIES_BYTES).
	MaxSeriesBytes  int64
	TrainingWindow  time.Duration
	MinTrainingRows int
	MaxTrainingRows int
	Contamination   float64
	RetrainInterval time.Duration
}

// Error is a configuration error; the CLI prints it on one line and exits 2.
type Error struct {
	// Name is the environment variable (or flag) at fault.
	Name string
	// Value is what was given, masked when the setting is a secret.
	Value string
	// Allowed says what would have been accepted.
	Allowed string
}

func (e *Error) Error() string {
	return fmt.Sprintf("config: invalid %s=%q: %s", e.Name, e.Value, e.Allowed)
}

// setting describes one configurable value: its variable, flag, default and parser.
type setting struct {
	env    string
	flag   string
	def    string
	secret bool
	usage  string
	set    func(c *Config, v string) error // returns a description of what is allowed on failure
}

// errAllowed carries the "what is allowed" text from a parser up to Load.
type errAllowed string

func (e errAllowed) Error() string { return string(e) }

func settings() []setting {
	return []setting{
		{env: "SMARTCLOUDOPS_ADDR", flag: "addr", def: ":5000", usage: "HTTP listen address",
			set: func(c *Config, v string) error { c.Addr = v; return validAddr(v) }},
		{env: "DATABASE_URL", flag: "database-url", def: "sqlite:///./smartcloudops.db", secret: true,
			usage: "store: sqlite:///path or postgres://user:pass@host:port/db",
			set:   func(c *Config, v string) error { c.DatabaseURL = v; return validDatabaseURL(v) }},
		{env: "DATABASE_POOL_SIZE", flag: "database-pool-size", def: "20", usage: "maximum open database connections",
			set: func(c *Config, v string) error { return parseInt(v, 1, 1000, &c.DatabasePoolSize) }},
		{env: "DATABASE_POOL_MIN_IDLE", flag: "database-pool-min-idle", def: "2", usage: "PostgreSQL connections kept open while idle",
			set: func(c *Config, v string) error { return parseInt(v, 0, 1000, &c.DatabasePoolMinIdle) }},
		{env: "DATABASE_CONN_MAX_LIFETIME", flag: "database-conn-max-lifetime", def: "30m", usage: "recycle PostgreSQL connections after this Go duration",
			set: func(c *Config, v string) error {
				return parseDuration(v, time.Second, 24*time.Hour, &c.DatabaseConnMaxLifetime)
			}},
		{env: "SLOW_QUERY_THRESHOLD", flag: "slow-query-threshold", def: "1.0", usage: "log statements at least this slow: seconds (1.0) or a Go duration (250ms); 0 turns the slow log off",
			set: func(c *Config, v string) error { return parseSeconds(v, time.Hour, &c.SlowQueryThreshold) }},
		{env: "SLOW_QUERY_LOG_PARAMS", flag: "slow-query-log-params", def: "false", usage: "include bound parameter values in slow-query entries (they may hold personal data)",
			set: func(c *Config, v string) error { return parseBool(v, &c.SlowQueryLogParams) }},
		{env: "DB_QUERY_CACHE_TTL", flag: "db-query-cache-ttl", def: "300s", usage: "longest life of a cached query result (writes invalidate earlier)",
			set: func(c *Config, v string) error {
				return parseDuration(v, time.Second, 24*time.Hour, &c.DBQueryCacheTTL)
			}},
		{env: "DB_STATS_CAPACITY", flag: "db-stats-capacity", def: "500", usage: "distinct statements kept in the query statistics",
			set: func(c *Config, v string) error { return parseInt(v, 10, 100000, &c.DBStatsCapacity) }},
		{env: "DB_AUTO_INDEX", flag: "db-auto-index", def: "false", usage: "let the index advisor create the indexes it suggests",
			set: func(c *Config, v string) error { return parseBool(v, &c.DBAutoIndex) }},
		{env: "DB_ADVISOR_INTERVAL", flag: "db-advisor-interval", def: "10m", usage: "how often the automatic index advisor runs",
			set: func(c *Config, v string) error {
				return parseDuration(v, time.Minute, 7*24*time.Hour, &c.DBAdvisorInterval)
			}},
		{env: "REDIS_HOST", flag: "redis-host", def: "", usage: "Redis host; empty means no Redis (memory-only cache)",
			set: func(c *Config, v string) error { c.RedisHost = v; return nil }},
		{env: "REDIS_PORT", flag: "redis-port", def: "6379", usage: "Redis port",
			set: func(c *Config, v string) error { return parseInt(v, 1, 65535, &c.RedisPort) }},
		{env: "REDIS_PASSWORD", flag: "redis-password", def: "", secret: true, usage: "Redis password",
			set: func(c *Config, v string) error { c.RedisPassword = v; return nil }},
		{env: "REDIS_URL", flag: "redis-url", def: "", secret: true,
			usage: "redis://[:password@]host:port/db or rediss://… (TLS); Cluster: ?addr=host:port per extra node; Sentinel: ?master_set=NAME; wins over REDIS_HOST/PORT/PASSWORD",
			set:   func(c *Config, v string) error { c.RedisURL = v; return validRedisURL(v) }},
		{env: "ENABLE_CACHE", flag: "enable-cache", def: "true", usage: "enable the cache part",
			set: func(c *Config, v string) error { return parseBool(v, &c.EnableCache) }},
		{env: "ENABLE_ASYNC_LOGGING", flag: "enable-async-logging", def: "true", usage: "write logs from a background goroutine",
			set: func(c *Config, v string) error { return parseBool(v, &c.EnableAsyncLogging) }},
		{env: "ENABLE_BATCH_PROCESSING", flag: "enable-batch-processing", def: "true", usage: "micro-batch anomaly scoring",
			set: func(c *Config, v string) error { return parseBool(v, &c.EnableBatchProcessing) }},
		{env: "LOG_DIR", flag: "log-dir", def: "./logs", usage: "directory for log files",
			set: func(c *Config, v string) error {
				c.LogDir = v
				if v == "" {
					return errAllowed("must be a directory path")
				}
				return nil
			}},
		{env: "LOG_LEVEL", flag: "log-level", def: "info", usage: "lowest level logged: debug, info, warn, error",
			set: func(c *Config, v string) error {
				switch strings.ToLower(v) {
				case "debug", "info", "warn", "error":
					c.LogLevel = strings.ToLower(v)
					return nil
				}
				return errAllowed("must be one of debug, info, warn, error")
			}},
		{env: "LOG_MAX_FILE_SIZE", flag: "log-max-file-size", def: "10MiB", usage: "rotate the log file past this size (bytes, or 64KiB, 10MiB, 1GiB)",
			set: func(c *Config, v string) error { return parseSize(v, 1024, 1<<40, &c.LogMaxFileSize) }},
		{env: "LOG_ROTATION_INTERVAL", flag: "log-rotation-interval", def: "24h", usage: "also rotate at wall-clock boundaries of this Go duration; 0 turns it off",
			set: func(c *Config, v string) error {
				d, err := time.ParseDuration(v)
				if err != nil || d < 0 || (d > 0 && d < time.Second) {
					return errAllowed("must be 0 or a Go duration of at least 1s, e.g. 1h or 24h")
				}
				c.LogRotationInterval = d
				return nil
			}},
		{env: "LOG_COMPRESSION_LEVEL", flag: "log-compression-level", def: "6", usage: "gzip level of rotated log files, 1-9; 0 keeps them uncompressed",
			set: func(c *Config, v string) error { return parseInt(v, 0, 9, &c.LogCompressionLevel) }},
		{env: "LOG_MAX_FILES", flag: "log-max-files", def: "10", usage: "rotated log files kept; 0 keeps all",
			set: func(c *Config, v string) error { return parseInt(v, 0, 100000, &c.LogMaxFiles) }},
		{env: "LOG_MAX_AGE_DAYS", flag: "log-max-age-days", def: "30", usage: "remove rotated log files older than this many days; 0 keeps them",
			set: func(c *Config, v string) error { return parseInt(v, 0, 36500, &c.LogMaxAgeDays) }},
		{env: "LOG_QUEUE_POLICY", flag: "log-queue-policy", def: "block", usage: "when the log queue is full: block (up to a few ms) or drop; ERROR lines are never dropped",
			set: func(c *Config, v string) error {
				switch strings.ToLower(v) {
				case "block", "drop":
					c.LogQueuePolicy = strings.ToLower(v)
					return nil
				}
				return errAllowed("must be block or drop")
			}},
		{env: "LOG_STDERR_LEVEL", flag: "log-stderr-level", def: "warn", usage: "lowest level also copied to stderr: debug, info, warn, error or off",
			set: func(c *Config, v string) error {
				switch strings.ToLower(v) {
				case "debug", "info", "warn", "error", "off":
					c.LogStderrLevel = strings.ToLower(v)
					return nil
				}
				return errAllowed("must be one of debug, info, warn, error, off")
			}},
		{env: "REDIS_POOL_SIZE", flag: "redis-pool-size", def: "50", usage: "Redis connection pool size",
			set: func(c *Config, v string) error { return parseInt(v, 1, 10000, &c.RedisPoolSize) }},
		{env: "REDIS_TIMEOUT", flag: "redis-timeout", def: "500ms", usage: "bound on each Redis read or write; past it the cache answers from memory",
			set: func(c *Config, v string) error {
				return parseDuration(v, time.Millisecond, time.Minute, &c.RedisTimeout)
			}},
		{env: "CACHE_KEY_PREFIX", flag: "cache-key-prefix", def: "smartcloudops:cache:", usage: "prefix of every Redis key the cache writes; replicas must share it",
			set: func(c *Config, v string) error {
				c.CacheKeyPrefix = v
				if v == "" || len(v) > 128 || strings.ContainsAny(v, "*?[]\x00 ") {
					return errAllowed("must be 1-128 characters without spaces or glob characters")
				}
				return nil
			}},
		{env: "CACHE_DEFAULT_TTL", flag: "cache-default-ttl", def: "300s", usage: "TTL of cache entries written without one (Go duration)",
			set: func(c *Config, v string) error {
				return parseDuration(v, time.Second, 365*24*time.Hour, &c.CacheDefaultTTL)
			}},
		{env: "CACHE_COMPRESSION_THRESHOLD", flag: "cache-compression-threshold", def: "1024", usage: "compress encoded cache values from this size (bytes or 1KiB…)",
			set: func(c *Config, v string) error { return parseSize(v, 1, 1<<30, &c.CacheCompressionThreshold) }},
		{env: "CACHE_MAX_VALUE_BYTES", flag: "cache-max-value-bytes", def: "1MiB", usage: "largest cache value accepted; larger PUTs get 413",
			set: func(c *Config, v string) error { return parseSize(v, 1, 512<<20, &c.CacheMaxValueBytes) }},
		{env: "CACHE_LOCAL_MAX_BYTES", flag: "cache-local-max-bytes", def: "64MiB", usage: "memory bound of the in-process cache tier",
			set: func(c *Config, v string) error { return parseSize(v, 1<<10, 1<<40, &c.CacheLocalMaxBytes) }},
		{env: "CACHE_FALLBACK_JOURNAL_BYTES", flag: "cache-fallback-journal-bytes", def: "16MiB", usage: "memory bound of the journal of cache writes taken while Redis is down, replayed when it is back; past it writes answer X-Cache-Durability: memory",
			set: func(c *Config, v string) error { return parseSize(v, 1<<10, 1<<40, &c.CacheFallbackJournalBytes) }},
		{env: "ANOMALY_BATCH_SIZE", flag: "anomaly-batch-size", def: "100", usage: "largest micro-batch of forest scoring",
			set: func(c *Config, v string) error { return parseInt(v, 1, 10000, &c.Anomaly.BatchSize) }},
		{env: "ANOMALY_BATCH_TIMEOUT", flag: "anomaly-batch-timeout", def: "500ms", usage: "longest a sample waits for its batch to fill (a lone request is scored at once when a worker is idle)",
			set: func(c *Config, v string) error {
				return parseDuration(v, time.Millisecond, time.Minute, &c.Anomaly.BatchTimeout)
			}},
		{env: "ANOMALY_MAX_WORKERS", flag: "anomaly-max-workers", def: "4", usage: "goroutines scoring batches",
			set: func(c *Config, v string) error { return parseInt(v, 1, 1024, &c.Anomaly.MaxWorkers) }},
		{env: "ANOMALY_QUEUE_SIZE", flag: "anomaly-queue-size", def: "10000", usage: "samples waiting for a worker; a request that does not fit gets 503 with Retry-After",
			set: func(c *Config, v string) error { return parseInt(v, 1, 10000000, &c.Anomaly.QueueSize) }},
		{env: "ANOMALY_MAX_BATCH", flag: "anomaly-max-batch", def: "1000", usage: "most samples one request may carry",
			set: func(c *Config, v string) error { return parseInt(v, 1, 100000, &c.Anomaly.MaxBatch) }},
		{env: "ANOMALY_CACHE_TTL", flag: "anomaly-cache-ttl", def: "300s", usage: "how long a forest prediction is reused",
			set: func(c *Config, v string) error {
				return parseDuration(v, time.Second, 24*time.Hour, &c.Anomaly.CacheTTL)
			}},
		{env: "ANOMALY_THRESHOLD", flag: "anomaly-threshold", def: "0.5", usage: "score from which a sample is an anomaly (0-1)",
			set: func(c *Config, v string) error { return parseFloat(v, 0.01, 0.99, &c.Anomaly.Threshold) }},
		{env: "ANOMALY_CPU_THRESHOLD", flag: "anomaly-cpu-threshold", def: "90", usage: "fallback limit for cpu_usage (percent) while no model can score",
			set: func(c *Config, v string) error { return parseFloat(v, 0.1, 100, &c.Anomaly.CPUThreshold) }},
		{env: "ANOMALY_MEMORY_THRESHOLD", flag: "anomaly-memory-threshold", def: "90", usage: "fallback limit for memory_usage (percent)",
			set: func(c *Config, v string) error { return parseFloat(v, 0.1, 100, &c.Anomaly.MemoryThreshold) }},
		{env: "ANOMALY_DISK_THRESHOLD", flag: "anomaly-disk-threshold", def: "95", usage: "fallback limit for disk_usage (percent)",
			set: func(c *Config, v string) error { return parseFloat(v, 0.1, 100, &c.Anomaly.DiskThreshold) }},
		{env: "ANOMALY_ERROR_RATE_THRESHOLD", flag: "anomaly-error-rate-threshold", def: "5", usage: "fallback limit for error_rate (percent of requests)",
			set: func(c *Config, v string) error { return parseFloat(v, 0.01, 100, &c.Anomaly.ErrorRateThreshold) }},
		{env: "ANOMALY_WARMUP", flag: "anomaly-warmup", def: "150", usage: "points a series learns from before its streaming detector scores (fallback thresholds meanwhile)",
			set: func(c *Config, v string) error { return parseInt(v, 10, 100000, &c.Anomaly.WarmUp) }},
		{env: "ANOMALY_MAX_SERIES", flag: "anomaly-max-series", def: "100000", usage: "series kept in memory; the least recently updated are evicted past this or ANOMALY_MAX_SERIES_BYTES",
			set: func(c *Config, v string) error { return parseInt(v, 1, 100000000, &c.Anomaly.MaxSeries) }},
		{env: "ANOMALY_MAX_SERIES_BYTES", flag: "anomaly-max-series-bytes", def: "256MiB", usage: "estimated live heap of the series' state (about 2.3 KB a series; RSS is about twice that at the default GOGC)",
			set: func(c *Config, v string) error { return parseSize(v, 1<<20, 1<<40, &c.Anomaly.MaxSeriesBytes) }},
		{env: "ANOMALY_TRAINING_WINDOW", flag: "anomaly-training-window", def: "168h", usage: "how far back model training reads stored history",
			set: func(c *Config, v string) error {
				return parseDuration(v, time.Hour, 365*24*time.Hour, &c.Anomaly.TrainingWindow)
			}},
		{env: "ANOMALY_MIN_TRAINING_ROWS", flag: "anomaly-min-training-rows", def: "256", usage: "fewest stored samples a model is trained on",
			set: func(c *Config, v string) error { return parseInt(v, 16, 10000000, &c.Anomaly.MinTrainingRows) }},
		{env: "ANOMALY_MAX_TRAINING_ROWS", flag: "anomaly-max-training-rows", def: "50000", usage: "most recent stored samples read for training",
			set: func(c *Config, v string) error { return parseInt(v, 16, 10000000, &c.Anomaly.MaxTrainingRows) }},
		{env: "ANOMALY_CONTAMINATION", flag: "anomaly-contamination", def: "0.005", usage: "share of training samples the model's threshold lets through as anomalies",
			set: func(c *Config, v string) error { return parseFloat(v, 0.0001, 0.5, &c.Anomaly.Contamination) }},
		{env: "ANOMALY_RETRAIN_INTERVAL", flag: "anomaly-retrain-interval", def: "0", usage: "train and activate a new model this often (Go duration); 0 turns periodic retraining off",
			set: func(c *Config, v string) error {
				if strings.TrimSpace(v) == "0" {
					c.Anomaly.RetrainInterval = 0
					return nil
				}
				return parseDuration(v, time.Minute, 365*24*time.Hour, &c.Anomaly.RetrainInterval)
			}},
		{env: "SMARTCLOUDOPS_ADMIN_TOKEN", flag: "admin-token", def: "", secret: true,
			usage: "static bearer token with the admin role (at least 16 characters)",
			set: func(c *Config, v string) error {
				c.AdminToken = v
				if v != "" && len(v) < 16 {
					return errAllowed("must be empty or at least 16 characters")
				}
				return nil
			}},
		{env: "JWT_SECRET", flag: "jwt-secret", def: "", secret: true,
			usage: "HS256 secret for bearer JWTs (at least 32 bytes)",
			set: func(c *Config, v string) error {
				c.JWTSecret = v
				if v != "" && len(v) < 32 {
					return errAllowed("must be empty or at least 32 bytes")
				}
				return nil
			}},
		{env: "SMARTCLOUDOPS_REQUIRE_AUTH", flag: "require-auth", def: "auto",
			usage: "which reads need a token: auto (tenant data does when JWT_SECRET is set), true (every read), false (none)",
			set: func(c *Config, v string) error {
				if strings.EqualFold(strings.TrimSpace(v), "auto") {
					c.RequireAuth = AuthAuto
					return nil
				}
				var b bool
				if err := parseBool(v, &b); err != nil {
					return errAllowed("must be auto, true or false")
				}
				c.RequireAuth = AuthOpen
				if b {
					c.RequireAuth = AuthRequired
				}
				return nil
			}},
		{env: "SMARTCLOUDOPS_AUTH_FAILURE_LIMIT", flag: "auth-failure-limit", def: "10",
			usage: "refused credentials one client may present per minute (and at once) before it gets 429; 0 turns the limit off",
			set:   func(c *Config, v string) error { return parseInt(v, 0, 1000000, &c.AuthFailureLimit) }},
		{env: "SMARTCLOUDOPS_WRITE_RATE_LIMIT", flag: "write-rate-limit", def: "100",
			usage: "state-changing requests (POST, PUT, DELETE) one client may send per second, bursts of twice that; 0 turns the limit off",
			set: func(c *Config, v string) error {
				if err := parseFloat(v, 0, 1000000, &c.WriteRateLimit); err != nil || (c.WriteRateLimit > 0 && c.WriteRateLimit < 0.01) {
					return errAllowed("must be 0 (off) or a number from 0.01 to 1000000")
				}
				return nil
			}},
		{env: "SMARTCLOUDOPS_TRUSTED_PROXIES", flag: "trusted-proxies", def: "",
			usage: "comma-separated addresses or CIDRs of reverse proxies whose X-Forwarded-For names the client for the per-client limits; empty trusts none",
			set: func(c *Config, v string) error {
				c.TrustedProxies = nil
				for _, f := range strings.Split(v, ",") {
					f = strings.TrimSpace(f)
					if f == "" {
						continue
					}
					p, err := netip.ParsePrefix(f)
					if err != nil {
						a, aerr := netip.ParseAddr(f)
						if aerr != nil {
							return errAllowed(fmt.Sprintf("must be comma-separated IP addresses or CIDRs, e.g. 10.0.0.0/8,::1; %q is neither", f))
						}
						p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
					}
					c.TrustedProxies = append(c.TrustedProxies, p.Masked())
				}
				return nil
			}},
		{env: "SMARTCLOUDOPS_MAX_BODY_BYTES", flag: "max-body-bytes", def: "1048576", usage: "largest accepted request body in bytes",
			set: func(c *Config, v string) error {
				var n int
				if err := parseInt(v, 1, 1<<30, &n); err != nil {
					return err
				}
				c.MaxBodyBytes = int64(n)
				return nil
			}},
		{env: "SMARTCLOUDOPS_SHUTDOWN_TIMEOUT", flag: "shutdown-timeout", def: "15s", usage: "how long SIGTERM waits for in-flight requests",
			set: func(c *Config, v string) error {
				d, err := time.ParseDuration(v)
				if err != nil || d <= 0 || d > 10*time.Minute {
					return errAllowed("must be a Go duration between 0s and 10m, e.g. 15s")
				}
				c.ShutdownTimeout = d
				return nil
			}},
	}
}

// Load builds the configuration: defaults, then environment variables read
// through getenv, then flags from args (without the program or subcommand name).
// Usage text for -h goes to usage. An invalid value returns *Error; -h returns flag.ErrHelp.
func Load(args []string, getenv func(string) string, usage io.Writer) (*Config, error) {
	all := settings()
	fs := flag.NewFlagSet("smartcloudops", flag.ContinueOnError)
	fs.SetOutput(usage)
	flagVals := make(map[string]*string, len(all))
	for _, s := range all {
		flagVals[s.flag] = fs.String(s.flag, s.def, s.usage+" (env "+s.env+")")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, &Error{Name: "flags", Value: shownArgs(args, all), Allowed: shownFlagError(err.Error(), args, all)}
	}
	if fs.NArg() > 0 {
		return nil, &Error{Name: "arguments", Value: strings.Join(fs.Args(), " "), Allowed: "no positional arguments are accepted"}
	}
	setFlags := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { setFlags[f.Name] = true })

	c := &Config{sources: make(map[string]Source, len(all)), raw: make(map[string]string, len(all))}
	for _, s := range all {
		v, src, name := s.def, SourceDefault, s.env
		if ev := getenv(s.env); ev != "" {
			v, src = ev, SourceEnv
		}
		if setFlags[s.flag] {
			v, src, name = *flagVals[s.flag], SourceFlag, "--"+s.flag
		}
		if err := s.set(c, v); err != nil {
			shown := v
			if s.secret {
				shown = mask(s, v)
			}
			return nil, &Error{Name: name, Value: shown, Allowed: err.Error()}
		}
		c.sources[s.env] = src
		c.raw[s.env] = v
	}
	if c.Anomaly.MinTrainingRows > c.Anomaly.MaxTrainingRows {
		// Name the setting the operator gave: a maximum set below the
		// default minimum is the maximum's fault, not the default's.
		if c.sources["ANOMALY_MIN_TRAINING_ROWS"] == SourceDefault {
			return nil, &Error{Name: "ANOMALY_MAX_TRAINING_ROWS", Value: strconv.Itoa(c.Anomaly.MaxTrainingRows),
				Allowed: fmt.Sprintf("must be at least ANOMALY_MIN_TRAINING_ROWS (%d)", c.Anomaly.MinTrainingRows)}
		}
		return nil, &Error{Name: "ANOMALY_MIN_TRAINING_ROWS", Value: strconv.Itoa(c.Anomaly.MinTrainingRows),
			Allowed: fmt.Sprintf("must not exceed ANOMALY_MAX_TRAINING_ROWS (%d)", c.Anomaly.MaxTrainingRows)}
	}
	if c.RequireAuth == AuthRequired && !c.AuthConfigured() {
		return nil, &Error{Name: "SMARTCLOUDOPS_REQUIRE_AUTH", Value: "true",
			Allowed: "needs SMARTCLOUDOPS_ADMIN_TOKEN or JWT_SECRET to be set, or no request could ever be authorised"}
	}
	return c, nil
}

// shownFlagError is the flag package's message with every argument it
// quotes replaced by its shown form: the message repeats the argument it
// choked on ("bad flag syntax: -=…"), which may hold a secret that
// shownArgs masks.
func shownFlagError(msg string, args []string, all []setting) string {
	for _, a := range args {
		if shown := shownArgs([]string{a}, all); shown != a && a != "" {
			msg = strings.ReplaceAll(msg, a, shown)
		}
	}
	return maskCopies(msg, args, all)
}

// shownArgs is the command line as a flag error shows it: the values of
// secret flags masked, and so those of unknown flags, which may be a
// secret's misspelling (-jwt-secert=…).
func shownArgs(args []string, all []setting) string {
	byFlag := make(map[string]setting, len(all))
	for _, s := range all {
		byFlag[s.flag] = s
	}
	out := make([]string, len(args))
	copy(out, args)
	for i := 0; i < len(out); i++ {
		a := out[i]
		if a == "--" || !strings.HasPrefix(a, "-") {
			continue
		}
		name, v, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		s, known := byFlag[name]
		if known && !s.secret {
			continue
		}
		masked := Masked
		if known {
			masked = mask(s, v)
		}
		switch {
		case hasValue && v != "":
			out[i] = a[:len(a)-len(v)] + masked
		case !hasValue && i+1 < len(out) && known:
			// The flag package takes the next word as the value, even one
			// starting with "-".
			out[i+1] = mask(s, out[i+1])
			i++
		case !hasValue && i+1 < len(out) && !strings.HasPrefix(out[i+1], "-"):
			out[i+1] = masked
			i++
		}
	}
	return maskCopies(strings.Join(out, " "), args, all)
}

// maskCopies masks every further copy, anywhere in shown, of a plain secret
// given on the command line (-admin-token X … X): an error must not show a
// secret wherever else the operator typed it. URL secrets are masked by
// RedactURL, which knows where their passwords stand.
func maskCopies(shown string, args []string, all []setting) string {
	secret := make(map[string]bool, len(all))
	for _, s := range all {
		secret[s.flag] = s.secret
	}
	for i, a := range args {
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, v, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !secret[name] {
			continue
		}
		if !hasValue && i+1 < len(args) {
			v = args[i+1]
		}
		if v != "" && v != Masked && !strings.Contains(v, "://") {
			shown = strings.ReplaceAll(shown, v, Masked)
		}
	}
	return shown
}

// Source reports where the setting named by its environment variable came from.
func (c *Config) Source(env string) Source {
	if s, ok := c.sources[env]; ok {
		return s
	}
	return SourceDefault
}

// EffectiveRedisURL is the Redis address the cache uses: REDIS_URL when set,
// else one built from REDIS_HOST/PORT/PASSWORD, else "" (no Redis configured).
func (c *Config) EffectiveRedisURL() string {
	if c.RedisURL != "" {
		return c.RedisURL
	}
	if c.RedisHost == "" {
		return ""
	}
	u := url.URL{Scheme: "redis", Host: fmt.Sprintf("%s:%d", c.RedisHost, c.RedisPort), Path: "/0"}
	if c.RedisPassword != "" {
		u.User = url.UserPassword("", c.RedisPassword)
	}
	return u.String()
}

// AuthConfigured reports whether any credential can be checked; without one,
// state-changing endpoints are refused.
func (c *Config) AuthConfigured() bool { return c.AdminToken != "" || c.JWTSecret != "" }

// Entry is one row of the effective configuration as /performance/config shows it.
type Entry struct {
	Name   string `json:"name"`
	Flag   string `json:"flag"`
	Value  string `json:"value"`
	Source Source `json:"source"`
	Secret bool   `json:"secret,omitempty"`
	Usage  string `json:"description"`
}

// Redacted lists every setting with its effective value and source; secrets are
// masked, and so is the password inside any URL.
func (c *Config) Redacted() []Entry {
	all := settings()
	out := make([]Entry, 0, len(all))
	for _, s := range all {
		v := c.raw[s.env]
		if s.secret {
			v = mask(s, v)
		}
		out = append(out, Entry{Name: s.env, Flag: "--" + s.flag, Value: v, Source: c.Source(s.env), Secret: s.secret, Usage: s.usage})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Masked is what every secret shows as.
const Masked = dburl.Masked

// mask hides a secret. URLs keep their shape so an operator can still see which
// server is meant; only the password part is replaced.
func mask(s setting, v string) string {
	if v == "" {
		return ""
	}
	if strings.Contains(v, "://") {
		return RedactURL(v)
	}
	return Masked
}

// RedactURL replaces the password inside a URL (user:password@host, or a
// password= query parameter) with Masked. A string that does not parse as a URL
// is masked whole, since it may be a secret that merely looks odd.
func RedactURL(raw string) string { return dburl.Redact(raw) }

func parseInt(v string, lo, hi int, dst *int) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < lo || n > hi {
		return errAllowed(fmt.Sprintf("must be an integer from %d to %d", lo, hi))
	}
	*dst = n
	return nil
}

func parseSize(v string, lo, hi int64, dst *int64) error {
	n, err := ParseSize(v)
	if err != nil || n < lo || n > hi {
		return errAllowed(fmt.Sprintf("must be a size from %d to %d bytes, as a number or with a unit (KiB, MiB, GiB, KB, MB, GB)", lo, hi))
	}
	*dst = n
	return nil
}

func parseDuration(v string, lo, hi time.Duration, dst *time.Duration) error {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d < lo || d > hi {
		return errAllowed(fmt.Sprintf("must be a Go duration from %s to %s, e.g. 300s", lo, hi))
	}
	*dst = d
	return nil
}

// parseSeconds takes the seed's form (a number of seconds, "1.0") or a Go duration ("250ms").
func parseSeconds(v string, hi time.Duration, dst *time.Duration) error {
	v = strings.TrimSpace(v)
	d, err := time.ParseDuration(v)
	if err != nil {
		f, ferr := strconv.ParseFloat(v, 64)
		if ferr != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return errAllowed(fmt.Sprintf("must be seconds (1.0) or a Go duration (250ms) from 0 to %s", hi))
		}
		d = time.Duration(f * float64(time.Second))
	}
	if d < 0 || d > hi {
		return errAllowed(fmt.Sprintf("must be seconds (1.0) or a Go duration (250ms) from 0 to %s", hi))
	}
	*dst = d
	return nil
}

func parseFloat(v string, lo, hi float64, dst *float64) error {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || math.IsNaN(f) || f < lo || f > hi {
		return errAllowed(fmt.Sprintf("must be a number from %g to %g", lo, hi))
	}
	*dst = f
	return nil
}

func parseBool(v string, dst *bool) error {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes", "on":
		*dst = true
	case "0", "false", "no", "off":
		*dst = false
	default:
		return errAllowed("must be true or false")
	}
	return nil
}

func validAddr(v string) error {
	i := strings.LastIndex(v, ":")
	if i < 0 {
		return errAllowed("must be host:port or :port, e.g. :5000")
	}
	var port int
	if err := parseInt(v[i+1:], 0, 65535, &port); err != nil {
		return errAllowed("must be host:port or :port with a port from 0 to 65535")
	}
	return nil
}

// DatabaseKind names the store selected by a DATABASE_URL.
type DatabaseKind = dburl.Kind

// The supported stores.
const (
	DatabaseSQLite   = dburl.SQLite
	DatabasePostgres = dburl.Postgres
)

// ParseDatabaseURL splits a DATABASE_URL into the store kind and the address
// the driver takes: a file path for SQLite, the URL itself for PostgreSQL.
func ParseDatabaseURL(v string) (DatabaseKind, string, error) {
	kind, addr, err := dburl.Parse(v)
	if err != nil {
		return "", "", errAllowed(err.Error())
	}
	return kind, addr, nil
}

func validDatabaseURL(v string) error {
	_, _, err := ParseDatabaseURL(v)
	return err
}

func validRedisURL(v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
		return errAllowed("must be redis://[:password@]host:port/db, rediss://… or unix:///path")
	}
	if u.Scheme != "unix" && u.Host == "" {
		return errAllowed("must name a host, e.g. redis://127.0.0.1:6379/0")
	}
	return nil
}
