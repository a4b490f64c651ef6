package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/smartcloudops/smartcloudops/internal/domain"
	"github.com/smartcloudops/smartcloudops/internal/logtest"
	"github.com/smartcloudops/smartcloudops/internal/redistest"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/fingerprint"
	"github.com/smartcloudops/smartcloudops/internal/store/querycache"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

type fixture struct {
	s   *store.Store
	reg *prometheus.Registry
	log *logtest.Buffer
}

func openWith(t testing.TB, url string, mod func(o *store.Options)) *fixture {
	t.Helper()
	f := &fixture{reg: prometheus.NewRegistry(), log: &logtest.Buffer{}}
	o := store.Options{URL: url, PoolSize: 4, Registerer: f.reg, Logger: slog.New(slog.NewJSONHandler(f.log, nil))}
	if mod != nil {
		mod(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(ctx, nil); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	f.s = s
	return f
}

func statFor(t *testing.T, s *store.Store, q string) store.QueryStat {
	t.Helper()
	queries, _, _ := s.Diagnostics().Statements(store.SortTotalTime, 1000)
	id := fingerprint.Normalize(q).ID
	for _, qs := range queries {
		if qs.QueryID == id {
			return qs
		}
	}
	t.Fatalf("no statistics for %q", q)
	return store.QueryStat{}
}

func TestStatisticsArithmetic(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		// An injected clock makes every statement take exactly the next step.
		var (
			mu    sync.Mutex
			clock = time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
			steps []time.Duration
			calls int
		)
		now := func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if calls%2 == 0 && len(steps) > 0 { // every second reading ends a statement
				clock = clock.Add(steps[0])
				steps = steps[1:]
			}
			return clock
		}
		f := openWith(t, url, func(o *store.Options) { o.Now = now })
		s, ctx := f.s, context.Background()
		for i := range 3 {
			if _, err := s.Exec(ctx, "INSERT INTO models (version, kind, trained_at) VALUES (?, ?, ?)", fmt.Sprint("v", i), "iforest", clock); err != nil {
				t.Fatal(err)
			}
		}
		mu.Lock()
		steps = []time.Duration{2 * time.Millisecond, 4 * time.Millisecond, 4 * time.Millisecond, 4 * time.Millisecond, 5 * time.Millisecond, 5 * time.Millisecond, 7 * time.Millisecond, 9 * time.Millisecond}
		calls = 0
		mu.Unlock()
		q := "SELECT version FROM models WHERE kind = ? AND training_rows >= ?"
		for i := range 8 {
			rows, err := s.Query(ctx, q, "iforest", -i)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
			}
			rows.Close()
		}
		st := statFor(t, s, q)
		// Samples 2,4,4,4,5,5,7,9 ms: mean 5, population stddev 2, 24 rows.
		if st.Calls != 8 || st.Rows != 24 || st.Errors != 0 || math.Abs(st.TotalMS-40) > 1e-9 || math.Abs(st.MeanMS-5) > 1e-9 ||
			st.MinMS != 2 || st.MaxMS != 9 || math.Abs(st.StddevMS-2) > 1e-9 {
			t.Fatalf("stats = %+v; want calls 8 rows 24 total 40 mean 5 min 2 max 9 stddev 2", st)
		}
		// Errors count, and a failed statement is still a call.
		if _, err := s.Exec(ctx, "INSERT INTO models (version, kind, trained_at) VALUES (?, ?, ?)", "v0", "iforest", clock); err == nil {
			t.Fatal("duplicate version accepted")
		}
		if st := statFor(t, s, "INSERT INTO models (version, kind, trained_at) VALUES (?, ?, ?)"); st.Calls != 4 || st.Errors != 1 || st.Rows != 3 {
			t.Fatalf("insert stats = %+v; want 4 calls, 1 error, 3 rows", st)
		}
		if got := testutil.ToFloat64(mustVec(t, f.reg, "smartcloudops_db_query_errors_total")); got != 1 {
			t.Errorf("error counter = %v; want 1", got)
		}
	})
}

// mustVec sums every series of a metric family in reg.
func mustVec(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sum", Help: "sum"}, func() float64 { return sum })
}

