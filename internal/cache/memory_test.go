package cache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/health"
)

// fakeClock is a settable clock for TTL tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func TestNewRejectsBadOptions(t *testing.T) {
	ctx := context.Background()
	cases := map[string]Options{
		"negative read timeout": {ReadTimeout: -time.Second},
		"negative default ttl":  {DefaultTTL: -1},
		"tiny local tier":       {LocalMaxBytes: 1024},
		"unknown codec":         {Codec: "xml"},
		"unknown compression":   {Compression: "lz4"},
		"bad scheme":            {RedisURL: "http://user:hunter2-secret@127.0.0.1:6379"},
		"malformed url":         {RedisURL: "redis://user:hunter2-secret@127.0.0.1:port:x"},
		"bad db":                {RedisURL: "redis://user:hunter2-secret@127.0.0.1:6379/db"},
		"control char prefix":   {KeyPrefix: "a\nb"},
	}
	for name, o := range cases {
		c, err := New(ctx, o)
		if err == nil {
			c.Close()
			t.Errorf("%s: New succeeded", name)
			continue
		}
		if strings.Contains(err.Error(), "hunter2-secret") {
			t.Errorf("%s: error leaks the password: %v", name, err)
		}
	}
}

func TestMemoryOnlyMode(t *testing.T) {
	ctx := context.Background()
	c, reg := newMemoryCache(t, nil)
	if got := c.Check(ctx); got.Status != health.StatusUp || got.Details["mode"] != "memory" || got.Details["reason"] == nil {
		t.Fatalf("Check = %+v, want UP in mode memory with a reason", got)
	}
	if err := c.Set(ctx, "tenant", "k", map[string]int{"a": 1}, 0); err != nil {
		t.Fatal(err)
	}
	var got map[string]int
	if ok, err := c.Get(ctx, "tenant", "k", &got); err != nil || !ok || got["a"] != 1 {
		t.Fatalf("Get = %v %v %v", got, ok, err)
	}
	if ok, _ := c.Exists(ctx, "tenant", "k"); !ok {
		t.Fatal("Exists = false")
	}
	if ttl, ok, _ := c.TTL(ctx, "tenant", "k"); !ok || ttl <= 0 || ttl > DefaultTTL {
		t.Fatalf("TTL = %v %v, want (0, 300s]", ttl, ok)
	}
	tier, err := c.PutRaw(ctx, "tenant", "page", "text/html", []byte("<b>x</b>"), time.Minute)
	if err != nil || tier != TierL1 {
		t.Fatalf("PutRaw = %v %v", tier, err)
	}
	e, ok, err := c.GetRaw(ctx, "tenant", "page")
	if err != nil || !ok || e.Tier != TierL1 || e.ContentType != "text/html" || string(e.Body) != "<b>x</b>" {
		t.Fatalf("GetRaw = %+v %v %v", e, ok, err)
	}
	if e, ok, _ := c.GetRaw(ctx, "tenant", "k"); !ok || e.ContentType != "application/json" || string(e.Body) != `{"a":1}` {
		t.Fatalf("GetRaw of a Go value = %+v %v", e, ok)
	}
	if n, err := c.ClearNamespace(ctx, "tenant"); err != nil || n != 2 {
		t.Fatalf("ClearNamespace = %d %v, want 2", n, err)
	}
	if ok, _ := c.Get(ctx, "tenant", "k", &got); ok {
		t.Fatal("value survived ClearNamespace")
	}
	if existed, _ := c.Delete(ctx, "tenant", "k"); existed {
		t.Fatal("Delete of a cleared key reported it existed")
	}
	st := c.Stats(ctx)
	if st.Mode != "memory" || st.L1.Hits != 3 || st.L1.Sets != 2 || st.L1.Misses != 1 || st.Breaker.State != "none" {
		t.Fatalf("Stats = %+v", st)
	}
	if st.L1.HitRate != 0.75 {
		t.Fatalf("HitRate = %v, want 0.75", st.L1.HitRate)
	}
	if requests(t, reg, "l1", "hit") != 3 || gauge(t, reg, "smartcloudops_cache_fallback_active") != 0 {
		t.Fatal("metrics did not follow")
	}
}

func TestMemoryTTLWithInjectedClock(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	c, _ := newMemoryCache(t, func(o *Options) { o.Now = clk.Now; o.LocalTTL = time.Hour })
	if err := c.Set(ctx, "ns", "short", "v", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "ns", "default", "v", 0); err != nil {
		t.Fatal(err)
	}
	if ttl, ok, _ := c.TTL(ctx, "ns", "short"); !ok || ttl != 10*time.Second {
		t.Fatalf("TTL = %v %v, want 10s", ttl, ok)
	}
	clk.Advance(11 * time.Second)
	var s string
	if ok, _ := c.Get(ctx, "ns", "short", &s); ok {
		t.Fatal("value outlived its TTL")
	}
	if ok, _ := c.Get(ctx, "ns", "default", &s); !ok {
		t.Fatal("value with the default TTL expired after 11s")
	}
	clk.Advance(DefaultTTL)
	if ok, _ := c.Get(ctx, "ns", "default", &s); ok {
		t.Fatal("value outlived the default TTL")
	}
}

