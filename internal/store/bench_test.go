package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/domain"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

// eachDB runs a benchmark on both databases.
func eachDB(b *testing.B, f func(b *testing.B, url string)) {
	b.Run("sqlite", func(b *testing.B) { f(b, storetest.SQLiteURL(b)) })
	b.Run("postgres", func(b *testing.B) { f(b, storetest.PostgresURL(b)) })
}

// BenchmarkInsertMetrics compares the bulk path with row-by-row inserts (one
// prepared statement per row, one transaction) on 10k-row batches; rows/s is
// the figure to read.
func BenchmarkInsertMetrics(b *testing.B) {
	const batch = 10_000
	eachDB(b, func(b *testing.B, url string) {
		for _, mode := range []string{"bulk", "row_by_row"} {
			b.Run(mode, func(b *testing.B) {
				s := openWith(b, url, nil).s
				ctx := context.Background()
				samples := makeSamples(batch*(b.N+1), 100)
				b.ResetTimer()
				for i := range b.N {
					part := samples[i*batch : (i+1)*batch]
					if mode == "bulk" {
						if _, err := s.InsertMetrics(ctx, part); err != nil {
							b.Fatal(err)
						}
						continue
					}
					if err := s.InTx(ctx, func(tx *store.Tx) error {
						for _, m := range part {
							if err := insertOne(ctx, tx, m); err != nil {
								return err
							}
						}
						return nil
					}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "rows/s")
			})
		}
	})
}

// BenchmarkQueryCache compares a cached read, the same read uncached, and a
// bare Redis GET of a value of the same size. "cached" uses shared table
// versions (one MGET brings the versions and the entry, then decoding);
// "cached_local" keeps the versions in-process (one GET, then decoding).
func BenchmarkQueryCache(b *testing.B) {
	eachDB(b, func(b *testing.B, url string) {
		rc := newRedisCache(b)
		s := openWith(b, url, func(o *store.Options) { o.Cache = rc }).s
		local := openWith(b, url, func(o *store.Options) { o.Cache = localOnly{rc.sharing()} }).s
		ctx := context.Background()
		if _, err := s.InsertMetrics(ctx, makeSamples(20_000, 20)); err != nil {
			b.Fatal(err)
		}
		q := "SELECT host, count(*), avg(cpu_usage), max(memory_usage) FROM system_metrics WHERE ts >= ? GROUP BY host ORDER BY host"
		arg := makeSamples(1, 1)[0].Timestamp
		res, err := s.QueryCached(ctx, []string{"system_metrics"}, q, arg)
		if err != nil || len(res.Rows) != 20 {
			b.Fatalf("%v %v", res, err)
		}
		b.Run("cached", func(b *testing.B) {
			for range b.N {
				if _, err := s.QueryCached(ctx, []string{"system_metrics"}, q, arg); err != nil {
					b.Fatal(err)
				}
			}
		})
		if _, err := local.QueryCached(ctx, []string{"system_metrics"}, q, arg); err != nil {
			b.Fatal(err)
		}
		b.Run("cached_local", func(b *testing.B) {
			for range b.N {
				if _, err := local.QueryCached(ctx, []string{"system_metrics"}, q, arg); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("uncached", func(b *testing.B) {
			for range b.N {
				rows, err := s.Query(ctx, q, arg)
				if err != nil {
					b.Fatal(err)
				}
				for rows.Next() {
				}
				rows.Close()
			}
		})
		b.Run("redis_get", func(b *testing.B) {
			if err := rc.Set(ctx, "raw", []byte(strings.Repeat("x", 900)), 0); err != nil {
				b.Fatal(err)
			}
			for range b.N {
				if _, _, err := rc.Get(ctx, "raw"); err != nil {
					b.Fatal(err)
				}
			}
		})
		// The machine is shared, so sub-benchmarks run one after another can
		// see different loads; this one alternates the three operations in
		// each iteration and reports their ratios, which drift cannot skew.
		b.Run("interleaved", func(b *testing.B) {
			if err := rc.Set(ctx, "raw", []byte(strings.Repeat("x", 900)), 0); err != nil {
				b.Fatal(err)
			}
			var get, shared, loc time.Duration
			for range b.N {
				t0 := time.Now()
				if _, _, err := rc.Get(ctx, "raw"); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if _, err := s.QueryCached(ctx, []string{"system_metrics"}, q, arg); err != nil {
					b.Fatal(err)
				}
				t2 := time.Now()
				if _, err := local.QueryCached(ctx, []string{"system_metrics"}, q, arg); err != nil {
					b.Fatal(err)
				}
				t3 := time.Now()
				get, shared, loc = get+t1.Sub(t0), shared+t2.Sub(t1), loc+t3.Sub(t2)
			}
			b.ReportMetric(float64(get.Nanoseconds())/float64(b.N), "get-ns/op")
			b.ReportMetric(float64(shared)/float64(get), "cached/get")
			b.ReportMetric(float64(loc)/float64(get), "cached_local/get")
		})
	})
}

// BenchmarkInstrumentation compares the store's recorded query path with the
// same query through bare database/sql on the same pool.
func BenchmarkInstrumentation(b *testing.B) {
	eachDB(b, func(b *testing.B, url string) {
		s := openWith(b, url, nil).s
		ctx := context.Background()
		if _, err := s.InsertMetrics(ctx, makeSamples(1000, 10)); err != nil {
			b.Fatal(err)
		}
		q := "SELECT ts, cpu_usage FROM system_metrics WHERE host = ? ORDER BY ts DESC LIMIT 10"
		b.Run("instrumented", func(b *testing.B) {
			for i := range b.N {
				rows, err := s.Query(ctx, q, fmt.Sprintf("web-%02d", i%10))
				if err != nil {
					b.Fatal(err)
				}
				for rows.Next() {
				}
				rows.Close()
			}
		})
		b.Run("bare", func(b *testing.B) {
			text := s.Rebind(q)
			for i := range b.N {
				rows, err := s.Reader().QueryContext(ctx, text, fmt.Sprintf("web-%02d", i%10))
				if err != nil {
					b.Fatal(err)
				}
				for rows.Next() {
				}
				rows.Close()
			}
		})
	})
}

// BenchmarkInsertAnomalies stores batches of fresh anomalies, as ingest does
// after scoring ("new"), and re-sends batches already stored ("resend"), which
// must add nothing; rows/s is the figure to read.
func BenchmarkInsertAnomalies(b *testing.B) {
	const batch = 100
	eachDB(b, func(b *testing.B, url string) {
		for _, mode := range []string{"new", "resend"} {
			b.Run(mode, func(b *testing.B) {
				s := openWith(b, url, nil).s
				ctx := context.Background()
				rows := makeAnomalies(batch*(b.N+1), 20)
				if mode == "resend" {
					if _, err := s.InsertAnomalies(ctx, rows); err != nil {
						b.Fatal(err)
					}
				}
				b.ResetTimer()
				for i := range b.N {
					if _, err := s.InsertAnomalies(ctx, rows[i*batch:(i+1)*batch]); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "rows/s")
			})
		}
	})
}

// makeAnomalies returns n anomalies spread over hosts, one per sample time.
func makeAnomalies(n, hosts int) []domain.Anomaly {
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	out := make([]domain.Anomaly, n)
	for i := range out {
		out[i] = domain.Anomaly{Host: fmt.Sprintf("web-%02d", i%hosts), Metric: "cpu_usage", DetectedAt: base.Add(time.Duration(i/hosts) * time.Second),
			Score: 0.8, Confidence: 0.7, Severity: "high", ModelVersion: "iforest-1", Features: map[string]float64{"cpu_usage": 97.5}, Explanation: "cpu_usage high"}
	}
	return out
}

// BenchmarkInsertMetricsMerge measures the merge path remote write takes:
// each 10k-row batch is the second part of rows already stored (their cpu
// stored, their memory and extra keys now), on PostgreSQL the staged
// INSERT … ON CONFLICT DO UPDATE; rows/s is the figure to read, against
// BenchmarkInsertMetrics' bulk path for fresh rows.
func BenchmarkInsertMetricsMerge(b *testing.B) {
	const batch = 10_000
	eachDB(b, func(b *testing.B, url string) {
		s := openWith(b, url, nil).s
		ctx := context.Background()
		samples := makeSamples(batch*(b.N+1), 100)
		first := make([]domain.MetricSample, len(samples))
		second := make([]domain.MetricSample, len(samples))
		for i, m := range samples {
			first[i] = domain.MetricSample{Host: m.Host, Timestamp: m.Timestamp, CPUUsage: m.CPUUsage}
			second[i] = domain.MetricSample{Host: m.Host, Timestamp: m.Timestamp, MemoryUsage: m.MemoryUsage, ErrorRate: m.ErrorRate, Extra: m.Extra}
		}
		b.ResetTimer()
		for i := range b.N {
			b.StopTimer()
			if _, err := s.InsertMetrics(ctx, first[i*batch:(i+1)*batch]); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			n, err := s.InsertMetrics(ctx, second[i*batch:(i+1)*batch])
			if err != nil || n != batch {
				b.Fatalf("merge: %d, %v; want %d", n, err, batch)
			}
		}
		b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}
