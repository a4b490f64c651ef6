package anomaly

import (
	"fmt"

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
