package otlp

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"

	"github.com/smartcloudops/smartcloudops/internal/anomaly"
)

// t0 is the tests' base time; the receiver's clock is a minute after it.
var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

func ns(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixNano())
}

// recordingSink is a unit-test stand-in for the anomaly service; the real
// service is behind the integration tests.
type recordingSink struct {
	mu      sync.Mutex
	max     int
	samples []anomaly.Sample
	err     error
}

func (s *recordingSink) MaxBatch() int { return s.max }

func (s *recordingSink) Ingest(_ context.Context, samples []anomaly.Sample) (anomaly.IngestReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return anomaly.IngestReport{}, s.err
	}
	s.samples = append(s.samples, samples...)
	return anomaly.IngestReport{Accepted: len(samples), Stored: int64(len(samples))}, nil
}

// flat lists what the sink got as "host metric time value" facts.
type fact struct {
	host, metric string
	t            time.Time
	v            float64
}

func (s *recordingSink) facts() []fact {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []fact
	for _, smp := range s.samples {
		for m, v := range smp.Metrics {
			out = append(out, fact{smp.Host, m, smp.Timestamp, v})
		}
	}
	sortFacts(out)
	return out
}

func (s *recordingSink) reset() {
	s.mu.Lock()
	s.samples = nil
	s.mu.Unlock()
}

func sortFacts(f []fact) {
	sort.Slice(f, func(i, j int) bool {
		if !f[i].t.Equal(f[j].t) {
			return f[i].t.Before(f[j].t)
		}
		if f[i].host != f[j].host {
			return f[i].host < f[j].host
		}
		return f[i].metric < f[j].metric
	})
}

func newTestReceiver(t *testing.T, sink *recordingSink, mod func(*Options)) *Receiver {
	t.Helper()
	o := Options{Sink: sink, Now: func() time.Time { return t0.Add(time.Minute) }, AlignWindow: time.Second}
	if mod != nil {
		mod(&o)
	}
	r, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// ---- request builders ----

func kv(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func request(rms ...*metricpb.ResourceMetrics) *colmetricpb.ExportMetricsServiceRequest {
	return &colmetricpb.ExportMetricsServiceRequest{ResourceMetrics: rms}
}

func resource(attrs []*commonpb.KeyValue, ms ...*metricpb.Metric) *metricpb.ResourceMetrics {
	return &metricpb.ResourceMetrics{
		Resource:     &resourcepb.Resource{Attributes: attrs},
		ScopeMetrics: []*metricpb.ScopeMetrics{{Scope: &commonpb.InstrumentationScope{Name: "test"}, Metrics: ms}},
	}
}

func host(name string, ms ...*metricpb.Metric) *metricpb.ResourceMetrics {
	return resource([]*commonpb.KeyValue{kv("host.name", name)}, ms...)
}

type dp struct {
	start, t time.Time
	v        float64
	attrs    []*commonpb.KeyValue
	flags    uint32
}

func (d dp) number() *metricpb.NumberDataPoint {
	p := &metricpb.NumberDataPoint{Attributes: d.attrs, TimeUnixNano: ns(d.t), Value: &metricpb.NumberDataPoint_AsDouble{AsDouble: d.v}, Flags: d.flags}
	if !d.start.IsZero() {
		p.StartTimeUnixNano = ns(d.start)
	}
	return p
}

func numbers(ds []dp) []*metricpb.NumberDataPoint {
	out := make([]*metricpb.NumberDataPoint, len(ds))
	for i, d := range ds {
		out[i] = d.number()
	}
	return out
}

func gauge(name string, ds ...dp) *metricpb.Metric {
	return &metricpb.Metric{Name: name, Data: &metricpb.Metric_Gauge{Gauge: &metricpb.Gauge{DataPoints: numbers(ds)}}}
}

const (
	cumulative = metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE
	delta      = metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA
)

func sum(name string, tmp metricpb.AggregationTemporality, monotonic bool, ds ...dp) *metricpb.Metric {
	return &metricpb.Metric{Name: name, Data: &metricpb.Metric_Sum{Sum: &metricpb.Sum{AggregationTemporality: tmp, IsMonotonic: monotonic, DataPoints: numbers(ds)}}}
}

func counter(name string, ds ...dp) *metricpb.Metric { return sum(name, cumulative, true, ds...) }

type hp struct {
	start, t time.Time
	count    uint64
	sum      float64
	attrs    []*commonpb.KeyValue
}

func histogram(name string, tmp metricpb.AggregationTemporality, ps ...hp) *metricpb.Metric {
	h := &metricpb.Histogram{AggregationTemporality: tmp}
	for _, p := range ps {
		s := p.sum
		h.DataPoints = append(h.DataPoints, &metricpb.HistogramDataPoint{Attributes: p.attrs, StartTimeUnixNano: ns(p.start), TimeUnixNano: ns(p.t),
			Count: p.count, Sum: &s, BucketCounts: []uint64{p.count}, ExplicitBounds: nil})
	}
	return &metricpb.Metric{Name: name, Data: &metricpb.Metric_Histogram{Histogram: h}}
}

var errQueueFull = &anomaly.QueueFullError{Depth: 10, Capacity: 10, RetryAfter: 2 * time.Second}

var errDatabase = errors.New("database is closed")

func expHistogram(name string, tmp metricpb.AggregationTemporality, ps ...hp) *metricpb.Metric {
	h := &metricpb.ExponentialHistogram{AggregationTemporality: tmp}
	for _, p := range ps {
		s := p.sum
		h.DataPoints = append(h.DataPoints, &metricpb.ExponentialHistogramDataPoint{Attributes: p.attrs, StartTimeUnixNano: ns(p.start), TimeUnixNano: ns(p.t),
			Count: p.count, Sum: &s, Scale: 2, Positive: &metricpb.ExponentialHistogramDataPoint_Buckets{BucketCounts: []uint64{p.count}}})
	}
	return &metricpb.Metric{Name: name, Data: &metricpb.Metric_ExponentialHistogram{ExponentialHistogram: h}}
}

func summary(name string, ps ...hp) *metricpb.Metric {
	sm := &metricpb.Summary{}
	for _, p := range ps {
		sm.DataPoints = append(sm.DataPoints, &metricpb.SummaryDataPoint{Attributes: p.attrs, StartTimeUnixNano: ns(p.start), TimeUnixNano: ns(p.t),
			Count: p.count, Sum: p.sum})
	}
	return &metricpb.Metric{Name: name, Data: &metricpb.Metric_Summary{Summary: sm}}
}
