package cache

import (
	"context"
	"testing"
	"time"
)

// BenchmarkTracingOff measures the operations whose cost tracing must not
// change while it is off (no TracerProvider, the service's default). It uses
// nothing but the API that predates tracing, so the same file runs against
// the code before it and the two runs compare directly:
//
//	go test -run '^$' -bench BenchmarkTracingOff -benchmem -count 10 ./internal/cache/
func BenchmarkTracingOff(b *testing.B) {
	ctx := context.Background()
	c, _ := newMemoryCache(b, nil)
	if err := c.Set(ctx, "bench", "small", "a small cached value of about sixty bytes, like a session", time.Hour); err != nil {
		b.Fatal(err)
	}
	if _, err := c.PutRaw(ctx, "bench", "raw", "text/plain", []byte("a small raw value"), time.Hour); err != nil {
		b.Fatal(err)
	}
	b.Run("get_l1_hit", func(b *testing.B) {
		b.ReportAllocs()
		var s string
		for b.Loop() {
			if ok, _ := c.Get(ctx, "bench", "small", &s); !ok {
				b.Fatal("miss")
			}
		}
	})
	b.Run("getraw_l1_hit", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok, _ := c.GetRaw(ctx, "bench", "raw"); !ok {
				b.Fatal("miss")
			}
		}
	})
	b.Run("getorload_l1_hit", func(b *testing.B) {
		b.ReportAllocs()
		var s string
		load := func(context.Context) (any, error) { return "loaded", nil }
		for b.Loop() {
			if err := c.GetOrLoad(ctx, "bench", "small", &s, time.Hour, load); err != nil {
				b.Fatal(err)
			}
		}
	})
}
