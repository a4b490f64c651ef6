package cache

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/redis/rueidis"
)

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
