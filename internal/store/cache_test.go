package store_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartcloudops/smartcloudops/internal/domain"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

// cacheLookups reads smartcloudops_db_query_cache_requests_total{result=…}.
func cacheLookups(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "smartcloudops_db_query_cache_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestQueryCacheSharedAcrossReplicas runs two Stores on one database and one
// Redis, as two replicas would be: a write through A makes B's next cached
// read miss and see it, and a write to another table does not.
func TestQueryCacheSharedAcrossReplicas(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		rc := newRedisCache(t)
		a := openWith(t, url, func(o *store.Options) { o.Cache = rc })
		b := openWith(t, url, func(o *store.Options) { o.Cache = rc.sharing() })
		ctx := context.Background()
		ts := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
		addModel := func(s *store.Store, v string) {
			t.Helper()
			if _, err := s.Exec(ctx, "INSERT INTO models (version, kind, trained_at) VALUES (?, ?, ?)", v, "iforest", ts); err != nil {
				t.Fatal(err)
			}
		}
		q := "SELECT version FROM models WHERE kind = ? ORDER BY version"
		read := func(f *fixture) int {
			t.Helper()
			res, err := f.s.QueryCached(ctx, []string{"models"}, q, "iforest")
			if err != nil {
				t.Fatal(err)
			}
			return len(res.Rows)
		}
		addModel(a.s, "v1")
		if n := read(b); n != 1 {
			t.Fatalf("B's first read: %d rows", n)
		}
		if n := read(b); n != 1 || cacheLookups(t, b.reg, "hit") != 1 {
			t.Fatalf("B's second read: %d rows, %v hits; want a hit", n, cacheLookups(t, b.reg, "hit"))
		}
		// A shares B's entry: same database, same statement.
		if n := read(a); n != 1 || cacheLookups(t, a.reg, "hit") != 1 {
			t.Fatalf("A's read: %d rows, %v hits; want B's entry", n, cacheLookups(t, a.reg, "hit"))
		}
		// A write to another table through A leaves B's entry valid.
		if _, err := a.s.InsertMetrics(ctx, []domain.MetricSample{{Host: "h", Timestamp: ts}}); err != nil {
			t.Fatal(err)
		}
		read(b)
		if hits := cacheLookups(t, b.reg, "hit"); hits != 2 {
			t.Fatalf("B's hits after A wrote another table = %v; want 2", hits)
		}
		// Each way of writing through A invalidates B.
		writes := map[string]func(){
			"exec":       func() { addModel(a.s, "v2") },
			"invalidate": func() { a.s.Invalidate("models") },
			"transaction": func() {
				if err := a.s.InTx(ctx, func(tx *store.Tx) error {
					_, err := tx.Exec(ctx, "UPDATE models SET training_rows = ? WHERE version = ?", 5, "v1")
					return err
				}); err != nil {
					t.Fatal(err)
				}
			},
			"bulk update": func() {
				if _, err := a.s.BulkUpdate(ctx, "models", "version", []string{"training_rows"}, [][]any{{"v1", 7}}); err != nil {
					t.Fatal(err)
				}
			},
		}
		for name, write := range writes {
			read(b) // cached now
			misses := cacheLookups(t, b.reg, "miss")
			write()
			n := read(b)
			if got := cacheLookups(t, b.reg, "miss"); got != misses+1 {
				t.Fatalf("%s through A: B's misses %v → %v; want its next read to miss", name, misses, got)
			}
			if name == "exec" && n != 2 {
				t.Fatalf("B read %d rows after A added one; want 2", n)
			}
		}
	})
}

// flakyCache is a SharedCache whose backend can be made unreachable.
type flakyCache struct {
	*redisCache
	down atomic.Bool
}

var errCacheDown = errors.New("cache unreachable")

func (c *flakyCache) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if c.down.Load() {
		return nil, false, errCacheDown
	}
	return c.redisCache.Get(ctx, key)
}

func (c *flakyCache) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if c.down.Load() {
		return errCacheDown
	}
	return c.redisCache.Set(ctx, key, val, ttl)
}

func (c *flakyCache) GetMulti(ctx context.Context, keys []string) ([][]byte, error) {
	if c.down.Load() {
		return nil, errCacheDown
	}
	return c.redisCache.GetMulti(ctx, keys)
}

