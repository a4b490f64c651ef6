package otlp

import (
	"context"
	"fmt"
	"maps"
	"math"
	"strings"
	"testing"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"

	"github.com/smartcloudops/smartcloudops/internal/anomaly"
)

type step struct {
	req      *colmetricpb.ExportMetricsServiceRequest
	want     []fact
	outcomes map[string]int
	rejected int64
}

func f(host, metric string, sec float64, v float64) fact { return fact{host, metric, at(sec), v} }

func attrs(kvs ...string) []*commonpb.KeyValue {
	var out []*commonpb.KeyValue
	for i := 0; i+1 < len(kvs); i += 2 {
		out = append(out, kv(kvs[i], kvs[i+1]))
	}
	return out
}

func TestMapping(t *testing.T) {
	noRecorded := uint32(metricpb.DataPointFlags_DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK)
	tests := []struct {
		name   string
		tenant string
		opt    func(*Options)
		steps  []step
	}{
		{"gauge as is; attributes averaged", "", nil, []step{{
			req: request(host("web-1",
				gauge("app.queue.depth", dp{t: at(0), v: 5}),
				gauge("app.pool.usage", dp{t: at(0), v: 0.2, attrs: attrs("pool", "a")}, dp{t: at(0), v: 0.6, attrs: attrs("pool", "b")}))),
			want:     []fact{f("web-1", "app_pool_usage", 0, 0.4), f("web-1", "app_queue_depth", 0, 5)},
			outcomes: map[string]int{"kept": 3},
		}}},
		{"cumulative counter gives its rate; attributes summed", "", nil, []step{
			{req: request(host("web-1", counter("http.server.requests",
				dp{start: at(-100), t: at(0), v: 100, attrs: attrs("route", "/a")}, dp{start: at(-100), t: at(0), v: 10, attrs: attrs("route", "/b")}))),
				outcomes: map[string]int{"first_counter_sample": 2}},
			{req: request(host("web-1", counter("http.server.requests",
				dp{start: at(-100), t: at(10), v: 150, attrs: attrs("route", "/a")}, dp{start: at(-100), t: at(10), v: 30, attrs: attrs("route", "/b")}))),
				want: []fact{f("web-1", "http_server_requests", 10, 7)}, outcomes: map[string]int{"kept": 2}},
		}},
		{"a changed start time is a reset", "", nil, []step{
			{req: request(host("web-1", counter("jobs", dp{start: at(-100), t: at(0), v: 100}))), outcomes: map[string]int{"first_counter_sample": 1}},
			{req: request(host("web-1", counter("jobs", dp{start: at(5), t: at(10), v: 120}))),
				want: []fact{f("web-1", "jobs", 10, 12)}, outcomes: map[string]int{"kept": 1}},
		}},
		{"delta sum per second over its interval", "", nil, []step{
			{req: request(host("web-1", sum("jobs.done", delta, true, dp{start: at(-10), t: at(0), v: 30}))),
				want: []fact{f("web-1", "jobs_done", 0, 3)}, outcomes: map[string]int{"kept": 1}},
			{req: request(host("web-1", sum("jobs.done", delta, true, dp{t: at(10), v: 30}))),
				outcomes: map[string]int{"bad_interval": 1}, rejected: 1},
		}},
		{"cumulative non-monotonic sum is a level, summed", "", nil, []step{{
			req: request(host("web-1", sum("system.processes.count", cumulative, false,
				dp{t: at(0), v: 100, attrs: attrs("status", "running")}, dp{t: at(0), v: 20, attrs: attrs("status", "sleeping")}))),
			want: []fact{f("web-1", "system_processes_count", 0, 120)}, outcomes: map[string]int{"kept": 2},
		}}},
		{"cumulative histogram: rate and mean of the interval", "", nil, []step{
			{req: request(host("web-1", histogram("http.server.duration", cumulative, hp{start: at(-60), t: at(0), count: 10, sum: 100}))),
				outcomes: map[string]int{"first_counter_sample": 1}},
			{req: request(host("web-1", histogram("http.server.duration", cumulative, hp{start: at(-60), t: at(10), count: 30, sum: 500}))),
				want:     []fact{f("web-1", "http_server_duration_avg", 10, 20), f("web-1", "http_server_duration_rate", 10, 2)},
				outcomes: map[string]int{"kept": 1}},
		}},
		{"delta histogram", "", nil, []step{{
			req: request(host("web-1", histogram("rpc.duration", delta,
				hp{start: at(-10), t: at(0), count: 20, sum: 100, attrs: attrs("method", "a")}, hp{start: at(-10), t: at(0), count: 0, sum: 0, attrs: attrs("method", "b")}))),
			want:     []fact{f("web-1", "rpc_duration_avg", 0, 5), f("web-1", "rpc_duration_rate", 0, 2)},
			outcomes: map[string]int{"kept": 2},
		}}},
		{"hostmetrics gauges map onto the well-known features", "", nil, []step{{
			req: request(host("web-1",
				gauge("system.cpu.utilization",
					dp{t: at(0), v: 0.2, attrs: attrs("cpu", "cpu0", "state", "user")}, dp{t: at(0), v: 0.1, attrs: attrs("cpu", "cpu0", "state", "system")},
					dp{t: at(0), v: 0.7, attrs: attrs("cpu", "cpu0", "state", "idle")}, dp{t: at(0), v: 0.5, attrs: attrs("cpu", "cpu1", "state", "user")},
					dp{t: at(0), v: 0.5, attrs: attrs("cpu", "cpu1", "state", "idle")}),
				gauge("system.memory.utilization", dp{t: at(0.002), v: 0.5, attrs: attrs("state", "used")}, dp{t: at(0.002), v: 0.5, attrs: attrs("state", "free")}),
				gauge("system.filesystem.utilization", dp{t: at(0.004), v: 0.3, attrs: attrs("mountpoint", "/")}, dp{t: at(0.004), v: 0.8, attrs: attrs("mountpoint", "/data")}),
				gauge("system.cpu.load_average.1m", dp{t: at(0.005), v: 1.5}))),
			want: []fact{f("web-1", "cpu_usage", 0, 40), f("web-1", "disk_usage", 0, 80), f("web-1", "load_average", 0, 1.5), f("web-1", "memory_usage", 0, 50)},
			// The free-memory point is read but not used.
			outcomes: map[string]int{"kept": 9, "not_selected": 1},
		}}},
		{"hostmetrics counters map onto rates and ratios", "", nil, []step{
			{req: request(host("web-1",
				counter("system.cpu.time", dp{start: at(-1000), t: at(0), v: 100, attrs: attrs("state", "user")}, dp{start: at(-1000), t: at(0), v: 900, attrs: attrs("state", "idle")}),
				counter("system.network.io", dp{start: at(-1000), t: at(0), v: 1000, attrs: attrs("device", "eth0", "direction", "receive")},
					dp{start: at(-1000), t: at(0), v: 500, attrs: attrs("device", "eth0", "direction", "transmit")},
					dp{start: at(-1000), t: at(0), v: 1e9, attrs: attrs("device", "lo", "direction", "receive")}),
				sum("system.memory.usage", cumulative, false, dp{t: at(0), v: 3, attrs: attrs("state", "used")}, dp{t: at(0), v: 1, attrs: attrs("state", "free")},
					dp{t: at(0), v: 2, attrs: attrs("state", "cached")}, dp{t: at(0), v: 2, attrs: attrs("state", "buffered")}, dp{t: at(0), v: 1, attrs: attrs("state", "slab_reclaimable")}))),
				want:     []fact{f("web-1", "memory_usage", 0, 37.5)},
				outcomes: map[string]int{"first_counter_sample": 5, "kept": 4, "not_selected": 1}},
			{req: request(host("web-1",
				counter("system.cpu.time", dp{start: at(-1000), t: at(10), v: 106, attrs: attrs("state", "user")}, dp{start: at(-1000), t: at(10), v: 904, attrs: attrs("state", "idle")}),
				counter("system.network.io", dp{start: at(-1000), t: at(10), v: 3000, attrs: attrs("device", "eth0", "direction", "receive")},
					dp{start: at(-1000), t: at(10), v: 600, attrs: attrs("device", "eth0", "direction", "transmit")},
					dp{start: at(-1000), t: at(10), v: 2e9, attrs: attrs("device", "lo", "direction", "receive")}))),
				want:     []fact{f("web-1", "cpu_usage", 10, 60), f("web-1", "network_in", 10, 200), f("web-1", "network_out", 10, 10)},
				outcomes: map[string]int{"kept": 4, "not_selected": 1}},
		}},
		{"utilization wins over time for cpu_usage", "", nil, []step{
			{req: request(host("web-1",
				counter("system.cpu.time", dp{start: at(-1000), t: at(0), v: 100, attrs: attrs("state", "user")})))},
			{req: request(host("web-1",
				counter("system.cpu.time", dp{start: at(-1000), t: at(10), v: 105, attrs: attrs("state", "user")}),
				gauge("system.cpu.utilization", dp{t: at(10), v: 0.25, attrs: attrs("state", "user")}, dp{t: at(10), v: 0.75, attrs: attrs("state", "idle")}))),
				want:     []fact{f("web-1", "cpu_usage", 10, 25)},
				outcomes: map[string]int{"kept": 2, "name_collision": 1}, rejected: 1},
		}},
		{"host from service.instance.id; none is rejected", "", nil, []step{{
			req: request(
				resource(attrs("service.instance.id", "pod-7", "service.name", "api"), gauge("g", dp{t: at(0), v: 1})),
				resource(attrs("service.name", "api"), gauge("g", dp{t: at(0), v: 1}, dp{t: at(0), v: 2, attrs: attrs("x", "y")}))),
			want:     []fact{f("pod-7", "g", 0, 1)},
			outcomes: map[string]int{"kept": 1, "no_host": 2}, rejected: 2,
		}}},
		{"host attributes are configurable", "", func(o *Options) { o.HostAttributes = []string{"k8s.pod.name"} }, []step{{
			req:      request(resource(attrs("host.name", "node-1", "k8s.pod.name", "api-0"), gauge("g", dp{t: at(0), v: 1}))),
			want:     []fact{f("api-0", "g", 0, 1)},
			outcomes: map[string]int{"kept": 1},
		}}},
		{"the tenant qualifies the host", "acme", nil, []step{{
			req:      request(host("web-1", gauge("g", dp{t: at(0), v: 1}))),
			want:     []fact{f("acme/web-1", "g", 0, 1)},
			outcomes: map[string]int{"kept": 1},
		}}},
		{"NaN, Inf, far future and no time are rejected", "", nil, []step{{
			req: request(host("web-1", gauge("g",
				dp{t: at(0), v: math.NaN(), attrs: attrs("a", "1")}, dp{t: at(0), v: math.Inf(1), attrs: attrs("a", "2")},
				dp{t: at(7200), v: 1, attrs: attrs("a", "3")}, dp{v: 1, attrs: attrs("a", "4")}, dp{t: at(0), v: 4, attrs: attrs("a", "5")}),
				histogram("h", cumulative, hp{start: at(-1), t: at(0), count: 1, sum: math.Inf(-1)}))),
			want:     []fact{f("web-1", "g", 0, 4)},
			outcomes: map[string]int{"kept": 1, "non_finite": 3, "future": 1, "no_timestamp": 1}, rejected: 5,
		}}},
		{"no recorded value ends the series", "", nil, []step{
			{req: request(host("web-1", counter("c", dp{start: at(-10), t: at(0), v: 10}))), outcomes: map[string]int{"first_counter_sample": 1}},
			{req: request(host("web-1", counter("c", dp{start: at(-10), t: at(5), v: math.NaN(), flags: noRecorded}))), outcomes: map[string]int{"no_recorded_value": 1}},
			// Had the series lived on, this would be a rate of 1/s.
			{req: request(host("web-1", counter("c", dp{start: at(-10), t: at(10), v: 20}))), outcomes: map[string]int{"first_counter_sample": 1}},
		}},
		{"out of order and repeats", "", nil, []step{
			{req: request(host("web-1", gauge("g", dp{t: at(10), v: 1}))), want: []fact{f("web-1", "g", 10, 1)}, outcomes: map[string]int{"kept": 1}},
			{req: request(host("web-1", gauge("g", dp{t: at(5), v: 2}))), outcomes: map[string]int{"out_of_order": 1}, rejected: 1},
			// A retry rebuilds the row; the store keeps one copy.
			{req: request(host("web-1", gauge("g", dp{t: at(10), v: 1}))), want: []fact{f("web-1", "g", 10, 1)}, outcomes: map[string]int{"repeat": 1}},
		}},
		{"series cap per tenant", "acme", func(o *Options) { o.MaxSeriesPerTenant = 2 }, []step{{
			req:      request(host("web-1", gauge("g", dp{t: at(0), v: 1, attrs: attrs("a", "1")}, dp{t: at(0), v: 3, attrs: attrs("a", "2")}, dp{t: at(0), v: 5, attrs: attrs("a", "3")}))),
			want:     []fact{f("acme/web-1", "g", 0, 2)},
			outcomes: map[string]int{"kept": 2, "series_limit": 1}, rejected: 1,
		}}},
		{"points further apart than the window are two rows", "", nil, []step{{
			req:      request(host("web-1", gauge("a", dp{t: at(0), v: 1}), gauge("b", dp{t: at(0.5), v: 2}), gauge("c", dp{t: at(1.2), v: 3}))),
			want:     []fact{f("web-1", "a", 0, 1), f("web-1", "b", 0, 2), f("web-1", "c", 1.2, 3)},
			outcomes: map[string]int{"kept": 3},
		}}},
		{"two collections of a counter in one request", "", nil, []step{{
			// Out of order in the request, in order in time.
			req:      request(host("web-1", counter("c", dp{start: at(-10), t: at(20), v: 50}), counter("c", dp{start: at(-10), t: at(10), v: 30}))),
			want:     []fact{f("web-1", "c", 20, 2)},
			outcomes: map[string]int{"first_counter_sample": 1, "kept": 1},
		}}},
		{"exponential histogram and summary like histograms", "", nil, []step{
			{req: request(host("web-1", expHistogram("rpc.size", cumulative, hp{start: at(-60), t: at(0), count: 4, sum: 40}), summary("gc.pause", hp{start: at(-60), t: at(0), count: 10, sum: 1}))),
				outcomes: map[string]int{"first_counter_sample": 2}},
			{req: request(host("web-1", expHistogram("rpc.size", cumulative, hp{start: at(-60), t: at(10), count: 14, sum: 240}), summary("gc.pause", hp{start: at(-60), t: at(10), count: 30, sum: 3}))),
				want:     []fact{f("web-1", "gc_pause_avg", 10, 0.1), f("web-1", "gc_pause_rate", 10, 2), f("web-1", "rpc_size_avg", 10, 20), f("web-1", "rpc_size_rate", 10, 1)},
				outcomes: map[string]int{"kept": 2}},
		}},
		{"a sum without temporality is unsupported", "", nil, []step{{
			req:      request(host("web-1", sum("s", metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_UNSPECIFIED, true, dp{t: at(0), v: 1}))),
			outcomes: map[string]int{"unsupported": 1}, rejected: 1,
		}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := &recordingSink{max: 1000}
			r := newTestReceiver(t, sink, tc.opt)
			for i, s := range tc.steps {
				sink.reset()
				res, err := r.Ingest(context.Background(), tc.tenant, s.req)
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				got := sink.facts()
				sortFacts(s.want)
				if fmt.Sprint(got) != fmt.Sprint(s.want) {
					t.Errorf("step %d: rows\n got %v\nwant %v", i, got, s.want)
				}
				if s.outcomes != nil && !maps.Equal(res.Outcomes, s.outcomes) {
					t.Errorf("step %d: outcomes %v, want %v", i, res.Outcomes, s.outcomes)
				}
				if res.Rejected != s.rejected {
					t.Errorf("step %d: rejected %d, want %d (%s)", i, res.Rejected, s.rejected, res.Message)
				}
				total := 0
				for _, n := range res.Outcomes {
					total += n
				}
				if total != res.Points {
					t.Errorf("step %d: %d outcomes for %d data points: %v", i, total, res.Points, res.Outcomes)
				}
			}
		})
	}
}

