package otlp

import (
	"math"
	"slices"
	"time"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"

	"github.com/smartcloudops/smartcloudops/internal/ingest"
)

// The receiver's own outcomes of a data point, next to the Tracker's
// (kept, first_counter_sample, repeat, out_of_order, series_limit). Every
// data point of a decoded request gets exactly one.
const (
	outNoHost          = "no_host"           // its resource names no host
	outNonFinite       = "non_finite"        // NaN or ±Inf
	outNoRecordedValue = "no_recorded_value" // the flag: the series ended; it is forgotten
	outFuture          = "future"            // over MaxFutureSkew ahead of the server's clock
	outNoTimestamp     = "no_timestamp"      // time_unix_nano 0
	outBadInterval     = "bad_interval"      // a delta point without a start time before its time
	outUnsupported     = "unsupported"       // no value, or an unspecified temporality
	outNotSelected     = "not_selected"      // a mapped metric's point the feature does not use (free memory, loopback)
	outCollision       = "name_collision"    // another metric gives the same feature for the host and instant
	outOutOfRange      = "out_of_range"      // the folded value is over the service's magnitude bound
	outUndefined       = "undefined"         // a ratio over zero (no CPU time passed, no observations)
	outFeatureLimit    = "feature_limit"     // the host's row already holds anomaly.MaxMetricsPerSample features
	outInvalidRow      = "invalid_row"       // the host's row fails anomaly.Normalize (a host name it refuses)
	outNotStored       = "not_stored"        // delivery failed; the sender retries
	outTooMany         = "request_too_large" // the request had more than MaxDataPoints
)

// rejectedOutcomes are the outcomes partial_success reports as rejected:
// what the sender should hear about. A counter's first sample, a repeat, a
// point a mapping does not use and an honoured no-recorded-value flag are
// accepted.
var rejectedOutcomes = map[string]bool{
	outNoHost: true, outNonFinite: true, outFuture: true, outNoTimestamp: true, outBadInterval: true,
	outUnsupported: true, outCollision: true, outOutOfRange: true, outFeatureLimit: true, outInvalidRow: true,
	ingest.OutOfOrder.String(): true, ingest.OverLimit.String(): true,
}

// How a point's value(s) go through the Tracker.
type obsKind uint8

const (
	obsGauge   obsKind = iota // value as is
	obsCounter                // cumulative monotonic: rate, start time resets
	obsRate                   // delta: already a rate, ordered and deduplicated as a gauge
	obsForget                 // the no-recorded-value flag: forget the series
)

// target is where a point's value goes: a feature of its host's row and
// how it folds there.
type target struct {
	feature  string
	source   string // the metric's name, to tell two metrics giving one feature apart
	prio     int
	agg      aggKind
	scale    float64
	num, den bool
}

// record is one data point between decoding and the Tracker: what to
// observe and where the result goes. A histogram's point has a second
// value (its sum) with its own series id and targets.
type record struct {
	host     string
	t        int64 // aligned time, Unix ns
	start    int64 // start time, Unix ns, 0 when unknown
	kind     obsKind
	id, id2  uint64
	v, v2    float64
	has2     bool
	tgt      target  // the value's (a histogram's count rate)
	avg      *target // a histogram's mean (sum rate over count rate), shared by the metric's points
	selected bool    // false: a mapped metric's point the feature does not use
}

type rowKey struct {
	host string
	t    int64
}

// batch is one request's mapping state.
type batch struct {
	r      *Receiver
	tenant string
	now    time.Time
	counts map[string]int
	recs   []record
	rows   map[rowKey]map[string]*accum
	h      hasher
}

func (b *batch) count(outcome string, n int) {
	if n > 0 {
		b.counts[outcome] += n
	}
}

// collect turns the request's data points into records, counting those
// that go no further.
func (b *batch) collect(req *colmetricpb.ExportMetricsServiceRequest) {
	limit := b.now.Add(b.r.opt.MaxFutureSkew).UnixNano()
	for _, rm := range req.GetResourceMetrics() {
		resAttrs := rm.GetResource().GetAttributes()
		name := b.r.hostOf(resAttrs)
		b.h.h.Reset()
		b.h.attrs(resAttrs)
		resID := b.h.h.Sum64()
		for _, sm := range rm.GetScopeMetrics() {
			scope := sm.GetScope().GetName()
			for _, m := range sm.GetMetrics() {
				if name == "" {
					b.count(outNoHost, dataPoints(m))
					continue
				}
				b.metric(ingest.QualifiedHost(b.tenant, name), resID, scope, m, limit)
			}
		}
	}
}

