// Package latency is the one place where the service turns latencies into
// quantiles for its JSON stats endpoints, so every part answers "p99" by the
// same rule: the nearest rank. The q-quantile of n observations is the
// ceil(q·n)-th smallest (the 1st for q·n ≤ 1), an observed value, never an
// interpolation. Prometheus histograms, which keep no observations, follow
// PromQL's histogram_quantile instead (FromHistograms), as Grafana would
// show them.
package latency

import (
	"math"
	"slices"
	"sync/atomic"
	"time"
)

// Rank is the 1-based rank of the q-quantile among n observations by the
// nearest-rank rule; 0 when n is 0.
func Rank(n uint64, q float64) uint64 {
	if n == 0 {
		return 0
	}
	q = min(1, max(0, q))
	return min(n, max(1, uint64(math.Ceil(q*float64(n)))))
}

// NearestRank is the q-quantile of sorted (ascending) by the nearest-rank
// rule; 0 for an empty slice.
func NearestRank[T int64 | float64 | time.Duration](sorted []T, q float64) T {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[Rank(uint64(len(sorted)), q)-1]
}

// WindowSize is how many recent observations a Window keeps: enough for a
// stable p99, small enough to sort on every stats request.
const WindowSize = 2048

// Window keeps the most recent WindowSize latencies. Record never blocks
// and never allocates; a Summary taken while Record runs may see a slot
// being overwritten, which only blurs an estimate. The zero value is ready.
type Window struct {
	next atomic.Uint64
	vals [WindowSize]atomic.Int64
}

// Record adds one observation.
func (w *Window) Record(d time.Duration) {
	i := w.next.Add(1) - 1
	w.vals[i%WindowSize].Store(int64(d))
}

// Summary is the quantiles of a Window's observations.
type Summary struct {
	// N is the number of observations the figures describe (at most
	// WindowSize).
	N                  int
	P50, P90, P99, Max time.Duration
}

// Summary returns the window's quantiles by the nearest-rank rule.
func (w *Window) Summary() Summary {
	n := min(w.next.Load(), WindowSize)
	if n == 0 {
		return Summary{}
	}
	s := make([]time.Duration, n)
	for i := range s {
		s[i] = time.Duration(w.vals[i].Load())
	}
	slices.Sort(s)
	return Summary{N: int(n), P50: NearestRank(s, 0.50), P90: NearestRank(s, 0.90), P99: NearestRank(s, 0.99), Max: s[n-1]}
}
