package latency

import (
	"math"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// hist builds a histogram read back from Prometheus: cumulative counts per
// finite upper bound (no +Inf bucket, as client_golang writes them).
func hist(count uint64, sum float64, bounds []float64, cum []uint64) *dto.Histogram {
	h := &dto.Histogram{SampleCount: &count, SampleSum: &sum}
	for i := range bounds {
		h.Bucket = append(h.Bucket, &dto.Bucket{UpperBound: &bounds[i], CumulativeCount: &cum[i]})
	}
	return h
}

func TestFromHistograms(t *testing.T) {
	b := []float64{0.1, 0.2, 0.4}
	for _, tc := range []struct {
		name     string
		hs       []*dto.Histogram
		want     HistogramSummary
		wantMean float64
	}{
		{"none", nil, HistogramSummary{}, 0},
		{"nil and empty", []*dto.Histogram{nil, hist(0, 0, b, []uint64{0, 0, 0})}, HistogramSummary{}, 0},
		// Two series merged: 100 observations in (0.1, 0.2], interpolated
		// linearly inside that bucket.
		{"merged series", []*dto.Histogram{hist(50, 7.5, b, []uint64{0, 50, 50}), hist(50, 7.5, b, []uint64{0, 50, 50})},
			HistogramSummary{Count: 100, Sum: 15, P50: 0.15, P90: 0.19, P99: 0.199}, 0.15},
		// The first bucket interpolates from 0.
		{"first bucket", []*dto.Histogram{hist(10, 0.5, b, []uint64{10, 10, 10})},
			HistogramSummary{Count: 10, Sum: 0.5, P50: 0.05, P90: 0.09, P99: 0.099}, 0.05},
		// Observations past the last finite bound answer that bound.
		{"beyond the last bound", []*dto.Histogram{hist(10, 50, b, []uint64{0, 0, 1})},
			HistogramSummary{Count: 10, Sum: 50, P50: 0.4, P90: 0.4, P99: 0.4}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := FromHistograms(tc.hs...)
			near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
			if got.Count != tc.want.Count || !near(got.Sum, tc.want.Sum) || !near(got.P50, tc.want.P50) ||
				!near(got.P90, tc.want.P90) || !near(got.P99, tc.want.P99) || !near(got.Mean(), tc.wantMean) {
				t.Fatalf("got %+v mean %v; want %+v mean %v", got, got.Mean(), tc.want, tc.wantMean)
			}
		})
	}
}
