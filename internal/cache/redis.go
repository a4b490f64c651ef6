package cache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
	"github.com/sony/gobreaker/v2"
)

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
