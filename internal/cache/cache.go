package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/redis/rueidis"
	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/singleflight"
)

// Cache is a two-tier cache: an in-process tier in front of Redis, with a
// circuit breaker that lets the in-process tier answer alone while Redis is
// unreachable. All methods are safe for concurrent use.
type Cache struct {
	opts   Options
	prefix string
	codecs *codecs
	local  *localTier
	stats  counters
	met    *metrics
	log    *slog.Logger

	// Redis tier; redisOpt is nil in memory-only mode.
	redisOpt *rueidis.ClientOption
	client   atomic.Pointer[clientBox]
	breaker  *gobreaker.CircuitBreaker[struct{}]
	// degraded is true while Redis is configured but not serving: never
	// connected, or the breaker is not closed. Requests read it instead of
	// asking the breaker, so they never pay for a probe.
	degraded      atomic.Bool
	fallbackSince atomic.Int64 // monotonic nanoseconds since start; valid while degraded
	fallbackTotal atomic.Int64 // nanoseconds spent in fallback before the current spell
	start         time.Time

	// defaultTTL is Options.DefaultTTL, changeable at run time (SetDefaultTTL).
	defaultTTL atomic.Int64

	// journal holds writes taken during fallback until Redis is back (see
	// journal.go); nil in memory-only mode.
	journal *journal

	// tracer is nil when tracing is off (see tracing.go).
	tracer trace.Tracer

	sf       singleflight.Group
	closeMu  sync.RWMutex
	closed   bool
	closeCtx context.Context
	stop     context.CancelFunc
	wg       sync.WaitGroup
}

// clientBox lets an interface value sit in an atomic.Pointer.
type clientBox struct{ c rueidis.Client }

// RawEntry is a value stored through PutRaw, or any value as bytes.
type RawEntry struct {
	// Body must not be modified: it is shared with the in-process tier.
	Body        []byte
	ContentType string
	// Tier is the tier that answered, for the X-Cache header.
	Tier Tier
}

// LoadFunc produces a value on a miss. Its ctx ends at Options.LoadTimeout
// or when the Cache closes, not when the caller that started it gives up:
// other callers may be waiting for the same key.
type LoadFunc func(ctx context.Context) (any, error)

// New builds a Cache. An invalid Options is an error; an unreachable Redis
// is not: the Cache starts in fallback (health DEGRADED) and connects in the
// background.
func New(ctx context.Context, opts Options) (*Cache, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	c := &Cache{opts: opts, prefix: opts.KeyPrefix, log: opts.Logger, start: time.Now(), tracer: tracerFor(opts.TracerProvider)}
	c.defaultTTL.Store(int64(opts.DefaultTTL))
	var err error
	if c.codecs, err = newCodecs(opts.Codec, opts.Compression, opts.CompressionThreshold, opts.MaxValueBytes); err != nil {
		return nil, err
	}
	if c.local, err = newLocalTier(opts.LocalMaxBytes, opts.Now); err != nil {
		c.codecs.close()
		return nil, fmt.Errorf("cache: local tier: %w", err)
	}
	if c.met, err = newMetrics(c, opts.Registerer); err != nil {
		c.local.close()
		c.codecs.close()
		return nil, fmt.Errorf("cache: register metrics: %w", err)
	}
	c.closeCtx, c.stop = context.WithCancel(context.WithoutCancel(ctx))
	if opts.RedisURL == "" {
		return c, nil
	}
	ro, err := c.clientOption()
	if err != nil {
		c.Close()
		return nil, err
	}
	c.redisOpt = &ro
	c.journal = newJournal(opts.FallbackJournalBytes, opts.FallbackJournalEntries)
	c.breaker = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "redis",
		MaxRequests: 1,
		Timeout:     opts.BreakerOpenTimeout,
		ReadyToTrip: func(n gobreaker.Counts) bool { return n.ConsecutiveFailures >= opts.BreakerFailures },
		IsSuccessful: func(err error) bool {
			// A miss or a Redis error reply means the server answered.
			_, isRedisErr := rueidis.IsRedisErr(err)
			return err == nil || isRedisErr
		},
		IsExcluded: func(err error) bool {
			// The caller gave up first: that says nothing about Redis.
			// (nil first: errors.As would allocate on every success.)
			if err == nil {
				return false
			}
			var cg callerGone
			return errors.As(err, &cg)
		},
		OnStateChange: c.onBreakerChange,
	})
	if err := c.connect(); err != nil {
		c.log.Warn("cache: redis unreachable, serving from memory", "err", err)
		c.enterFallback("connect")
	}
	c.wg.Add(2)
	go c.probeLoop()
	go c.replayLoop()
	return c, nil
}

// begin guards a call against Close; done must be called when it returns.
func (c *Cache) begin(ctx context.Context) error {
	c.closeMu.RLock()
	if c.closed {
		c.closeMu.RUnlock()
		return ErrClosed
	}
	c.wg.Add(1)
	c.closeMu.RUnlock()
	if err := ctx.Err(); err != nil {
		c.wg.Done()
		return err
	}
	return nil
}

func (c *Cache) observe(o op, t0 time.Time) {
	d := time.Since(t0)
	c.met.durations[o].Observe(d.Seconds())
	c.stats.latency[o].Record(d)
}

func (c *Cache) ttlOrDefault(ttl time.Duration) (time.Duration, error) {
	if err := ValidateTTL(ttl); err != nil {
		return 0, err
	}
	if ttl == 0 {
		return time.Duration(c.defaultTTL.Load()), nil
	}
	return ttl, nil
}

// bytesOf views a Redis reply as bytes without copying. The decoders only
// read it, and a value kept in the in-process tier keeps the string alive.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

func (c *Cache) checkNSKey(ns, key string) error {
	if err := ValidateNamespace(ns); err != nil {
		return err
	}
	return ValidateKey(key)
}
