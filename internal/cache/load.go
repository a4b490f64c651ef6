package cache

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sync/singleflight"
)

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
