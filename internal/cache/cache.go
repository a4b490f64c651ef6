package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
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

func (c *Cache) clientOption() (rueidis.ClientOption, error) {
	ro, err := parseRedisURL(c.opts.RedisURL)
	if err != nil {
		return ro, fmt.Errorf("cache: %w", err)
	}
	if c.opts.TLSConfig != nil {
		ro.TLSConfig = c.opts.TLSConfig.Clone()
	}
	ro.Dialer.Timeout = c.opts.DialTimeout
	// With ?master_set= rueidis dials the sentinels with a dialer of their
	// own, whose zero timeout means rueidis's 5 s default: without this a
	// hung sentinel holds New (and each reconnect) past DialTimeout.
	ro.Sentinel.Dialer.Timeout = c.opts.DialTimeout
	ro.BlockingPoolSize = c.opts.PoolSize
	// One pipelined connection per node: with NOLOOP our own writes then
	// never come back to us as invalidations.
	ro.PipelineMultiplex = -1
	if !ro.AlwaysRESP2 && !ro.DisableCache {
		// Broadcast tracking: Redis tells every replica about every change
		// under our prefix — writes by other replicas, expiry, eviction,
		// FLUSHDB — without per-key bookkeeping on the server.
		ro.ClientTrackingOptions = []string{"PREFIX", c.prefix, "BCAST", "NOLOOP"}
		ro.OnInvalidations = c.onInvalidations
	} else {
		// Without RESP3 there is no tracking; LocalTTL alone bounds staleness.
		ro.DisableCache = true
	}
	return ro, nil
}

// connect makes the Redis client; rueidis reconnects it by itself after.
func (c *Cache) connect() error {
	cl, err := rueidis.NewClient(*c.redisOpt)
	if err != nil {
		return fmt.Errorf("cache: redis connect: %w", err)
	}
	c.client.Store(&clientBox{c: cl})
	return nil
}

// onInvalidations runs on rueidis's reader goroutine: keep it short.
// A nil batch means the connection dropped or the database was flushed:
// invalidations may have been lost, so everything goes — unless we are in
// fallback, where the in-process tier is all callers have and is flushed
// anyway when Redis comes back.
func (c *Cache) onInvalidations(msgs []rueidis.RedisMessage) {
	if msgs == nil {
		if !c.degraded.Load() {
			c.local.flush()
		}
		return
	}
	degraded := c.degraded.Load()
	for _, m := range msgs {
		if k, err := m.ToString(); err == nil {
			c.local.invalidate(k)
			if degraded {
				// Another replica wrote k since we reconnected: its value
				// is newer than the one our journal holds.
				c.journal.supersede(k)
			}
		}
	}
}

func (c *Cache) onBreakerChange(_ string, from, to gobreaker.State) {
	c.log.Info("cache: redis breaker", "from", from.String(), "to", to.String())
	switch to {
	case gobreaker.StateOpen:
		c.enterFallback("breaker open")
	case gobreaker.StateClosed:
		c.leaveFallback()
	}
}

func (c *Cache) enterFallback(reason string) {
	if c.degraded.CompareAndSwap(false, true) {
		c.fallbackSince.Store(int64(time.Since(c.start)))
		c.log.Warn("cache: fallback to in-process tier", "reason", reason)
	}
}

// leaveFallback starts the way back: the replay loop writes the journal
// to Redis and only then ends fallback (finishFallback). It may run on
// the breaker's callback, which must not call Redis itself.
func (c *Cache) leaveFallback() {
	if c.degraded.Load() {
		c.kickReplay()
	}
}

func (c *Cache) fallbackActive() bool { return c.redisOpt != nil && c.degraded.Load() }

func (c *Cache) fallbackDuration() time.Duration {
	d := c.fallbackTotal.Load()
	if c.degraded.Load() {
		d += int64(time.Since(c.start)) - c.fallbackSince.Load()
	}
	return time.Duration(max(d, 0))
}