// TestQueryCacheSharedOutage cuts replica A off the shared cache: its reads
// and writes still succeed (uncached), and the invalidation its write could
// not send is sent once the cache is back, before A uses it again.
func TestQueryCacheSharedOutage(t *testing.T) {
	url := storetest.SQLiteURL(t)
	rc := newRedisCache(t)
	fc := &flakyCache{redisCache: rc}
	a := openWith(t, url, func(o *store.Options) { o.Cache = fc })
	b := openWith(t, url, func(o *store.Options) { o.Cache = rc.sharing() })
	ctx := context.Background()
	q := "SELECT count(*) FROM models"
	count := func(f *fixture) int64 {
		t.Helper()
		res, err := f.s.QueryCached(ctx, []string{"models"}, q)
		if err != nil {
			t.Fatal(err)
		}
		return res.Rows[0][0].(int64)
	}
	count(b)
	count(b)
	if cacheLookups(t, b.reg, "hit") != 1 {
		t.Fatal("B does not hit before the outage")
	}
	fc.down.Store(true)
	if _, err := a.s.Exec(ctx, "INSERT INTO models (version, kind, trained_at) VALUES (?, ?, ?)", "v1", "iforest", time.Now()); err != nil {
		t.Fatalf("a write fails with the cache down: %v", err)
	}
	if n := count(a); n != 1 {
		t.Fatalf("A reads %d models during the outage; want 1", n)
	}
	if cacheLookups(t, a.reg, "error") == 0 {
		t.Error("the outage is not counted")
	}
	fc.down.Store(false)
	if n := count(a); n != 1 {
		t.Fatalf("A reads %d models after the outage; want 1", n)
	}
	if n := count(b); n != 1 {
		t.Fatalf("B reads %d models once A's invalidation landed; want 1", n)
	}
}

// TestQueryCacheCorruptEntry overwrites cached entries with foreign bytes: the
// next read is a miss counted as corrupt and answered from the database, and
// the entry is replaced so the read after hits again.
func TestQueryCacheCorruptEntry(t *testing.T) {
	for mode, wrap := range cacheModes {
		t.Run(mode, func(t *testing.T) {
			rc := newRedisCache(t)
			f := openWith(t, storetest.SQLiteURL(t), func(o *store.Options) { o.Cache = wrap(rc) })
			ctx := context.Background()
			q := "SELECT count(*) FROM models"
			read := func() {
				t.Helper()
				res, err := f.s.QueryCached(ctx, []string{"models"}, q)
				if err != nil || len(res.Rows) != 1 || res.Rows[0][0] != int64(0) {
					t.Fatalf("read = %+v, %v", res, err)
				}
			}
			read()
			keys, err := rc.c.Keys(ctx, rc.prefix+"*").Result()
			if err != nil {
				t.Fatal(err)
			}
			entries := 0
			for _, k := range keys {
				if strings.Contains(k, ":v:") {
					continue // a table version, not an entry
				}
				// The shared form starts with the version tokens; keep them,
				// so the lookup reaches the decoder.
				prefix := ""
				if mode == "shared" {
					v, _ := rc.c.Get(ctx, k).Bytes()
					prefix = string(v[:8])
				}
				if err := rc.c.Set(ctx, k, prefix+"\xff garbage", 0).Err(); err != nil {
					t.Fatal(err)
				}
				entries++
			}
			if entries != 1 {
				t.Fatalf("%d entries cached; want 1 (keys %v)", entries, keys)
			}
			read()
			if c, h := cacheLookups(t, f.reg, "corrupt"), cacheLookups(t, f.reg, "hit"); c != 1 || h != 0 {
				t.Fatalf("corrupt %v, hits %v; want the garbage counted and not served", c, h)
			}
			if st := statFor(t, f.s, q); st.CacheMisses != 2 {
				t.Fatalf("misses %d; want the corrupt entry counted as a miss", st.CacheMisses)
			}
			read()
			if h := cacheLookups(t, f.reg, "hit"); h != 1 {
				t.Fatalf("hits %v after the entry was replaced; want 1", h)
			}
		})
	}
}

// TestQueryCacheHitEqualsQuery checks a hit returns what the database
// returned: the same Go types and values, column for column.
func TestQueryCacheHitEqualsQuery(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		f := openWith(t, url, func(o *store.Options) { o.Cache = newRedisCache(t) })
		ctx := context.Background()
		if _, err := f.s.InsertMetrics(ctx, makeSamples(30, 3)); err != nil {
			t.Fatal(err)
		}
		q := "SELECT host, ts, cpu_usage, disk_usage, extra, id FROM system_metrics WHERE host = ? ORDER BY ts"
		miss, err := f.s.QueryCached(ctx, []string{"system_metrics"}, q, "web-01")
		if err != nil {
			t.Fatal(err)
		}
		hit, err := f.s.QueryCached(ctx, []string{"system_metrics"}, q, "web-01")
		if err != nil || cacheLookups(t, f.reg, "hit") != 1 {
			t.Fatalf("second read: %v, hits %v", err, cacheLookups(t, f.reg, "hit"))
		}
		if len(hit.Rows) != 10 || !reflect.DeepEqual(hit.Columns, miss.Columns) {
			t.Fatalf("hit %+v", hit)
		}
		for i := range miss.Rows {
			for j := range miss.Rows[i] {
				m, h := miss.Rows[i][j], hit.Rows[i][j]
				if mt, ok := m.(time.Time); ok {
					ht, ok := h.(time.Time)
					if !ok || !ht.Equal(mt) || ht.Location().String() != mt.Location().String() {
						t.Errorf("row %d %s: %#v from the cache, %#v from the database", i, miss.Columns[j], h, m)
					}
					continue
				}
				if !reflect.DeepEqual(m, h) {
					t.Errorf("row %d %s: %#v (%T) from the cache, %#v (%T) from the database", i, miss.Columns[j], h, h, m, m)
				}
			}
		}
	})
}
