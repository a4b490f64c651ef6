package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestLoadDefaults(t *testing.T) {
	c, err := Load(nil, env(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Addr: ":5000", DatabaseURL: "sqlite:///./smartcloudops.db", DatabasePoolSize: 20, RedisPort: 6379,
		EnableCache: true, EnableAsyncLogging: true, EnableBatchProcessing: true, LogDir: "./logs", LogLevel: "info",
		MaxBodyBytes: 1 << 20, ShutdownTimeout: 15 * time.Second, ShutdownDelay: 5 * time.Second,
		DatabasePoolMinIdle: 2, DatabaseConnMaxLifetime: 30 * time.Minute, SlowQueryThreshold: time.Second, DBQueryCacheTTL: 300 * time.Second,
		DBStatsCapacity: 500, DBAdvisorInterval: 10 * time.Minute, SharedStateResync: 30 * time.Second,
		MetricsRawRetention: 24 * time.Hour, MetricsRollupRetention: 30 * 24 * time.Hour, MetricsRollupInterval: time.Minute,
		MetricsRollupLag: 2 * time.Minute, MetricsRetentionBatchSize: 1000,
		Anomaly: AnomalyConfig{BatchSize: 100, BatchTimeout: 500 * time.Millisecond, MaxWorkers: 4, QueueSize: 10000, MaxBatch: 1000,
			CacheTTL: 300 * time.Second, Threshold: 0.5, CPUThreshold: 90, MemoryThreshold: 90, DiskThreshold: 95, ErrorRateThreshold: 5,
			WarmUp: 150, MaxSeries: 100000, MaxSeriesBytes: 256 << 20, TrainingWindow: 168 * time.Hour, MinTrainingRows: 256, MaxTrainingRows: 50000, Contamination: 0.005,
			MaxScoreSeries: 1000},
		AlertmanagerQueueSize: 10000, AlertmanagerResendInterval: time.Minute,
		LogMaxFileSize: 10 << 20, LogRotationInterval: 24 * time.Hour, LogCompressionLevel: 6, LogMaxFiles: 10, LogMaxAgeDays: 30,
		LogQueuePolicy: "block", LogStderrLevel: "warn",
		RedisPoolSize: 50, RedisTimeout: 500 * time.Millisecond, CacheKeyPrefix: "smartcloudops:cache:", CacheDefaultTTL: 300 * time.Second,
		CacheCompressionThreshold: 1024, CacheMaxValueBytes: 1 << 20, CacheLocalMaxBytes: 64 << 20, CacheFallbackJournalBytes: 16 << 20,
		RequireAuth: AuthAuto, AuthFailureLimit: 10, WriteRateLimit: 100,
		PromWrite: PromWriteConfig{HostLabels: []string{"instance", "host"}, RootMountpoint: "/", MaxSeriesPerTenant: 100000,
			MaxBodyBytes: 8 << 20, MaxDecodedBytes: 32 << 20, MaxSeriesPerRequest: 100000, MaxSamplesPerRequest: 500000,
			MaxFuture: 10 * time.Minute, MaxAge: 24 * time.Hour},
		OTLP: OTLPConfig{HostAttributes: []string{"host.name", "service.instance.id"}, MaxDecodedBytes: 8 << 20, MaxDataPoints: 100000,
			MaxSeriesPerTenant: 100000, AlignWindow: 2 * time.Second},
	}
	c.sources, c.raw = nil, nil
	if !reflect.DeepEqual(*c, want) {
		t.Fatalf("defaults:\n got %+v\nwant %+v", *c, want)
	}
	if c.EffectiveRedisURL() != "" {
		t.Errorf("no Redis configured, yet EffectiveRedisURL = %q", c.EffectiveRedisURL())
	}
}

// TestLoadEveryVariable sets each variable and checks it lands in its field
// with source "env".
func TestLoadEveryVariable(t *testing.T) {
	cases := []struct {
		env, value string
		check      func(c *Config) bool
	}{
		{"SMARTCLOUDOPS_ADDR", "127.0.0.1:8080", func(c *Config) bool { return c.Addr == "127.0.0.1:8080" }},
		{"DATABASE_URL", "postgres://u:p@db:5432/sco", func(c *Config) bool { return c.DatabaseURL == "postgres://u:p@db:5432/sco" }},
		{"DATABASE_POOL_SIZE", "7", func(c *Config) bool { return c.DatabasePoolSize == 7 }},
		{"DATABASE_POOL_MIN_IDLE", "0", func(c *Config) bool { return c.DatabasePoolMinIdle == 0 }},
		{"DATABASE_CONN_MAX_LIFETIME", "1h", func(c *Config) bool { return c.DatabaseConnMaxLifetime == time.Hour }},
		{"SLOW_QUERY_THRESHOLD", "0.25", func(c *Config) bool { return c.SlowQueryThreshold == 250*time.Millisecond }},
		{"SLOW_QUERY_LOG_PARAMS", "true", func(c *Config) bool { return c.SlowQueryLogParams }},
		{"DB_QUERY_CACHE_TTL", "1m", func(c *Config) bool { return c.DBQueryCacheTTL == time.Minute }},
		{"DB_STATS_CAPACITY", "100", func(c *Config) bool { return c.DBStatsCapacity == 100 }},
		{"DB_AUTO_INDEX", "true", func(c *Config) bool { return c.DBAutoIndex }},
		{"DB_ADVISOR_INTERVAL", "1h", func(c *Config) bool { return c.DBAdvisorInterval == time.Hour }},
		{"SMARTCLOUDOPS_REPLICA_ID", "web-1", func(c *Config) bool { return c.ReplicaID == "web-1" }},
		{"SHARED_STATE_RESYNC", "0", func(c *Config) bool { return c.SharedStateResync == 0 }},
		{"METRICS_RAW_RETENTION", "0", func(c *Config) bool { return c.MetricsRawRetention == 0 }},
		{"METRICS_ROLLUP_RETENTION", "2160h", func(c *Config) bool { return c.MetricsRollupRetention == 90*24*time.Hour }},
		{"METRICS_ROLLUP_INTERVAL", "0", func(c *Config) bool { return c.MetricsRollupInterval == 0 }},
		{"METRICS_ROLLUP_LAG", "30s", func(c *Config) bool { return c.MetricsRollupLag == 30*time.Second }},
		{"METRICS_RETENTION_BATCH_SIZE", "500", func(c *Config) bool { return c.MetricsRetentionBatchSize == 500 }},
		{"REDIS_HOST", "cache.internal", func(c *Config) bool { return c.RedisHost == "cache.internal" }},
		{"REDIS_PORT", "6380", func(c *Config) bool { return c.RedisPort == 6380 }},
		{"REDIS_PASSWORD", "s3cret", func(c *Config) bool { return c.RedisPassword == "s3cret" }},
		{"REDIS_URL", "rediss://:pw@r:6380/2", func(c *Config) bool { return c.RedisURL == "rediss://:pw@r:6380/2" }},
		{"ENABLE_CACHE", "false", func(c *Config) bool { return !c.EnableCache }},
		{"ENABLE_ASYNC_LOGGING", "0", func(c *Config) bool { return !c.EnableAsyncLogging }},
		{"ENABLE_BATCH_PROCESSING", "off", func(c *Config) bool { return !c.EnableBatchProcessing }},
		{"LOG_DIR", "/var/log/sco", func(c *Config) bool { return c.LogDir == "/var/log/sco" }},
		{"LOG_LEVEL", "WARN", func(c *Config) bool { return c.LogLevel == "warn" }},
		{"LOG_MAX_FILE_SIZE", "64KiB", func(c *Config) bool { return c.LogMaxFileSize == 64<<10 }},
		{"LOG_ROTATION_INTERVAL", "1h", func(c *Config) bool { return c.LogRotationInterval == time.Hour }},
		{"LOG_COMPRESSION_LEVEL", "9", func(c *Config) bool { return c.LogCompressionLevel == 9 }},
		{"LOG_MAX_FILES", "3", func(c *Config) bool { return c.LogMaxFiles == 3 }},
		{"LOG_MAX_AGE_DAYS", "7", func(c *Config) bool { return c.LogMaxAgeDays == 7 }},
		{"LOG_QUEUE_POLICY", "drop", func(c *Config) bool { return c.LogQueuePolicy == "drop" }},
		{"LOG_STDERR_LEVEL", "off", func(c *Config) bool { return c.LogStderrLevel == "off" }},
		{"LOG_STDERR_CLIENT_ERRORS", "true", func(c *Config) bool { return c.LogStderrClientErrors }},
		{"REDIS_POOL_SIZE", "8", func(c *Config) bool { return c.RedisPoolSize == 8 }},
		{"REDIS_TIMEOUT", "250ms", func(c *Config) bool { return c.RedisTimeout == 250*time.Millisecond }},
		{"CACHE_KEY_PREFIX", "team-a:", func(c *Config) bool { return c.CacheKeyPrefix == "team-a:" }},
		{"CACHE_DEFAULT_TTL", "10m", func(c *Config) bool { return c.CacheDefaultTTL == 10*time.Minute }},
		{"CACHE_COMPRESSION_THRESHOLD", "2KiB", func(c *Config) bool { return c.CacheCompressionThreshold == 2048 }},
		{"CACHE_MAX_VALUE_BYTES", "4MiB", func(c *Config) bool { return c.CacheMaxValueBytes == 4<<20 }},
		{"CACHE_LOCAL_MAX_BYTES", "1GiB", func(c *Config) bool { return c.CacheLocalMaxBytes == 1<<30 }},
		{"CACHE_FALLBACK_JOURNAL_BYTES", "1MiB", func(c *Config) bool { return c.CacheFallbackJournalBytes == 1<<20 }},
		{"ANOMALY_BATCH_SIZE", "50", func(c *Config) bool { return c.Anomaly.BatchSize == 50 }},
		{"ANOMALY_BATCH_TIMEOUT", "100ms", func(c *Config) bool { return c.Anomaly.BatchTimeout == 100*time.Millisecond }},
		{"ANOMALY_MAX_WORKERS", "2", func(c *Config) bool { return c.Anomaly.MaxWorkers == 2 }},
		{"ANOMALY_QUEUE_SIZE", "500", func(c *Config) bool { return c.Anomaly.QueueSize == 500 }},
		{"ANOMALY_MAX_BATCH", "200", func(c *Config) bool { return c.Anomaly.MaxBatch == 200 }},
		{"ANOMALY_CACHE_TTL", "60s", func(c *Config) bool { return c.Anomaly.CacheTTL == time.Minute }},
		{"ANOMALY_THRESHOLD", "0.7", func(c *Config) bool { return c.Anomaly.Threshold == 0.7 }},
		{"ANOMALY_CPU_THRESHOLD", "80", func(c *Config) bool { return c.Anomaly.CPUThreshold == 80 }},
		{"ANOMALY_MEMORY_THRESHOLD", "85.5", func(c *Config) bool { return c.Anomaly.MemoryThreshold == 85.5 }},
		{"ANOMALY_DISK_THRESHOLD", "97", func(c *Config) bool { return c.Anomaly.DiskThreshold == 97 }},
		{"ANOMALY_ERROR_RATE_THRESHOLD", "2", func(c *Config) bool { return c.Anomaly.ErrorRateThreshold == 2 }},
		{"ANOMALY_WARMUP", "300", func(c *Config) bool { return c.Anomaly.WarmUp == 300 }},
		{"ANOMALY_MAX_SERIES", "1000", func(c *Config) bool { return c.Anomaly.MaxSeries == 1000 }},
		{"ANOMALY_MAX_SERIES_BYTES", "64MiB", func(c *Config) bool { return c.Anomaly.MaxSeriesBytes == 64<<20 }},
		{"ANOMALY_TRAINING_WINDOW", "24h", func(c *Config) bool { return c.Anomaly.TrainingWindow == 24*time.Hour }},
		{"ANOMALY_MIN_TRAINING_ROWS", "100", func(c *Config) bool { return c.Anomaly.MinTrainingRows == 100 }},
		{"ANOMALY_MAX_TRAINING_ROWS", "1000", func(c *Config) bool { return c.Anomaly.MaxTrainingRows == 1000 }},
		{"ANOMALY_CONTAMINATION", "0.01", func(c *Config) bool { return c.Anomaly.Contamination == 0.01 }},
		{"ANOMALY_RETRAIN_INTERVAL", "6h", func(c *Config) bool { return c.Anomaly.RetrainInterval == 6*time.Hour }},
		{"PROMWRITE_HOST_LABELS", " node , hostname,", func(c *Config) bool { return fmt.Sprint(c.PromWrite.HostLabels) == "[node hostname]" }},
		{"PROMWRITE_SELECT", `up{job="x"}`, func(c *Config) bool { return c.PromWrite.Select == `up{job="x"}` }},
		{"PROMWRITE_ROOT_MOUNTPOINT", "/data", func(c *Config) bool { return c.PromWrite.RootMountpoint == "/data" }},
		{"PROMWRITE_MAX_SERIES_PER_TENANT", "0", func(c *Config) bool { return c.PromWrite.MaxSeriesPerTenant == 0 }},
		{"PROMWRITE_MAX_BODY_BYTES", "1MiB", func(c *Config) bool { return c.PromWrite.MaxBodyBytes == 1<<20 }},
		{"PROMWRITE_MAX_DECODED_BYTES", "0", func(c *Config) bool { return c.PromWrite.MaxDecodedBytes == 0 }},
		{"PROMWRITE_MAX_SERIES_PER_REQUEST", "5000", func(c *Config) bool { return c.PromWrite.MaxSeriesPerRequest == 5000 }},
		{"PROMWRITE_MAX_SAMPLES_PER_REQUEST", "20000", func(c *Config) bool { return c.PromWrite.MaxSamplesPerRequest == 20000 }},
		{"PROMWRITE_MAX_FUTURE", "1m", func(c *Config) bool { return c.PromWrite.MaxFuture == time.Minute }},
		{"PROMWRITE_MAX_AGE", "0", func(c *Config) bool { return c.PromWrite.MaxAge == 0 }},
		{"OTLP_HOST_ATTRIBUTES", " k8s.pod.name , host.name,", func(c *Config) bool {
			return reflect.DeepEqual(c.OTLP.HostAttributes, []string{"k8s.pod.name", "host.name"})
		}},
		{"OTLP_MAX_DECODED_BYTES", "0", func(c *Config) bool { return c.OTLP.MaxDecodedBytes == 0 }},
		{"OTLP_MAX_DATA_POINTS", "5000", func(c *Config) bool { return c.OTLP.MaxDataPoints == 5000 }},
		{"OTLP_MAX_SERIES_PER_TENANT", "0", func(c *Config) bool { return c.OTLP.MaxSeriesPerTenant == 0 }},
		{"OTLP_ALIGN_WINDOW", "0", func(c *Config) bool { return c.OTLP.AlignWindow == 0 }},
		{"SMARTCLOUDOPS_ADMIN_TOKEN", "0123456789abcdef", func(c *Config) bool { return c.AdminToken == "0123456789abcdef" }},
		{"JWT_SECRET", strings.Repeat("k", 32), func(c *Config) bool { return c.JWTSecret == strings.Repeat("k", 32) }},
		{"SMARTCLOUDOPS_AUTH_FAILURE_LIMIT", "0", func(c *Config) bool { return c.AuthFailureLimit == 0 }},
		{"SMARTCLOUDOPS_WRITE_RATE_LIMIT", "2.5", func(c *Config) bool { return c.WriteRateLimit == 2.5 }},
		{"SMARTCLOUDOPS_TRUSTED_PROXIES", "10.0.0.0/8, ::1,192.0.2.7", func(c *Config) bool {
			return fmt.Sprint(c.TrustedProxies) == "[10.0.0.0/8 ::1/128 192.0.2.7/32]"
		}},
		{"SMARTCLOUDOPS_MAX_BODY_BYTES", "2048", func(c *Config) bool { return c.MaxBodyBytes == 2048 }},
		{"SMARTCLOUDOPS_SHUTDOWN_TIMEOUT", "3s", func(c *Config) bool { return c.ShutdownTimeout == 3*time.Second }},
		{"ANOMALY_MAX_SCORE_SERIES", "50", func(c *Config) bool { return c.Anomaly.MaxScoreSeries == 50 }},
		{"SMARTCLOUDOPS_ALERTMANAGER_URL", " http://a:9093/, https://u:p@b/am ,", func(c *Config) bool {
			return strings.Join(c.AlertmanagerURLs, " ") == "http://a:9093 https://u:p@b/am"
		}},
		{"SMARTCLOUDOPS_ALERTMANAGER_QUEUE_SIZE", "5", func(c *Config) bool { return c.AlertmanagerQueueSize == 5 }},
		{"SMARTCLOUDOPS_ALERTMANAGER_RESEND_INTERVAL", "30s", func(c *Config) bool { return c.AlertmanagerResendInterval == 30*time.Second }},
		{"SMARTCLOUDOPS_EXTERNAL_URL", "https://ops.example.com/", func(c *Config) bool { return c.ExternalURL == "https://ops.example.com" }},
		{"SMARTCLOUDOPS_METRICS_TOKEN", "scrape-0123456789", func(c *Config) bool { return c.MetricsToken == "scrape-0123456789" }},
		{"SMARTCLOUDOPS_SHUTDOWN_DELAY", "0", func(c *Config) bool { return c.ShutdownDelay == 0 }},
		{"SMARTCLOUDOPS_PPROF", "true", func(c *Config) bool { return c.Pprof }},
	}
	if len(cases) != len(settings())-1 { // REQUIRE_AUTH is covered below: it needs a credential too
		t.Fatalf("%d cases for %d settings: a new setting needs a case here", len(cases), len(settings()))
	}
	for _, tc := range cases {
		t.Run(tc.env, func(t *testing.T) {
			c, err := Load(nil, env(tc.env, tc.value), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("%s=%s not applied: %+v", tc.env, tc.value, c)
			}
			if c.Source(tc.env) != SourceEnv {
				t.Errorf("source = %s; want env", c.Source(tc.env))
			}
		})
	}
	c, err := Load(nil, env("SMARTCLOUDOPS_REQUIRE_AUTH", "true", "SMARTCLOUDOPS_ADMIN_TOKEN", "0123456789abcdef"), io.Discard)
	if err != nil || c.RequireAuth != AuthRequired {
		t.Fatalf("REQUIRE_AUTH with a token: %v, %+v", err, c)
	}
}

// SMARTCLOUDOPS_REQUIRE_AUTH is tri-state: unset is auto, and only true
// needs a credential to be configured.
func TestRequireAuthModes(t *testing.T) {
	cases := []struct {
		value string
		env   []string
		want  AuthMode
	}{
		{"", nil, AuthAuto},
		{"auto", nil, AuthAuto},
		{"AUTO", []string{"JWT_SECRET", strings.Repeat("k", 32)}, AuthAuto},
		{"false", []string{"JWT_SECRET", strings.Repeat("k", 32)}, AuthOpen},
		{"0", nil, AuthOpen},
		{"true", []string{"JWT_SECRET", strings.Repeat("k", 32)}, AuthRequired},
		{"yes", []string{"SMARTCLOUDOPS_ADMIN_TOKEN", "0123456789abcdef"}, AuthRequired},
	}
	for _, tc := range cases {
		t.Run(tc.value, func(t *testing.T) {
			kv := append([]string{"SMARTCLOUDOPS_REQUIRE_AUTH", tc.value}, tc.env...)
			c, err := Load(nil, env(kv...), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if c.RequireAuth != tc.want {
				t.Errorf("mode %q; want %q", c.RequireAuth, tc.want)
			}
		})
	}
}

func TestLoadRejectsBadValues(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		env     []string
		wantVar string
	}{
		{"pool not a number", nil, []string{"DATABASE_POOL_SIZE", "abc"}, "DATABASE_POOL_SIZE"},
		{"pool zero", nil, []string{"DATABASE_POOL_SIZE", "0"}, "DATABASE_POOL_SIZE"},
		{"slow threshold", nil, []string{"SLOW_QUERY_THRESHOLD", "slow"}, "SLOW_QUERY_THRESHOLD"},
		{"slow threshold negative", nil, []string{"SLOW_QUERY_THRESHOLD", "-1"}, "SLOW_QUERY_THRESHOLD"},
		{"slow threshold nan", nil, []string{"SLOW_QUERY_THRESHOLD", "NaN"}, "SLOW_QUERY_THRESHOLD"},
		{"stats capacity", nil, []string{"DB_STATS_CAPACITY", "1"}, "DB_STATS_CAPACITY"},
		{"advisor interval", nil, []string{"DB_ADVISOR_INTERVAL", "1s"}, "DB_ADVISOR_INTERVAL"},
		{"raw retention too short", nil, []string{"METRICS_RAW_RETENTION", "1m"}, "METRICS_RAW_RETENTION"},
		{"raw retention negative", nil, []string{"METRICS_RAW_RETENTION", "-1h"}, "METRICS_RAW_RETENTION"},
		{"rollup interval", nil, []string{"METRICS_ROLLUP_INTERVAL", "5ms"}, "METRICS_ROLLUP_INTERVAL"},
		{"rollup lag", nil, []string{"METRICS_ROLLUP_LAG", "0"}, "METRICS_ROLLUP_LAG"},
		{"rollups shorter than raw", nil, []string{"METRICS_RAW_RETENTION", "48h", "METRICS_ROLLUP_RETENTION", "24h"}, "METRICS_ROLLUP_RETENTION"},
		{"retention batch", nil, []string{"METRICS_RETENTION_BATCH_SIZE", "0"}, "METRICS_RETENTION_BATCH_SIZE"},
		{"anomaly threshold range", nil, []string{"ANOMALY_THRESHOLD", "1.5"}, "ANOMALY_THRESHOLD"},
		{"anomaly threshold nan", nil, []string{"ANOMALY_CPU_THRESHOLD", "NaN"}, "ANOMALY_CPU_THRESHOLD"},
		{"anomaly batch size", nil, []string{"ANOMALY_BATCH_SIZE", "0"}, "ANOMALY_BATCH_SIZE"},
		{"anomaly retrain", nil, []string{"ANOMALY_RETRAIN_INTERVAL", "1s"}, "ANOMALY_RETRAIN_INTERVAL"},
		{"otlp host attributes empty", nil, []string{"OTLP_HOST_ATTRIBUTES", " , "}, "OTLP_HOST_ATTRIBUTES"},
		{"otlp host attribute with a space", nil, []string{"OTLP_HOST_ATTRIBUTES", "host name"}, "OTLP_HOST_ATTRIBUTES"},
		{"otlp data points negative", nil, []string{"OTLP_MAX_DATA_POINTS", "-1"}, "OTLP_MAX_DATA_POINTS"},
		{"otlp align window", nil, []string{"OTLP_ALIGN_WINDOW", "2h"}, "OTLP_ALIGN_WINDOW"},
		{"training rows order", nil, []string{"ANOMALY_MIN_TRAINING_ROWS", "5000", "ANOMALY_MAX_TRAINING_ROWS", "1000"}, "ANOMALY_MIN_TRAINING_ROWS"},
		{"redis port range", nil, []string{"REDIS_PORT", "70000"}, "REDIS_PORT"},
		{"redis url scheme", nil, []string{"REDIS_URL", "http://r:6379"}, "REDIS_URL"},
		{"alertmanager url scheme", nil, []string{"SMARTCLOUDOPS_ALERTMANAGER_URL", "am:9093"}, "SMARTCLOUDOPS_ALERTMANAGER_URL"},
		{"alertmanager url query", nil, []string{"SMARTCLOUDOPS_ALERTMANAGER_URL", "http://am:9093/?x=1"}, "SMARTCLOUDOPS_ALERTMANAGER_URL"},
		{"alertmanager resend", nil, []string{"SMARTCLOUDOPS_ALERTMANAGER_RESEND_INTERVAL", "10ms"}, "SMARTCLOUDOPS_ALERTMANAGER_RESEND_INTERVAL"},
		{"external url list", nil, []string{"SMARTCLOUDOPS_EXTERNAL_URL", "http://a,http://b"}, "SMARTCLOUDOPS_EXTERNAL_URL"},
		{"external url no host", nil, []string{"SMARTCLOUDOPS_EXTERNAL_URL", "http://"}, "SMARTCLOUDOPS_EXTERNAL_URL"},
		{"bool", nil, []string{"ENABLE_CACHE", "maybe"}, "ENABLE_CACHE"},
		{"addr", nil, []string{"SMARTCLOUDOPS_ADDR", "5000"}, "SMARTCLOUDOPS_ADDR"},
		{"level", nil, []string{"LOG_LEVEL", "loud"}, "LOG_LEVEL"},
		{"short token", nil, []string{"SMARTCLOUDOPS_ADMIN_TOKEN", "short"}, "SMARTCLOUDOPS_ADMIN_TOKEN"},
		{"short jwt secret", nil, []string{"JWT_SECRET", "short"}, "JWT_SECRET"},
		{"timeout", nil, []string{"SMARTCLOUDOPS_SHUTDOWN_TIMEOUT", "soon"}, "SMARTCLOUDOPS_SHUTDOWN_TIMEOUT"},
		{"log size unit", nil, []string{"LOG_MAX_FILE_SIZE", "10 parsecs"}, "LOG_MAX_FILE_SIZE"},
		{"log size tiny", nil, []string{"LOG_MAX_FILE_SIZE", "10"}, "LOG_MAX_FILE_SIZE"},
		{"rotation interval", nil, []string{"LOG_ROTATION_INTERVAL", "daily"}, "LOG_ROTATION_INTERVAL"},
		{"compression level", nil, []string{"LOG_COMPRESSION_LEVEL", "10"}, "LOG_COMPRESSION_LEVEL"},
		{"max files negative", nil, []string{"LOG_MAX_FILES", "-1"}, "LOG_MAX_FILES"},
		{"queue policy", nil, []string{"LOG_QUEUE_POLICY", "panic"}, "LOG_QUEUE_POLICY"},
		{"stderr level", nil, []string{"LOG_STDERR_LEVEL", "all"}, "LOG_STDERR_LEVEL"},
		{"redis timeout", nil, []string{"REDIS_TIMEOUT", "0s"}, "REDIS_TIMEOUT"},
		{"key prefix glob", nil, []string{"CACHE_KEY_PREFIX", "a*"}, "CACHE_KEY_PREFIX"},
		{"ttl", nil, []string{"CACHE_DEFAULT_TTL", "-5s"}, "CACHE_DEFAULT_TTL"},
		{"max value", nil, []string{"CACHE_MAX_VALUE_BYTES", "1TiB"}, "CACHE_MAX_VALUE_BYTES"},
		{"require auth without credential", nil, []string{"SMARTCLOUDOPS_REQUIRE_AUTH", "true"}, "SMARTCLOUDOPS_REQUIRE_AUTH"},
		{"require auth word", nil, []string{"SMARTCLOUDOPS_REQUIRE_AUTH", "sometimes"}, "SMARTCLOUDOPS_REQUIRE_AUTH"},
		{"auth failure limit negative", nil, []string{"SMARTCLOUDOPS_AUTH_FAILURE_LIMIT", "-1"}, "SMARTCLOUDOPS_AUTH_FAILURE_LIMIT"},
		{"write rate nan", nil, []string{"SMARTCLOUDOPS_WRITE_RATE_LIMIT", "NaN"}, "SMARTCLOUDOPS_WRITE_RATE_LIMIT"},
		{"write rate tiny", nil, []string{"SMARTCLOUDOPS_WRITE_RATE_LIMIT", "0.001"}, "SMARTCLOUDOPS_WRITE_RATE_LIMIT"},
		{"trusted proxy name", nil, []string{"SMARTCLOUDOPS_TRUSTED_PROXIES", "10.0.0.0/8,proxy.local"}, "SMARTCLOUDOPS_TRUSTED_PROXIES"},
		{"bad flag value", []string{"--database-pool-size", "x"}, nil, "--database-pool-size"},
		{"unknown flag", []string{"--nope"}, nil, "flags"},
		{"positional", []string{"extra"}, nil, "arguments"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.args, env(tc.env...), io.Discard)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v; want *config.Error", err)
			}
			if ce.Name != tc.wantVar {
				t.Errorf("names %q; want %q", ce.Name, tc.wantVar)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, tc.wantVar) {
				t.Errorf("message %q must be one line naming %s", msg, tc.wantVar)
			}
		})
	}
}

