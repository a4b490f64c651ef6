package config

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// setting describes one configurable value: its variable, flag, default and parser.
type setting struct {
	env    string
	flag   string
	def    string
	secret bool
	// boolean settings are typed as booleans on the command line, so the
	// flag alone means true; their env values keep the parser's forms.
	boolean bool
	usage   string
	set     func(c *Config, v string) error // returns a description of what is allowed on failure
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
			set:   func(c *Config, v string) error { c.DatabaseURL = v; return nil }},
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
		{env: "SLOW_QUERY_LOG_PARAMS", flag: "slow-query-log-params", boolean: true, def: "false", usage: "include bound parameter values in slow-query entries (they may hold personal data)",
			set: func(c *Config, v string) error { return parseBool(v, &c.SlowQueryLogParams) }},
		{env: "DB_QUERY_CACHE_TTL", flag: "db-query-cache-ttl", def: "300s", usage: "longest life of a cached query result (writes invalidate earlier)",
			set: func(c *Config, v string) error {
				return parseDuration(v, time.Second, 24*time.Hour, &c.DBQueryCacheTTL)
			}},
		{env: "DB_STATS_CAPACITY", flag: "db-stats-capacity", def: "500", usage: "distinct statements kept in the query statistics",
			set: func(c *Config, v string) error { return parseInt(v, 10, 100000, &c.DBStatsCapacity) }},
		{env: "DB_AUTO_INDEX", flag: "db-auto-index", boolean: true, def: "false", usage: "let the index advisor create the indexes it suggests",
			set: func(c *Config, v string) error { return parseBool(v, &c.DBAutoIndex) }},
		{env: "DB_ADVISOR_INTERVAL", flag: "db-advisor-interval", def: "10m", usage: "how often the automatic index advisor runs",
			set: func(c *Config, v string) error {
				return parseDuration(v, time.Minute, 7*24*time.Hour, &c.DBAdvisorInterval)
			}},
		{env: "SMARTCLOUDOPS_REPLICA_ID", flag: "replica-id", def: "", usage: "this replica's name among those sharing one database; empty means host-pid-random",
			set: func(c *Config, v string) error {
				c.ReplicaID = strings.TrimSpace(v)
				if len(c.ReplicaID) > 100 || strings.ContainsFunc(c.ReplicaID, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
					return errAllowed("must be at most 100 characters without spaces or control characters")
				}
				return nil
			}},
		{env: "SHARED_STATE_RESYNC", flag: "shared-state-resync", def: "30s", usage: "re-read the shared state (active model, runtime settings) this often besides notifications; 0 turns it off",
			set: func(c *Config, v string) error {
				return parseOffOrDuration(v, time.Second, 24*time.Hour, &c.SharedStateResync)
			}},
		{env: "METRICS_RAW_RETENTION", flag: "metrics-raw-retention", def: "24h", usage: "keep raw samples this long (once rolled up into 1-minute rollups); 0 keeps them forever",
			set: func(c *Config, v string) error {
				return parseOffOrDuration(v, 10*time.Minute, 100*365*24*time.Hour, &c.MetricsRawRetention)
			}},
		{env: "METRICS_ROLLUP_RETENTION", flag: "metrics-rollup-retention", def: "720h", usage: "keep 1-minute rollups this long; 0 keeps them forever",
			set: func(c *Config, v string) error {
				return parseOffOrDuration(v, time.Hour, 100*365*24*time.Hour, &c.MetricsRollupRetention)
			}},
		{env: "METRICS_ROLLUP_INTERVAL", flag: "metrics-rollup-interval", def: "1m", usage: "time between rollup and retention runs; 0 turns the job off (nothing rolled up or deleted)",
			set: func(c *Config, v string) error {
				return parseOffOrDuration(v, time.Second, 24*time.Hour, &c.MetricsRollupInterval)
			}},
		{env: "METRICS_ROLLUP_LAG", flag: "metrics-rollup-lag", def: "2m", usage: "a minute is rolled up this long after it ends; samples arriving later are rolled in again while their raw minute is kept",
			set: func(c *Config, v string) error {
				return parseDuration(v, time.Second, time.Hour, &c.MetricsRollupLag)
			}},
		{env: "METRICS_RETENTION_BATCH_SIZE", flag: "metrics-retention-batch-size", def: "1000", usage: "most rows one retention DELETE removes (each batch is its own short transaction)",
			set: func(c *Config, v string) error { return parseInt(v, 10, 100000, &c.MetricsRetentionBatchSize) }},
		{env: "REDIS_HOST", flag: "redis-host", def: "", usage: "Redis host; empty means no Redis (memory-only cache)",
			set: func(c *Config, v string) error { c.RedisHost = v; return nil }},
		{env: "REDIS_PORT", flag: "redis-port", def: "6379", usage: "Redis port",
			set: func(c *Config, v string) error { return parseInt(v, 1, 65535, &c.RedisPort) }},
		{env: "REDIS_PASSWORD", flag: "redis-password", def: "", secret: true, usage: "Redis password",
			set: func(c *Config, v string) error { c.RedisPassword = v; return nil }},
		{env: "REDIS_URL", flag: "redis-url", def: "", secret: true,
			usage: "redis://[:password@]host:port/db or rediss://… (TLS); Cluster: ?addr=host:port per extra node; Sentinel: ?master_set=NAME; wins over REDIS_HOST/PORT/PASSWORD",
			set:   func(c *Config, v string) error { c.RedisURL = v; return validRedisURL(v) }},
		{env: "ENABLE_CACHE", flag: "enable-cache", boolean: true, def: "true", usage: "enable the cache part",
			set: func(c *Config, v string) error { return parseBool(v, &c.EnableCache) }},
		{env: "ENABLE_ASYNC_LOGGING", flag: "enable-async-logging", boolean: true, def: "true", usage: "write logs from a background goroutine",
			set: func(c *Config, v string) error { return parseBool(v, &c.EnableAsyncLogging) }},
		{env: "ENABLE_BATCH_PROCESSING", flag: "enable-batch-processing", boolean: true, def: "true", usage: "micro-batch anomaly scoring",
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
		{env: "LOG_STDERR_CLIENT_ERRORS", flag: "log-stderr-client-errors", boolean: true, def: "false", usage: "also copy the access-log lines of client errors (4xx, logged at WARN) to stderr; they always reach the log file",
			set: func(c *Config, v string) error { return parseBool(v, &c.LogStderrClientErrors) }},
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
		{env: "PROMWRITE_HOST_LABELS", flag: "promwrite-host-labels", def: "instance,host", usage: "remote write: comma-separated label names that name a series' host, first present wins",
			set: func(c *Config, v string) error {
				c.PromWrite.HostLabels = nil
				for _, f := range strings.Split(v, ",") {
					f = strings.TrimSpace(f)
					if f == "" {
						continue
					}
					if !validLabelName(f) {
						return errAllowed(fmt.Sprintf("must be comma-separated Prometheus label names; %q is not one", f))
					}
					c.PromWrite.HostLabels = append(c.PromWrite.HostLabels, f)
				}
				if len(c.PromWrite.HostLabels) == 0 {
					return errAllowed("must name at least one label, e.g. instance,host")
				}
				return nil
			}},
		{env: "PROMWRITE_SELECT", flag: "promwrite-select", def: "", usage: "remote write: PromQL series selectors taken (name{label=\"v\",label=~\"re\"}, separated by spaces, commas or semicolons); empty: node_exporter's metrics and series labelled smartcloudops=\"true\"",
			set: func(c *Config, v string) error { c.PromWrite.Select = v; return nil }},
		{env: "PROMWRITE_ROOT_MOUNTPOINT", flag: "promwrite-root-mountpoint", def: "/", usage: "remote write: the mountpoint disk_usage is read from",
			set: func(c *Config, v string) error {
				if !strings.HasPrefix(v, "/") {
					return errAllowed("must be an absolute mountpoint, e.g. /")
				}
				c.PromWrite.RootMountpoint = v
				return nil
			}},
		{env: "PROMWRITE_MAX_SERIES_PER_TENANT", flag: "promwrite-max-series-per-tenant", def: "100000", usage: "remote write: series one tenant may send at a time (new ones past it are dropped and counted); 0 = off",
			set: func(c *Config, v string) error { return parseInt(v, 0, 100000000, &c.PromWrite.MaxSeriesPerTenant) }},
		{env: "PROMWRITE_MAX_BODY_BYTES", flag: "promwrite-max-body-bytes", def: "8MiB", usage: "remote write: largest compressed body (413 past it); 0 = off",
			set: func(c *Config, v string) error { return parseSize(v, 0, 1<<32, &c.PromWrite.MaxBodyBytes) }},
		{env: "PROMWRITE_MAX_DECODED_BYTES", flag: "promwrite-max-decoded-bytes", def: "32MiB", usage: "remote write: largest decompressed body, checked before decompressing (413 past it); 0 = off",
			set: func(c *Config, v string) error { return parseSize(v, 0, 1<<32, &c.PromWrite.MaxDecodedBytes) }},
		{env: "PROMWRITE_MAX_SERIES_PER_REQUEST", flag: "promwrite-max-series-per-request", def: "100000", usage: "remote write: most series in one request (413 past it); 0 = off",
			set: func(c *Config, v string) error { return parseInt(v, 0, 100000000, &c.PromWrite.MaxSeriesPerRequest) }},
		{env: "PROMWRITE_MAX_SAMPLES_PER_REQUEST", flag: "promwrite-max-samples-per-request", def: "500000", usage: "remote write: most samples in one request (413 past it); 0 = off",
			set: func(c *Config, v string) error { return parseInt(v, 0, 100000000, &c.PromWrite.MaxSamplesPerRequest) }},
		{env: "PROMWRITE_MAX_FUTURE", flag: "promwrite-max-future", def: "10m", usage: "remote write: samples stamped further ahead of the server's clock are dropped and counted; 0 = off",
			set: func(c *Config, v string) error { return parseDuration(v, 0, 24*time.Hour, &c.PromWrite.MaxFuture) }},
		{env: "PROMWRITE_MAX_AGE", flag: "promwrite-max-age", def: "24h", usage: "remote write: samples older than this are dropped and counted; 0 = off",
			set: func(c *Config, v string) error { return parseDuration(v, 0, 365*24*time.Hour, &c.PromWrite.MaxAge) }},
		{env: "ANOMALY_MAX_SCORE_SERIES", flag: "anomaly-max-score-series", def: "1000", usage: "most series smartcloudops_anomaly_score exports (one per series in an open incident); more are counted and left out",
			set: func(c *Config, v string) error { return parseInt(v, 1, 1000000, &c.Anomaly.MaxScoreSeries) }},
		{env: "OTLP_HOST_ATTRIBUTES", flag: "otlp-host-attributes", def: "host.name,service.instance.id",
			usage: "comma-separated OTLP resource attributes that name a host, the first one present winning",
			set: func(c *Config, v string) error {
				c.OTLP.HostAttributes = nil
				for _, f := range strings.Split(v, ",") {
					if f = strings.TrimSpace(f); f != "" {
						if len(f) > 256 || strings.ContainsAny(f, " \t\n") {
							return errAllowed("must be comma-separated attribute keys without spaces, e.g. host.name,service.instance.id")
						}
						c.OTLP.HostAttributes = append(c.OTLP.HostAttributes, f)
					}
				}
				if len(c.OTLP.HostAttributes) == 0 {
					return errAllowed("must name at least one attribute, e.g. host.name")
				}
				return nil
			}},
		{env: "OTLP_MAX_DECODED_BYTES", flag: "otlp-max-decoded-bytes", def: "8MiB", usage: "largest OTLP request body after decompression; 0 turns the limit off",
			set: func(c *Config, v string) error { return parseSize(v, 0, 1<<30, &c.OTLP.MaxDecodedBytes) }},
		{env: "OTLP_MAX_DATA_POINTS", flag: "otlp-max-data-points", def: "100000", usage: "most data points one OTLP request may carry; 0 turns the limit off",
			set: func(c *Config, v string) error { return parseInt(v, 0, 100000000, &c.OTLP.MaxDataPoints) }},
		{env: "OTLP_MAX_SERIES_PER_TENANT", flag: "otlp-max-series-per-tenant", def: "100000", usage: "OTLP series one tenant may have at a time (more are rejected and counted); 0 turns the cap off",
			set: func(c *Config, v string) error { return parseInt(v, 0, 100000000, &c.OTLP.MaxSeriesPerTenant) }},
		{env: "OTLP_ALIGN_WINDOW", flag: "otlp-align-window", def: "2s", usage: "an OTLP request's points of one host within this of each other become one row at the earliest time; 0 keeps each point's time",
			set: func(c *Config, v string) error { return parseDuration(v, 0, time.Minute, &c.OTLP.AlignWindow) }},
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
		{env: "SMARTCLOUDOPS_REQUIRE_AUTH", flag: "require-auth", boolean: true, def: "auto",
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
		{env: "SMARTCLOUDOPS_ALERTMANAGER_URL", flag: "alertmanager-url", def: "", secret: true,
			usage: "comma-separated Alertmanager base URLs (http://host:9093); each incident's alert is posted to every one; empty sends no alerts",
			set: func(c *Config, v string) error {
				urls, err := parseHTTPURLs(v)
				c.AlertmanagerURLs = urls
				return err
			}},
		{env: "SMARTCLOUDOPS_ALERTMANAGER_QUEUE_SIZE", flag: "alertmanager-queue-size", def: "10000", usage: "alerts waiting to be posted to Alertmanager; past it they are dropped and counted",
			set: func(c *Config, v string) error { return parseInt(v, 1, 10000000, &c.AlertmanagerQueueSize) }},
		{env: "SMARTCLOUDOPS_ALERTMANAGER_RESEND_INTERVAL", flag: "alertmanager-resend-interval", def: "1m", usage: "re-post firing alerts this often (their endsAt is 4 intervals ahead, so Alertmanager keeps them firing)",
			set: func(c *Config, v string) error {
				return parseDuration(v, time.Second, time.Hour, &c.AlertmanagerResendInterval)
			}},
		{env: "SMARTCLOUDOPS_EXTERNAL_URL", flag: "external-url", def: "", usage: "URL this service is reached at, for links in alerts; empty derives it from SMARTCLOUDOPS_ADDR and the host name",
			set: func(c *Config, v string) error {
				c.ExternalURL = strings.TrimSuffix(strings.TrimSpace(v), "/")
				if c.ExternalURL == "" {
					return nil
				}
				_, err := parseHTTPURLs(c.ExternalURL)
				if err != nil || strings.Contains(c.ExternalURL, ",") {
					return errAllowed("must be empty or an http:// or https:// URL with a host, e.g. https://ops.example.com")
				}
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
		{env: "SMARTCLOUDOPS_METRICS_TOKEN", flag: "metrics-token", def: "", secret: true,
			usage: "read-only bearer token for Prometheus scrapes, accepted only on /metrics and /performance/metrics (at least 16 characters)",
			set: func(c *Config, v string) error {
				c.MetricsToken = v
				if v != "" && len(v) < 16 {
					return errAllowed("must be empty or at least 16 characters")
				}
				return nil
			}},
		{env: "SMARTCLOUDOPS_SHUTDOWN_DELAY", flag: "shutdown-delay", def: "5s",
			usage: "on SIGTERM, /readyz answers 503 this long before the listener closes, so load balancers stop sending first; 0 turns the delay off",
			set:   func(c *Config, v string) error { return parseDuration(v, 0, 10*time.Minute, &c.ShutdownDelay) }},
		{env: "SMARTCLOUDOPS_PPROF", flag: "pprof", boolean: true, def: "false",
			usage: "serve net/http/pprof at /debug/pprof/ to admin credentials only",
			set:   func(c *Config, v string) error { return parseBool(v, &c.Pprof) }},
	}
}

// validLabelName is Prometheus's classic label name rule.
func validLabelName(n string) bool {
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return n != ""
}
