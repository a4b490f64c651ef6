package otlp

import (
	"bytes"
	"context"
	"math"
	"os"
	"testing"

	"github.com/smartcloudops/smartcloudops/internal/anomaly"
)

// FuzzExport drives decode and mapping with arbitrary bodies in both
// encodings: never a panic, every answer a status OTLP/HTTP defines, every
// data point of a decoded request counted once, and every row handed on a
// row the anomaly service accepts.
func FuzzExport(f *testing.F) {
	js, err := os.ReadFile("testdata/hostmetrics.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(false, mustProto(f, sampleRequest()))
	f.Add(false, mustProto(f, request(host("web-1",
		counter("system.network.io", dp{start: at(-10), t: at(0), v: 5, attrs: attrs("direction", "receive")}),
		histogram("h", delta, hp{start: at(-10), t: at(0), count: 3, sum: 1.5})))))
	f.Add(false, wirePoints(f, 3))
	f.Add(true, js)
	f.Add(true, []byte(`{"resourceMetrics":[{"resource":{"attributes":[{"key":"host.name","value":{"stringValue":"h"}}]},"scopeMetrics":[{"metrics":[{"name":"g","gauge":{"dataPoints":[{"timeUnixNano":"1795867200000000000","asDouble":"NaN"}]}}]}]}]}`))
	f.Fuzz(func(t *testing.T, isJSON bool, body []byte) {
		sink := &recordingSink{max: 7}
		r := newTestReceiver(t, sink, func(o *Options) { o.MaxDecodedBytes = 1 << 20; o.MaxDataPoints = 1000; o.MaxSeriesPerTenant = 500 })
		ct := "application/x-protobuf"
		if isJSON {
			ct = "application/json"
		}
		resp := r.Export(context.Background(), Request{Tenant: "fz", ContentType: ct, Body: bytes.NewReader(body)})
		switch resp.Status {
		case 200:
			total := 0
			for _, n := range resp.Result.Outcomes {
				total += n
			}
			if total != resp.Result.Points {
				t.Fatalf("%d outcomes for %d points: %v", total, resp.Result.Points, resp.Result.Outcomes)
			}
		case 400, 413:
			if len(sink.samples) != 0 {
				t.Fatalf("refused with %d but stored %d rows", resp.Status, len(sink.samples))
			}
		default:
			t.Fatalf("status %d: %v", resp.Status, resp.Err)
		}
		for _, s := range sink.samples {
			if _, err := anomaly.Normalize(s); err != nil {
				t.Fatalf("a row the service refuses: %v", err)
			}
			for m, v := range s.Metrics {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("%s = %v", m, v)
				}
			}
		}
	})
}