// point is what every data point type shares.
type point interface {
	GetAttributes() []*commonpb.KeyValue
	GetStartTimeUnixNano() uint64
	GetTimeUnixNano() uint64
	GetFlags() uint32
}

// check counts and refuses a point that cannot be observed; it returns the
// point's time.
func (b *batch) check(p point, limit int64, values ...float64) (int64, bool) {
	t := p.GetTimeUnixNano()
	switch {
	case p.GetFlags()&uint32(metricpb.DataPointFlags_DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK) != 0:
		return int64(min(t, math.MaxInt64)), true // forgotten, counted by the caller
	case t == 0:
		b.count(outNoTimestamp, 1)
		return 0, false
	case t > uint64(limit):
		b.count(outFuture, 1)
		return 0, false
	}
	for _, v := range values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			b.count(outNonFinite, 1)
			return 0, false
		}
	}
	return int64(t), true
}

func (b *batch) metric(host string, resID uint64, scope string, m *metricpb.Metric, limit int64) {
	name := m.GetName()
	rl, mapped := hostRules[name]
	generic := func(suffix string, agg aggKind) target {
		return target{feature: featureName(name, suffix), source: name, prio: prioGeneric, agg: agg, scale: 1, den: true}
	}
	switch d := m.GetData().(type) {
	case *metricpb.Metric_Gauge:
		for _, p := range d.Gauge.GetDataPoints() {
			b.number(host, resID, scope, name, p, obsGauge, rl, mapped, generic("", aggMean), limit)
		}
	case *metricpb.Metric_Sum:
		kind := obsGauge // cumulative non-monotonic: an up-down counter's level
		switch {
		case d.Sum.GetAggregationTemporality() == metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA:
			kind = obsRate
		case d.Sum.GetAggregationTemporality() != metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE:
			b.count(outUnsupported, len(d.Sum.GetDataPoints()))
			return
		case d.Sum.GetIsMonotonic():
			kind = obsCounter
		}
		for _, p := range d.Sum.GetDataPoints() {
			b.number(host, resID, scope, name, p, kind, rl, mapped, generic("", aggSum), limit)
		}
	case *metricpb.Metric_Histogram:
		tmp, ts := d.Histogram.GetAggregationTemporality(), newDistTargets(name)
		for _, p := range d.Histogram.GetDataPoints() {
			b.distribution(host, resID, scope, name, p, tmp, p.GetCount(), p.Sum, ts, limit)
		}
	case *metricpb.Metric_ExponentialHistogram:
		tmp, ts := d.ExponentialHistogram.GetAggregationTemporality(), newDistTargets(name)
		for _, p := range d.ExponentialHistogram.GetDataPoints() {
			b.distribution(host, resID, scope, name, p, tmp, p.GetCount(), p.Sum, ts, limit)
		}
	case *metricpb.Metric_Summary:
		ts := newDistTargets(name)
		for _, p := range d.Summary.GetDataPoints() {
			sum := p.GetSum()
			b.distribution(host, resID, scope, name, p, metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE, p.GetCount(), &sum, ts, limit)
		}
	}
}

// seriesID hashes a series' identity; role tells a histogram's count and
// sum (and a kind change) apart.
func (b *batch) seriesID(resID uint64, scope, name string, role byte, attrs []*commonpb.KeyValue) uint64 {
	b.h.h.Reset()
	b.h.u64(resID)
	b.h.str(scope)
	b.h.str(name)
	b.h.u64(uint64(role))
	b.h.attrs(attrs)
	return b.h.h.Sum64()
}

func (b *batch) number(host string, resID uint64, scope, name string, p *metricpb.NumberDataPoint, kind obsKind, rl rule, mapped bool, gen target, limit int64) {
	var v float64
	switch x := p.GetValue().(type) {
	case *metricpb.NumberDataPoint_AsDouble:
		v = x.AsDouble
	case *metricpb.NumberDataPoint_AsInt:
		v = float64(x.AsInt)
	default:
		if p.GetFlags()&uint32(metricpb.DataPointFlags_DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK) == 0 {
			b.count(outUnsupported, 1)
			return
		}
	}
	t, ok := b.check(p, limit, v)
	if !ok {
		return
	}
	rec := record{host: host, t: t, kind: kind, id: b.seriesID(resID, scope, name, 'a'+byte(kind), p.GetAttributes()), v: v, tgt: gen, selected: true}
	if p.GetFlags()&uint32(metricpb.DataPointFlags_DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK) != 0 {
		rec.kind = obsForget
		b.recs = append(b.recs, rec)
		return
	}
	start := int64(min(p.GetStartTimeUnixNano(), math.MaxInt64))
	if kind == obsRate {
		if start <= 0 || start >= t {
			b.count(outBadInterval, 1)
			return
		}
		rec.v = v / (float64(t-start) / 1e9)
	}
	rec.start = start
	if mapped {
		f, num, den := rl.pick(p.GetAttributes())
		rec.tgt = target{feature: f, source: name, prio: rl.prio, agg: rl.agg, scale: rl.scale, num: num, den: den}
		rec.selected = den || num
	}
	b.recs = append(b.recs, rec)
}

