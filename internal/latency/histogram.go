package latency

import (
	"math"
	"slices"

	dto "github.com/prometheus/client_model/go"
)

// HistogramSummary is what one or more Prometheus histograms, merged, say
// about their observations: how many, their sum, and quantiles estimated
// from the buckets by PromQL's histogram_quantile rule, in the histograms'
// unit.
type HistogramSummary struct {
	Count         uint64
	Sum           float64
	P50, P90, P99 float64
}

// Mean is Sum / Count; 0 without observations.
func (s HistogramSummary) Mean() float64 {
	if s.Count == 0 {
		return 0
	}
	return s.Sum / float64(s.Count)
}

// FromHistograms merges the histograms' buckets (all routes, all statement
// kinds: the series of one family share their bounds) and summarizes them.
// Nil histograms are skipped.
func FromHistograms(hs ...*dto.Histogram) HistogramSummary {
	var s HistogramSummary
	cum := map[float64]uint64{}
	for _, h := range hs {
		if h == nil {
			continue
		}
		s.Count += h.GetSampleCount()
		s.Sum += h.GetSampleSum()
		for _, b := range h.GetBucket() {
			cum[b.GetUpperBound()] += b.GetCumulativeCount()
		}
	}
	bounds := make([]float64, 0, len(cum))
	for ub := range cum {
		bounds = append(bounds, ub)
	}
	slices.Sort(bounds)
	q := func(p float64) float64 { return bucketQuantile(p, bounds, cum, s.Count) }
	s.P50, s.P90, s.P99 = q(0.5), q(0.9), q(0.99)
	return s
}

// bucketQuantile interpolates linearly inside the bucket holding the p-th
// observation; past the last finite bound it answers that bound, as
// Prometheus's histogram_quantile does.
func bucketQuantile(p float64, bounds []float64, cum map[float64]uint64, total uint64) float64 {
	if total == 0 || len(bounds) == 0 {
		return 0
	}
	rank := p * float64(total)
	lower, below := 0.0, uint64(0)
	for _, ub := range bounds {
		c := cum[ub]
		if float64(c) >= rank {
			if c == below {
				return ub
			}
			return lower + (ub-lower)*(rank-float64(below))/float64(c-below)
		}
		lower, below = ub, c
	}
	if math.IsInf(lower, 1) {
		return bounds[len(bounds)-1]
	}
	return lower
}
