package store

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/smartcloudops/smartcloudops/internal/latency"
)

// StatementLatency summarizes every statement the store has run since it
// opened, reads and writes together, in seconds: the count, sum and
// quantiles of smartcloudops_db_query_duration_seconds as a PromQL
// histogram_quantile over its buckets would give them. It reads the
// store's own histograms, so it answers the same whether or not they are
// registered anywhere. Results served from the query cache ran no
// statement and are not counted.
func (d *Diagnostics) StatementLatency() latency.HistogramSummary {
	hs := make([]*dto.Histogram, 0, 2)
	for _, h := range []prometheus.Histogram{d.metrics.readDur, d.metrics.writeDur} {
		var m dto.Metric
		if h.Write(&m) == nil {
			hs = append(hs, m.GetHistogram())
		}
	}
	return latency.FromHistograms(hs...)
}