// probeLoop connects if New could not, and pings through the breaker while
// it is open, so Redis's return is noticed without traffic.
func (c *Cache) probeLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.opts.HealthCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-c.closeCtx.Done():
			return
		case <-t.C:
		}
		if c.client.Load() == nil {
			if err := c.connect(); err != nil {
				continue
			}
			// A fresh client comes with a closed breaker.
			c.leaveFallback()
			c.log.Info("cache: redis connected")
			continue
		}
		if c.degraded.Load() {
			_ = c.ping(c.closeCtx)
			// A replay cut short by an error that left the breaker closed
			// is resumed here.
			c.leaveFallback()
		}
	}
}

// ping asks Redis through the breaker: while the breaker is open it fails
// at once, once half-open it is the probe that may close it.
func (c *Cache) ping(ctx context.Context) error {
	return c.redisDo(ctx, c.opts.ReadTimeout, func(ctx context.Context, cl rueidis.Client) error {
		return cl.Do(ctx, cl.B().Ping().Build()).Error()
	})
}

// callerGone marks an error caused by the caller's own context.
type callerGone struct{ err error }

func (e callerGone) Error() string { return e.err.Error() }
func (e callerGone) Unwrap() error { return e.err }

var errNotConnected = errors.New("cache: redis not connected")

// redisDo runs fn through the breaker with a per-call timeout.
func (c *Cache) redisDo(ctx context.Context, timeout time.Duration, fn func(context.Context, rueidis.Client) error) error {
	box := c.client.Load()
	if box == nil {
		return errNotConnected
	}
	_, err := c.breaker.Execute(func() (struct{}, error) {
		// A caller's own deadline that comes first already bounds the call,
		// and a timer per call is the dearest part of this layer.
		octx, cancel := ctx, context.CancelFunc(nil)
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > timeout {
			octx, cancel = context.WithTimeout(ctx, timeout)
		}
		err := fn(octx, box.c)
		if cancel != nil {
			cancel()
		}
		if err != nil && ctx.Err() != nil {
			return struct{}{}, callerGone{err}
		}
		return struct{}{}, err
	})
	return err
}

// redisUp says whether to try Redis at all.
func (c *Cache) redisUp() bool { return c.redisOpt != nil && !c.degraded.Load() }

func (c *Cache) redisKey(ns, key string) string {
	return c.prefix + strconv.Itoa(len(ns)) + ":" + ns + ":" + key
}

func (c *Cache) nsPrefix(ns string) string {
	return c.prefix + strconv.Itoa(len(ns)) + ":" + ns + ":"
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
	c.stats.latency[o].record(d)
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

// DefaultTTL is the TTL applied to writes that give none.
func (c *Cache) DefaultTTL() time.Duration { return time.Duration(c.defaultTTL.Load()) }

// SetDefaultTTL changes the TTL of later writes that give none; entries
// already written keep theirs. It is safe to call while the cache serves.
func (c *Cache) SetDefaultTTL(ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("%w: default TTL must be positive", ErrInvalidTTL)
	}
	if err := ValidateTTL(ttl); err != nil {
		return err
	}
	c.defaultTTL.Store(int64(ttl))
	return nil
}

// CompressionThreshold is the encoded size from which values are compressed.
func (c *Cache) CompressionThreshold() int { return int(c.codecs.threshold.Load()) }

// SetCompressionThreshold changes the size from which later writes are
// compressed. Readers need no change: every stored value's header says
// whether it is compressed.
func (c *Cache) SetCompressionThreshold(n int) error {
	if n < 1 {
		return fmt.Errorf("cache: compression threshold %d: must be at least 1 byte", n)
	}
	c.codecs.threshold.Store(int64(n))
	return nil
}

