package cache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartcloudops/smartcloudops/internal/health"
	"github.com/smartcloudops/smartcloudops/internal/redistest"
)

// Every kind through Redis: a second instance with a cold in-process tier
// reads what the first wrote, so the value really crossed the wire.
func TestRedisRoundTripEveryKind(t *testing.T) {
	ctx := context.Background()
	cl := rawClient(t, redistest.URL())
	for _, codec := range []Codec{CodecJSON, CodecCBOR} {
		for _, comp := range []Compression{CompressionNone, CompressionS2, CompressionZstd} {
			prefix := testPrefix(t, cl)
			mut := func(o *Options) { o.Codec, o.Compression, o.CompressionThreshold = codec, comp, 64 }
			w, wreg := newRedisCache(t, prefix, mut)
			r, _ := newRedisCache(t, prefix, mut)
			for _, k := range valueKinds() {
				name := string(codec) + "/" + string(comp) + "/" + k.name
				if err := w.Set(ctx, "kinds", k.name, k.v, time.Minute); err != nil {
					t.Fatalf("%s: Set: %v", name, err)
				}
				dst := k.dst()
				ok, err := r.Get(ctx, "kinds", k.name, dst)
				if err != nil || !ok {
					t.Fatalf("%s: Get = %v %v", name, ok, err)
				}
				if got := reflect.ValueOf(dst).Elem().Interface(); !equalValues(k.v, got) {
					t.Errorf("%s: round trip = %#v, want %#v", name, got, k.v)
				}
			}
			st := w.Stats(ctx)
			if comp != CompressionNone && (st.Compress.Compressed == 0 || st.Compress.Ratio >= 1) {
				t.Errorf("%s/%s: compression stats %+v", codec, comp, st.Compress)
			}
			if gauge(t, wreg, "smartcloudops_cache_compression_input_bytes_total") == 0 {
				t.Errorf("compression input bytes metric did not move")
			}
			if rs := r.Stats(ctx); rs.L2.Hits != uint64(len(valueKinds())) || rs.L2.Entries == 0 {
				t.Errorf("%s/%s: reader L2 stats %+v", codec, comp, rs.L2)
			}
		}
	}
}

func TestRedisTiersAndRawAPI(t *testing.T) {
	ctx := context.Background()
	cl := rawClient(t, redistest.URL())
	prefix := testPrefix(t, cl)
	a, reg := newRedisCache(t, prefix, nil)
	b, _ := newRedisCache(t, prefix, nil)
	tier, err := a.PutRaw(ctx, "t1", "doc", "application/xml", []byte("<a/>"), time.Minute)
	if err != nil || tier != TierL2 {
		t.Fatalf("PutRaw = %v %v", tier, err)
	}
	e, ok, err := b.GetRaw(ctx, "t1", "doc")
	if err != nil || !ok || e.Tier != TierL2 || e.ContentType != "application/xml" || string(e.Body) != "<a/>" {
		t.Fatalf("first read: %+v %v %v, want tier L2", e, ok, err)
	}
	// The write's invalidation may still be on its way to b and cancel the
	// first fill; after it, reads stay in process.
	eventually(t, "b to serve from L1", func() bool {
		e, ok, err := b.GetRaw(ctx, "t1", "doc")
		return err == nil && ok && e.Tier == TierL1 && string(e.Body) == "<a/>"
	})
	if e, ok, _ := a.GetRaw(ctx, "t1", "doc"); !ok || e.Tier != TierL1 {
		t.Fatalf("writer's own read = %+v, want L1", e)
	}
	if e, ok, _ := b.GetRaw(ctx, "t1", "missing"); ok || e.Tier != TierL2 {
		t.Fatalf("miss = %+v %v", e, ok)
	}
	if ok, _ := b.Exists(ctx, "t1", "doc"); !ok {
		t.Fatal("Exists = false")
	}
	if ttl, ok, _ := b.TTL(ctx, "t1", "doc"); !ok || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("TTL = %v %v", ttl, ok)
	}
	if _, ok, _ := b.TTL(ctx, "t1", "missing"); ok {
		t.Fatal("TTL of a missing key found it")
	}
	if existed, err := a.Delete(ctx, "t1", "doc"); err != nil || !existed {
		t.Fatalf("Delete = %v %v", existed, err)
	}
	if ok, _ := a.Exists(ctx, "t1", "doc"); ok {
		t.Fatal("deleted key exists")
	}
	if requests(t, reg, "l2", "set") != 1 || requests(t, reg, "l1", "hit") != 1 || requests(t, reg, "l2", "delete") != 1 {
		t.Fatal("request metrics did not move")
	}
	if got := a.Check(ctx); got.Status != health.StatusUp {
		t.Fatalf("Check = %+v", got)
	}
}

