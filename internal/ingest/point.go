package ingest

import (
	"cmp"
	"slices"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/anomaly"
)

// Point is one value of one feature of one host, after a receiver has
// mapped its series: Host is qualified by the tenant (QualifiedHost) and
// Metric is a feature name the anomaly service accepts.
type Point struct {
	Host   string
	Metric string
	Time   time.Time
	Value  float64
}

// QualifiedHost is the host name stored for name sent by tenant: the
// service's tenant rule is that a tenant's hosts are named "tenant/…", so a
// tenant's receiver never writes another tenant's hosts whatever its
// labels say. An empty tenant (auth off, or an operator token) keeps name.
func QualifiedHost(tenant, name string) string {
	if tenant == "" {
		return name
	}
	return tenant + "/" + name
}

// Rows groups points into one sample per host and instant, ordered by time
// and then host, which is the order the service learns best from. When two
// points give the same host, instant and metric the later one in points
// wins: a receiver resolves duplicates before this, so it happens only for
// two series the mapping folds into one feature.
func Rows(points []Point) []anomaly.Sample {
	type key struct {
		host string
		ns   int64
	}
	idx := make(map[key]int, len(points)/4+1)
	var rows []anomaly.Sample
	for _, p := range points {
		k := key{p.Host, p.Time.UnixNano()}
		i, ok := idx[k]
		if !ok {
			i = len(rows)
			idx[k] = i
			rows = append(rows, anomaly.Sample{Host: p.Host, Timestamp: p.Time.UTC(), Metrics: make(map[string]float64, 8)})
		}
		rows[i].Metrics[p.Metric] = p.Value
	}
	slices.SortStableFunc(rows, func(a, b anomaly.Sample) int {
		if c := a.Timestamp.Compare(b.Timestamp); c != 0 {
			return c
		}
		return cmp.Compare(a.Host, b.Host)
	})
	return rows
}
