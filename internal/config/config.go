// Package config loads SmartCloudOps' configuration from environment variables
// and command-line flags into one typed struct, remembering where every value
// came from so /performance/config can show it with secrets masked.
package config

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Source says where an effective value came from.
type Source string

// The sources, weakest first: a flag overrides the environment, which overrides the default.
const (
	SourceDefault Source = "default"
	SourceEnv     Source = "env"
	SourceFlag    Source = "flag"
	// SourceFile is a secret read from the file its X_FILE variable names.
	SourceFile Source = "file"
)

// Config is the service's whole configuration. It is built by Load and then
// passed by value or pointer to the parts; there is no global copy.
type Config struct {
	// Addr is the HTTP listen address (SMARTCLOUDOPS_ADDR).
	Addr string
	// DatabaseURL selects the store: sqlite:///relative/path, sqlite:////absolute/path
	// or postgres://… (DATABASE_URL). Its forms are the store's (internal/dburl),
	// checked by the command before anything starts.
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
	// ReplicaID names this process among the replicas sharing one database
	// (SMARTCLOUDOPS_REPLICA_ID); empty derives host-pid-random at start.
	ReplicaID string
	// SharedStateResync is how often the shared state (active model, runtime
	// settings) is re-read without a notification (SHARED_STATE_RESYNC); 0 is off.
	SharedStateResync time.Duration
	// MetricsRawRetention keeps raw samples this long once rolled up; 0 keeps them forever (METRICS_RAW_RETENTION).
	MetricsRawRetention time.Duration
	// MetricsRollupRetention keeps 1-minute rollups this long; 0 keeps them forever (METRICS_ROLLUP_RETENTION).
	MetricsRollupRetention time.Duration
	// MetricsRollupInterval is the time between rollup and retention runs; 0 turns the job off (METRICS_ROLLUP_INTERVAL).
	MetricsRollupInterval time.Duration
	// MetricsRollupLag is how long a minute stays open before it is rolled up (METRICS_ROLLUP_LAG).
	MetricsRollupLag time.Duration
	// MetricsRetentionBatchSize bounds the rows one retention DELETE removes (METRICS_RETENTION_BATCH_SIZE).
	MetricsRetentionBatchSize int

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
	// LogStderrClientErrors copies 4xx access-log lines to stderr too
	// (LOG_STDERR_CLIENT_ERRORS); off, a browser's /favicon.ico 404 stays in the file.
	LogStderrClientErrors bool

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

	// PromWrite holds the Prometheus remote-write receiver's settings
	// (PROMWRITE_*).
	PromWrite PromWriteConfig
	// OTLP holds the OTLP/HTTP metrics receiver's settings (OTLP_*).
	OTLP OTLPConfig

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
	// ShutdownDelay is how long /readyz answers 503 before the listener
	// closes on SIGTERM (SMARTCLOUDOPS_SHUTDOWN_DELAY); 0 is off.
	ShutdownDelay time.Duration
	// MetricsToken is the read-only scrape token (SMARTCLOUDOPS_METRICS_TOKEN).
	MetricsToken string
	// Pprof serves net/http/pprof to admins (SMARTCLOUDOPS_PPROF).
	Pprof bool

	// AlertmanagerURLs are the Alertmanagers every incident's alert is
	// posted to; none turns alerting off (SMARTCLOUDOPS_ALERTMANAGER_URL).
	AlertmanagerURLs []string
	// AlertmanagerQueueSize bounds the alerts waiting to be posted (SMARTCLOUDOPS_ALERTMANAGER_QUEUE_SIZE).
	AlertmanagerQueueSize int
	// AlertmanagerResendInterval re-posts firing alerts this often (SMARTCLOUDOPS_ALERTMANAGER_RESEND_INTERVAL).
	AlertmanagerResendInterval time.Duration
	// ExternalURL is where alerts link to; empty derives it from Addr (SMARTCLOUDOPS_EXTERNAL_URL).
	ExternalURL string

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
	// MaxScoreSeries caps smartcloudops_anomaly_score's series (ANOMALY_MAX_SCORE_SERIES).
	MaxScoreSeries int
}

// OTLPConfig configures the OTLP/HTTP metrics receiver (POST /v1/metrics);
// a zero limit is off.
type OTLPConfig struct {
	// HostAttributes are the resource attributes that name a host, first
	// present wins (OTLP_HOST_ATTRIBUTES).
	HostAttributes []string
	// MaxDecodedBytes bounds a request body after decompression (OTLP_MAX_DECODED_BYTES).
	MaxDecodedBytes int64
	// MaxDataPoints bounds one request's data points (OTLP_MAX_DATA_POINTS).
	MaxDataPoints int
	// MaxSeriesPerTenant caps one tenant's series (OTLP_MAX_SERIES_PER_TENANT).
	MaxSeriesPerTenant int
	// AlignWindow gives a host's points within it one time, one row (OTLP_ALIGN_WINDOW).
	AlignWindow time.Duration
}

// PromWriteConfig configures POST /api/v1/write. Every limit is off at 0.
type PromWriteConfig struct {
	// HostLabels are the label names that name a series' host, first
	// present wins (PROMWRITE_HOST_LABELS).
	HostLabels []string
	// Select lists the series selectors taken; empty is the receiver's
	// default: node_exporter's metrics and series labelled
	// smartcloudops="true" (PROMWRITE_SELECT).
	Select string
	// RootMountpoint is the filesystem disk_usage is read from
	// (PROMWRITE_ROOT_MOUNTPOINT).
	RootMountpoint string
	// MaxSeriesPerTenant caps the series one tenant sends at a time
	// (PROMWRITE_MAX_SERIES_PER_TENANT).
	MaxSeriesPerTenant int
	// MaxBodyBytes and MaxDecodedBytes bound a request's compressed and
	// decompressed body (PROMWRITE_MAX_BODY_BYTES, PROMWRITE_MAX_DECODED_BYTES).
	MaxBodyBytes    int64
	MaxDecodedBytes int64
	// MaxSeriesPerRequest and MaxSamplesPerRequest bound one request
	// (PROMWRITE_MAX_SERIES_PER_REQUEST, PROMWRITE_MAX_SAMPLES_PER_REQUEST).
	MaxSeriesPerRequest  int
	MaxSamplesPerRequest int
	// MaxFuture and MaxAge bound sample timestamps around the server's
	// clock (PROMWRITE_MAX_FUTURE, PROMWRITE_MAX_AGE).
	MaxFuture time.Duration
	MaxAge    time.Duration
}

// Error is a configuration error; the CLI prints it on one line and exits 2.
type Error struct {
	// Name is the environment variable (or flag) at fault.
	Name string
	// Value is what was given, masked when the setting is a secret.
	Value string
	// Allowed says what would have been accepted.
	Allowed string
	// secrets are masked in the rendered message too: Value is quoted
	// there, and quoting turns bytes into escapes whose text may spell a
	// secret that no raw copy in Value held ("\x00123…" holds "0123").
	secrets []string
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("config: invalid %s=%q: %s", e.Name, e.Value, e.Allowed)
	for _, s := range e.secrets {
		if s != "" && s != Masked {
			msg = strings.ReplaceAll(msg, s, Masked)
		}
	}
	return msg
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
