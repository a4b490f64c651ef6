package promwrite

import (
	"math"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
)

// TestConcurrentShards sends the scrapes of several hosts the way
// Prometheus's parallel shards do: each scrape's series split over four
// concurrent requests. Every host gets its cpu_usage at every scrape after
// the first, equal to the value computed from the whole scrape.
func TestConcurrentShards(t *testing.T) {
	sink := &fakeSink{}
	r := newTestReceiver(t, sink, func(o *Options) { o.Now = func() time.Time { return t0.Add(10 * time.Minute) } })
	s1 := exposition(t, scrape1, "x", t0)
	s2 := exposition(t, scrape2, "x", t0)
	const hosts, shards = 8, 4
	scrapes := [][]prompb.TimeSeries{s1, s2, s1, s2} // a counter going down reads as a reset
	for k, base := range scrapes {
		ts := t0.Add(time.Duration(k) * 15 * time.Second)
		parts := make([][]prompb.TimeSeries, shards)
		for h := range hosts {
			for i, s := range base {
				ls := append([]prompb.Label(nil), s.Labels...)
				for j := range ls {
					if ls[j].Name == "instance" {
						ls[j].Value = "host-" + string(rune('a'+h))
					}
				}
				parts[(i+h)%shards] = append(parts[(i+h)%shards], prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Value: s.Samples[0].Value, Timestamp: ts.UnixMilli()}}})
			}
		}
		var wg sync.WaitGroup
		for _, p := range parts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := post(t, r, "", p...); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	want := expected(t, 15)["cpu_usage"]
	for h := range hosts {
		host := "host-" + string(rune('a'+h))
		got, ok := sink.value(host, "cpu_usage", t0.Add(15*time.Second))
		if !ok || math.Abs(got-want) > 1e-9 {
			t.Errorf("%s: cpu_usage %v (present %v), want %v", host, got, ok, want)
		}
		for k := 2; k < len(scrapes); k++ {
			if _, ok := sink.value(host, "cpu_usage", t0.Add(time.Duration(k)*15*time.Second)); !ok {
				t.Errorf("%s: no cpu_usage at scrape %d", host, k)
			}
		}
	}
}

func TestMetadataMarksCounters(t *testing.T) {
	sink := &fakeSink{}
	r := newTestReceiver(t, sink, nil)
	md := encode(t, &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "jobs_done"}}})
	if _, err := r.Write(t.Context(), Request{ContentType: "application/x-protobuf", ContentEncoding: "snappy", ContentLength: int64(len(md)), Body: bytesReader(md)}); err != nil {
		t.Fatal(err)
	}
	host := []string{"instance", "h", "smartcloudops", "true"}
	for _, s := range []prompb.TimeSeries{series("jobs_done", 10, t0, host...), series("jobs_done", 70, t0.Add(30*time.Second), host...)} {
		if _, err := post(t, r, "", s); err != nil {
			t.Fatal(err)
		}
	}
	if v, ok := sink.value("h", "jobs_done_rate", t0.Add(30*time.Second)); !ok || v != 2 {
		t.Fatalf("jobs_done_rate = %v %v, want 2 per second (metadata said counter)", v, ok)
	}
}
