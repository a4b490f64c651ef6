package otlp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zst(t testing.TB, b []byte) []byte {
	t.Helper()
	w, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	return w.EncodeAll(b, nil)
}

func mustProto(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sampleRequest() *colmetricpb.ExportMetricsServiceRequest {
	return request(host("web-1", gauge("system.cpu.utilization",
		dp{t: at(0), v: 0.25, attrs: attrs("state", "user")}, dp{t: at(0), v: 0.75, attrs: attrs("state", "idle")})))
}

// manyPoints is a request of n gauge points of one host and metric, told
// apart by an attribute.
func manyPoints(n int) *colmetricpb.ExportMetricsServiceRequest {
	g := &metricpb.Gauge{DataPoints: make([]*metricpb.NumberDataPoint, n)}
	for i := range g.DataPoints {
		g.DataPoints[i] = dp{t: at(0), v: 1, attrs: attrs("i", fmt.Sprint(i))}.number()
	}
	return request(host("web-1", &metricpb.Metric{Name: "g", Data: &metricpb.Metric_Gauge{Gauge: g}}))
}

// wirePoints is a binary request of n copies of one gauge data point,
// written on the wire directly: a million points as structs would take the
// test longer than the receiver takes to refuse them.
func wirePoints(t testing.TB, n int) []byte {
	t.Helper()
	one := mustProto(t, dp{t: at(0), v: 1}.number())
	g := make([]byte, 0, n*(len(one)+2))
	for range n {
		g = protowire.AppendTag(g, 1, protowire.BytesType)
		g = protowire.AppendBytes(g, one)
	}
	var m []byte
	m = protowire.AppendTag(m, 1, protowire.BytesType)
	m = protowire.AppendString(m, "g")
	m = protowire.AppendTag(m, 5, protowire.BytesType)
	m = protowire.AppendBytes(m, g)
	rm := mustProto(t, host("web-1"))
	rm = protowire.AppendTag(rm, 2, protowire.BytesType)
	var sm []byte
	sm = protowire.AppendTag(sm, 2, protowire.BytesType)
	sm = protowire.AppendBytes(sm, m)
	rm = protowire.AppendBytes(rm, sm)
	var req []byte
	req = protowire.AppendTag(req, 1, protowire.BytesType)
	return protowire.AppendBytes(req, rm)
}

func TestWirePointsDecodes(t *testing.T) {
	req, err := Decode(bytes.NewReader(wirePoints(t, 3)), Protobuf, "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n := countDataPoints(req); n != 3 {
		t.Fatalf("%d points", n)
	}
	if n, err := wireCount(wirePoints(t, 5), 100); n != 5 || err != nil {
		t.Fatalf("wireCount = %d, %v", n, err)
	}
}

func TestExportAnswers(t *testing.T) {
	pb := mustProto(t, sampleRequest())
	js, err := protojson.Marshal(sampleRequest())
	if err != nil {
		t.Fatal(err)
	}
	fixture, err := os.ReadFile("testdata/hostmetrics.json")
	if err != nil {
		t.Fatal(err)
	}
	rejected := request(host("web-1", gauge("g", dp{t: at(0), v: 1}, dp{t: at(86400), v: 2, attrs: attrs("a", "b")})))
	bomb := gz(t, make([]byte, 16<<20)) // 16 MiB of zeros, 16 KiB on the wire
	million := wirePoints(t, 1_000_000)
	tests := []struct {
		name         string
		ct, encoding string
		body         []byte
		sinkErr      error
		opt          func(*Options)
		status       int
		rows         int
		retryAfter   bool
		msg          string // in the Status message or the partial success
	}{
		{"protobuf", "application/x-protobuf", "", pb, nil, nil, 200, 1, false, ""},
		{"protobuf, gzip", "application/x-protobuf", "gzip", gz(t, pb), nil, nil, 200, 1, false, ""},
		{"protobuf, zstd", "application/x-protobuf", "zstd", zst(t, pb), nil, nil, 200, 1, false, ""},
		{"JSON", "application/json", "", js, nil, nil, 200, 1, false, ""},
		{"JSON with charset, gzip", "application/json; charset=utf-8", "gzip", gz(t, js), nil, nil, 200, 1, false, ""},
		{"OTLP/JSON as senders write it", "application/json", "", fixture, nil, nil, 200, 1, false, ""},
		{"partial success", "application/x-protobuf", "", mustProto(t, rejected), nil, nil, 200, 1, false, "1 of 2 data points rejected: 1 future (future: over 1h0m0s ahead"},
		{"wrong content type", "text/plain", "", pb, nil, nil, 415, 0, false, "Content-Type"},
		{"no content type", "", "", pb, nil, nil, 415, 0, false, "Content-Type"},
		{"unknown content encoding", "application/x-protobuf", "br", pb, nil, nil, 415, 0, false, "Content-Encoding"},
		{"corrupt protobuf", "application/x-protobuf", "", []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2}, nil, nil, 400, 0, false, "malformed"},
		{"truncated protobuf", "application/x-protobuf", "", pb[:len(pb)-3], nil, nil, 400, 0, false, "malformed"},
		{"corrupt gzip", "application/x-protobuf", "gzip", []byte("not gzip at all"), nil, nil, 400, 0, false, "gzip"},
		{"truncated gzip", "application/x-protobuf", "gzip", gz(t, pb)[:20], nil, nil, 400, 0, false, "gzip"},
		{"malformed JSON", "application/json", "", []byte(`{"resourceMetrics":[{"resource":`), nil, nil, 400, 0, false, "malformed"},
		{"empty JSON", "application/json", "", nil, nil, nil, 400, 0, false, "empty"},
		{"huge body", "application/x-protobuf", "", million, nil, func(o *Options) { o.MaxDecodedBytes = 1 << 20 }, 413, 0, false, "OTLP_MAX_DECODED_BYTES"},
		{"gzip bomb", "application/x-protobuf", "gzip", bomb, nil, func(o *Options) { o.MaxDecodedBytes = 1 << 20 }, 413, 0, false, "decoded"},
		{"a million data points", "application/x-protobuf", "", million, nil, func(o *Options) { o.MaxDataPoints = 100_000 }, 413, 0, false, "OTLP_MAX_DATA_POINTS"},
		{"a million data points, gzip", "application/x-protobuf", "gzip", gz(t, million), nil, func(o *Options) { o.MaxDataPoints = 100_000 }, 413, 0, false, "OTLP_MAX_DATA_POINTS"},
		{"JSON over the data point limit", "application/json", "", js, nil, func(o *Options) { o.MaxDataPoints = 1 }, 413, 0, false, "OTLP_MAX_DATA_POINTS"},
		{"queue full", "application/x-protobuf", "", pb, errQueueFull, nil, 503, 0, true, "queue is full"},
		{"database down", "application/json", "", js, errDatabase, nil, 503, 0, true, "retry later"},
		{"request ended", "application/x-protobuf", "", pb, context.Canceled, nil, 503, 0, true, "retry later"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := &recordingSink{max: 1000, err: tc.sinkErr}
			reg := prometheus.NewRegistry()
			r := newTestReceiver(t, sink, func(o *Options) {
				o.Registerer = reg
				if tc.opt != nil {
					tc.opt(o)
				}
			})
			resp := r.Export(context.Background(), Request{ContentType: tc.ct, ContentEncoding: tc.encoding, Body: bytes.NewReader(tc.body)})
			if resp.Status != tc.status {
				t.Fatalf("status %d, want %d (err %v)", resp.Status, tc.status, resp.Err)
			}
			if got := len(sink.samples); got != tc.rows {
				t.Errorf("%d rows stored, want %d", got, tc.rows)
			}
			if (resp.RetryAfter > 0) != tc.retryAfter {
				t.Errorf("Retry-After %v", resp.RetryAfter)
			}
			wantCT := "application/x-protobuf"
			if strings.HasPrefix(tc.ct, "application/json") {
				wantCT = "application/json"
			}
			if resp.ContentType != wantCT {
				t.Errorf("Content-Type %q, want %q", resp.ContentType, wantCT)
			}
			msg := decodeAnswer(t, resp)
			if !strings.Contains(msg, tc.msg) {
				t.Errorf("message %q does not say %q", msg, tc.msg)
			}
			want := fmt.Sprintf(`
# HELP smartcloudops_ingest_requests_total Requests to a wire-format receiver, by HTTP status answered.
# TYPE smartcloudops_ingest_requests_total counter
smartcloudops_ingest_requests_total{code="%d",source="otlp"} 1
`, tc.status)
			if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "smartcloudops_ingest_requests_total"); err != nil {
				t.Error(err)
			}
		})
	}
}