// distribution reads a histogram's, exponential histogram's or summary's
// point: its count and sum are counters (or deltas) like a Sum's, giving
// <name>_rate (observations per second) and <name>_avg (their mean over
// the interval, Δsum/Δcount).
// distTargets are a distribution metric's two features: its rate and mean.
type distTargets struct {
	rate target
	avg  *target
}

func newDistTargets(name string) distTargets {
	return distTargets{
		rate: target{feature: featureName(name, suffixRate), source: name, prio: prioGeneric, agg: aggSum, scale: 1, den: true},
		avg:  &target{feature: featureName(name, suffixAvg), source: name, prio: prioGeneric, agg: aggRatio, scale: 1, num: true, den: true},
	}
}

func (b *batch) distribution(host string, resID uint64, scope, name string, p point, tmp metricpb.AggregationTemporality, count uint64, sum *float64, tgts distTargets, limit int64) {
	vals := []float64{float64(count)}
	if sum != nil {
		vals = append(vals, *sum)
	}
	t, ok := b.check(p, limit, vals...)
	if !ok {
		return
	}
	kind := obsCounter
	switch tmp {
	case metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE:
	case metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA:
		kind = obsRate
	default:
		b.count(outUnsupported, 1)
		return
	}
	attrs := p.GetAttributes()
	rec := record{host: host, t: t, kind: kind, id: b.seriesID(resID, scope, name, 'c', attrs), v: vals[0], selected: true, tgt: tgts.rate}
	if sum != nil {
		rec.has2, rec.id2, rec.v2 = true, b.seriesID(resID, scope, name, 's', attrs), *sum
		rec.avg = tgts.avg
	}
	if p.GetFlags()&uint32(metricpb.DataPointFlags_DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK) != 0 {
		rec.kind = obsForget
		b.recs = append(b.recs, rec)
		return
	}
	start := int64(min(p.GetStartTimeUnixNano(), math.MaxInt64))
	if kind == obsRate {
		if start <= 0 || start >= t {
			b.count(outBadInterval, 1)
			return
		}
		dt := float64(t-start) / 1e9
		rec.v /= dt
		rec.v2 /= dt
	}
	rec.start = start
	b.recs = append(b.recs, rec)
}

// dataPoints is how many data points m holds.
func dataPoints(m *metricpb.Metric) int {
	switch d := m.GetData().(type) {
	case *metricpb.Metric_Gauge:
		return len(d.Gauge.GetDataPoints())
	case *metricpb.Metric_Sum:
		return len(d.Sum.GetDataPoints())
	case *metricpb.Metric_Histogram:
		return len(d.Histogram.GetDataPoints())
	case *metricpb.Metric_ExponentialHistogram:
		return len(d.ExponentialHistogram.GetDataPoints())
	case *metricpb.Metric_Summary:
		return len(d.Summary.GetDataPoints())
	}
	return 0
}

// countDataPoints is how many data points req holds.
func countDataPoints(req *colmetricpb.ExportMetricsServiceRequest) int {
	n := 0
	for _, rm := range req.GetResourceMetrics() {
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				n += dataPoints(m)
			}
		}
	}
	return n
}

// align gives the points of one host that are within window of each
// other one time: the earliest of them. The hostmetrics receiver stamps
// each scraper's points with its own clock reading, milliseconds apart;
// aligned, one collection is one row of the host, which is what the
// multivariate model learns from, instead of one row per scraper.
// Alignment is per request, so a retry aligns the same way.
func (b *batch) align(window time.Duration) {
	if window <= 0 {
		return
	}
	byHost := map[string][]int64{}
	for _, r := range b.recs {
		byHost[r.host] = append(byHost[r.host], r.t)
	}
	to := map[rowKey]int64{}
	for host, ts := range byHost {
		slices.Sort(ts)
		ts = slices.Compact(ts)
		start := ts[0]
		for _, t := range ts {
			if t-start >= int64(window) {
				start = t
			}
			to[rowKey{host, t}] = start
		}
	}
	for i := range b.recs {
		b.recs[i].t = to[rowKey{b.recs[i].host, b.recs[i].t}]
	}
}
