package cache

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"go.opentelemetry.io/otel/trace"
)

// Defaults applied by New to zero-valued Options fields.
const (
	DefaultKeyPrefix            = "smartcloudops:cache:"
	DefaultPoolSize             = 50
	DefaultDialTimeout          = 2 * time.Second
	DefaultReadTimeout          = 500 * time.Millisecond
	DefaultWriteTimeout         = 500 * time.Millisecond
	DefaultHealthCheckInterval  = time.Second
	DefaultTTL                  = 300 * time.Second
	DefaultLocalTTL             = 60 * time.Second
	DefaultLocalMaxBytes        = 64 << 20
	DefaultMaxValueBytes        = 1 << 20
	DefaultCompressionThreshold = 1024
	DefaultBreakerFailures      = 5
	DefaultBreakerOpenTimeout   = 5 * time.Second
	DefaultLoadTimeout          = 30 * time.Second
	// DefaultFallbackJournalBytes and DefaultFallbackJournalEntries bound
	// the journal of writes taken during a Redis outage (see Durability).
	DefaultFallbackJournalBytes   = 16 << 20
	DefaultFallbackJournalEntries = 100_000
)

// Options configures a Cache. The zero value is a working memory-only cache;
// New fills every zero field with its Default* constant.
type Options struct {
	// RedisURL selects the Redis tier; empty means memory only (health
	// DISABLED). Accepted: redis://[user:pass@]host:port/db,
	// rediss://... (TLS), unix:///path?db=N; extra ?addr=host:port for a
	// Cluster (detected automatically) and ?master_set=NAME for Sentinel, in
	// which case the addresses are the sentinels'.
	RedisURL string
	// TLSConfig overrides the TLS settings of a rediss:// URL, for a private
	// CA or client certificates.
	TLSConfig *tls.Config
	// KeyPrefix starts every Redis key of this cache, so several services or
	// test runs can share one Redis. Replicas must use the same prefix.
	KeyPrefix string
	// PoolSize bounds the dedicated connection pool. Ordinary commands are
	// auto-pipelined over one connection per Redis node, which is what makes
	// rueidis fast; the pool serves large pipelines (namespace clears).
	PoolSize int
	// DialTimeout bounds connecting to Redis, and to the sentinels of a
	// ?master_set= URL.
	DialTimeout time.Duration
	// ReadTimeout bounds every Redis read: past it the read is answered from
	// the in-process tier and counted as a breaker failure.
	ReadTimeout time.Duration
	// WriteTimeout is ReadTimeout for writes.
	WriteTimeout time.Duration
	// HealthCheckInterval is how often a background probe pings Redis while
	// it is unreachable, so the breaker closes (and the stale in-process
	// tier is flushed) without waiting for traffic.
	HealthCheckInterval time.Duration
	// DefaultTTL is used when a call passes a TTL of 0.
	DefaultTTL time.Duration
	// LocalTTL caps how long a value stays in the in-process tier. Redis
	// invalidation keeps replicas coherent; the cap bounds the damage if an
	// invalidation is ever lost.
	LocalTTL time.Duration
	// LocalMaxBytes bounds the in-process tier by the bytes of its keys and
	// values.
	LocalMaxBytes int64
	// MaxValueBytes is the largest encoded (uncompressed) value accepted.
	MaxValueBytes int
	// CompressionThreshold is the encoded size from which values are
	// compressed.
	CompressionThreshold int
	// Compression is the algorithm; CompressionS2 by default.
	Compression Compression
	// Codec serializes Go values; CodecJSON by default.
	Codec Codec
	// BreakerFailures is how many consecutive Redis failures open the
	// breaker.
	BreakerFailures uint32
	// BreakerOpenTimeout is how long the breaker stays open before one probe
	// is let through.
	BreakerOpenTimeout time.Duration
	// FallbackJournalBytes and FallbackJournalEntries bound the journal of
	// writes and deletes the in-process tier takes while Redis is
	// unreachable; they are written to Redis when it returns, before this
	// replica reads from Redis again. Past either bound a write is served
	// from memory only and reported as DurabilityMemory. Bytes count keys,
	// values and a small per-entry overhead.
	FallbackJournalBytes   int64
	FallbackJournalEntries int
	// LoadTimeout bounds a GetOrLoad loader. The loader outlives the caller
	// that started it when other callers wait for the same key, so it runs
	// on its own deadline rather than the first caller's.
	LoadTimeout time.Duration
	// Registerer receives the cache's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger receives breaker transitions and reconnects; nil discards.
	Logger *slog.Logger
	// Now is the clock for TTLs; nil means time.Now. Tests inject a fake one.
	Now func() time.Time
	// TracerProvider records a span per operation called under a recording
	// span (see tracing.go); nil or a no-op provider records nothing and
	// costs nothing.
	TracerProvider trace.TracerProvider
}

