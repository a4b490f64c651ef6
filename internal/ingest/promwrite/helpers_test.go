package promwrite

import (
	"bytes"
	"context"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/smartcloudops/smartcloudops/internal/anomaly"
	"github.com/smartcloudops/smartcloudops/internal/ingest"
)

// t0 is the tests' scrape time; the receiver's clock stands a little after.
var t0 = time.Date(2026, 12, 8, 2, 0, 0, 0, time.UTC)

// fakeSink records what it is sent, as a unit test's stand-in for the
// anomaly service (the integration test uses the real one).
type fakeSink struct {
	mu    sync.Mutex
	got   []anomaly.Sample
	err   error
	batch int
}

func (f *fakeSink) Ingest(_ context.Context, s []anomaly.Sample) (anomaly.IngestReport, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return anomaly.IngestReport{}, f.err
	}
	f.got = append(f.got, s...)
	return anomaly.IngestReport{Accepted: len(s), Stored: int64(len(s))}, nil
}

func (f *fakeSink) MaxBatch() int {
	if f.batch == 0 {
		return 1000
	}
	return f.batch
}

// value is the metric of host at t over every row sent (rows of one
// instant are merged, as the store merges them).
func (f *fakeSink) value(host, metric string, t time.Time) (float64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.got {
		if s.Host == host && s.Timestamp.Equal(t) {
			if v, ok := s.Metrics[metric]; ok {
				return v, true
			}
		}
	}
	return 0, false
}

func (f *fakeSink) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.got)
}

func newTestReceiver(t testing.TB, sink *fakeSink, mod func(*Options)) *Receiver {
	t.Helper()
	o := Options{Sink: sink, Tracker: ingest.NewTracker(ingest.TrackerOptions{}),
		MaxBodyBytes: DefaultMaxBodyBytes, MaxDecodedBytes: DefaultMaxDecodedBytes, MaxSeries: DefaultMaxSeries,
		MaxSamples: DefaultMaxSamples, MaxFuture: DefaultMaxFuture, MaxAge: DefaultMaxAge,
		Now: func() time.Time { return t0.Add(30 * time.Second) }}
	if mod != nil {
		mod(&o)
	}
	r, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// exposition reads a text exposition file into series of one scrape at
// ts, labelled as Prometheus labels a scrape of job "node" at instance.
func exposition(t testing.TB, path, instance string, ts time.Time) []prompb.TimeSeries {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []prompb.TimeSeries
	for name, fam := range fams {
		for _, m := range fam.Metric {
			var v float64
			switch fam.GetType() {
			case dto.MetricType_COUNTER:
				v = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				v = m.GetGauge().GetValue()
			case dto.MetricType_UNTYPED:
				v = m.GetUntyped().GetValue()
			default:
				continue
			}
			lbls := []prompb.Label{{Name: "__name__", Value: name}, {Name: "instance", Value: instance}, {Name: "job", Value: "node"}}
			for _, lp := range m.Label {
				lbls = append(lbls, prompb.Label{Name: lp.GetName(), Value: lp.GetValue()})
			}
			sort.Slice(lbls, func(i, j int) bool { return lbls[i].Name < lbls[j].Name })
			out = append(out, prompb.TimeSeries{Labels: lbls, Samples: []prompb.Sample{{Value: v, Timestamp: ts.UnixMilli()}}})
		}
	}
	sort.Slice(out, func(i, j int) bool { return labelString(out[i].Labels) < labelString(out[j].Labels) })
	return out
}

func labelString(ls []prompb.Label) string {
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(l.Name + "=" + l.Value + ",")
	}
	return b.String()
}

// encode is what Prometheus sends: the marshalled request, snappy-compressed.
func encode(t testing.TB, req *prompb.WriteRequest) []byte {
	t.Helper()
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, raw)
}

func post(t testing.TB, r *Receiver, tenant string, series ...prompb.TimeSeries) (Response, error) {
	t.Helper()
	body := encode(t, &prompb.WriteRequest{Timeseries: series})
	return r.Write(context.Background(), Request{Tenant: tenant, ContentType: "application/x-protobuf", ContentEncoding: "snappy",
		ContentLength: int64(len(body)), Body: bytes.NewReader(body)})
}

func series(name string, v float64, ts time.Time, kv ...string) prompb.TimeSeries {
	lbls := []prompb.Label{{Name: "__name__", Value: name}}
	for i := 0; i+1 < len(kv); i += 2 {
		lbls = append(lbls, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	sort.Slice(lbls, func(i, j int) bool { return lbls[i].Name < lbls[j].Name })
	return prompb.TimeSeries{Labels: lbls, Samples: []prompb.Sample{{Value: v, Timestamp: ts.UnixMilli()}}}
}

func named(ss []prompb.TimeSeries, name string) []prompb.TimeSeries {
	var out []prompb.TimeSeries
	for _, s := range ss {
		if slices.ContainsFunc(s.Labels, func(l prompb.Label) bool { return l.Name == "__name__" && l.Value == name }) {
			out = append(out, s)
		}
	}
	return out
}

func labelsOf(kv ...string) labels.Labels { return labels.FromStrings(kv...) }

func labelsOfProm(kv ...string) []prompb.Label {
	var out []prompb.Label
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// validName checks a metric name against the anomaly service's rules.
func validName(name string) error {
	_, err := anomaly.Normalize(anomaly.Sample{Host: "h", Timestamp: t0, Metrics: map[string]float64{name: 1}})
	return err
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
