package anomaly

import (
	"math"
	"sort"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/domain"
)

// trainingSet is the history turned into a matrix.
type trainingSet struct {
	columns  []string
	impute   []float64
	train    []float64 // row-major, len(columns) wide
	holdout  []float64
	from, to time.Time
	// samples, split and cut are kept for the per-host sets (forHost).
	samples []Sample
	split   bool
	cut     time.Time
}

// maxColumns bounds the forest's width; past it the most frequently reported
// metrics win.
const maxColumns = 32

// buildTrainingSet picks the columns (metrics present in at least half the
// samples, well-known ones first, at most maxColumns), imputes missing
// values with the column median, and holds out the most recent share of the
// window for validation.
//
// The history may hold two resolutions (Store.MetricHistory): raw samples
// inside the store's raw window and, before it, where retention has deleted
// the raw rows, one sample per host and minute whose metrics are the
// minute's means. Both are kept rather than training on means only: the
// holdout, the most recent share on which the candidate models are judged,
// is then raw whenever the raw window covers it, so selection sees samples
// like the ones the model will score, while the means let the window reach
// back as far as the rollups are kept (smoother than raw samples, they
// widen what counts as normal no further than the raw part does).
func buildTrainingSet(history []domain.MetricSample, holdoutShare float64) trainingSet {
	var ts trainingSet
	samples := make([]Sample, len(history))
	counts := map[string]int{}
	for i, h := range history {
		samples[i] = FromStore(h)
		for k := range samples[i].Metrics {
			counts[k]++
		}
		if ts.from.IsZero() || h.Timestamp.Before(ts.from) {
			ts.from = h.Timestamp
		}
		if h.Timestamp.After(ts.to) {
			ts.to = h.Timestamp
		}
	}
	rank := map[string]int{}
	for i, n := range WellKnownMetrics() {
		rank[n] = i
	}
	for k, n := range counts {
		if 2*n >= len(samples) {
			ts.columns = append(ts.columns, k)
		}
	}
	sort.Slice(ts.columns, func(i, j int) bool {
		a, b := ts.columns[i], ts.columns[j]
		ra, oka := rank[a]
		rb, okb := rank[b]
		switch {
		case oka && okb:
			return ra < rb
		case oka != okb:
			return oka
		case counts[a] != counts[b]:
			return counts[a] > counts[b]
		}
		return a < b
	})
	if len(ts.columns) > maxColumns {
		ts.columns = ts.columns[:maxColumns]
	}
	ts.impute = make([]float64, len(ts.columns))
	for i, c := range ts.columns {
		var vals []float64
		for _, s := range samples {
			if v, ok := s.Metrics[c]; ok {
				vals = append(vals, v)
			}
		}
		ts.impute[i] = quantile(vals, 0.5)
	}
	ts.samples, ts.split, ts.cut = samples, holdoutShare > 0, ts.to
	if ts.split {
		ts.cut = ts.from.Add(time.Duration(float64(ts.to.Sub(ts.from)) * (1 - holdoutShare)))
	}
	ts.train, ts.holdout = ts.matrix(samples, ts.impute)
	return ts
}

// matrix turns samples into the training and holdout matrices on the set's
// columns and cut, imputing a missing metric from impute.
func (ts *trainingSet) matrix(samples []Sample, impute []float64) (train, holdout []float64) {
	for _, s := range samples {
		dst := &train
		if ts.split && s.Timestamp.After(ts.cut) {
			dst = &holdout
		}
		for i, c := range ts.columns {
			v, ok := s.Metrics[c]
			if !ok {
				v = impute[i]
			}
			*dst = append(*dst, v)
		}
	}
	return train, holdout
}

// hostRows counts the training samples per host.
func (ts *trainingSet) hostRows() map[string]int {
	counts := map[string]int{}
	for _, s := range ts.samples {
		counts[s.Host]++
	}
	return counts
}

// forHost is the host's own training set on the fleet's columns and cut:
// its matrices and its medians (the fleet's where the host never reports a
// metric).
func (ts *trainingSet) forHost(host string) (train, holdout, impute []float64) {
	var mine []Sample
	for _, s := range ts.samples {
		if s.Host == host {
			mine = append(mine, s)
		}
	}
	impute = make([]float64, len(ts.columns))
	for i, c := range ts.columns {
		var vals []float64
		for _, s := range mine {
			if v, ok := s.Metrics[c]; ok {
				vals = append(vals, v)
			}
		}
		impute[i] = ts.impute[i]
		if len(vals) > 0 {
			impute[i] = quantile(vals, 0.5)
		}
	}
	train, holdout = ts.matrix(mine, impute)
	return train, holdout, impute
}

// quantile returns the q-quantile of vals (sorting a copy), 0 for none.
func quantile(vals []float64, q float64) float64 {
	if len(vals) == 0 {
		return 0
	}
	s := append([]float64(nil), vals...)
	sort.Float64s(s)
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(s)-1)
	return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
}