func TestStatisticsAreBounded(t *testing.T) {
	f := openWith(t, storetest.SQLiteURL(t), func(o *store.Options) { o.StatsCapacity = 5 })
	ctx := context.Background()
	for i := range 12 {
		// Distinct statements (column aliases differ), each a new fingerprint.
		if err := f.s.QueryRow(ctx, fmt.Sprintf("SELECT count(*) AS c%d FROM models", i)).Scan(new(int)); err != nil {
			t.Fatal(err)
		}
	}
	queries, tracked, evicted := f.s.Diagnostics().Statements(store.SortTotalTime, 100)
	if tracked != 5 || evicted != 7 || len(queries) != 5 {
		t.Fatalf("tracked %d evicted %d listed %d; want 5, 7, 5", tracked, evicted, len(queries))
	}
	if got := testutil.ToFloat64(mustVec(t, f.reg, "smartcloudops_db_statements_evicted_total")); got != 7 {
		t.Errorf("evicted metric = %v", got)
	}
}

func TestSlowQueryLog(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		for _, params := range []bool{false, true} {
			f := openWith(t, url, func(o *store.Options) { o.SlowQueryThreshold = time.Nanosecond; o.LogQueryParams = params })
			ctx := context.Background()
			var n int
			if err := f.s.QueryRow(ctx, "SELECT count(*) FROM system_metrics WHERE host = ?", "secret-host-value").Scan(&n); err != nil {
				t.Fatal(err)
			}
			f.s.Close() // waits for the plan lookup
			var entry map[string]any
			for _, line := range strings.Split(strings.TrimSpace(f.log.String()), "\n") {
				var m map[string]any
				if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "slow query" && strings.Contains(fmt.Sprint(m["query"]), "system_metrics") {
					entry = m
				}
			}
			if entry == nil {
				t.Fatalf("no slow-query entry in %s", f.log.String())
			}
			if entry["query_id"] != fingerprint.Normalize("SELECT count(*) FROM system_metrics WHERE host = ?").ID || entry["rows"] != 1.0 || entry["duration_seconds"] == nil {
				t.Errorf("entry = %v", entry)
			}
			if plan, _ := entry["plan"].(string); plan == "" {
				t.Errorf("no plan in %v", entry)
			}
			if got := strings.Contains(f.log.String(), "secret-host-value"); got != params {
				t.Errorf("parameters logged = %v with LogQueryParams = %v", got, params)
			}
			if got := testutil.ToFloat64(mustVec(t, f.reg, "smartcloudops_db_slow_queries_total")); got < 1 {
				t.Errorf("slow counter = %v", got)
			}
		}
		// Below the threshold nothing is logged.
		f := openWith(t, url, func(o *store.Options) { o.SlowQueryThreshold = time.Hour })
		if err := f.s.QueryRow(context.Background(), "SELECT count(*) FROM system_metrics").Scan(new(int)); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(f.log.String(), "slow query") {
			t.Errorf("fast query logged as slow: %s", f.log.String())
		}
	})
}

// redisCache is the ResultCache the cache part will provide, on the real
// Redis, with a key prefix per test.
type redisCache struct {
	c      *redis.Client
	prefix string
}

func (r *redisCache) Get(ctx context.Context, key string) ([]byte, bool, error) {
	v, err := r.c.Get(ctx, r.prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return v, true, nil
}

func (r *redisCache) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	return r.c.Set(ctx, r.prefix+key, val, ttl).Err()
}

// GetMulti makes redisCache a querycache.SharedBackend: one MGET.
func (r *redisCache) GetMulti(ctx context.Context, keys []string) ([][]byte, error) {
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = r.prefix + k
	}
	vals, err := r.c.MGet(ctx, full...).Result()
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(vals))
	for i, v := range vals {
		if s, ok := v.(string); ok {
			out[i] = []byte(s)
		}
	}
	return out, nil
}

// sharing returns a second handle on the same keys, as another replica's
// cache client would be.
func (r *redisCache) sharing() *redisCache { return &redisCache{c: r.c, prefix: r.prefix} }

// localOnly hides GetMulti, so the store keeps table versions in-process.
type localOnly struct{ querycache.Backend }

// cacheModes are the two ways the store can use a cache.
var cacheModes = map[string]func(*redisCache) querycache.Backend{
	"local":  func(c *redisCache) querycache.Backend { return localOnly{c} },
	"shared": func(c *redisCache) querycache.Backend { return c },
}

func newRedisCache(t testing.TB) *redisCache {
	t.Helper()
	c, prefix := redistest.Client(t, "store")
	return &redisCache{c: c, prefix: prefix}
}

func TestQueryCacheInvalidation(t *testing.T) {
	for mode, wrap := range cacheModes {
		t.Run(mode, func(t *testing.T) { testQueryCacheInvalidation(t, wrap) })
	}
}