// bytesOf views a Redis reply as bytes without copying. The decoders only
// read it, and a value kept in the in-process tier keeps the string alive.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// lookup finds key in the tiers. It returns an error only for the caller's
// own context; Redis failures are a fallback miss.
func (c *Cache) lookup(ctx context.Context, fk string) (envelope, tierIdx, bool, error) {
	if c.redisOpt == nil || c.degraded.Load() {
		t := tL1
		if c.redisOpt != nil {
			t = tFallback
		}
		if e, ok := c.local.get(fk); ok {
			c.stats.inc(t, rHit)
			return e.env, t, true, nil
		}
		c.stats.inc(t, rMiss)
		return envelope{}, t, false, nil
	}
	if e, ok := c.local.get(fk); ok {
		c.stats.inc(tL1, rHit)
		return e.env, tL1, true, nil
	}
	c.stats.inc(tL1, rMiss)
	gen := c.local.generation(fk)
	var (
		raw   string
		found bool
	)
	err := c.redisDo(ctx, c.opts.ReadTimeout, func(ctx context.Context, cl rueidis.Client) error {
		s, err := cl.Do(ctx, cl.B().Get().Key(fk).Build()).ToString()
		if rueidis.IsRedisNil(err) {
			return nil
		}
		if err != nil {
			return err
		}
		raw, found = s, true
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return envelope{}, tFallback, false, ctx.Err()
		}
		if _, isRedisErr := rueidis.IsRedisErr(err); isRedisErr {
			// WRONGTYPE and the like: a foreign key under our prefix.
			c.stats.inc(tL2, rError)
			c.stats.decodeErrors.Add(1)
			c.stats.inc(tL2, rMiss)
			return envelope{}, tL2, false, nil
		}
		c.stats.inc(tL2, rError)
		c.stats.inc(tFallback, rMiss)
		return envelope{}, tFallback, false, nil
	}
	if !found {
		c.stats.inc(tL2, rMiss)
		return envelope{}, tL2, false, nil
	}
	env, err := c.codecs.open(bytesOf(raw))
	if err != nil {
		c.stats.inc(tL2, rError)
		c.stats.decodeErrors.Add(1)
		c.stats.inc(tL2, rMiss)
		return envelope{}, tL2, false, nil
	}
	c.stats.inc(tL2, rHit)
	now := c.opts.Now().UnixNano()
	exp := int64(1<<63 - 1)
	if env.expireAtMs > 0 {
		exp = env.expireAtMs * int64(time.Millisecond)
	}
	if local := min(exp, now+int64(c.opts.LocalTTL)); local > now {
		c.local.fill(fk, gen, &localEntry{env: env, expireAt: exp, localExpireAt: local})
	}
	return env, tL2, true, nil
}

// store writes env under fk to Redis and the in-process tier, and says
// how durable the write is (see Durability).
func (c *Cache) store(ctx context.Context, fk string, env envelope, ttl time.Duration) (tierIdx, Durability, error) {
	now := c.opts.Now()
	exp := now.Add(ttl)
	env.expireAtMs = exp.UnixMilli()
	e := &localEntry{env: env, expireAt: exp.UnixNano(), localExpireAt: min(exp.UnixNano(), now.Add(c.opts.LocalTTL).UnixNano())}
	if c.redisOpt == nil {
		c.local.set(fk, e)
		c.stats.inc(tL1, rSet)
		return tL1, DurabilityMemory, nil
	}
	// The second round is for a write that found fallback over by the time
	// it reached the journal: Redis takes it after all.
	failed := false // Redis refused this write: a second try would not do better
	for round := 0; ; round++ {
		if c.redisUp() {
			w := c.codecs.seal(env.codec, env.contentType, env.payload, env.expireAtMs)
			c.stats.compIn.Add(uint64(len(env.payload)))
			c.stats.compOut.Add(uint64(w.stored))
			if w.compressed {
				c.stats.compKept.Add(1)
			}
			px := max(ttl, time.Millisecond)
			err := c.redisDo(ctx, c.opts.WriteTimeout, func(ctx context.Context, cl rueidis.Client) error {
				return cl.Do(ctx, cl.B().Set().Key(fk).Value(rueidis.BinaryString(w.wire)).Px(px).Build()).Error()
			})
			if err == nil {
				c.local.set(fk, e)
				c.stats.inc(tL2, rSet)
				return tL2, DurabilityRedis, nil
			}
			if ctx.Err() != nil {
				// Whether Redis got it is unknown: keep no local copy that
				// might contradict it.
				c.local.invalidate(fk)
				return tFallback, "", ctx.Err()
			}
			c.stats.inc(tL2, rError)
			failed = true
		}
		c.local.set(fk, e)
		c.stats.inc(tFallback, rSet)
		d, retry := c.journalWrite(fk, false, env)
		if !retry {
			return tFallback, d, nil
		}
		if failed || round > 0 || !c.redisUp() {
			// Redis failed this write but the breaker is still closed:
			// nothing will replay it.
			return tFallback, DurabilityMemory, nil
		}
	}
}

