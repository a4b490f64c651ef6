package promwrite

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/smartcloudops/smartcloudops/internal/ingest"
)

const (
	scrape1 = "testdata/node_exporter_scrape1.prom"
	scrape2 = "testdata/node_exporter_scrape2.prom"
)

// expected computes the features from the two scrapes' text, the way an
// operator would from node_exporter's page.
func expected(t *testing.T, dt float64) map[string]float64 {
	a := exposition(t, scrape1, "x", t0)
	b := exposition(t, scrape2, "x", t0)
	val := func(ss []prompb.TimeSeries, name, lname, lvalue string) (sum float64) {
		for _, s := range named(ss, name) {
			if lname == "" || get(toLabels(s.Labels), lname) == lvalue {
				sum += s.Samples[0].Value
			}
		}
		return sum
	}
	idle := val(b, "node_cpu_seconds_total", "mode", "idle") - val(a, "node_cpu_seconds_total", "mode", "idle")
	all := val(b, "node_cpu_seconds_total", "", "") - val(a, "node_cpu_seconds_total", "", "")
	return map[string]float64{
		"cpu_usage":    100 * (1 - idle/all),
		"memory_usage": 100 * (1 - val(b, "node_memory_MemAvailable_bytes", "", "")/val(b, "node_memory_MemTotal_bytes", "", "")),
		"disk_usage":   100 * (1 - val(b, "node_filesystem_avail_bytes", "mountpoint", "/")/val(b, "node_filesystem_size_bytes", "mountpoint", "/")),
		"network_in":   (val(b, "node_network_receive_bytes_total", "", "") - val(a, "node_network_receive_bytes_total", "", "")) / dt,
		"network_out":  (val(b, "node_network_transmit_bytes_total", "", "") - val(a, "node_network_transmit_bytes_total", "", "")) / dt,
		"load_average": val(b, "node_load1", "", ""),
	}
}

func toLabels(ls []prompb.Label) []label {
	out := make([]label, len(ls))
	for i, l := range ls {
		out[i] = label{l.Name, l.Value}
	}
	return out
}

func TestNodeExporterScrapesBecomeFeatures(t *testing.T) {
	sink := &fakeSink{}
	r := newTestReceiver(t, sink, nil)
	t1 := t0.Add(15 * time.Second)
	if _, err := post(t, r, "", exposition(t, scrape1, "10.0.0.1:9100", t0)...); err != nil {
		t.Fatal(err)
	}
	if _, err := post(t, r, "", exposition(t, scrape2, "10.0.0.1:9100", t1)...); err != nil {
		t.Fatal(err)
	}
	for metric, want := range expected(t, 15) {
		got, ok := sink.value("10.0.0.1", metric, t1)
		if !ok || math.Abs(got-want) > 1e-9*max(1, math.Abs(want)) {
			t.Errorf("%s = %v (present %v), want %v", metric, got, ok, want)
		}
	}
	// Gauges need no second scrape.
	if _, ok := sink.value("10.0.0.1", "memory_usage", t0); !ok {
		t.Error("memory_usage missing at the first scrape")
	}
	if _, ok := sink.value("10.0.0.1", "cpu_usage", t0); ok {
		t.Error("cpu_usage at the first scrape, where counters have no rate yet")
	}
}

