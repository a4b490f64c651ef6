package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/rueidis"
)

// ErrNotShared is returned by the shared-tier calls when Redis is not
// configured or not serving: their callers (the query cache's table versions)
// must know that other replicas will not see what they read or write.
var ErrNotShared = errors.New("cache: shared tier unavailable")

// GetShared reads keys of one namespace straight from Redis in one round trip
// (MGET, or one GET per key pipelined on a Cluster), bypassing the in-process
// tier: the answer is what every replica sees. A missing, expired or
// undecodable entry is nil. It fails with ErrNotShared when Redis is not
// serving, rather than answering from memory.
func (c *Cache) GetShared(ctx context.Context, ns string, keys []string) ([][]byte, error) {
	if err := ValidateNamespace(ns); err != nil {
		return nil, err
	}
	for _, k := range keys {
		if err := ValidateKey(k); err != nil {
			return nil, err
		}
	}
	if err := c.begin(ctx); err != nil {
		return nil, fmt.Errorf("cache: get shared: %w", err)
	}
	defer c.wg.Done()
	defer c.observe(opGet, time.Now())
	out := make([][]byte, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	if !c.redisUp() {
		return nil, ErrNotShared
	}
	err := c.redisDo(ctx, c.opts.ReadTimeout, func(ctx context.Context, cl rueidis.Client) error {
		cmds := make(rueidis.Commands, len(keys))
		for i, k := range keys {
			cmds[i] = cl.B().Get().Key(c.redisKey(ns, k)).Build()
		}
		for i, r := range cl.DoMulti(ctx, cmds...) {
			s, err := r.ToString()
			if rueidis.IsRedisNil(err) {
				continue
			}
			if err != nil {
				return err
			}
			env, err := c.codecs.open(bytesOf(s))
			if err != nil {
				c.stats.decodeErrors.Add(1)
				continue
			}
			out[i] = bytes.Clone(env.payload)
		}
		return nil
	})
	if err != nil {
		c.stats.inc(tL2, rError)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("cache: get shared: %w", ctx.Err())
		}
		return nil, fmt.Errorf("%w: %w", ErrNotShared, err)
	}
	for _, b := range out {
		if b != nil {
			c.stats.inc(tL2, rHit)
		} else {
			c.stats.inc(tL2, rMiss)
		}
	}
	return out, nil
}

// PutShared stores body like PutRaw but fails with ErrNotShared unless Redis
// took the write, so a caller never believes other replicas can see a value
// that lives only in this process.
func (c *Cache) PutShared(ctx context.Context, ns, key, contentType string, body []byte, ttl time.Duration) error {
	if !c.redisUp() {
		if err := c.checkNSKey(ns, key); err != nil {
			return err
		}
		return ErrNotShared
	}
	r, err := c.PutRawWithDurability(ctx, ns, key, contentType, body, ttl)
	if err != nil {
		return err
	}
	if r.Tier != TierL2 {
		if r.Durability == DurabilityReplay {
			// The caller is told the write failed: Redis must not get it
			// later behind the caller's back.
			c.journal.drop(c.redisKey(ns, key))
		}
		return ErrNotShared
	}
	return nil
}