// Get reads the value under (ns, key) into dst, a pointer. found is false on
// a miss, including a stored value that cannot be decoded into dst (counted
// in Stats.DecodeErrors). Redis failures are not errors: the in-process tier
// answers.
func (c *Cache) Get(ctx context.Context, ns, key string, dst any) (found bool, err error) {
	ctx, sp := c.startSpan(ctx, spanGet, ns)
	found, t, err := c.get(ctx, ns, key, dst)
	endLookup(sp, t, found, true, err)
	return found, err
}

func (c *Cache) get(ctx context.Context, ns, key string, dst any) (bool, tierIdx, error) {
	if err := c.checkNSKey(ns, key); err != nil {
		return false, tierNone, err
	}
	if err := c.begin(ctx); err != nil {
		return false, tierNone, fmt.Errorf("cache: get: %w", err)
	}
	defer c.wg.Done()
	defer c.observe(opGet, time.Now())
	env, t, ok, err := c.lookup(ctx, c.redisKey(ns, key))
	if err != nil {
		return false, t, fmt.Errorf("cache: get: %w", err)
	}
	if !ok {
		return false, t, nil
	}
	if err := c.codecs.unmarshal(env, dst); err != nil {
		c.stats.decodeErrors.Add(1)
		c.stats.inc(t, rError)
		return false, t, nil
	}
	return true, t, nil
}

// GetRaw reads the value under (ns, key) as bytes with its content type and
// the tier that answered. Values written by Set come back as their JSON or
// CBOR encoding (application/json, application/cbor).
func (c *Cache) GetRaw(ctx context.Context, ns, key string) (RawEntry, bool, error) {
	ctx, sp := c.startSpan(ctx, spanGet, ns)
	e, found, err := c.getRaw(ctx, ns, key)
	endLookup(sp, tierIndex(e.Tier), found, true, err)
	return e, found, err
}

func (c *Cache) getRaw(ctx context.Context, ns, key string) (RawEntry, bool, error) {
	if err := c.checkNSKey(ns, key); err != nil {
		return RawEntry{}, false, err
	}
	if err := c.begin(ctx); err != nil {
		return RawEntry{}, false, fmt.Errorf("cache: get: %w", err)
	}
	defer c.wg.Done()
	defer c.observe(opGet, time.Now())
	env, t, ok, err := c.lookup(ctx, c.redisKey(ns, key))
	if err != nil {
		return RawEntry{}, false, fmt.Errorf("cache: get: %w", err)
	}
	if !ok {
		return RawEntry{Tier: t.tier()}, false, nil
	}
	return RawEntry{Body: env.payload, ContentType: env.contentTypeOrDefault(), Tier: t.tier()}, true, nil
}

// Set stores value under (ns, key) for ttl (0 = Options.DefaultTTL). It
// fails only on invalid input or the caller's context: when Redis is down
// the value lives in the in-process tier alone.
func (c *Cache) Set(ctx context.Context, ns, key string, value any, ttl time.Duration) error {
	ctx, sp := c.startSpan(ctx, spanSet, ns)
	t, err := c.set(ctx, ns, key, value, ttl)
	endLookup(sp, t, false, false, err)
	return err
}

