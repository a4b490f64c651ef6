package otlp

import (
	"fmt"
	"hash/fnv"
	"strings"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"

	"github.com/smartcloudops/smartcloudops/internal/anomaly"
)

// featureName is the anomaly feature an OTel metric name becomes: lower
// case (OTel names are case-insensitive), every character other than a
// letter, digit or '_' turned into '_' (system.disk.io → system_disk_io),
// then suffix; a result over anomaly.MaxMetricNameLen keeps its head and
// ends in a hash of the whole name, so two long names stay two features.
// Spellings the service knows as aliases of a well-known feature ("cpu")
// become that feature, as they would through POST /api/v1/metrics.
func featureName(name, suffix string) string {
	var b strings.Builder
	b.Grow(len(name) + len(suffix))
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'A' && c <= 'Z':
			b.WriteByte(c + 'a' - 'A')
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_':
			b.WriteByte(c)
		default:
			b.WriteByte('_')
		}
	}
	s := b.String()
	if len(s)+len(suffix) > anomaly.MaxMetricNameLen {
		h := fnv.New32a()
		_, _ = h.Write([]byte(name))
		tag := fmt.Sprintf("_%08x", h.Sum32())
		s = s[:anomaly.MaxMetricNameLen-len(suffix)-len(tag)] + tag
	}
	return anomaly.CanonicalMetric(s + suffix)
}

// Suffixes of the two features a histogram, exponential histogram or
// summary gives: observations per second and their mean over the interval.
// "_avg", not "_mean": the service's explanations already name a feature's
// recent level "<feature>_mean".
const (
	suffixRate = "_rate"
	suffixAvg  = "_avg"
)

// aggKind is how the points of one metric that differ by attributes (CPUs,
// devices, routes, processes) fold into the one feature value a host's row
// holds at an instant. Folding keeps a host's row bounded whatever the
// attributes' cardinality.
type aggKind uint8

const (
	// aggSum adds: the fold of sums (OTel's Sum points are additive
	// across attributes) and of rates.
	aggSum aggKind = iota
	// aggMean averages: the fold of gauges, which are not additive (the
	// mean of utilisations stays a utilisation).
	aggMean
	// aggMax keeps the largest: the fullest filesystem.
	aggMax
	// aggRatio divides the selected points' sum by all points' sum: busy
	// CPU time over all CPU time, mean = Σsum / Σcount.
	aggRatio
)

// rule maps one well-known OTel metric (the Collector's hostmetrics
// receiver's names) onto a well-known feature, so an explanation reads
// cpu_usage whichever agent measured it.
type rule struct {
	// prio orders two rules that give one feature: the lower wins
	// (system.cpu.utilization over system.cpu.time); generic features
	// have prioGeneric.
	prio  int
	agg   aggKind
	scale float64
	// pick says which feature a point goes to, whether it is in the
	// ratio's numerator and denominator (or, for other folds, in at all).
	pick func(attrs []*commonpb.KeyValue) (feature string, num, den bool)
}

const prioGeneric = 2

// hostRules are the hostmetrics receiver's metrics mapped onto the
// well-known features; README's "Send OTLP metrics" has the same table.
var hostRules = map[string]rule{
	// Fractions of CPU time by state (and CPU): busy is all but idle.
	"system.cpu.utilization": {prio: 0, agg: aggRatio, scale: 100, pick: cpuBusy},
	// Seconds by state, as counters: their rates give the same ratio.
	"system.cpu.time": {prio: 1, agg: aggRatio, scale: 100, pick: cpuBusy},
	"system.memory.utilization": {prio: 0, agg: aggSum, scale: 100, pick: func(a []*commonpb.KeyValue) (string, bool, bool) {
		s := attr(a, "state")
		return anomaly.MetricMemory, s == "used", s == "used"
	}},
	// Bytes by state: used over used+free+buffered+cached, which is the
	// total on Linux (the slab states are inside cached).
	"system.memory.usage": {prio: 1, agg: aggRatio, scale: 100, pick: func(a []*commonpb.KeyValue) (string, bool, bool) {
		switch s := attr(a, "state"); s {
		case "used", "free", "buffered", "cached":
			return anomaly.MetricMemory, s == "used", true
		}
		return anomaly.MetricMemory, false, false
	}},
	// The fullest filesystem: one filling up is the anomaly, whatever the
	// others do.
	"system.filesystem.utilization": {prio: 0, agg: aggMax, scale: 100, pick: func([]*commonpb.KeyValue) (string, bool, bool) {
		return anomaly.MetricDisk, true, true
	}},
	// Bytes by device and direction, as counters: the rates summed over
	// the devices but loopback, which is not network traffic.
	"system.network.io": {prio: 0, agg: aggSum, scale: 1, pick: func(a []*commonpb.KeyValue) (string, bool, bool) {
		if attr(a, "device") == "lo" {
			return anomaly.MetricNetworkIn, false, false
		}
		switch attr(a, "direction") {
		case "receive":
			return anomaly.MetricNetworkIn, true, true
		case "transmit":
			return anomaly.MetricNetworkOut, true, true
		}
		return anomaly.MetricNetworkIn, false, false
	}},
	"system.cpu.load_average.1m": {prio: 0, agg: aggMean, scale: 1, pick: func([]*commonpb.KeyValue) (string, bool, bool) {
		return anomaly.MetricLoad, true, true
	}},
}

func cpuBusy(a []*commonpb.KeyValue) (string, bool, bool) {
	return anomaly.MetricCPU, attr(a, "state") != "idle", true
}

// attr is the string value of attribute key, or "".
func attr(attrs []*commonpb.KeyValue, key string) string {
	for _, kv := range attrs {
		if kv.GetKey() == key {
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}
