package anomaly

import (
	"fmt"
	"math"
)

// Component versions that are not trained models.
const (
	// ThresholdVersion is the static-threshold fallback.
	ThresholdVersion = "threshold-v1"
	// StreamVersion is the streaming per-series detector (package stream).
	StreamVersion = "stream-v1"
)

// Thresholds are the static limits the fallback flags above, by canonical
// metric name. A metric without a threshold cannot be judged by the fallback.
type Thresholds map[string]float64

// DefaultThresholds returns the documented defaults: cpu > 90, memory > 90,
// disk > 95 (percent) and error rate > 5 (percent of requests).
func DefaultThresholds() Thresholds {
	return Thresholds{MetricCPU: 90, MetricMemory: 90, MetricDisk: 95, MetricErrorRate: 5}
}

func (t Thresholds) validate() error {
	for k, v := range t {
		if !(v > 0) || math.IsInf(v, 0) {
			return fmt.Errorf("threshold for %s is %v: must be a positive finite number", k, v)
		}
	}
	return nil
}

// score maps v against the threshold T of metric: above T it scores
// 0.5 + 0.5·min(1, (v-T)/h), with h = min(T, 100-T) for limits below 100 (the
// room left on a percentage) and T otherwise; below it 0.5·(v/T)², which
// keeps far-below values near 0. ok is false when metric has no threshold.
func (t Thresholds) score(metric string, v float64) (score float64, over, ok bool) {
	th, ok := t[metric]
	if !ok {
		return 0, false, false
	}
	if v > th {
		h := th
		if th < 100 {
			h = min(th, 100-th)
		}
		return 0.5 + 0.5*min(1, (v-th)/h), true, true
	}
	r := max(v, 0) / th
	return min(0.5*r*r, 0.4999), false, true
}
