package store_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/store"
)

// BenchmarkRollup rolls up an hour of 100 hosts sampled every 10 s (36k
// raw rows, two well-known metrics and one extra each) from scratch per
// iteration; raw_rows/s is the figure to read: the job keeps up with a fleet
// while it is well above the fleet's ingest rate.
func BenchmarkRollup(b *testing.B) {
	eachDB(b, func(b *testing.B, url string) {
		s := openWith(b, url, nil).s
		ctx := context.Background()
		samples := rollupSamples(rand.New(rand.NewPCG(1, 1)), rollupBase, 60, 6, hostNames(100)...)
		for lo := 0; lo < len(samples); lo += 10000 {
			if _, err := s.InsertMetrics(ctx, samples[lo:min(lo+10000, len(samples))]); err != nil {
				b.Fatal(err)
			}
		}
		now := rollupBase.Add(62 * time.Minute)
		var rows int64
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			for _, q := range []string{"DELETE FROM metric_rollup_state", "DELETE FROM metric_rollups"} {
				if _, err := s.Exec(ctx, q); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
			res, err := s.RollupMetrics(ctx, store.RollupOptions{Now: now})
			if err != nil {
				b.Fatal(err)
			}
			rows = res.Rows
		}
		b.ReportMetric(float64(len(samples)*b.N)/b.Elapsed().Seconds(), "raw_rows/s")
		b.ReportMetric(float64(rows), "rollup_rows")
	})
}

// BenchmarkDeleteExpired deletes 36k rolled-up raw rows per iteration in
// batches of 1000 without pauses: raw_rows/s is retention's delete rate.
func BenchmarkDeleteExpired(b *testing.B) {
	eachDB(b, func(b *testing.B, url string) {
		s := openWith(b, url, nil).s
		ctx := context.Background()
		samples := rollupSamples(rand.New(rand.NewPCG(2, 2)), rollupBase, 60, 6, hostNames(100)...)
		now := rollupBase.Add(48 * time.Hour)
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			for _, q := range []string{"DELETE FROM metric_rollup_state", "DELETE FROM metric_rollups"} {
				if _, err := s.Exec(ctx, q); err != nil {
					b.Fatal(err)
				}
			}
			for lo := 0; lo < len(samples); lo += 10000 {
				if _, err := s.InsertMetrics(ctx, samples[lo:min(lo+10000, len(samples))]); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := s.RollupMetrics(ctx, store.RollupOptions{Now: rollupBase.Add(62 * time.Minute)}); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			res, err := s.DeleteExpired(ctx, store.RetentionOptions{Now: now, Raw: 24 * time.Hour, BatchSize: 1000, Pause: -1})
			if err != nil || res.RawDeleted != int64(len(samples)) {
				b.Fatalf("deleted %d of %d: %v", res.RawDeleted, len(samples), err)
			}
		}
		b.ReportMetric(float64(len(samples)*b.N)/b.Elapsed().Seconds(), "raw_rows/s")
	})
}