func TestCPUAssembledAcrossSplitRequests(t *testing.T) {
	sink := &fakeSink{}
	r := newTestReceiver(t, sink, nil)
	t1 := t0.Add(15 * time.Second)
	if _, err := post(t, r, "acme", exposition(t, scrape1, "web-1", t0)...); err != nil {
		t.Fatal(err)
	}
	s2 := exposition(t, scrape2, "web-1", t1)
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(s2), func(i, j int) { s2[i], s2[j] = s2[j], s2[i] })
	// Three "shards": the cpu series end up in all of them.
	parts := [][]prompb.TimeSeries{s2[:len(s2)/3], s2[len(s2)/3 : 2*len(s2)/3], s2[2*len(s2)/3:]}
	want := expected(t, 15)["cpu_usage"]
	for i, p := range parts {
		if _, err := post(t, r, "acme", p...); err != nil {
			t.Fatal(err)
		}
		_, ok := sink.value("acme/web-1", "cpu_usage", t1)
		if last := i == len(parts)-1; ok != last {
			t.Fatalf("after part %d of %d: cpu_usage present %v", i+1, len(parts), ok)
		}
	}
	got, _ := sink.value("acme/web-1", "cpu_usage", t1)
	if math.Abs(got-want) > 1e-9 {
		t.Fatalf("cpu_usage %v, want %v", got, want)
	}
	// A retry of the part that completed it gives the same value again,
	// so a retry after a failed store rebuilds the row.
	before := sink.count()
	if _, err := post(t, r, "acme", parts[2]...); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range sink.got[before:] {
		if v, ok := s.Metrics["cpu_usage"]; ok {
			n++
			if v != got {
				t.Fatalf("retried cpu_usage %v, want %v", v, got)
			}
		}
	}
	if n != 1 {
		t.Fatalf("the retry carried cpu_usage %d times, want once", n)
	}
}

func TestAssemblerDropsAnIncompleteInstant(t *testing.T) {
	var emitted, dropped int
	a := newAssembler(time.Hour, func(_ feature, ok bool) {
		if ok {
			emitted++
		} else {
			dropped++
		}
	})
	k := groupKey{"", "h", featNetIn}
	in := func(id uint64, t int64) input { return input{key: k, id: id, t: t, v: 1, roles: 1, ok: true} }
	// Two devices at 1 and 2 give the count; at 3 one device is missing,
	// and instant 4's completion ends 3 unfinished: its shards have moved
	// past it.
	var out []assembled
	for _, x := range []input{in(1, 1), in(2, 1), in(1, 2), in(2, 2), in(1, 3)} {
		out = a.add(0, []input{x}, out)
	}
	for ts := int64(4); ts <= 7; ts++ {
		out = a.add(0, []input{in(1, ts), in(2, ts)}, out)
	}
	for _, o := range out {
		if o.t == 3 {
			t.Fatalf("instant 3 emitted from half its inputs: %+v", o)
		}
	}
	// Instant 1 has no history to learn its count from, so it is dropped
	// too (a counter's first instant has no rates anyway).
	if dropped != 2 || emitted != 5 {
		t.Fatalf("emitted %d dropped %d, want 5 and 2", emitted, dropped)
	}
}

// A Prometheus catching up lets one shard run tens of scrapes ahead of
// another; a two-input feature whose inputs sit on different shards still
// completes every instant once the slow shard catches up.
func TestAssemblerWaitsForALaggingShard(t *testing.T) {
	var emitted, dropped int
	a := newAssembler(time.Hour, func(_ feature, ok bool) {
		if ok {
			emitted++
		} else {
			dropped++
		}
	})
	k := groupKey{"", "h", featMemory}
	const lag = 40
	var out []assembled
	for ts := int64(1); ts <= lag; ts++ { // the fast shard: MemAvailable
		out = a.add(0, []input{{key: k, id: 1, t: ts, v: 25, roles: 1, ok: true}}, out)
	}
	for ts := int64(1); ts <= lag; ts++ { // the slow shard: MemTotal
		out = a.add(0, []input{{key: k, id: 2, t: ts, v: 100, roles: 2, ok: true}}, out)
	}
	if emitted != lag || dropped != 0 || len(out) != lag {
		t.Fatalf("emitted %d dropped %d values %d, want %d, 0, %d", emitted, dropped, len(out), lag, lag)
	}
	for _, o := range out {
		if o.value != 75 {
			t.Fatalf("memory_usage %v at %d, want 75", o.value, o.t)
		}
	}
	if n := len(a.groups[k].slots); n > maxAssembleDepth {
		t.Fatalf("group holds %d slots, more than %d", n, maxAssembleDepth)
	}
}

