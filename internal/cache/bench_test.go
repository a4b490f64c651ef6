package cache

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/smartcloudops/smartcloudops/internal/redistest"
)

// BenchmarkCache runs each cache operation beside the raw client doing the
// same Redis work, in one run, so the ratios show what this layer costs:
//
//	go test -run '^$' -bench BenchmarkCache -count 5 ./internal/cache/
func BenchmarkCache(b *testing.B) {
	ctx := context.Background()
	cl := rawClient(b, redistest.URL())
	prefix := testPrefix(b, cl)
	c, _ := newRedisCache(b, prefix, nil)
	small := "a small cached value of about sixty bytes, like a session"
	big := strings.Repeat(`{"metric":"cpu","host":"web-17","value":0.73},`, 100) // ~4.6 KiB, compressible
	if err := c.Set(ctx, "bench", "small", small, time.Hour); err != nil {
		b.Fatal(err)
	}
	fk := c.redisKey("bench", "small")
	wire, err := cl.Do(ctx, cl.B().Get().Key(fk).Build()).AsBytes()
	if err != nil {
		b.Fatal(err)
	}
	rawKey := prefix + "raw"
	cl.Do(ctx, cl.B().Set().Key(rawKey).Value(rueidis.BinaryString(wire)).Build())

	b.Run("raw_get", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cl.Do(ctx, cl.B().Get().Key(rawKey).Build()).AsBytes(); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The same GET on the cache's own connection, which runs rueidis in
	// tracking mode (a background reader for invalidations): this isolates
	// the cost of our layer from the cost of coherence.
	own := c.client.Load().c
	b.Run("raw_get_tracking_conn", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := own.Do(ctx, own.B().Get().Key(rawKey).Build()).AsBytes(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("l1_hit", func(b *testing.B) {
		b.ReportAllocs()
		var s string
		for b.Loop() {
			if ok, _ := c.Get(ctx, "bench", "small", &s); !ok {
				b.Fatal("miss")
			}
		}
	})
	cb, _ := newRedisCache(b, prefix, func(o *Options) { o.Codec = CodecCBOR })
	if err := cb.Set(ctx, "bench", "small-cbor", small, time.Hour); err != nil {
		b.Fatal(err)
	}
	b.Run("l1_hit_cbor", func(b *testing.B) {
		b.ReportAllocs()
		var s string
		for b.Loop() {
			if ok, _ := cb.Get(ctx, "bench", "small-cbor", &s); !ok {
				b.Fatal("miss")
			}
		}
	})
	b.Run("l1_hit_raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if e, ok, _ := c.GetRaw(ctx, "bench", "small"); !ok || e.Tier != TierL1 {
				b.Fatal("not an L1 hit")
			}
		}
	})
	b.Run("l2_hit", func(b *testing.B) {
		b.ReportAllocs()
		var s string
		for b.Loop() {
			c.local.c.Invalidate(fk) // keep it an L2 read
			if ok, _ := c.Get(ctx, "bench", "small", &s); !ok {
				b.Fatal("miss")
			}
		}
	})
	b.Run("l2_hit_raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.local.c.Invalidate(fk)
			if e, ok, _ := c.GetRaw(ctx, "bench", "small"); !ok || e.Tier != TierL2 {
				b.Fatal("not an L2 hit")
			}
		}
	})
	var seq atomic.Int64
	b.Run("raw_get_miss_set", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			k := prefix + "rawmiss:" + strconv.FormatInt(seq.Add(1), 10)
			if err := cl.Do(ctx, cl.B().Get().Key(k).Build()).Error(); !rueidis.IsRedisNil(err) {
				b.Fatal(err)
			}
			if err := cl.Do(ctx, cl.B().Set().Key(k).Value(small).Px(time.Minute).Build()).Error(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("miss_load", func(b *testing.B) {
		b.ReportAllocs()
		load := func(context.Context) (any, error) { return small, nil }
		var s string
		for b.Loop() {
			k := "miss:" + strconv.FormatInt(seq.Add(1), 10)
			if err := c.GetOrLoad(ctx, "bench", k, &s, time.Minute, load); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw_set_small", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := cl.Do(ctx, cl.B().Set().Key(rawKey).Value(small).Px(time.Hour).Build()).Error(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("set_small", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := c.Set(ctx, "bench", "set-small", small, time.Hour); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw_set_big", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := cl.Do(ctx, cl.B().Set().Key(rawKey+"big").Value(big).Px(time.Hour).Build()).Error(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("set_big_compressed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := c.Set(ctx, "bench", "set-big", big, time.Hour); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The cache keeps one pipelined connection (see clientOption), where
	// the raw client's default is four; _tracking_conn is the same
	// parallel GET on the cache's own connection.
	for _, raw := range []struct {
		name   string
		client rueidis.Client
	}{{"raw_get_parallel", cl}, {"raw_get_parallel_tracking_conn", own}} {
		b.Run(raw.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := raw.client.Do(ctx, raw.client.B().Get().Key(rawKey).Build()).AsBytes(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
	b.Run("l1_hit_parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			var s string
			for pb.Next() {
				if ok, _ := c.Get(ctx, "bench", "small", &s); !ok {
					b.Error("miss")
					return
				}
			}
		})
	})
	// A working set far larger than the in-process tier (1 MiB here, some
	// 3,500 entries, against 50,000 keys, each goroutine cycling through
	// its own share): reads go to Redis and fill the tier, evicting older
	// entries, as they would in production, with no invalidation per read.
	// l2-share reports the fraction of reads that did go to Redis.
	sc, _ := newRedisCache(b, prefix, func(o *Options) { o.LocalMaxBytes = 1 << 20 })
	keys := l2Keys(b, sc, cl, wire)
	b.Run("l2_hit_parallel", func(b *testing.B) {
		var l2, n atomic.Int64
		var g atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			share := keys[(g.Add(1)*3125)%int64(len(keys)):]
			share = share[:min(3125, len(share))]
			var hits, reads int64
			for i := 0; pb.Next(); i++ {
				e, ok, _ := sc.GetRaw(ctx, "bench", share[i%len(share)])
				if !ok {
					b.Error("miss")
					return
				}
				reads++
				if e.Tier == TierL2 {
					hits++
				}
			}
			l2.Add(hits)
			n.Add(reads)
		})
		b.ReportMetric(float64(l2.Load())/float64(n.Load()), "l2-share")
	})
	// This one alternates our L2 hit with two raw GETs of the same bytes in
	// each iteration and reports the ratios of their summed times, which
	// load drifting during a run on a shared machine cannot skew as it can
	// separate benchmarks. "ratio" compares with the GET on the cache's own
	// connection, so it is the cost of this layer; "ratio-plain" compares
	// with a client without tracking, which also counts the cost of
	// coherence: tracking keeps a reader goroutine on the connection, so
	// each reply takes a goroutine hand-off that a plain client's
	// synchronous round trip does not, and that hand-off's price varies with
	// how busy the host is. (Run in parallel, the trick would mislead: each
	// call's latency would include the others' CPU time.)
	b.Run("l2_vs_raw_interleaved", func(b *testing.B) {
		var ours, conn, plain time.Duration
		var s string
		for b.Loop() {
			c.local.c.Invalidate(fk)
			t0 := time.Now()
			if ok, _ := c.Get(ctx, "bench", "small", &s); !ok {
				b.Fatal("miss")
			}
			t1 := time.Now()
			if _, err := own.Do(ctx, own.B().Get().Key(rawKey).Build()).AsBytes(); err != nil {
				b.Fatal(err)
			}
			t2 := time.Now()
			if _, err := cl.Do(ctx, cl.B().Get().Key(rawKey).Build()).AsBytes(); err != nil {
				b.Fatal(err)
			}
			plain += time.Since(t2)
			conn += t2.Sub(t1)
			ours += t1.Sub(t0)
		}
		reportRatio(b, ours, conn)
		b.ReportMetric(float64(plain.Nanoseconds())/float64(b.N), "plain-ns/op")
		b.ReportMetric(float64(ours)/float64(plain), "ratio-plain")
	})
}

// l2Keys writes 50k entries straight to Redis (the wire bytes of a cached
// value) under names no read has seen, so none is in the in-process tier.
func l2Keys(b *testing.B, c *Cache, cl rueidis.Client, wire []byte) []string {
	b.Helper()
	ctx := context.Background()
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	keys := make([]string, 50_000)
	cmds := make(rueidis.Commands, 0, len(keys))
	for i := range keys {
		keys[i] = "l2-" + run + "-" + strconv.Itoa(i)
		cmds = append(cmds, cl.B().Set().Key(c.redisKey("bench", keys[i])).Value(rueidis.BinaryString(wire)).Px(time.Hour).Build())
	}
	for _, r := range cl.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			b.Fatal(err)
		}
	}
	return keys
}

func reportRatio(b *testing.B, ours, raw time.Duration) {
	n := float64(b.N)
	b.ReportMetric(float64(ours.Nanoseconds())/n, "ours-ns/op")
	b.ReportMetric(float64(raw.Nanoseconds())/n, "raw-ns/op")
	b.ReportMetric(float64(ours)/float64(raw), "ratio")
}

// BenchmarkClientChoice compares go-redis v9 with rueidis on the same GET,
// serial and parallel, as evidence for the client choice.
func BenchmarkClientChoice(b *testing.B) {
	ctx := context.Background()
	cl := rawClient(b, redistest.URL())
	key := testPrefix(b, cl) + "k"
	cl.Do(ctx, cl.B().Set().Key(key).Value(strings.Repeat("v", 64)).Build())
	opt, err := redis.ParseURL(redistest.URL())
	if err != nil {
		b.Fatal(err)
	}
	opt.PoolSize = DefaultPoolSize
	gr := redis.NewClient(opt)
	defer gr.Close()
	b.Run("rueidis_get", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cl.Do(ctx, cl.B().Get().Key(key).Build()).AsBytes(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("goredis_get", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := gr.Get(ctx, key).Bytes(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("rueidis_get_parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := cl.Do(ctx, cl.B().Get().Key(key).Build()).AsBytes(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("goredis_get_parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := gr.Get(ctx, key).Bytes(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