func TestInputValidation(t *testing.T) {
	ctx := context.Background()
	c, _ := newMemoryCache(t, func(o *Options) { o.MaxValueBytes = 64 })
	long := strings.Repeat("k", MaxKeyBytes+1)
	cases := []struct {
		name string
		err  error
		call func() error
	}{
		{"empty namespace", ErrInvalidNamespace, func() error { return c.Set(ctx, "", "k", 1, 0) }},
		{"long namespace", ErrInvalidNamespace, func() error { _, err := c.Delete(ctx, long, "k"); return err }},
		{"control in namespace", ErrInvalidNamespace, func() error { _, err := c.ClearNamespace(ctx, "a\x00b"); return err }},
		{"empty key", ErrInvalidKey, func() error { _, err := c.Get(ctx, "ns", "", new(int)); return err }},
		{"long key", ErrInvalidKey, func() error { _, _, err := c.GetRaw(ctx, "ns", long); return err }},
		{"control in key", ErrInvalidKey, func() error { _, err := c.Exists(ctx, "ns", "a\tb"); return err }},
		{"DEL in key", ErrInvalidKey, func() error { _, _, err := c.TTL(ctx, "ns", "a\x7f"); return err }},
		{"invalid utf-8", ErrInvalidKey, func() error { return c.Set(ctx, "ns", "\xff", 1, 0) }},
		{"negative ttl", ErrInvalidTTL, func() error { return c.Set(ctx, "ns", "k", 1, -time.Second) }},
		{"negative ttl raw", ErrInvalidTTL, func() error { _, err := c.PutRaw(ctx, "ns", "k", "", nil, -1); return err }},
		{"huge ttl", ErrInvalidTTL, func() error { return c.Set(ctx, "ns", "k", 1, MaxTTL+1) }},
		{"too large", ErrValueTooLarge, func() error { return c.Set(ctx, "ns", "k", strings.Repeat("x", 64), 0) }},
		{"too large raw", ErrValueTooLarge, func() error {
			_, err := c.PutRaw(ctx, "ns", "k", "", bytes.Repeat([]byte("x"), 65), 0)
			return err
		}},
		{"bad content type", ErrInvalidContentType, func() error { _, err := c.PutRaw(ctx, "ns", "k", "a\nb", nil, 0); return err }},
		{"loader ttl", ErrInvalidTTL, func() error {
			return c.GetOrLoad(ctx, "ns", "k", new(int), -1, func(context.Context) (any, error) { return 1, nil })
		}},
	}
	for _, tc := range cases {
		if err := tc.call(); !errors.Is(err, tc.err) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.err)
		}
	}
	if err := ValidateKey(strings.Repeat("é", MaxKeyBytes/2)); err != nil {
		t.Errorf("512-byte key rejected: %v", err)
	}
	if err := ValidateValueSize(64, c.MaxValueBytes()); err != nil {
		t.Errorf("value at the limit rejected: %v", err)
	}
}

func TestCanceledContextAndClose(t *testing.T) {
	c, _ := newMemoryCache(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Get(ctx, "ns", "k", new(int)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with canceled ctx = %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if err := c.Set(context.Background(), "ns", "k", 1, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Set after Close = %v, want ErrClosed", err)
	}
	if got := c.Check(context.Background()); got.Status != health.StatusDown {
		t.Fatalf("Check after Close = %v", got.Status)
	}
}

func TestLocalTierIsBoundedByBytes(t *testing.T) {
	ctx := context.Background()
	c, reg := newMemoryCache(t, func(o *Options) { o.LocalMaxBytes = 1 << 20 })
	val := bytes.Repeat([]byte("v"), 16<<10)
	for i := range 256 { // 4 MiB into a 1 MiB tier
		if _, err := c.PutRaw(ctx, "ns", "k"+string(rune('a'+i%26))+strings.Repeat("x", i/26), "", val, 0); err != nil {
			t.Fatal(err)
		}
	}
	c.local.c.CleanUp()
	st := c.Stats(ctx)
	if st.L1.Bytes > 1<<20 || st.L1.Evictions == 0 {
		t.Fatalf("L1 = %d bytes, %d evictions; want <= 1 MiB and some evictions", st.L1.Bytes, st.L1.Evictions)
	}
	if gauge(t, reg, "smartcloudops_cache_local_evictions_total") == 0 {
		t.Fatal("evictions metric did not move")
	}
}

func TestStatsJSONShape(t *testing.T) {
	c, _ := newMemoryCache(t, nil)
	b, err := json.Marshal(c.Stats(context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"l1"`, `"l2"`, `"fallback"`, `"hit_rate"`, `"evictions"`, `"breaker"`,
		`"fallback_seconds"`, `"compression"`, `"ratio"`, `"latency"`, `"p99_seconds"`} {
		if !bytes.Contains(b, []byte(field)) {
			t.Errorf("stats JSON lacks %s: %s", field, b)
		}
	}
}