// A learned count grows when a done instant gets an input it had not
// seen (a new device, or a lagging shard's first series): the next
// instants wait for the new count.
func TestAssemblerLearnsAGrownCount(t *testing.T) {
	a := newAssembler(time.Hour, nil)
	k := groupKey{"", "h", featNetIn}
	in := func(id uint64, ts int64) input { return input{key: k, id: id, t: ts, v: 1, roles: 1, ok: true} }
	var out []assembled
	for ts := int64(1); ts <= 2; ts++ {
		out = a.add(0, []input{in(1, ts), in(2, ts)}, out)
	}
	out = a.add(0, []input{in(3, 2)}, out) // a third device, seen late at 2
	n := len(out)
	out = a.add(0, []input{in(1, 3), in(2, 3)}, out)
	if len(out) != n {
		t.Fatalf("instant 3 emitted from 2 of 3 devices: %+v", out[n:])
	}
	out = a.add(0, []input{in(3, 3)}, out)
	if len(out) != n+1 || out[n].value != 3 {
		t.Fatalf("instant 3 with all three devices: %+v, want one value 3", out[n:])
	}
}

// outcomes reads smartcloudops_ingest_samples_total by outcome.
func outcomes(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "smartcloudops_ingest_samples_total" {
			continue
		}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "outcome" {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

func TestSampleOutcomes(t *testing.T) {
	stale := math.Float64frombits(staleNaN)
	host := []string{"instance", "h:9100", "smartcloudops", "true"}
	tests := []struct {
		name      string
		series    []prompb.TimeSeries
		capSeries int
		status    int // 0: accepted
		want      map[string]float64
		stored    int
	}{
		{"stale marker forgets", []prompb.TimeSeries{series("app_queue", 5, t0, host...), series("app_queue", stale, t0.Add(time.Second), host...)},
			0, 0, map[string]float64{"kept": 1, "stale": 1}, 1},
		{"NaN and Inf skipped, the rest kept", []prompb.TimeSeries{series("app_a", math.NaN(), t0, host...), series("app_b", math.Inf(1), t0, host...), series("app_c", 1, t0, host...)},
			0, 0, map[string]float64{"kept": 1, "non_finite": 2}, 1},
		{"only future samples: 400, nothing stored", []prompb.TimeSeries{series("app_a", 1, t0.Add(time.Hour), host...)},
			0, http.StatusBadRequest, map[string]float64{"out_of_bounds": 1}, 0},
		{"future next to good: good kept", []prompb.TimeSeries{series("app_a", 1, t0.Add(time.Hour), host...), series("app_b", 1, t0, host...)},
			0, 0, map[string]float64{"out_of_bounds": 1, "kept": 1}, 1},
		{"too old", []prompb.TimeSeries{series("app_a", 1, t0.Add(-48*time.Hour), host...), series("app_b", 1, t0, host...)},
			0, 0, map[string]float64{"out_of_bounds": 1, "kept": 1}, 1},
		{"not selected and no host", []prompb.TimeSeries{series("go_goroutines", 1, t0, "instance", "h"), series("app_a", 1, t0, "smartcloudops", "true")},
			0, 0, map[string]float64{"not_selected": 1, "no_host": 1}, 0},
		{"series cap", []prompb.TimeSeries{series("app_a", 1, t0, host...), series("app_b", 1, t0, host...), series("app_c", 1, t0, host...)},
			2, 0, map[string]float64{"kept": 2, "series_limit": 1}, 1},
		{"series cap, all refused: 400", []prompb.TimeSeries{series("app_a", 1, t0, host...), series("app_b", 1, t0, host...)},
			-1, http.StatusBadRequest, map[string]float64{"series_limit": 2}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := &fakeSink{}
			reg := prometheus.NewRegistry()
			tr := ingest.NewTracker(ingest.TrackerOptions{MaxSeriesPerTenant: max(tc.capSeries, 0)})
			if tc.capSeries < 0 {
				tr = ingest.NewTracker(ingest.TrackerOptions{MaxSeriesPerTenant: 1})
				tr.Observe("", 1, ingest.Gauge, t0, 1) // the tenant is full
			}
			r := newTestReceiver(t, sink, func(o *Options) { o.Registerer = reg; o.Tracker = tr })
			_, err := post(t, r, "", tc.series...)
			var pe *Error
			switch {
			case tc.status == 0 && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.status != 0 && (!errors.As(err, &pe) || pe.Status != tc.status):
				t.Fatalf("got %v, want status %d", err, tc.status)
			}
			got := outcomes(t, reg)
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("outcome %s = %v, want %v (all: %v)", k, got[k], v, got)
				}
			}
			if sink.count() != tc.stored {
				t.Errorf("%d rows stored, want %d", sink.count(), tc.stored)
			}
		})
	}
}

