package cache

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
	"github.com/sony/gobreaker/v2"

	"github.com/smartcloudops/smartcloudops/internal/health"
)

// clearBatch is the SCAN COUNT hint and the most keys unlinked per command.
const clearBatch = 500

// ClearNamespace removes every key of ns and returns how many it removed:
// the Redis keys it unlinked, or, while Redis is unreachable, the
// in-process entries it dropped. It sweeps with SCAN and UNLINK, never
// KEYS, so Redis stays responsive; keys written during the sweep may
// survive it. The match pattern is built from the length-prefixed
// namespace with glob characters escaped, so no other namespace matches.
func (c *Cache) ClearNamespace(ctx context.Context, ns string) (int64, error) {
	n, _, err := c.ClearNamespaceWithDurability(ctx, ns)
	return n, err
}

// ClearNamespaceWithDurability is ClearNamespace that also says whether the
// clear reached Redis: DurabilityMemory in Redis mode means Redis was
// unreachable (or the sweep broke off), so the namespace's keys in Redis
// come back into view once it is reachable again. A clear is not journaled:
// replayed late, it would also remove what other replicas wrote since.
func (c *Cache) ClearNamespaceWithDurability(ctx context.Context, ns string) (int64, Durability, error) {
	ctx, sp := c.startSpan(ctx, spanClear, ns)
	n, d, err := c.clearNamespace(ctx, ns)
	if sp != nil {
		sp.SetAttributes(attrRemoved.Int64(n))
	}
	endErr(sp, err)
	return n, d, err
}

func (c *Cache) clearNamespace(ctx context.Context, ns string) (int64, Durability, error) {
	if err := ValidateNamespace(ns); err != nil {
		return 0, "", err
	}
	if err := c.begin(ctx); err != nil {
		return 0, "", fmt.Errorf("cache: clear namespace: %w", err)
	}
	defer c.wg.Done()
	defer c.observe(opClear, time.Now())
	prefix := c.nsPrefix(ns)
	localN := c.local.clearPrefix(prefix)
	if c.journal != nil {
		// Writes to ns journaled during an outage must not come back
		// after the clear.
		c.journal.supersedePrefix(prefix)
	}
	if !c.redisUp() {
		t := tL1
		if c.redisOpt != nil {
			t = tFallback
		}
		c.stats.req[t][rDelete].Add(uint64(localN))
		return localN, DurabilityMemory, nil
	}
	n, err := c.clearRedis(ctx, globEscape(prefix)+"*")
	// Entries filled while the sweep ran would outlive it locally.
	c.local.clearPrefix(prefix)
	c.stats.req[tL2][rDelete].Add(uint64(n))
	if err != nil {
		if ctx.Err() != nil {
			return n, "", fmt.Errorf("cache: clear namespace: %w", ctx.Err())
		}
		c.stats.inc(tL2, rError)
		c.stats.req[tFallback][rDelete].Add(uint64(localN))
		return max(n, localN), DurabilityMemory, nil
	}
	return n, DurabilityRedis, nil
}

func (c *Cache) clearRedis(ctx context.Context, pattern string) (int64, error) {
	box := c.client.Load()
	if box == nil {
		return 0, errNotConnected
	}
	cluster := box.c.Mode() == rueidis.ClientModeCluster
	// A cluster keeps each key on one master: scan them all. Elsewhere
	// Nodes may include replicas, which must not be scanned for UNLINK.
	scanners := map[string]rueidis.Client{"": box.c}
	if cluster {
		scanners = box.c.Nodes()
	}
	var removed int64
	for _, node := range scanners {
		var cursor uint64
		for {
			var entry rueidis.ScanEntry
			err := c.redisDo(ctx, c.opts.ReadTimeout, func(ctx context.Context, _ rueidis.Client) error {
				var err error
				entry, err = node.Do(ctx, node.B().Scan().Cursor(cursor).Match(pattern).Count(clearBatch).Build()).AsScanEntry()
				return err
			})
			if err != nil {
				return removed, fmt.Errorf("cache: redis scan: %w", err)
			}
			if len(entry.Elements) > 0 {
				n, err := c.unlink(ctx, entry.Elements, cluster)
				removed += n
				if err != nil {
					return removed, err
				}
			}
			cursor = entry.Cursor
			if cursor == 0 {
				break
			}
		}
	}
	return removed, nil
}

