package ingest

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what one receiver did with the samples it was sent, by
// outcome, so every sample that is not stored is accounted for: the
// Tracker's outcomes plus the receiver's own ("not_selected", "stale",
// "non_finite", "invalid_row", …).
type Metrics struct {
	samples  *prometheus.CounterVec
	requests *prometheus.CounterVec
}

// NewMetrics registers the counters of the receiver named source
// ("remote_write", "otlp") with reg, and a gauge of tr's series. Receivers
// share the metric names and differ by the source label.
func NewMetrics(reg prometheus.Registerer, source string, tr *Tracker) *Metrics {
	labels := prometheus.Labels{"source": source}
	m := &Metrics{
		samples: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartcloudops_ingest_samples_total", ConstLabels: labels,
			Help: "Samples received by a wire-format receiver, by what became of them (kept is stored as a row's value).",
		}, []string{"outcome"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartcloudops_ingest_requests_total", ConstLabels: labels,
			Help: "Requests to a wire-format receiver, by HTTP status answered.",
		}, []string{"code"}),
	}
	if reg != nil {
		reg.MustRegister(m.samples, m.requests)
		if tr != nil {
			reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "smartcloudops_ingest_series", ConstLabels: labels,
				Help: "Series a receiver tracks now (counter state, dedup, the per-tenant cap).",
			}, func() float64 { return float64(tr.Series()) }))
		}
	}
	return m
}

// Samples adds n samples with outcome.
func (m *Metrics) Samples(outcome string, n int) {
	if m != nil && n > 0 {
		m.samples.WithLabelValues(outcome).Add(float64(n))
	}
}

// Request counts one request answered with HTTP status code.
func (m *Metrics) Request(code string) {
	if m != nil {
		m.requests.WithLabelValues(code).Inc()
	}
}
