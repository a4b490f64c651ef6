package store_test

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/domain"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

// rolledStore stores 60 minutes of 4 samples a minute for web-1 and web-2,
// rolls them up and keeps 30 minutes of raw rows, so the raw rows start at
// minute 33 (now is 63 minutes in).
func rolledStore(t *testing.T, url string) (*store.Store, []domain.MetricSample, time.Time) {
	t.Helper()
	ctx := context.Background()
	s := migrated(t, url)
	samples := rollupSamples(rand.New(rand.NewPCG(11, 12)), rollupBase, 60, 4, "web-1", "web-2")
	if _, err := s.InsertMetrics(ctx, samples); err != nil {
		t.Fatal(err)
	}
	now := rollupBase.Add(63 * time.Minute)
	if _, err := s.RollupMetrics(ctx, store.RollupOptions{Now: now}); err != nil {
		t.Fatal(err)
	}
	ret, err := s.DeleteExpired(ctx, store.RetentionOptions{Now: now, Raw: 30 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	split := rollupBase.Add(33 * time.Minute)
	if !ret.RawFrom.Equal(split) {
		t.Fatalf("raw_from = %v, want %v", ret.RawFrom, split)
	}
	return s, samples, split
}

// minuteMean is the mean of metric over host's samples in the minute starting at b.
func minuteMean(samples []domain.MetricSample, host string, b time.Time, get func(domain.MetricSample) *float64) (float64, bool) {
	var sum float64
	n := 0
	for _, s := range samples {
		if s.Host == host && s.Timestamp.Truncate(time.Minute).Equal(b) {
			if v := get(s); v != nil {
				sum += *v
				n++
			}
		}
	}
	return sum / float64(n), n > 0
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestSeriesReadsRollupsBeforeRawWindow(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s, samples, split := rolledStore(t, url)
		got, err := s.MetricSeries(ctx, store.SeriesQuery{Host: "web-1", Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		// 33 minutes of means, then 27 minutes of 4 raw samples.
		if len(got.Samples) != 33+27*4 || got.Truncated || !got.RolledUpBefore.Equal(split) {
			t.Fatalf("series: %d samples, truncated %v, rolled up before %v", len(got.Samples), got.Truncated, got.RolledUpBefore)
		}
		for i, m := range got.Samples {
			if i < 33 {
				b := rollupBase.Add(time.Duration(i) * time.Minute)
				want, _ := minuteMean(samples, "web-1", b, func(s domain.MetricSample) *float64 { return s.CPUUsage })
				wantMem, _ := minuteMean(samples, "web-1", b, func(s domain.MetricSample) *float64 { return s.MemoryUsage })
				if !m.Timestamp.Equal(b) || m.CPUUsage == nil || !near(*m.CPUUsage, want) || m.MemoryUsage == nil || !near(*m.MemoryUsage, wantMem) || m.DiskUsage != nil {
					t.Fatalf("sample %d = %v cpu %v mem %v; want minute %v, means %v and %v", i, m.Timestamp, m.CPUUsage, m.MemoryUsage, b, want, wantMem)
				}
				continue
			}
			if m.Timestamp.Before(split) || (i > 0 && !m.Timestamp.After(got.Samples[i-1].Timestamp)) {
				t.Fatalf("raw sample %d at %v out of order or before the raw window", i, m.Timestamp)
			}
		}
		// The limit keeps the most recent samples: all raw here.
		got, err = s.MetricSeries(ctx, store.SeriesQuery{Host: "web-1", Limit: 50})
		if err != nil || len(got.Samples) != 50 || !got.Truncated || !got.RolledUpBefore.IsZero() {
			t.Fatalf("limited series: %d samples, truncated %v, rolled up before %v, %v", len(got.Samples), got.Truncated, got.RolledUpBefore, err)
		}
		// A window across the boundary.
		got, err = s.MetricSeries(ctx, store.SeriesQuery{Host: "web-1", From: rollupBase.Add(10 * time.Minute), To: rollupBase.Add(40 * time.Minute)})
		if err != nil || len(got.Samples) != 23+7*4 || !got.Samples[0].Timestamp.Equal(rollupBase.Add(10*time.Minute)) {
			t.Fatalf("window series: %d samples, %v", len(got.Samples), err)
		}
		// A window wholly inside the raw rows reads them as before.
		got, err = s.MetricSeries(ctx, store.SeriesQuery{Host: "web-1", From: split, To: split.Add(time.Minute)})
		if err != nil || len(got.Samples) != 4 || !got.RolledUpBefore.IsZero() {
			t.Fatalf("raw window: %+v, %v", got, err)
		}
	})
}

func TestHistoryReadsRollupsBeforeRawWindow(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s, samples, split := rolledStore(t, url)
		got, err := s.MetricHistory(ctx, domain.HistoryQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2*(33+27*4) {
			t.Fatalf("history: %d samples, want %d", len(got), 2*(33+27*4))
		}
		for i, m := range got {
			if i > 0 && got[i-1].Host == m.Host && !m.Timestamp.After(got[i-1].Timestamp) {
				t.Fatalf("history not in (host, time) order at %d", i)
			}
			if !m.Timestamp.Before(split) {
				continue
			}
			want, _ := minuteMean(samples, m.Host, m.Timestamp, func(s domain.MetricSample) *float64 { return s.CPUUsage })
			if m.CPUUsage == nil || !near(*m.CPUUsage, want) {
				t.Fatalf("rolled-up sample %s %v cpu = %v, want %v", m.Host, m.Timestamp, m.CPUUsage, want)
			}
			// Extra metrics come back from the rollups too.
			if m.Host == "web-2" {
				q, _ := minuteMean(samples, m.Host, m.Timestamp, func(s domain.MetricSample) *float64 { v := s.Extra["queue_depth"]; return &v })
				if !near(m.Extra["queue_depth"], q) {
					t.Fatalf("rolled-up sample %s %v queue_depth = %v, want %v", m.Host, m.Timestamp, m.Extra["queue_depth"], q)
				}
			}
		}
		// The limit keeps the most recent samples: the 216 raw ones and the
		// 17 most recent minutes of both hosts.
		got, err = s.MetricHistory(ctx, domain.HistoryQuery{Limit: 216 + 34})
		if err != nil || len(got) != 250 {
			t.Fatalf("limited history: %d, %v", len(got), err)
		}
		oldest := split
		for _, m := range got {
			if m.Timestamp.Before(oldest) {
				oldest = m.Timestamp
			}
		}
		if want := split.Add(-17 * time.Minute); !oldest.Equal(want) {
			t.Fatalf("limited history reaches back to %v, want %v", oldest, want)
		}
		// One host, a window wholly before the raw rows.
		got, err = s.MetricHistory(ctx, domain.HistoryQuery{Host: "web-2", From: rollupBase, To: rollupBase.Add(5 * time.Minute)})
		if err != nil || len(got) != 5 || got[0].Host != "web-2" || !got[4].Timestamp.Equal(rollupBase.Add(4*time.Minute)) {
			t.Fatalf("old window: %d samples, %v", len(got), err)
		}
	})
}