// unlink removes keys in one command, or one per key in a cluster, where
// a multi-key command must not span slots.
func (c *Cache) unlink(ctx context.Context, keys []string, cluster bool) (int64, error) {
	var n int64
	err := c.redisDo(ctx, c.opts.WriteTimeout, func(ctx context.Context, cl rueidis.Client) error {
		if !cluster {
			var err error
			n, err = cl.Do(ctx, cl.B().Unlink().Key(keys...).Build()).AsInt64()
			return err
		}
		cmds := make(rueidis.Commands, len(keys))
		for i, k := range keys {
			cmds[i] = cl.B().Unlink().Key(k).Build()
		}
		for _, r := range cl.DoMulti(ctx, cmds...) {
			v, err := r.AsInt64()
			if err != nil {
				return err
			}
			n += v
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("cache: redis unlink: %w", err)
	}
	return n, nil
}

// globEscape quotes the characters SCAN MATCH gives meaning to.
func globEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\', '^', '-':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Stats returns a snapshot. In Redis mode it asks Redis for its entry,
// memory and eviction figures, within ctx and Options.ReadTimeout; when
// Redis does not answer those stay zero.
func (c *Cache) Stats(ctx context.Context) Stats {
	s := &c.stats
	st := Stats{
		Mode:         "memory",
		L1:           s.tierStats(tL1),
		L2:           s.tierStats(tL2),
		Fallback:     s.tierStats(tFallback),
		DecodeErrors: s.decodeErrors.Load(),
		Loads:        s.loads.Load(),
		LoadErrors:   s.loadErrors.Load(),
		Latency:      make(map[string]LatencyStats, numOps),
	}
	st.L1.Entries = int64(c.local.entries())
	st.L1.Bytes = int64(c.local.bytes())
	st.L1.Evictions = c.local.evictions.Load()
	st.Compress = CompressionStats{BytesIn: s.compIn.Load(), BytesOut: s.compOut.Load(), Compressed: s.compKept.Load()}
	if st.Compress.BytesIn > 0 {
		st.Compress.Ratio = float64(st.Compress.BytesOut) / float64(st.Compress.BytesIn)
	}
	for o := range numOps {
		st.Latency[opLabel[o]] = summary(&s.latency[o])
	}
	if c.redisOpt == nil {
		st.Breaker.State = breakerNone
		return st
	}
	st.Mode = "redis"
	js := c.journalStats()
	st.Journal = &js
	st.Breaker = BreakerStats{
		State:           c.breakerState(),
		FallbackActive:  c.fallbackActive(),
		FallbackSeconds: c.fallbackDuration().Seconds(),
	}
	if c.redisUp() {
		c.redisServerStats(ctx, &st.L2)
	}
	return st
}

// breakerNone is the breaker state in memory-only mode: there is no Redis
// to break from.
const breakerNone = "none"

func (c *Cache) breakerState() string {
	if c.client.Load() == nil {
		return "disconnected"
	}
	switch c.breaker.State() {
	case gobreaker.StateClosed:
		return "closed"
	case gobreaker.StateHalfOpen:
		return "half-open"
	default:
		return "open"
	}
}

// redisServerStats fills ts with Redis's entry, memory and eviction figures.
// DBSIZE and INFO name no key, so a cluster client would send them to a
// single node, which holds only its own slots' keys: in a cluster every node
// is asked and the masters' figures are summed. Replicas, which hold copies
// of their master's keys, are told apart by INFO replication in the same
// round trip (INFO rather than ROLE: it needs no further ACL permission). A
// node that does not answer is left out; only when none answers does its
// error reach the breaker, unwrapped, as for a single server.
func (c *Cache) redisServerStats(ctx context.Context, ts *TierStats) {
	_ = c.redisDo(ctx, c.opts.ReadTimeout, func(ctx context.Context, cl rueidis.Client) error {
		cluster := cl.Mode() == rueidis.ClientModeCluster
		nodes := map[string]rueidis.Client{"": cl}
		if cluster {
			nodes = cl.Nodes()
		}
		var (
			sum      TierStats
			answered bool
			firstErr error
		)
		for _, node := range nodes {
			cmds := rueidis.Commands{
				node.B().Dbsize().Build(),
				node.B().Info().Section("memory").Build(),
				node.B().Info().Section("stats").Build(),
			}
			if cluster {
				cmds = append(cmds, node.B().Info().Section("replication").Build())
			}
			res := node.DoMulti(ctx, cmds...)
			n, err := res[0].AsInt64()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			answered = true
			if cluster {
				if info, err := res[3].ToString(); err != nil || !isMaster(info) {
					continue
				}
			}
			sum.Entries += n
			if s, err := res[1].ToString(); err == nil {
				sum.Bytes += infoField(s, "used_memory")
			}
			if s, err := res[2].ToString(); err == nil {
				sum.Evictions += uint64(max(infoField(s, "evicted_keys"), 0))
			}
		}
		if !answered {
			return firstErr
		}
		ts.Entries, ts.Bytes, ts.Evictions = sum.Entries, sum.Bytes, sum.Evictions
		return nil
	})
}

// isMaster reads the role field of INFO replication output.
func isMaster(info string) bool {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(line, "role:"); ok {
			return strings.TrimSpace(v) == "master"
		}
	}
	return false
}

// infoField extracts one integer field from INFO output.
func infoField(info, name string) int64 {
	for line := range strings.Lines(info) {
		v, ok := strings.CutPrefix(line, name+":")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err == nil {
			return n
		}
	}
	return 0
}

// Check implements health.Checker: UP when Redis answers, DEGRADED while it
// does not and the in-process tier serves alone, DOWN after Close. In
// memory-only mode it is UP with mode "memory" and a reason: the in-process
// tier serves every call, so DISABLED would tell an operator the cache is
// off when it is not. While the breaker is open, Check's ping is the
// probe that may close it. Details carry no address or credential.
func (c *Cache) Check(ctx context.Context) health.Component {
	if err := c.begin(context.WithoutCancel(ctx)); err != nil {
		return health.Component{Status: health.StatusDown, Details: map[string]any{"reason": "closed"}}
	}
	defer c.wg.Done()
	details := map[string]any{"local_entries": c.local.entries()}
	if c.redisOpt == nil {
		details["mode"] = "memory"
		details["breaker"] = breakerNone
		details["reason"] = "no Redis configured: the in-process tier serves alone (entries are not shared between replicas); set REDIS_URL or REDIS_HOST for the shared tier"
		return health.Component{Status: health.StatusUp, Details: details}
	}
	details["mode"] = "redis"
	err := errNotConnected
	if c.client.Load() != nil {
		err = c.ping(ctx)
	}
	details["breaker"] = c.breakerState()
	if err == nil && !c.degraded.Load() {
		return health.Component{Status: health.StatusUp, Details: details}
	}
	details["fallback_seconds"] = c.fallbackDuration().Seconds()
	// Writes waiting to be replayed: while they do, the breaker may be
	// closed and the cache still DEGRADED.
	details["journal_entries"], _ = c.journal.size()
	return health.Component{Status: health.StatusDegraded, Details: details}
}

// Close stops the background probe, waits for in-flight calls and loads,
// and closes the Redis client. It is idempotent; calls after it fail with
// ErrClosed.
func (c *Cache) Close() error {
	c.closeMu.Lock()
	if c.closed {
		c.closeMu.Unlock()
		return nil
	}
	c.closed = true
	c.closeMu.Unlock()
	c.stop()
	c.wg.Wait()
	if box := c.client.Load(); box != nil {
		box.c.Close()
	}
	c.local.close()
	c.codecs.close()
	return nil
}

var _ health.Checker = (*Cache)(nil)
