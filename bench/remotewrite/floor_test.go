package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/exp/api/remote"
)

// wireRequest is one request as the bench sends it: 2000 samples of a
// 10,000-series layout, marshalled and snappy-compressed.
func wireRequest(tb testing.TB, batch int) []byte {
	tb.Helper()
	u, err := newUniverse(10_000, 100)
	if err != nil {
		tb.Fatal(err)
	}
	g := newShardGen(u.partition(1)[0], 0, time.Unix(1_700_000_000, 0), 15*time.Second, batch)
	req, _ := g.nextRequest(batch)
	raw, err := req.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return snappy.Encode(nil, raw)
}

func TestFloorHandler(t *testing.T) {
	fs := &floorStore{}
	h := floorMux(fs)
	body := wireRequest(t, 2000)
	for _, tc := range []struct {
		name   string
		body   []byte
		header map[string]string
		want   int
	}{
		{"remote write 1.0", body, map[string]string{"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}, http.StatusNoContent},
		{"not snappy", []byte("plain"), map[string]string{"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}, http.StatusBadRequest},
		{"snappy of garbage", snappy.Encode(nil, []byte{0xff, 0xff, 0xff}), map[string]string{"Content-Encoding": "snappy"}, http.StatusBadRequest},
		{"gzip", body, map[string]string{"Content-Encoding": "gzip"}, http.StatusUnsupportedMediaType},
		{"remote write 2.0", body, map[string]string{"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"}, http.StatusUnsupportedMediaType},
	} {
		r := httptest.NewRequest(http.MethodPost, writePath, bytes.NewReader(tc.body))
		for k, v := range tc.header {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("%s: %d %s; want %d", tc.name, w.Code, w.Body, tc.want)
		}
	}
	if got := fs.stats(); got.Requests != 1 || got.Samples != 2000 || got.Failed != 1 {
		t.Fatalf("floor stats %+v; want 1 request, 2000 samples, 1 failed unmarshal", got)
	}
}

// BenchmarkDecodeFloor is the least a receiver can spend on a request:
// snappy decode and unmarshal into prompb.WriteRequest of one 2000-sample
// request shaped like Prometheus's (one TimeSeries a sample, full labels).
func BenchmarkDecodeFloor(b *testing.B) {
	body := wireRequest(b, 2000)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		var err error
		buf, err = snappy.Decode(buf[:cap(buf)], body)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := decodeWriteRequest(buf); err != nil || n != 2000 {
			b.Fatal(n, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/2000, "ns/sample")
}

// BenchmarkFloorHandler is the floor as the bench serves it: the
// library's handler (snappy middleware, content-type checks) around the
// same unmarshal, without the network.
func BenchmarkFloorHandler(b *testing.B) {
	body := wireRequest(b, 2000)
	h := remote.NewWriteHandler(&floorStore{}, remote.MessageTypes{remote.WriteV1MessageType})
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, writePath, bytes.NewReader(body))
		r.Header.Set("Content-Encoding", "snappy")
		r.Header.Set("Content-Type", "application/x-protobuf")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusNoContent {
			b.Fatal(w.Code, w.Body)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/2000, "ns/sample")
}

// BenchmarkGenerate is the bench's own cost per request (simulate, marshal,
// compress), which shares the machine with the targets.
func BenchmarkGenerate(b *testing.B) {
	u, err := newUniverse(10_000, 100)
	if err != nil {
		b.Fatal(err)
	}
	g := newShardGen(u.partition(1)[0], 0, time.Unix(1_700_000_000, 0), 15*time.Second, 2000)
	var raw, out []byte
	b.ReportAllocs()
	for b.Loop() {
		req, _ := g.nextRequest(2000)
		raw = raw[:0]
		if n := req.Size(); cap(raw) < n {
			raw = make([]byte, n)
		}
		raw = raw[:req.Size()]
		if _, err := req.MarshalToSizedBuffer(raw); err != nil {
			b.Fatal(err)
		}
		out = snappy.Encode(out[:cap(out)], raw)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/2000, "ns/sample")
	b.ReportMetric(float64(len(out)), "wire-bytes/req")
}
