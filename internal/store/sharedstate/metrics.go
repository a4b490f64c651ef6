package sharedstate

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	notifications *prometheus.CounterVec
	syncs         *prometheus.CounterVec
	reconnects    prometheus.Counter
	resyncs       prometheus.Counter
	listening     prometheus.Gauge
	configRefused prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartcloudops_shared_state_notifications_total",
			Help: "Change notifications received on the listening connection, by topic (model, config), or malformed, or other_schema (another deployment on the same database).",
		}, []string{"topic"}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartcloudops_shared_state_syncs_total",
			Help: "Re-reads of a shared topic from the database, by topic and result (ok, error; an error is retried).",
		}, []string{"topic", "result"}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smartcloudops_shared_state_listen_reconnects_total",
			Help: "Times the LISTEN connection was lost and listening started again.",
		}),
		resyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smartcloudops_shared_state_resyncs_total",
			Help: "Periodic re-reads of every shared topic (the safety net for missed notifications).",
		}),
		listening: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "smartcloudops_shared_state_listening",
			Help: "1 while the LISTEN connection is up, 0 otherwise (always 0 on SQLite).",
		}),
		configRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smartcloudops_shared_state_config_refused_total",
			Help: "Runtime settings read from the database that this replica could not apply (unknown here, or out of its bounds).",
		}),
	}
	for _, t := range []string{"model", "config"} {
		for _, r := range []string{"ok", "error"} {
			m.syncs.WithLabelValues(t, r)
		}
		m.notifications.WithLabelValues(t)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.notifications, m.syncs, m.reconnects, m.resyncs, m.listening, m.configRefused} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("sharedstate: register metrics: %w", err)
		}
	}
	return m, nil
}