// set returns the tier that took the value.
func (c *Cache) set(ctx context.Context, ns, key string, value any, ttl time.Duration) (tierIdx, error) {
	if err := c.checkNSKey(ns, key); err != nil {
		return tierNone, err
	}
	ttl, err := c.ttlOrDefault(ttl)
	if err != nil {
		return tierNone, err
	}
	payload, codec, err := c.codecs.marshal(value)
	if err != nil {
		return tierNone, err
	}
	if err := ValidateValueSize(len(payload), c.opts.MaxValueBytes); err != nil {
		return tierNone, err
	}
	if err := c.begin(ctx); err != nil {
		return tierNone, fmt.Errorf("cache: set: %w", err)
	}
	defer c.wg.Done()
	defer c.observe(opSet, time.Now())
	env := envelope{codec: codec, payload: payload}
	t, _, err := c.store(ctx, c.redisKey(ns, key), env, ttl)
	if err != nil {
		return t, fmt.Errorf("cache: set: %w", err)
	}
	return t, nil
}

// PutRaw stores body with its content type (empty means
// application/octet-stream) for ttl, and reports the tier that took it.
// body is copied.
func (c *Cache) PutRaw(ctx context.Context, ns, key, contentType string, body []byte, ttl time.Duration) (Tier, error) {
	r, err := c.PutRawWithDurability(ctx, ns, key, contentType, body, ttl)
	return r.Tier, err
}

// PutRawWithDurability is PutRaw that also says whether the write outlives
// a Redis outage: DurabilityMemory means it will be gone once Redis is
// back (or the process ends), and the caller should be told so.
func (c *Cache) PutRawWithDurability(ctx context.Context, ns, key, contentType string, body []byte, ttl time.Duration) (WriteResult, error) {
	ctx, sp := c.startSpan(ctx, spanSet, ns)
	r, err := c.putRaw(ctx, ns, key, contentType, body, ttl)
	endLookup(sp, tierIndex(r.Tier), false, false, err)
	return r, err
}

func (c *Cache) putRaw(ctx context.Context, ns, key, contentType string, body []byte, ttl time.Duration) (WriteResult, error) {
	if err := c.checkNSKey(ns, key); err != nil {
		return WriteResult{}, err
	}
	ttl, err := c.ttlOrDefault(ttl)
	if err != nil {
		return WriteResult{}, err
	}
	if err := validateContentType(contentType); err != nil {
		return WriteResult{}, err
	}
	if err := ValidateValueSize(len(body), c.opts.MaxValueBytes); err != nil {
		return WriteResult{}, err
	}
	if err := c.begin(ctx); err != nil {
		return WriteResult{}, fmt.Errorf("cache: put: %w", err)
	}
	defer c.wg.Done()
	defer c.observe(opSet, time.Now())
	env := envelope{codec: codecRaw, contentType: contentType, payload: bytes.Clone(body)}
	if env.payload == nil {
		env.payload = []byte{}
	}
	t, d, err := c.store(ctx, c.redisKey(ns, key), env, ttl)
	if err != nil {
		return WriteResult{}, fmt.Errorf("cache: put: %w", err)
	}
	return WriteResult{Tier: t.tier(), Durability: d}, nil
}

// MaxValueBytes is the configured value size limit, for the HTTP layer to
// check Content-Length against before reading a body.
func (c *Cache) MaxValueBytes() int { return c.opts.MaxValueBytes }

// Delete removes (ns, key) and reports whether it existed.
func (c *Cache) Delete(ctx context.Context, ns, key string) (bool, error) {
	existed, _, err := c.DeleteWithDurability(ctx, ns, key)
	return existed, err
}

// DeleteWithDurability is Delete that also says whether the delete
// outlives a Redis outage: DurabilityMemory means Redis may still serve
// the old value once it is back.
func (c *Cache) DeleteWithDurability(ctx context.Context, ns, key string) (bool, Durability, error) {
	ctx, sp := c.startSpan(ctx, spanDelete, ns)
	existed, d, err := c.delete(ctx, ns, key)
	if sp != nil {
		sp.SetAttributes(attrHit.Bool(existed))
	}
	endErr(sp, err)
	return existed, d, err
}

