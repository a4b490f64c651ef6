package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/rueidis"
	"go.uber.org/goleak"

	"github.com/smartcloudops/smartcloudops/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// rawClient is a plain rueidis client on the shared Redis, for checks that
// must bypass the cache.
func rawClient(t testing.TB, url string) rueidis.Client {
	t.Helper()
	opt, err := rueidis.ParseURL(url)
	if err != nil {
		t.Fatalf("parse REDIS_URL: %v", err)
	}
	opt.DisableCache = true
	cl, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatalf("redis at REDIS_URL unreachable (start it: see docs/services.md): %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9]+`)

// testPrefix is unique per test and run, so parallel packages and reruns
// never see each other's keys; cleanup removes the keys under it.
func testPrefix(t testing.TB, cl rueidis.Client) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := unsafeChars.ReplaceAllString(t.Name(), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	p := "sco-test:cache:" + name + ":" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() { deletePrefix(t, cl, p) })
	return p
}

func deletePrefix(t testing.TB, cl rueidis.Client, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var cursor uint64
	for {
		e, err := cl.Do(ctx, cl.B().Scan().Cursor(cursor).Match(globEscape(prefix)+"*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			t.Logf("cleanup scan: %v", err)
			return
		}
		if len(e.Elements) > 0 {
			cl.Do(ctx, cl.B().Unlink().Key(e.Elements...).Build())
		}
		if cursor = e.Cursor; cursor == 0 {
			return
		}
	}
}

// newRedisCache builds a Cache on the shared Redis with a fresh registry.
func newRedisCache(t testing.TB, prefix string, mut func(*Options)) (*Cache, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	o := Options{RedisURL: redistest.URL(), KeyPrefix: prefix, Registerer: reg}
	if mut != nil {
		mut(&o)
	}
	c, err := New(context.Background(), o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if c.fallbackActive() {
		t.Fatalf("redis at %s unreachable (start it: see docs/services.md)", "REDIS_URL")
	}
	return c, reg
}

func newMemoryCache(t testing.TB, mut func(*Options)) (*Cache, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	o := Options{Registerer: reg}
	if mut != nil {
		mut(&o)
	}
	c, err := New(context.Background(), o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, reg
}

// requests reads smartcloudops_cache_requests_total{tier,result}.
func requests(t testing.TB, reg *prometheus.Registry, tier, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "smartcloudops_cache_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var gotTier, gotResult string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "tier":
					gotTier = l.GetValue()
				case "result":
					gotResult = l.GetValue()
				}
			}
			if gotTier == tier && gotResult == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no requests_total{tier=%q,result=%q}", tier, result)
	return 0
}

// gauge reads an unlabelled gauge or counter.
func gauge(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// metricsText renders the registry as the exposition format.
func metricsText(t testing.TB, reg *prometheus.Registry) string {
	t.Helper()
	n, err := testutil.GatherAndCount(reg)
	if err != nil || n == 0 {
		t.Fatalf("gather: %d metrics, %v", n, err)
	}
	mfs, _ := reg.Gather()
	var b strings.Builder
	for _, mf := range mfs {
		b.WriteString(mf.String())
	}
	return b.String()
}

// eventually polls cond with a generous deadline: the machine is shared,
// and only the outcome is asserted, never how fast it came.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