func TestRepeatAndOutOfOrder(t *testing.T) {
	sink := &fakeSink{}
	reg := prometheus.NewRegistry()
	r := newTestReceiver(t, sink, func(o *Options) { o.Registerer = reg })
	host := []string{"instance", "h", "smartcloudops", "true"}
	for _, s := range []prompb.TimeSeries{
		series("jobs_done_total", 10, t0, host...),
		series("jobs_done_total", 40, t0.Add(10*time.Second), host...),
		series("jobs_done_total", 40, t0.Add(10*time.Second), host...), // a retry
		series("jobs_done_total", 30, t0.Add(5*time.Second), host...),  // older
	} {
		if _, err := post(t, r, "", s); err != nil {
			t.Fatal(err)
		}
	}
	got := outcomes(t, reg)
	if got["first_counter_sample"] != 1 || got["kept"] != 1 || got["repeat"] != 1 || got["out_of_order"] != 1 {
		t.Fatalf("outcomes %v", got)
	}
	if v, ok := sink.value("h", "jobs_done_rate", t0.Add(10*time.Second)); !ok || v != 3 {
		t.Fatalf("jobs_done_rate = %v %v, want 3 per second", v, ok)
	}
}

// lazyReader yields n bytes without holding them.
type lazyReader struct{ n int64 }

func (l *lazyReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, io.EOF
	}
	k := min(int64(len(p)), l.n)
	clear(p[:k])
	l.n -= k
	return int(k), nil
}

func TestRefusedRequests(t *testing.T) {
	good := encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("app_a", 1, t0, "instance", "h", "smartcloudops", "true")}})
	raw, _ := snappy.Decode(nil, good)
	// A million tiny series: a few bytes each once compressed, refused by
	// the series limit before one of them is decoded.
	one, _ := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("a", 1, t0, "instance", "h")}}).Marshal()
	million := snappy.Encode(nil, bytes.Repeat(one, 1_000_000))
	// A snappy header claiming 1 GiB decoded.
	huge := append([]byte{0x80, 0x80, 0x80, 0x80, 0x04}, good[5:]...)
	tests := []struct {
		name   string
		body   io.Reader
		length int64
		ct     string
		enc    string
		status int
	}{
		{"corrupt snappy", bytes.NewReader([]byte("not snappy at all")), -1, "", "snappy", 400},
		{"truncated protobuf", bytes.NewReader(snappy.Encode(nil, raw[:len(raw)-3])), -1, "", "snappy", 400},
		{"100 MB body declared", &lazyReader{100 << 20}, 100 << 20, "", "snappy", 413},
		{"100 MB body undeclared", &lazyReader{100 << 20}, -1, "", "snappy", 413},
		{"decoded size over the limit", bytes.NewReader(huge), -1, "", "snappy", 413},
		{"a million series", bytes.NewReader(million), -1, "", "snappy", 413},
		{"gzip", bytes.NewReader(good), -1, "", "gzip", 415},
		{"json", bytes.NewReader(good), -1, "application/json", "snappy", 415},
		{"unknown proto", bytes.NewReader(good), -1, "application/x-protobuf;proto=foo.Bar", "snappy", 415},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := &fakeSink{}
			r := newTestReceiver(t, sink, nil)
			_, err := r.Write(context.Background(), Request{ContentType: tc.ct, ContentEncoding: tc.enc, ContentLength: tc.length, Body: tc.body})
			var pe *Error
			if !errors.As(err, &pe) || pe.Status != tc.status {
				t.Fatalf("got %v, want status %d", err, tc.status)
			}
			if tc.status == 413 && !errors.Is(err, ingest.ErrTooLarge) {
				t.Fatalf("%v does not wrap ingest.ErrTooLarge", err)
			}
			if sink.count() != 0 {
				t.Fatal("a refused request stored rows")
			}
		})
	}
}

