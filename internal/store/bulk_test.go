package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

func TestInsertMetricsSkipsDuplicates(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		if _, err := s.Migrate(ctx, nil); err != nil {
			t.Fatal(err)
		}
		f := func(v float64) *float64 { return &v }
		base := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
		var batch []store.MetricSample
		for i := range 2500 { // spans several INSERT statements
			batch = append(batch, store.MetricSample{Host: "web-1", Timestamp: base.Add(time.Duration(i) * time.Minute), CPUUsage: f(float64(i % 100)),
				Extra: map[string]float64{"gc_ms": 1.5}})
		}
		n, err := s.InsertMetrics(ctx, batch)
		if err != nil || n != 2500 {
			t.Fatalf("InsertMetrics = %d, %v; want 2500", n, err)
		}
		n, err = s.InsertMetrics(ctx, batch[:10])
		if err != nil || n != 0 {
			t.Fatalf("re-sent samples: %d, %v; want 0 new rows", n, err)
		}
		var count int
		if err := s.Reader().QueryRowContext(ctx, "SELECT count(*) FROM system_metrics").Scan(&count); err != nil || count != 2500 {
			t.Fatalf("rows = %d, %v", count, err)
		}
	})
}
