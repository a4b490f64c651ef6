package alerting

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the notifier's Prometheus series. Labels are bounded: the
// configured Alertmanagers, and fixed reason sets.
type metrics struct {
	sent      *prometheus.CounterVec
	failed    *prometheus.CounterVec
	retries   *prometheus.CounterVec
	dropped   *prometheus.CounterVec
	untracked *prometheus.CounterVec
	resends   prometheus.Counter
	duration  *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer, n *Notifier) (*metrics, error) {
	const ns = "smartcloudops_alerts_"
	m := &metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "sent_total",
			Help: "Alerts Alertmanager accepted (firing, re-sent and resolved), by Alertmanager."}, []string{"alertmanager"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "failed_total",
			Help: "Alerts not delivered to an Alertmanager after the last attempt, by Alertmanager and reason (status_4xx, status_5xx, status_429, network, shutdown, encode)."},
			[]string{"alertmanager", "reason"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "send_retries_total",
			Help: "Posts to an Alertmanager tried again after a 5xx, a 429 or a network error, by Alertmanager and reason."}, []string{"alertmanager", "reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "dropped_total",
			Help: "Alert changes dropped before any post, by reason (queue_full, closed, unknown_alert: a resolution whose firing was never tracked)."}, []string{"reason"}),
		untracked: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "untracked_total",
			Help: "Firing alerts posted once and not re-sent, so Alertmanager expires them at their endsAt, by reason (active_full, caller)."}, []string{"reason"}),
		resends: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "resends_total",
			Help: "Rounds of re-sending the firing alerts."}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: ns + "send_duration_seconds",
			Help: "Time of one post to an Alertmanager, failed ones included.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}, []string{"alertmanager"}),
	}
	cs := []prometheus.Collector{m.sent, m.failed, m.retries, m.dropped, m.untracked, m.resends, m.duration,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "queue_length", Help: "Alert changes waiting to be posted."},
			func() float64 { return float64(len(n.queue)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "queue_capacity", Help: "Alert changes the queue holds before it drops (SMARTCLOUDOPS_ALERTMANAGER_QUEUE_SIZE)."},
			func() float64 { return float64(cap(n.queue)) }),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("alerting: register metrics: %w", err)
		}
	}
	// Series that exist from the start let rate() and alert rules see a
	// zero instead of "no data".
	for _, r := range []string{"queue_full", "closed", "unknown_alert"} {
		m.dropped.WithLabelValues(r)
	}
	for _, r := range []string{"active_full", "caller"} {
		m.untracked.WithLabelValues(r)
	}
	for _, t := range n.targets {
		m.sent.WithLabelValues(t.name)
		for _, r := range []string{"status_4xx", "status_5xx", "status_429", "network", "shutdown", "encode"} {
			m.failed.WithLabelValues(t.name, r)
		}
		for _, r := range []string{"status_5xx", "status_429", "network"} {
			m.retries.WithLabelValues(t.name, r)
		}
	}
	return m, nil
}
