package promwrite

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
)

// BenchmarkWrite measures decode + map + assembly of remote-write requests
// as Prometheus sends them (2,000 samples each: node_exporter series of
// many hosts, one scrape a request), against a sink that keeps nothing, so
// the figure is the receiver's own cost per sample.
func BenchmarkWrite(b *testing.B) {
	const hosts, perReq = 200, 2000
	base := exposition(b, scrape1, "x", t0)
	sink := &fakeSink{}
	r := newTestReceiver(b, sink, func(o *Options) { o.Now = func() time.Time { return t0.Add(time.Hour) } })
	// Bodies for successive scrapes, each request holding whole hosts.
	mk := func(scrape int) [][]byte {
		var bodies [][]byte
		var cur []prompb.TimeSeries
		n := 0
		for h := range hosts {
			for _, s := range base {
				ls := append([]prompb.Label(nil), s.Labels...)
				for i := range ls {
					if ls[i].Name == "instance" {
						ls[i].Value = fmt.Sprintf("10.0.%d.%d:9100", h/250, h%250)
					}
				}
				v := s.Samples[0].Value + float64(scrape)*float64(h+1)
				cur = append(cur, prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Value: v, Timestamp: t0.Add(time.Duration(scrape) * 15 * time.Second).UnixMilli()}}})
				n++
				if n == perReq {
					bodies = append(bodies, encode(b, &prompb.WriteRequest{Timeseries: cur}))
					cur, n = nil, 0
				}
			}
		}
		if len(cur) > 0 {
			bodies = append(bodies, encode(b, &prompb.WriteRequest{Timeseries: cur}))
		}
		return bodies
	}
	const scrapes = 64
	all := make([][][]byte, scrapes)
	for i := range all {
		all[i] = mk(i)
	}
	samples := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		for _, body := range all[i%scrapes] {
			if _, err := r.Write(context.Background(), Request{ContentType: "application/x-protobuf", ContentEncoding: "snappy", ContentLength: int64(len(body)), Body: bytes.NewReader(body)}); err != nil {
				b.Fatal(err)
			}
		}
		samples += hosts * len(base)
		sink.mu.Lock()
		sink.got = sink.got[:0]
		sink.mu.Unlock()
	}
	b.ReportMetric(float64(samples)/b.Elapsed().Seconds(), "samples/s")
}
