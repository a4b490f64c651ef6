package otlp

import (
	"math"
	"slices"
	"strings"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/anomaly"
	"github.com/smartcloudops/smartcloudops/internal/ingest"
)

// wellKnown ranks the well-known features first when a row must be cut.
var wellKnown = func() map[string]int {
	m := map[string]int{}
	for i, n := range anomaly.WellKnownMetrics() {
		m[n] = i
	}
	return m
}()

// points turns the folded rows into the points Deliver takes. A row keeps
// at most anomaly.MaxMetricsPerSample features (well-known ones first,
// then by name), so one chatty host never loses its whole row to the
// service's limit; a row the service would refuse (its host name) is
// dropped here, with its points counted. It returns the points and, per
// outcome, the data points they carry, to count once delivery is known.
func (b *batch) points() ([]ingest.Point, map[string]int) {
	var pts []ingest.Point
	carried := map[string]int{}
	keys := make([]rowKey, 0, len(b.rows))
	for k := range b.rows {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y rowKey) int {
		if x.t != y.t {
			return int(min(max(x.t-y.t, -1), 1))
		}
		return strings.Compare(x.host, y.host)
	})
	for _, k := range keys {
		row := b.rows[k]
		names := make([]string, 0, len(row))
		vals := make(map[string]float64, len(row))
		for name, a := range row {
			v, ok := a.value()
			switch {
			case !ok:
				b.drop(a, outUndefined)
			case !(math.Abs(v) <= anomaly.MaxMetricMagnitude):
				b.drop(a, outOutOfRange)
			default:
				names = append(names, name)
				vals[name] = v
			}
		}
		slices.SortFunc(names, func(x, y string) int {
			rx, kx := wellKnown[x]
			ry, ky := wellKnown[y]
			switch {
			case kx && ky:
				return rx - ry
			case kx:
				return -1
			case ky:
				return 1
			}
			return strings.Compare(x, y)
		})
		if len(names) > anomaly.MaxMetricsPerSample {
			for _, name := range names[anomaly.MaxMetricsPerSample:] {
				b.drop(row[name], outFeatureLimit)
				delete(vals, name)
			}
			names = names[:anomaly.MaxMetricsPerSample]
		}
		if len(names) == 0 {
			continue
		}
		ts := time.Unix(0, k.t).UTC()
		if _, err := anomaly.Normalize(anomaly.Sample{Host: k.host, Timestamp: ts, Metrics: vals}); err != nil {
			for _, name := range names {
				b.drop(row[name], outInvalidRow)
			}
			continue
		}
		for _, name := range names {
			pts = append(pts, ingest.Point{Host: k.host, Metric: name, Time: ts, Value: vals[name]})
			for label, n := range row[name].points {
				carried[label] += n
			}
		}
	}
	return pts, carried
}

// drop counts a's points under outcome.
func (b *batch) drop(a *accum, outcome string) {
	for _, n := range a.points {
		b.count(outcome, n)
	}
}
