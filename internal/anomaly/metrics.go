package anomaly

import (
	"fmt"
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartcloudops/smartcloudops/internal/domain"
)

// metrics are the service's Prometheus series. Labels are bounded: severity
// (4 values), result (hit/miss/error), reason (4 flush reasons), outcome.
type metrics struct {
	samples   prometheus.Counter
	anomalies *prometheus.CounterVec
	fallback  prometheus.Counter
	batch     prometheus.Histogram
	flushes   *prometheus.CounterVec
	latency   prometheus.Histogram
	rejected  prometheus.Counter
	cache     *prometheus.CounterVec
	evicted   prometheus.Counter
	trainings *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, queueDepth, series, seriesBytes, modelRows func() float64) (*metrics, error) {
	const ns = "smartcloudops_anomaly_"
	m := &metrics{
		samples:   prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "samples_scored_total", Help: "Samples scored by detect and ingest."}),
		anomalies: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "anomalies_total", Help: "Alerts raised (the first point of an incident; a sustained fault counts once), by severity."}, []string{"severity"}),
		fallback:  prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "fallback_total", Help: "Samples scored at least partly by the static thresholds (no model, warming series or late point)."}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: ns + "batch_size", Help: "Forest rows per scored batch.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200}}),
		flushes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "batch_flushes_total", Help: "Batches cut, by reason (idle, size, timeout, close)."}, []string{"reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: ns + "score_duration_seconds", Help: "Time to score one request, queueing included.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2.5, 12)}),
		rejected:  prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "queue_rejected_total", Help: "Requests refused because the scoring queue was full."}),
		cache:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "cache_requests_total", Help: "Prediction cache lookups, by result (hit, miss, error)."}, []string{"result"}),
		evicted:   prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "series_evicted_total", Help: "Series dropped to keep the series count and bytes bounded."}),
		trainings: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "trainings_total", Help: "Model trainings, by outcome (ok, error)."}, []string{"outcome"}),
	}
	cs := []prometheus.Collector{m.samples, m.anomalies, m.fallback, m.batch, m.flushes, m.latency, m.rejected, m.cache, m.evicted, m.trainings,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "queue_depth", Help: "Samples waiting for a scoring worker."}, queueDepth),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "series", Help: "Metric series with streaming state in memory."}, series),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "series_bytes", Help: "Estimated live heap bytes of the series' streaming state (bounded by ANOMALY_MAX_SERIES_BYTES)."}, seriesBytes),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "model_training_rows", Help: "Training rows of the active forest; 0 when none is active."}, modelRows),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("anomaly: register metrics: %w", err)
		}
	}
	for _, s := range []domain.Severity{domain.SeverityLow, domain.SeverityMedium, domain.SeverityHigh, domain.SeverityCritical} {
		m.anomalies.WithLabelValues(string(s))
	}
	for _, r := range []string{"hit", "miss", "error"} {
		m.cache.WithLabelValues(r)
	}
	// Series that exist from the start let rate() and alerts see a zero
	// instead of "no data" before the first flush or training.
	for _, r := range []string{"idle", "size", "timeout", "close"} {
		m.flushes.WithLabelValues(r)
	}
	for _, o := range []string{"ok", "error"} {
		m.trainings.WithLabelValues(o)
	}
	return m, nil
}

// latencyWindow keeps the most recent request latencies for the quantiles
// on /performance/anomaly/stats: a ring, so memory is fixed and the figures
// describe now rather than the whole uptime.
type latencyWindow struct {
	mu   sync.Mutex
	ring [2048]float64
	n    int
}

func (w *latencyWindow) add(ms float64) {
	w.mu.Lock()
	w.ring[w.n%len(w.ring)] = ms
	w.n++
	w.mu.Unlock()
}

// quantiles returns p50, p90, p99 of the window, in milliseconds.
func (w *latencyWindow) quantiles() (n int, p50, p90, p99 float64) {
	w.mu.Lock()
	k := min(w.n, len(w.ring))
	s := append([]float64(nil), w.ring[:k]...)
	w.mu.Unlock()
	if k == 0 {
		return 0, 0, 0, 0
	}
	sort.Float64s(s)
	at := func(q float64) float64 { return s[min(k-1, int(q*float64(k)))] }
	return k, at(0.5), at(0.9), at(0.99)
}
