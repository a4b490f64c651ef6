package promwrite

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// FuzzParseSelectors: any text either parses into selectors that each
// need a non-empty match, or is refused; never a panic.
func FuzzParseSelectors(f *testing.F) {
	for _, s := range []string{DefaultSelect, `up`, `a{b="c"}`, `{a=~"x|y",b!="", c!~'z'}`, `x;y,z`, `{`, `a{b=}`, "a{b=`raw`}", `{a=""}`, `a{b="\x"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		sels, err := ParseSelectors(src)
		if err != nil {
			return
		}
		for _, s := range sels {
			if len(s) == 0 {
				t.Fatalf("%q: an empty selector", src)
			}
			empty := true
			for _, m := range s {
				empty = empty && m.Matches("")
			}
			if empty {
				t.Fatalf("%q: selector %s matches every series", src, s)
			}
		}
	})
}

// FuzzWrite feeds the decoder and the mapper arbitrary protobuf bytes
// (compressed as a sender would) of either version: every request is
// taken or refused with a status, never a panic nor a 5xx, with limits
// small enough that each run stays cheap.
func FuzzWrite(f *testing.F) {
	seed, _ := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series("node_cpu_seconds_total", 5, t0, "instance", "h:1", "cpu", "0", "mode", "idle"),
		series("node_memory_MemTotal_bytes", 100, t0, "instance", "h:1"),
		series("app_x_total", 1, t0, "host", "h", "smartcloudops", "true"),
	}}).Marshal()
	f.Add(seed, false)
	f.Add(seed, true)
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00}, false)
	f.Add([]byte{0x2a, 0x04, 0x0a, 0x02, 0x00, 0x01, 0x22, 0x01, 0x61}, true)
	sink := &fakeSink{}
	r := newTestReceiver(f, sink, func(o *Options) {
		o.MaxDecodedBytes, o.MaxSeries, o.MaxSamples = 64<<10, 256, 1024
	})
	f.Fuzz(func(t *testing.T, raw []byte, v2 bool) {
		ct := "application/x-protobuf"
		if v2 {
			ct += ";proto=io.prometheus.write.v2.Request"
		}
		body := snappy.Encode(nil, raw)
		_, err := r.Write(context.Background(), Request{ContentType: ct, ContentEncoding: "snappy", ContentLength: int64(len(body)), Body: bytes.NewReader(body)})
		var pe *Error
		if err != nil && (!errors.As(err, &pe) || pe.Status >= 500 || pe.Status < 400) {
			t.Fatalf("%v: not a 4xx refusal", err)
		}
		sink.mu.Lock()
		sink.got = sink.got[:0]
		sink.mu.Unlock()
	})
}