// decodeAnswer reads the response body as the sender would: a response
// (its partial success message) on 200, a google.rpc.Status otherwise.
func decodeAnswer(t *testing.T, resp Response) string {
	t.Helper()
	unmarshal := proto.Unmarshal
	if resp.ContentType == "application/json" {
		unmarshal = func(b []byte, m proto.Message) error { return protojson.Unmarshal(b, m) }
	}
	if resp.Status == http.StatusOK {
		var out colmetricpb.ExportMetricsServiceResponse
		if err := unmarshal(resp.Body, &out); err != nil {
			t.Fatalf("response body: %v: %q", err, resp.Body)
		}
		return out.GetPartialSuccess().GetErrorMessage()
	}
	var st status.Status
	if err := unmarshal(resp.Body, &st); err != nil || st.Message == "" {
		t.Fatalf("status body: %v: %q", err, resp.Body)
	}
	return st.Message
}

func TestExportCountsEveryDataPoint(t *testing.T) {
	sink := &recordingSink{max: 1000}
	reg := prometheus.NewRegistry()
	r := newTestReceiver(t, sink, func(o *Options) { o.Registerer = reg; o.MaxDataPoints = 3 })
	req := request(host("web-1", gauge("g", dp{t: at(0), v: 1}, dp{t: at(0), v: 2, attrs: attrs("a", "b")})),
		resource(nil, gauge("g", dp{t: at(0), v: 3})))
	r.Export(context.Background(), Request{ContentType: "application/x-protobuf", Body: bytes.NewReader(mustProto(t, req))})
	// Refused before decoding: counted as a request (413), not as samples.
	r.Export(context.Background(), Request{ContentType: "application/x-protobuf", Body: bytes.NewReader(mustProto(t, manyPoints(4)))})
	sink.err = errDatabase
	r.Export(context.Background(), Request{ContentType: "application/x-protobuf", Body: bytes.NewReader(mustProto(t, request(host("web-2", gauge("g", dp{t: at(0), v: 1})))))})
	want := `
# HELP smartcloudops_ingest_samples_total Samples received by a wire-format receiver, by what became of them (kept is stored as a row's value).
# TYPE smartcloudops_ingest_samples_total counter
smartcloudops_ingest_samples_total{outcome="kept",source="otlp"} 2
smartcloudops_ingest_samples_total{outcome="no_host",source="otlp"} 1
smartcloudops_ingest_samples_total{outcome="not_stored",source="otlp"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "smartcloudops_ingest_samples_total"); err != nil {
		t.Fatal(err)
	}
}

// slowReader fails mid-body, as a client that goes away does.
type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	f.n--
	p[0] = 0x0a
	return 1, nil
}

func TestExportBodyReadFailure(t *testing.T) {
	r := newTestReceiver(t, &recordingSink{max: 1000}, nil)
	resp := r.Export(context.Background(), Request{ContentType: "application/x-protobuf", Body: &failingReader{n: 3}})
	if resp.Status != http.StatusBadRequest {
		t.Fatalf("status %d", resp.Status)
	}
	big := r.Export(context.Background(), Request{ContentType: "application/x-protobuf",
		Body: http.MaxBytesReader(nil, io.NopCloser(bytes.NewReader(make([]byte, 100))), 10)})
	if big.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("over the wire limit: status %d", big.Status)
	}
}

func BenchmarkExport(b *testing.B) {
	// 50 hosts × (4 hostmetrics gauges + a 20-route counter).
	var rms []*metricpb.ResourceMetrics
	for h := range 50 {
		var routes []dp
		for i := range 20 {
			routes = append(routes, dp{start: at(-100), t: at(0), v: float64(i), attrs: attrs("route", fmt.Sprint("/r", i))})
		}
		rms = append(rms, host(fmt.Sprint("web-", h),
			gauge("system.cpu.utilization", dp{t: at(0), v: 0.25, attrs: attrs("state", "user")}, dp{t: at(0), v: 0.75, attrs: attrs("state", "idle")}),
			gauge("system.memory.utilization", dp{t: at(0), v: 0.5, attrs: attrs("state", "used")}),
			gauge("system.filesystem.utilization", dp{t: at(0), v: 0.5}),
			gauge("system.cpu.load_average.1m", dp{t: at(0), v: 1}),
			counter("http.server.requests", routes...)))
	}
	body := gz(b, mustProto(b, request(rms...)))
	sink := &recordingSink{max: 1000}
	r, err := New(Options{Sink: sink, Now: func() time.Time { return t0 }})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		sink.reset()
		if resp := r.Export(context.Background(), Request{ContentType: "application/x-protobuf", ContentEncoding: "gzip", Body: bytes.NewReader(body)}); resp.Status != 200 {
			b.Fatal(resp.Status)
		}
	}
	b.ReportMetric(float64(50*25), "points/op")
}

// BenchmarkExportAtTheLimit is one request of OTLP_MAX_DATA_POINTS'
// default, 100 000 gauge points: 1000 hosts × 50 metrics × 2 attribute
// sets, the largest a default receiver decodes.
func BenchmarkExportAtTheLimit(b *testing.B) {
	var rms []*metricpb.ResourceMetrics
	for h := range 1000 {
		var ms []*metricpb.Metric
		for m := range 50 {
			ms = append(ms, gauge(fmt.Sprint("app.metric", m), dp{t: at(0), v: 1, attrs: attrs("k", "a")}, dp{t: at(0), v: 2, attrs: attrs("k", "b")}))
		}
		rms = append(rms, host(fmt.Sprint("web-", h), ms...))
	}
	body := mustProto(b, request(rms...))
	sink := &recordingSink{max: 1000}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		// A new receiver each time: every series is new, as on a first export.
		r, err := New(Options{Sink: sink, Now: func() time.Time { return t0 }, MaxDataPoints: 100_000, MaxDecodedBytes: 8 << 20})
		if err != nil {
			b.Fatal(err)
		}
		sink.reset()
		if resp := r.Export(context.Background(), Request{ContentType: "application/x-protobuf", Body: bytes.NewReader(body)}); resp.Status != 200 {
			b.Fatal(resp.Status, resp.Err)
		}
	}
}