func TestFlagsOverrideEnv(t *testing.T) {
	c, err := Load([]string{"--addr", "127.0.0.1:9", "--database-pool-size=3"}, env("SMARTCLOUDOPS_ADDR", ":7000", "DATABASE_POOL_SIZE", "9"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:9" || c.DatabasePoolSize != 3 {
		t.Fatalf("flags did not win: %+v", c)
	}
	if c.Source("SMARTCLOUDOPS_ADDR") != SourceFlag || c.Source("LOG_DIR") != SourceDefault {
		t.Fatalf("sources: addr=%s log_dir=%s", c.Source("SMARTCLOUDOPS_ADDR"), c.Source("LOG_DIR"))
	}
	if _, err := Load([]string{"-h"}, env(), io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v; want flag.ErrHelp", err)
	}
}

func TestEffectiveRedisURL(t *testing.T) {
	cases := []struct {
		env  []string
		want string
	}{
		{nil, ""},
		{[]string{"REDIS_HOST", "r1"}, "redis://r1:6379/0"},
		{[]string{"REDIS_HOST", "r1", "REDIS_PORT", "7000", "REDIS_PASSWORD", "p@ss"}, "redis://:p%40ss@r1:7000/0"},
		{[]string{"REDIS_HOST", "r1", "REDIS_URL", "redis://r2:6379/3"}, "redis://r2:6379/3"},
		// Cluster (more nodes in addr=) and Sentinel (master_set=, the
		// address is a sentinel's) URLs go to the cache as they are.
		{[]string{"REDIS_URL", "redis://:pw@10.0.0.1:7000?addr=10.0.0.2:7000&addr=10.0.0.3:7000"},
			"redis://:pw@10.0.0.1:7000?addr=10.0.0.2:7000&addr=10.0.0.3:7000"},
		{[]string{"REDIS_URL", "redis://s1:26379/0?master_set=mymaster&addr=s2:26379"}, "redis://s1:26379/0?master_set=mymaster&addr=s2:26379"},
		{[]string{"REDIS_URL", "rediss://:pw@s1:26379/2?master_set=mymaster"}, "rediss://:pw@s1:26379/2?master_set=mymaster"},
	}
	for _, tc := range cases {
		c, err := Load(nil, env(tc.env...), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.EffectiveRedisURL(); got != tc.want {
			t.Errorf("%v: EffectiveRedisURL = %q; want %q", tc.env, got, tc.want)
		}
	}
}

func TestRedactedMasksEverySecret(t *testing.T) {
	secrets := []string{"pgpass", "redispass", "urlpass", "0123456789abcdef", strings.Repeat("j", 32)}
	c, err := Load(nil, env(
		"DATABASE_URL", "postgres://sco:pgpass@db:5432/sco?sslmode=disable",
		"REDIS_PASSWORD", "redispass",
		"REDIS_URL", "redis://:urlpass@r:6379/0",
		"SMARTCLOUDOPS_ADMIN_TOKEN", "0123456789abcdef",
		"JWT_SECRET", strings.Repeat("j", 32),
	), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	entries := c.Redacted()
	if len(entries) != len(settings()) {
		t.Fatalf("%d entries for %d settings", len(entries), len(settings()))
	}
	for _, e := range entries {
		for _, s := range secrets {
			if strings.Contains(e.Value, s) {
				t.Errorf("%s shows secret %q: %q", e.Name, s, e.Value)
			}
		}
		if e.Name == "DATABASE_URL" && e.Value != "postgres://sco:********@db:5432/sco?sslmode=disable" {
			t.Errorf("DATABASE_URL masked as %q; the host must stay readable", e.Value)
		}
	}
	// A bad secret's error message must not echo it either.
	_, err = Load(nil, env("SMARTCLOUDOPS_ADMIN_TOKEN", "tiny"), io.Discard)
	if err == nil || strings.Contains(err.Error(), "tiny") {
		t.Errorf("error echoes the secret: %v", err)
	}
}

func TestRedactURL(t *testing.T) {
	cases := map[string]string{
		"redis://:pw@h:1/0":                       "redis://:********@h:1/0",
		"redis://:pw@h:1?addr=h2:2&addr=h3:3":     "redis://:********@h:1?addr=h2:2&addr=h3:3",
		"redis://:pw@s:26379/0?master_set=m":      "redis://:********@s:26379/0?master_set=m",
		"postgres://u@h/db":                       "postgres://u@h/db",
		"postgres://h/db?password=pw&sslmode=off": "postgres://h/db?password=********&sslmode=off",
		"sqlite:///./x.db":                        "sqlite:///./x.db",
		"postgres://u:p%40w@h/db":                 "postgres://u:********@h/db",
		"://not a url":                            Masked,
	}
	for in, want := range cases {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q; want %q", in, got, want)
		}
	}
}

// FuzzRedactURL: any text, URL or not, is masked without a panic, and a
// password given in userinfo never survives.
func FuzzRedactURL(f *testing.F) {
	for _, s := range []string{"sqlite:///./x.db", "postgres://u:p@h:5432/db", "redis://:pw@h:1/0", "ftp://x", "", "://x"} {
		f.Add(s, "s3kr1t")
	}
	f.Fuzz(func(t *testing.T, host, pw string) {
		_ = RedactURL(host)
		if len(pw) < 4 || strings.ContainsAny(pw, "*%:@/?#[]") || strings.Contains(host, pw) {
			return
		}
		u := "postgres://user:" + pw + "@db.example:5432/app"
		if got := RedactURL(u); strings.Contains(got, pw) {
			t.Fatalf("RedactURL(%q) = %q shows the password", u, got)
		}
	})
}

// TestFlagErrorMasksEnvSecrets: a flag error quotes the command line, and a
// word there may repeat a secret the environment gives (found by FuzzLoad).
func TestFlagErrorMasksEnvSecrets(t *testing.T) {
	cases := []struct {
		name, envName, envValue, secret string
		args                            []string
	}{
		{"plain secret", "JWT_SECRET", "6789abcdef8-secret", "6789abcdef8-secret", []string{"-=x", "6789abcdef8-secret"}},
		{"url password", "DATABASE_URL", "postgres://u:pa55word-x@db/app", "pa55word-x", []string{"-bad flag", "pa55word-x"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.args, env(tc.envName, tc.envValue), io.Discard)
			var ce *Error
			if !errors.As(err, &ce) || ce.Name != "flags" {
				t.Fatalf("err = %v; want a flags error", err)
			}
			if strings.Contains(err.Error(), tc.secret) {
				t.Fatalf("error shows %s's secret: %v", tc.envName, err)
			}
		})
	}
}
