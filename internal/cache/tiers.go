package cache

import (
	"context"
	"time"

	"github.com/redis/rueidis"
)

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