func TestMappingFeatureLimit(t *testing.T) {
	var ms []*metricpb.Metric
	for i := range anomaly.MaxMetricsPerSample + 6 {
		ms = append(ms, gauge(fmt.Sprintf("zz.app.metric%03d", i), dp{t: at(0), v: 1}))
	}
	ms = append(ms, gauge("system.cpu.load_average.1m", dp{t: at(0), v: 2}))
	sink := &recordingSink{max: 1000}
	r := newTestReceiver(t, sink, nil)
	res, err := r.Ingest(context.Background(), "", request(host("web-1", ms...)))
	if err != nil {
		t.Fatal(err)
	}
	if len(sink.samples) != 1 || len(sink.samples[0].Metrics) != anomaly.MaxMetricsPerSample {
		t.Fatalf("rows %d", len(sink.samples))
	}
	if _, ok := sink.samples[0].Metrics["load_average"]; !ok {
		t.Error("the well-known feature was cut")
	}
	if res.Outcomes["feature_limit"] != 7 || res.Rejected != 7 {
		t.Errorf("outcomes %v, rejected %d", res.Outcomes, res.Rejected)
	}
}

func TestMappingInvalidHostIsCounted(t *testing.T) {
	sink := &recordingSink{max: 1000}
	r := newTestReceiver(t, sink, nil)
	res, err := r.Ingest(context.Background(), "", request(host("web 1", gauge("g", dp{t: at(0), v: 1}, dp{t: at(0), v: 1, attrs: attrs("a", "b")}))))
	if err != nil {
		t.Fatal(err)
	}
	if len(sink.samples) != 0 || res.Outcomes["invalid_row"] != 2 || res.Rejected != 2 {
		t.Fatalf("rows %d, outcomes %v", len(sink.samples), res.Outcomes)
	}
}

func TestFeatureName(t *testing.T) {
	long := strings.Repeat("very.long.metric.name.", 5)
	tests := []struct{ in, suffix, want string }{
		{"system.disk.io", "", "system_disk_io"},
		{"http.server.request.duration", "_rate", "http_server_request_duration_rate"},
		{"My-App/Queue Depth", "", "my_app_queue_depth"},
		{"cpu", "", "cpu_usage"}, // an alias of the well-known feature
	}
	for _, tc := range tests {
		if got := featureName(tc.in, tc.suffix); got != tc.want {
			t.Errorf("featureName(%q, %q) = %q, want %q", tc.in, tc.suffix, got, tc.want)
		}
	}
	a, b := featureName(long+"a", "_avg"), featureName(long+"b", "_avg")
	if a == b || len(a) > anomaly.MaxMetricNameLen || !strings.HasSuffix(a, "_avg") {
		t.Errorf("long names: %q, %q", a, b)
	}
	for _, n := range []string{a, "system_disk_io"} {
		if _, err := anomaly.Normalize(anomaly.Sample{Host: "h", Timestamp: t0, Metrics: map[string]float64{n: 1}}); err != nil {
			t.Errorf("%q: %v", n, err)
		}
	}
}