func (c *Cache) delete(ctx context.Context, ns, key string) (bool, Durability, error) {
	if err := c.checkNSKey(ns, key); err != nil {
		return false, "", err
	}
	if err := c.begin(ctx); err != nil {
		return false, "", fmt.Errorf("cache: delete: %w", err)
	}
	defer c.wg.Done()
	defer c.observe(opDelete, time.Now())
	fk := c.redisKey(ns, key)
	existed := c.local.invalidate(fk)
	if c.redisOpt == nil {
		c.stats.inc(tL1, rDelete)
		return existed, DurabilityMemory, nil
	}
	failed := false
	for round := 0; ; round++ {
		if c.redisUp() {
			var n int64
			err := c.redisDo(ctx, c.opts.WriteTimeout, func(ctx context.Context, cl rueidis.Client) error {
				var err error
				n, err = cl.Do(ctx, cl.B().Unlink().Key(fk).Build()).AsInt64()
				return err
			})
			if err == nil {
				c.stats.inc(tL2, rDelete)
				return n > 0 || existed, DurabilityRedis, nil
			}
			if ctx.Err() != nil {
				return existed, "", fmt.Errorf("cache: delete: %w", ctx.Err())
			}
			c.stats.inc(tL2, rError)
			failed = true
		}
		c.stats.inc(tFallback, rDelete)
		// Without the journal's tombstone the value Redis still holds would
		// come back when Redis does.
		d, retry := c.journalWrite(fk, true, envelope{})
		if !retry {
			return existed, d, nil
		}
		if failed || round > 0 || !c.redisUp() {
			return existed, DurabilityMemory, nil
		}
	}
}

// Exists reports whether (ns, key) holds a value, without decoding it.
func (c *Cache) Exists(ctx context.Context, ns, key string) (bool, error) {
	if err := c.checkNSKey(ns, key); err != nil {
		return false, err
	}
	if err := c.begin(ctx); err != nil {
		return false, fmt.Errorf("cache: exists: %w", err)
	}
	defer c.wg.Done()
	defer c.observe(opExists, time.Now())
	fk := c.redisKey(ns, key)
	if _, ok := c.local.get(fk); ok || !c.redisUp() {
		return ok, nil
	}
	var n int64
	err := c.redisDo(ctx, c.opts.ReadTimeout, func(ctx context.Context, cl rueidis.Client) error {
		var err error
		n, err = cl.Do(ctx, cl.B().Exists().Key(fk).Build()).AsInt64()
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			return false, fmt.Errorf("cache: exists: %w", ctx.Err())
		}
		c.stats.inc(tL2, rError)
		return false, nil
	}
	return n > 0, nil
}

// TTL returns the time (ns, key) has left; found is false if it does not
// exist. A key without expiry (written by something else) reports 0.
func (c *Cache) TTL(ctx context.Context, ns, key string) (ttl time.Duration, found bool, err error) {
	if err := c.checkNSKey(ns, key); err != nil {
		return 0, false, err
	}
	if err := c.begin(ctx); err != nil {
		return 0, false, fmt.Errorf("cache: ttl: %w", err)
	}
	defer c.wg.Done()
	defer c.observe(opTTL, time.Now())
	fk := c.redisKey(ns, key)
	localTTL := func() (time.Duration, bool, error) {
		e, ok := c.local.get(fk)
		if !ok {
			return 0, false, nil
		}
		return time.Duration(max(e.expireAt-c.opts.Now().UnixNano(), 0)), true, nil
	}
	if !c.redisUp() {
		return localTTL()
	}
	var ms int64
	err = c.redisDo(ctx, c.opts.ReadTimeout, func(ctx context.Context, cl rueidis.Client) error {
		var err error
		ms, err = cl.Do(ctx, cl.B().Pttl().Key(fk).Build()).AsInt64()
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			return 0, false, fmt.Errorf("cache: ttl: %w", ctx.Err())
		}
		c.stats.inc(tL2, rError)
		return localTTL()
	}
	switch {
	case ms == -2:
		return 0, false, nil
	case ms < 0:
		return 0, true, nil
	}
	return time.Duration(ms) * time.Millisecond, true, nil
}