func TestSinkFailureIsReturnedAndRetrySafe(t *testing.T) {
	sink := &fakeSink{err: errors.New("database down")}
	r := newTestReceiver(t, sink, nil)
	t1 := t0.Add(15 * time.Second)
	s1 := exposition(t, scrape1, "h", t0)
	s2 := exposition(t, scrape2, "h", t1)
	if _, err := post(t, r, "", s1...); err == nil {
		t.Fatal("a sink failure was not returned")
	}
	sink.err = nil
	// The sender retries the first request, then sends the next.
	if _, err := post(t, r, "", s1...); err != nil {
		t.Fatal(err)
	}
	if _, err := post(t, r, "", s2...); err != nil {
		t.Fatal(err)
	}
	if _, ok := sink.value("h", "memory_usage", t0); !ok {
		t.Fatal("the retry did not rebuild memory_usage at the first scrape")
	}
	if _, ok := sink.value("h", "cpu_usage", t1); !ok {
		t.Fatal("cpu_usage missing after the retry")
	}
}

func TestRemoteWrite2(t *testing.T) {
	sink := &fakeSink{}
	r := newTestReceiver(t, sink, nil)
	syms := writev2.NewSymbolTable()
	mk := func(v float64, ts time.Time) writev2.TimeSeries {
		refs := syms.SymbolizeLabels(labelsOf("__name__", "jobs_done", "instance", "h2:9100", "smartcloudops", "true"), nil)
		return writev2.TimeSeries{LabelsRefs: refs, Samples: []writev2.Sample{{Value: v, Timestamp: ts.UnixMilli()}},
			Metadata: writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER}}
	}
	for _, s := range []writev2.TimeSeries{mk(100, t0), mk(160, t0.Add(20*time.Second))} {
		req := writev2.Request{Symbols: syms.Symbols(), Timeseries: []writev2.TimeSeries{s}}
		raw, err := req.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		body := snappy.Encode(nil, raw)
		resp, err := r.Write(context.Background(), Request{ContentType: "application/x-protobuf;proto=io.prometheus.write.v2.Request",
			ContentEncoding: "snappy", ContentLength: int64(len(body)), Body: bytes.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Version != V2 || resp.Samples != 1 {
			t.Fatalf("response %+v", resp)
		}
	}
	// The metadata says counter although the name lacks _total.
	if v, ok := sink.value("h2", "jobs_done_rate", t0.Add(20*time.Second)); !ok || v != 3 {
		t.Fatalf("jobs_done_rate = %v %v, want 3", v, ok)
	}
}

func TestExtraNames(t *testing.T) {
	long := "a_really_long_metric_name_that_goes_on_and_on_and_on_for_ever_and_more"
	tests := []struct {
		name    string
		lbls    []string
		counter bool
		want    string
	}{
		{"app_queue_depth", []string{"instance", "h", "job", "x"}, false, "app_queue_depth"},
		{"http_requests_total", []string{"instance", "h", "method", "GET", "code", "200"}, true, "http_requests_rate.200.get"},
		{"temp", []string{"instance", "h", "sensor", "CPU Die/0"}, false, "temp.cpu_die_0"},
		{long, []string{"instance", "h"}, false, ""},
	}
	for _, tc := range tests {
		got := extraName(tc.name, toLabels(labelsOfProm(tc.lbls...)), "instance", tc.counter)
		if tc.want != "" && got != tc.want {
			t.Errorf("extraName(%s) = %q, want %q", tc.name, got, tc.want)
		}
		if len(got) > 64 || validName(got) != nil {
			t.Errorf("extraName(%s) = %q does not pass the anomaly service's name rule", tc.name, got)
		}
	}
}

func TestStripPort(t *testing.T) {
	for in, want := range map[string]string{"10.0.0.1:9100": "10.0.0.1", "[::1]:9100": "::1", "web-1": "web-1", "web-1:http": "web-1:http", "::1": "::1"} {
		if got := stripPort(in); got != want {
			t.Errorf("stripPort(%q) = %q, want %q", in, got, want)
		}
	}
}