func testQueryCacheInvalidation(t *testing.T, wrap func(*redisCache) querycache.Backend) {
	storetest.Each(t, func(t *testing.T, url string) {
		f := openWith(t, url, func(o *store.Options) { o.Cache = wrap(newRedisCache(t)) })
		s, ctx := f.s, context.Background()
		ts := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
		if _, err := s.Exec(ctx, "INSERT INTO models (version, kind, trained_at) VALUES (?, ?, ?)", "v1", "iforest", ts); err != nil {
			t.Fatal(err)
		}
		q := "SELECT version FROM models WHERE kind = ? ORDER BY version"
		read := func() []string {
			t.Helper()
			res, err := s.QueryCached(ctx, []string{"models"}, q, "iforest")
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, r := range res.Rows {
				out = append(out, fmt.Sprint(r[0]))
			}
			return out
		}
		hits := func() int64 { t.Helper(); return statFor(t, s, q).CacheHits }

		if got := read(); len(got) != 1 || hits() != 0 {
			t.Fatalf("first read %v, hits %d", got, hits())
		}
		if got := read(); len(got) != 1 || hits() != 1 {
			t.Fatalf("second read %v, hits %d; want a hit", got, hits())
		}
		// A write to another table leaves the entry valid.
		if _, err := s.InsertMetrics(ctx, []domain.MetricSample{{Host: "h", Timestamp: ts}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Exec(ctx, "INSERT INTO anomalies (host, detected_at, score, confidence, severity, model_version) VALUES (?, ?, ?, ?, ?, ?)", "h", ts, 0.5, 0.5, "low", "v1"); err != nil {
			t.Fatal(err)
		}
		if read(); hits() != 2 {
			t.Fatalf("hits %d after writing other tables; want 2", hits())
		}
		// A write to the table read makes the next read miss and see it.
		if _, err := s.Exec(ctx, "INSERT INTO models (version, kind, trained_at) VALUES (?, ?, ?)", "v2", "iforest", ts); err != nil {
			t.Fatal(err)
		}
		if got := read(); len(got) != 2 || hits() != 2 {
			t.Fatalf("read after write = %v, hits %d; want both versions from the database", got, hits())
		}
		// So do a transaction, a bulk update and an explicit Invalidate.
		if err := s.InTx(ctx, func(tx *store.Tx) error {
			_, err := tx.Exec(ctx, "UPDATE models SET training_rows = ? WHERE version = ?", 5, "v1")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		read()
		if hits() != 2 {
			t.Fatal("hit after a committed transaction wrote the table")
		}
		read()
		if _, err := s.BulkUpdate(ctx, "models", "version", []string{"training_rows"}, [][]any{{"v1", 7}}); err != nil {
			t.Fatal(err)
		}
		read()
		s.Invalidate("models")
		read()
		if st := statFor(t, s, q); st.CacheHits != 3 || st.CacheMisses != 5 || st.CacheSavedMS <= 0 {
			t.Fatalf("cache stats %+v; want 3 hits, 5 misses, time saved", st)
		}
		if cs := s.Diagnostics().CacheStats(); !cs.Enabled || cs.Hits != 3 || math.Abs(cs.HitRate-3.0/8) > 1e-9 {
			t.Errorf("cache summary %+v", cs)
		}
		if _, err := s.QueryCached(ctx, []string{"models"}, "DELETE FROM models"); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("caching a write: %v; want ErrInvalid", err)
		}
	})
}

func TestQueryCacheDisabled(t *testing.T) {
	f := openWith(t, storetest.SQLiteURL(t), nil)
	ctx := context.Background()
	for range 2 {
		res, err := f.s.QueryCached(ctx, []string{"models"}, "SELECT count(*) FROM models")
		if err != nil || len(res.Rows) != 1 || res.Rows[0][0] != int64(0) {
			t.Fatalf("uncached read = %+v, %v", res, err)
		}
	}
	if st := statFor(t, f.s, "SELECT count(*) FROM models"); st.Calls != 2 || st.CacheHits != 0 {
		t.Fatalf("without a cache every read runs: %+v", st)
	}
}

func TestBulkInsertEqualsRowByRow(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		bulk := openWith(t, url, nil).s
		rowByRow := openWith(t, storetest.SQLiteURL(t), nil).s
		if strings.HasPrefix(url, "postgres") {
			rowByRow = openWith(t, storetest.PostgresURL(t), nil).s
		}
		// Equivalence, not scale (the benchmarks have that): 20,000 rows are
		// 79 SQLite batches and span every host, and the test stays well
		// inside CI's budget under -race, where SQLite runs ~10x slower.
		const rows = 20_000
		samples := makeSamples(rows, 50)
		// Duplicates inside the batch and against stored rows are skipped.
		if _, err := bulk.InsertMetrics(ctx, samples[:10]); err != nil {
			t.Fatal(err)
		}
		withDup := append(append([]domain.MetricSample{}, samples...), samples[5], samples[rows-1])
		n, err := bulk.InsertMetrics(ctx, withDup)
		if err != nil || n != rows-10 {
			t.Fatalf("bulk insert = %d, %v; want %d new rows", n, err, rows-10)
		}
		if err := rowByRow.InTx(ctx, func(tx *store.Tx) error {
			for _, m := range samples {
				if err := insertOne(ctx, tx, m); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		a, b := dump(t, bulk), dump(t, rowByRow)
		if a != b {
			t.Fatalf("bulk and row-by-row tables differ (%d vs %d bytes)", len(a), len(b))
		}
		// Bulk update: the same changes, in bulk and one by one.
		// Ids differ between the two tables (a skipped duplicate still
		// consumes an identity value on PostgreSQL), so each side looks its own up.
		var upd [][]any
		for i := range 2000 {
			m := samples[i*7]
			var id int64
			if err := bulk.QueryRow(ctx, "SELECT id FROM system_metrics WHERE host = ? AND ts = ?", m.Host, m.Timestamp).Scan(&id); err != nil {
				t.Fatal(err)
			}
			upd = append(upd, []any{id, float64(i) / 3, `{"updated":1}`})
			if _, err := rowByRow.Exec(ctx, "UPDATE system_metrics SET cpu_usage = ?, extra = ? WHERE host = ? AND ts = ?", float64(i)/3, `{"updated":1}`, m.Host, m.Timestamp); err != nil {
				t.Fatal(err)
			}
		}
		n, err = bulk.BulkUpdate(ctx, "system_metrics", "id", []string{"cpu_usage", "extra"}, upd)
		if err != nil || n != 2000 {
			t.Fatalf("bulk update = %d, %v", n, err)
		}
		if a, b := dump(t, bulk), dump(t, rowByRow); a != b {
			t.Fatal("bulk and row-by-row updates differ")
		}
		if _, err := bulk.BulkUpdate(ctx, "system_metrics", "id", []string{"nope"}, upd); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("unknown column: %v; want ErrInvalid", err)
		}
	})
}

func makeSamples(n, hosts int) []domain.MetricSample {
	f := func(v float64) *float64 { return &v }
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	out := make([]domain.MetricSample, n)
	for i := range out {
		m := domain.MetricSample{Host: fmt.Sprintf("web-%02d", i%hosts), Timestamp: base.Add(time.Duration(i/hosts) * time.Second),
			CPUUsage: f(float64(i%1000) / 10), MemoryUsage: f(float64(i % 97))}
		if i%3 == 0 {
			m.ErrorRate = f(0.25)
			m.Extra = map[string]float64{"gc_ms": float64(i % 13)}
		}
		out[i] = m
	}
	return out
}

func insertOne(ctx context.Context, tx *store.Tx, m domain.MetricSample) error {
	extra := "{}"
	if len(m.Extra) > 0 {
		raw, _ := json.Marshal(m.Extra)
		extra = string(raw)
	}
	_, err := tx.Exec(ctx, "INSERT INTO system_metrics (host, ts, cpu_usage, memory_usage, disk_usage, network_in, network_out, load_average, response_time_ms, error_rate, request_rate, extra) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (host, ts) DO NOTHING",
		m.Host, m.Timestamp.UTC(), m.CPUUsage, m.MemoryUsage, m.DiskUsage, m.NetworkIn, m.NetworkOut, m.LoadAverage, m.ResponseTimeMS, m.ErrorRate, m.RequestRate, extra)
	return err
}

// dump renders the table's content (not its ids' insertion order) as text.
func dump(t *testing.T, s *store.Store) string {
	t.Helper()
	rows, err := s.Query(context.Background(), "SELECT host, ts, cpu_usage, memory_usage, error_rate, extra FROM system_metrics ORDER BY host, ts")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var (
			host        string
			ts          time.Time
			cpu, mem, e *float64
			extra       string
		)
		if err := rows.Scan(&host, &ts, &cpu, &mem, &e, &extra); err != nil {
			t.Fatal(err)
		}
		var ex map[string]any
		_ = json.Unmarshal([]byte(extra), &ex)
		fmt.Fprintf(&b, "%s %s %v %v %v %v\n", host, ts.UTC().Format(time.RFC3339Nano), deref(cpu), deref(mem), deref(e), ex)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}