// withDefaults returns o with every zero field set to its default.
func (o Options) withDefaults() Options {
	setDefault(&o.KeyPrefix, DefaultKeyPrefix)
	setDefault(&o.PoolSize, DefaultPoolSize)
	setDefault(&o.DialTimeout, DefaultDialTimeout)
	setDefault(&o.ReadTimeout, DefaultReadTimeout)
	setDefault(&o.WriteTimeout, DefaultWriteTimeout)
	setDefault(&o.HealthCheckInterval, DefaultHealthCheckInterval)
	setDefault(&o.DefaultTTL, DefaultTTL)
	setDefault(&o.LocalTTL, DefaultLocalTTL)
	setDefault(&o.LocalMaxBytes, DefaultLocalMaxBytes)
	setDefault(&o.MaxValueBytes, DefaultMaxValueBytes)
	setDefault(&o.CompressionThreshold, DefaultCompressionThreshold)
	setDefault(&o.Compression, CompressionS2)
	setDefault(&o.Codec, CodecJSON)
	setDefault(&o.BreakerFailures, DefaultBreakerFailures)
	setDefault(&o.BreakerOpenTimeout, DefaultBreakerOpenTimeout)
	setDefault(&o.LoadTimeout, DefaultLoadTimeout)
	setDefault(&o.FallbackJournalBytes, DefaultFallbackJournalBytes)
	setDefault(&o.FallbackJournalEntries, DefaultFallbackJournalEntries)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

func setDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

// validate checks Options after defaults. Its errors never quote the URL:
// it may carry a password.
func (o Options) validate() error {
	var errs []error
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", name, d))
		}
	}
	positive("DialTimeout", o.DialTimeout)
	positive("ReadTimeout", o.ReadTimeout)
	positive("WriteTimeout", o.WriteTimeout)
	positive("HealthCheckInterval", o.HealthCheckInterval)
	positive("LocalTTL", o.LocalTTL)
	positive("BreakerOpenTimeout", o.BreakerOpenTimeout)
	positive("LoadTimeout", o.LoadTimeout)
	if err := ValidateTTL(o.DefaultTTL); err != nil || o.DefaultTTL <= 0 {
		errs = append(errs, fmt.Errorf("DefaultTTL must be positive and at most %s, got %s", MaxTTL, o.DefaultTTL))
	}
	if o.PoolSize < 1 {
		errs = append(errs, fmt.Errorf("PoolSize must be at least 1, got %d", o.PoolSize))
	}
	if o.MaxValueBytes < 1 || o.MaxValueBytes > 512<<20 {
		errs = append(errs, fmt.Errorf("MaxValueBytes must be in [1, 512 MiB], got %d", o.MaxValueBytes))
	}
	if o.LocalMaxBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("LocalMaxBytes must be at least 1 MiB, got %d", o.LocalMaxBytes))
	}
	if o.FallbackJournalBytes < 0 {
		errs = append(errs, fmt.Errorf("FallbackJournalBytes must not be negative, got %d", o.FallbackJournalBytes))
	}
	if o.FallbackJournalEntries < 0 {
		errs = append(errs, fmt.Errorf("FallbackJournalEntries must not be negative, got %d", o.FallbackJournalEntries))
	}
	if o.CompressionThreshold < 1 {
		errs = append(errs, fmt.Errorf("CompressionThreshold must be positive, got %d", o.CompressionThreshold))
	}
	if o.KeyPrefix != "" && checkName(o.KeyPrefix) != "" {
		errs = append(errs, fmt.Errorf("KeyPrefix: %s", checkName(o.KeyPrefix)))
	}
	switch o.Codec {
	case CodecJSON, CodecCBOR:
	default:
		errs = append(errs, fmt.Errorf("unknown Codec %q", o.Codec))
	}
	switch o.Compression {
	case CompressionS2, CompressionZstd, CompressionNone:
	default:
		errs = append(errs, fmt.Errorf("unknown Compression %q", o.Compression))
	}
	if o.RedisURL != "" {
		if _, err := parseRedisURL(o.RedisURL); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cache: options: %w", err)
	}
	return nil
}

// parseRedisURL wraps rueidis.ParseURL so that no error quotes the URL:
// net/url errors embed the whole string, password included.
func parseRedisURL(raw string) (rueidis.ClientOption, error) {
	opt, err := rueidis.ParseURL(raw)
	if err == nil {
		return opt, nil
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return opt, errors.New("RedisURL: malformed URL")
	}
	msg := err.Error()
	if u, perr := url.Parse(raw); perr == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
	}
	return opt, fmt.Errorf("RedisURL: %s", msg)
}