func TestRedisTTLExpiry(t *testing.T) {
	ctx := context.Background()
	cl := rawClient(t, redistest.URL())
	prefix := testPrefix(t, cl)
	a, _ := newRedisCache(t, prefix, nil)
	b, _ := newRedisCache(t, prefix, nil)
	if err := a.Set(ctx, "ns", "k", "v", 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	var s string
	if ok, _ := b.Get(ctx, "ns", "k", &s); !ok { // now also in b's in-process tier
		t.Fatal("fresh value missing")
	}
	time.Sleep(400 * time.Millisecond)
	for name, c := range map[string]*Cache{"writer": a, "reader": b} {
		eventually(t, name+" to see the expiry", func() bool {
			ok, err := c.Get(ctx, "ns", "k", &s)
			return err == nil && !ok
		})
	}
	if n, _ := cl.Do(ctx, cl.B().Exists().Key(a.redisKey("ns", "k")).Build()).AsInt64(); n != 0 {
		t.Fatal("Redis kept the key past its TTL")
	}
}

func TestNamespaceIsolationAndClear(t *testing.T) {
	ctx := context.Background()
	cl := rawClient(t, redistest.URL())
	prefix := testPrefix(t, cl)
	c, _ := newRedisCache(t, prefix, nil)
	other, _ := newRedisCache(t, prefix, nil)
	// Names chosen to collide under naive "ns:key" joining or globbing.
	namespaces := []string{"a", "a*", "a:b", "ab", "a[1]", `a\`, "b"}
	for _, ns := range namespaces {
		for i := range 30 {
			if err := c.Set(ctx, ns, "k:"+string(rune('0'+i%10))+strings.Repeat("x", i/10), ns, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := c.Set(ctx, "a", "b:k:0", "a", 0); err != nil { // "a"+"b:k:0" vs "a:b"+"k:0"
		t.Fatal(err)
	}
	var s string
	if ok, _ := c.Get(ctx, "a:b", "k:0", &s); !ok || s != "a:b" {
		t.Fatalf("namespace a:b read %q", s)
	}
	if ok, _ := other.Get(ctx, "a", "k:0", &s); !ok { // warm the other replica
		t.Fatal("other replica missed")
	}
	n, err := c.ClearNamespace(ctx, "a")
	if err != nil || n != 31 {
		t.Fatalf("ClearNamespace(a) = %d %v, want 31", n, err)
	}
	if ok, _ := c.Get(ctx, "a", "k:0", &s); ok {
		t.Fatal("cleared key still readable")
	}
	eventually(t, "the other replica to drop the cleared key", func() bool {
		ok, _ := other.Get(ctx, "a", "k:0", &s)
		return !ok
	})
	for _, ns := range namespaces[1:] {
		if ok, _ := c.Get(ctx, ns, "k:0", &s); !ok || s != ns {
			t.Errorf("namespace %q lost its keys to clearing a (got %q %v)", ns, s, ok)
		}
	}
	if n, _ := c.ClearNamespace(ctx, "a*"); n != 30 {
		t.Fatalf("ClearNamespace(a*) = %d, want 30", n)
	}
	if ok, _ := c.Get(ctx, "ab", "k:0", &s); !ok {
		t.Fatal(`clearing "a*" globbed into "ab"`)
	}
}

func TestGetOrLoadSingleflight(t *testing.T) {
	ctx := context.Background()
	cl := rawClient(t, redistest.URL())
	c, reg := newRedisCache(t, testPrefix(t, cl), nil)
	var loads atomic.Int32
	release := make(chan struct{})
	load := func(ctx context.Context) (any, error) {
		loads.Add(1)
		<-release
		return map[string]int{"answer": 42}, nil
	}
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	var started sync.WaitGroup
	started.Add(n)
	for range n {
		wg.Go(func() {
			started.Done()
			var got map[string]int
			if err := c.GetOrLoad(ctx, "ns", "k", &got, time.Minute, load); err != nil {
				errs <- err
			} else if got["answer"] != 42 {
				errs <- errors.New("wrong value")
			}
		})
	}
	started.Wait()
	time.Sleep(100 * time.Millisecond) // let the callers pile up on the load
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := loads.Load(); got != 1 {
		t.Fatalf("%d loads for %d concurrent misses, want 1", got, n)
	}
	var got map[string]int
	if err := c.GetOrLoad(ctx, "ns", "k", &got, time.Minute, func(context.Context) (any, error) {
		return nil, errors.New("must not be called")
	}); err != nil || got["answer"] != 42 {
		t.Fatalf("cached GetOrLoad = %v %v", got, err)
	}
	// A failing loader's error reaches the caller and nothing is cached.
	boom := errors.New("boom")
	if err := c.GetOrLoad(ctx, "ns", "fails", &got, 0, func(context.Context) (any, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("loader error = %v", err)
	}
	if st := c.Stats(ctx); st.Loads != 2 || st.LoadErrors != 1 {
		t.Fatalf("loads = %d/%d errors", st.Loads, st.LoadErrors)
	}
	_ = reg
}

func TestGetOrLoadCallerDeadline(t *testing.T) {
	cl := rawClient(t, redistest.URL())
	c, _ := newRedisCache(t, testPrefix(t, cl), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	release := make(chan struct{})
	defer close(release)
	var n int
	err := c.GetOrLoad(ctx, "ns", "slow", &n, 0, func(lctx context.Context) (any, error) {
		select {
		case <-release:
		case <-lctx.Done():
		}
		return 1, nil
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GetOrLoad past the caller's deadline = %v", err)
	}
}

func TestCrossReplicaInvalidation(t *testing.T) {
	ctx := context.Background()
	cl := rawClient(t, redistest.URL())
	prefix := testPrefix(t, cl)
	a, _ := newRedisCache(t, prefix, nil)
	b, _ := newRedisCache(t, prefix, nil)
	if err := a.Set(ctx, "ns", "k", "v1", time.Minute); err != nil {
		t.Fatal(err)
	}
	var s string
	if ok, _ := b.Get(ctx, "ns", "k", &s); !ok || s != "v1" {
		t.Fatalf("b read %q", s)
	}
	eventually(t, "b to hold v1 in process", func() bool {
		e, ok, _ := b.GetRaw(ctx, "ns", "k")
		return ok && e.Tier == TierL1 && string(e.Body) == `"v1"`
	})
	if err := a.Set(ctx, "ns", "k", "v2", time.Minute); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b to see v2", func() bool {
		ok, _ := b.Get(ctx, "ns", "k", &s)
		return ok && s == "v2"
	})
	if _, err := a.Delete(ctx, "ns", "k"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b to see the delete", func() bool {
		ok, _ := b.Get(ctx, "ns", "k", &s)
		return !ok
	})
	// A write by something other than a cache replica invalidates too.
	if err := a.Set(ctx, "ns", "ext", "mine", time.Minute); err != nil {
		t.Fatal(err)
	}
	cl.Do(ctx, cl.B().Unlink().Key(a.redisKey("ns", "ext")).Build())
	eventually(t, "a to drop a key deleted behind its back", func() bool {
		ok, _ := a.Get(ctx, "ns", "ext", &s)
		return !ok
	})
}

func TestForeignValueIsACountedMiss(t *testing.T) {
	ctx := context.Background()
	cl := rawClient(t, redistest.URL())
	c, reg := newRedisCache(t, testPrefix(t, cl), nil)
	cl.Do(ctx, cl.B().Set().Key(c.redisKey("ns", "garbage")).Value("written by redis-cli").Build())
	cl.Do(ctx, cl.B().Lpush().Key(c.redisKey("ns", "list")).Element("x").Build())
	var s string
	for _, key := range []string{"garbage", "list"} {
		if ok, err := c.Get(ctx, "ns", key, &s); ok || err != nil {
			t.Fatalf("%s: Get = %v %v, want a miss", key, ok, err)
		}
	}
	// A value of the wrong shape for the caller is a miss too.
	if err := c.Set(ctx, "ns", "str", "text", 0); err != nil {
		t.Fatal(err)
	}
	var n int
	if ok, err := c.Get(ctx, "ns", "str", &n); ok || err != nil {
		t.Fatalf("mismatched type: %v %v", ok, err)
	}
	if st := c.Stats(ctx); st.DecodeErrors != 3 || st.L2.Errors != 2 {
		t.Fatalf("decode errors %d, L2 errors %d", st.DecodeErrors, st.L2.Errors)
	}
	if requests(t, reg, "l2", "error") != 2 || gauge(t, reg, "smartcloudops_cache_decode_errors_total") != 3 {
		t.Fatal("error metrics did not move")
	}
}

// No secret in stats, health, metrics or logs, even when the password is
// what makes Redis unreachable.
func TestNoSecretLeaks(t *testing.T) {
	ctx := context.Background()
	const secret = "s3cr3t-Pa55w0rd"
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	url := strings.Replace(redistest.URL(), "redis://", "redis://default:"+secret+"@", 1)
	c, err := New(ctx, Options{RedisURL: url, Registerer: reg, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		HealthCheckInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Set(ctx, "ns", "k", 1, 0); err != nil {
		t.Fatalf("Set with Redis refusing the password: %v", err)
	}
	time.Sleep(100 * time.Millisecond) // a few background reconnect attempts
	st, _ := json.Marshal(c.Stats(ctx))
	hc, _ := json.Marshal(c.Check(ctx))
	for what, text := range map[string]string{"stats": string(st), "health": string(hc),
		"metrics": metricsText(t, reg), "logs": logs.String()} {
		if strings.Contains(text, secret) {
			t.Errorf("%s leak the password: %s", what, text)
		}
	}
}
