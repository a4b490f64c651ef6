package store_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/smartcloudops/smartcloudops/internal/latency"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

// TestStatementLatency checks that the store's own summary counts every
// statement it ran and agrees with what a reader of its registered
// histogram would compute.
func TestStatementLatency(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		reg := prometheus.NewRegistry()
		s, err := store.Open(ctx, store.Options{URL: url, PoolSize: 2, Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if got := s.Diagnostics().StatementLatency(); got != (latency.HistogramSummary{}) {
			t.Fatalf("before any statement: %+v", got)
		}
		const reads, writes = 5, 2
		for range reads {
			var one int
			if err := s.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
				t.Fatal(err)
			}
		}
		for range writes {
			if _, err := s.Exec(ctx, "CREATE TABLE IF NOT EXISTS latency_probe (x INTEGER)"); err != nil {
				t.Fatal(err)
			}
		}
		got := s.Diagnostics().StatementLatency()
		if got.Count != reads+writes || got.Sum <= 0 || got.Mean() <= 0 || got.P50 <= 0 || got.P50 > got.P90 || got.P90 > got.P99 {
			t.Fatalf("after %d statements: %+v", reads+writes, got)
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var hs []*dto.Histogram
		for _, mf := range mfs {
			if mf.GetName() == "smartcloudops_db_query_duration_seconds" {
				for _, m := range mf.GetMetric() {
					hs = append(hs, m.GetHistogram())
				}
			}
		}
		if want := latency.FromHistograms(hs...); got != want {
			t.Fatalf("own summary %+v; the registered histogram says %+v", got, want)
		}
	})
}