// GetOrLoad reads (ns, key) into dst; on a miss it calls load, stores the
// result for ttl and decodes it into dst. Concurrent misses for one key in
// this process share one load. The caller's ctx bounds its wait, not the
// load (see LoadFunc).
func (c *Cache) GetOrLoad(ctx context.Context, ns, key string, dst any, ttl time.Duration, load LoadFunc) error {
	ctx, sp := c.startSpan(ctx, spanGetOrLoad, ns)
	t, hit, err := c.getOrLoad(ctx, ns, key, dst, ttl, load)
	endLookup(sp, t, hit, true, err)
	return err
}

// getOrLoad returns the tier the lookup ended in and whether it found a
// usable value (false: the value came from a load).
func (c *Cache) getOrLoad(ctx context.Context, ns, key string, dst any, ttl time.Duration, load LoadFunc) (tierIdx, bool, error) {
	if err := c.checkNSKey(ns, key); err != nil {
		return tierNone, false, err
	}
	ttl, err := c.ttlOrDefault(ttl)
	if err != nil {
		return tierNone, false, err
	}
	if err := c.begin(ctx); err != nil {
		return tierNone, false, fmt.Errorf("cache: get or load: %w", err)
	}
	defer c.wg.Done()
	defer c.observe(opGetOrLoad, time.Now())
	fk := c.redisKey(ns, key)
	env, t, ok, err := c.lookup(ctx, fk)
	if err != nil {
		return t, false, fmt.Errorf("cache: get or load: %w", err)
	}
	if ok {
		if err := c.codecs.unmarshal(env, dst); err == nil {
			return t, true, nil
		}
		// Probably an older shape of the type: reload and overwrite it.
		c.stats.decodeErrors.Add(1)
		c.stats.inc(t, rError)
	}
	ch := make(chan singleflight.Result, 1)
	c.wg.Add(1) // released by the goroutine; Close waits for it
	go func() {
		defer c.wg.Done()
		v, err, shared := c.sf.Do(fk, func() (any, error) { return c.load(ctx, fk, ttl, load) })
		ch <- singleflight.Result{Val: v, Err: err, Shared: shared}
	}()
	select {
	case r := <-ch:
		if r.Err != nil {
			return t, false, r.Err
		}
		if err := c.codecs.unmarshal(r.Val.(envelope), dst); err != nil {
			return t, false, fmt.Errorf("cache: get or load: decode loaded value: %w", err)
		}
		return t, false, nil
	case <-ctx.Done():
		return t, false, fmt.Errorf("cache: get or load: %w", ctx.Err())
	}
}

func (c *Cache) load(ctx context.Context, fk string, ttl time.Duration, load LoadFunc) (_ any, err error) {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.LoadTimeout)
	defer cancel()
	stop := context.AfterFunc(c.closeCtx, cancel)
	defer stop()
	c.stats.loads.Add(1)
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("cache: load: panic: %v", p)
		}
		if err != nil {
			c.stats.loadErrors.Add(1)
		}
	}()
	v, err := load(lctx)
	if err != nil {
		return nil, fmt.Errorf("cache: load: %w", err)
	}
	payload, codec, err := c.codecs.marshal(v)
	if err != nil {
		return nil, err
	}
	env := envelope{codec: codec, payload: payload}
	if err := ValidateValueSize(len(payload), c.opts.MaxValueBytes); err != nil {
		// Too big to cache, but the caller still gets its value.
		return env, nil
	}
	// The waiting callers may all be gone; the value is worth keeping.
	_, _, _ = c.store(lctx, fk, env, ttl)
	return env, nil
}

func (c *Cache) checkNSKey(ns, key string) error {
	if err := ValidateNamespace(ns); err != nil {
		return err
	}
	return ValidateKey(key)
}
