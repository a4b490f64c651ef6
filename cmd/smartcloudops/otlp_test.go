package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"math"
	"net/http"
	"net/url"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/smartcloudops/smartcloudops/internal/domain"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

// TestOTLPFromTheOpenTelemetrySDK sends metrics with the real OpenTelemetry
// Go SDK and its OTLP/HTTP exporter (protobuf, gzip) to the real service
// (SQLite, then PostgreSQL) and reads back what was stored: hostmetrics
// names as the well-known features, a counter as its rate, an up-down
// counter as its level, a histogram as its rate and mean, one row per
// collection although each instrument has its own timestamp.
func TestOTLPFromTheOpenTelemetrySDK(t *testing.T) {
	storetest.Each(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		const token = "otlp-test-admin-token-0123456789"
		r := start(t, map[string]string{"DATABASE_URL": dbURL, "SMARTCLOUDOPS_ADMIN_TOKEN": token}, nil)
		var b [4]byte
		_, _ = rand.Read(b[:])
		host := "sdk-" + hex.EncodeToString(b[:])

		exp, err := otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpointURL(r.base+"/v1/metrics"),
			otlpmetrichttp.WithHeaders(map[string]string{"Authorization": "Bearer " + token}),
			otlpmetrichttp.WithCompression(otlpmetrichttp.GzipCompression), otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig{Enabled: false}))
		if err != nil {
			t.Fatal(err)
		}
		// The reader exports when flushed, not on its own.
		mp := sdkmetric.NewMeterProvider(
			sdkmetric.WithResource(resource.NewSchemaless(attribute.String("host.name", host), attribute.String("service.name", "otlp-test"))),
			sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(time.Hour))))
		defer func() { _ = mp.Shutdown(ctx) }()
		meter := mp.Meter("smartcloudops/otlp-test")
		cpu, _ := meter.Float64Gauge("system.cpu.utilization")
		load := 1.5
		_, _ = meter.Float64ObservableGauge("system.cpu.load_average.1m", metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
			o.Observe(load)
			return nil
		}))
		requests, _ := meter.Int64Counter("app.requests")
		inflight, _ := meter.Int64UpDownCounter("app.inflight")
		latency, _ := meter.Float64Histogram("app.latency", metric.WithUnit("ms"))
		state := func(s string) metric.MeasurementOption { return metric.WithAttributes(attribute.String("state", s)) }
		route := func(s string) metric.AddOption { return metric.WithAttributes(attribute.String("http.route", s)) }

		cpu.Record(ctx, 0.25, state("user"))
		cpu.Record(ctx, 0.75, state("idle"))
		requests.Add(ctx, 5, route("/a"))
		requests.Add(ctx, 3, route("/b"))
		inflight.Add(ctx, 4)
		latency.Record(ctx, 10)
		latency.Record(ctx, 20)
		if err := mp.ForceFlush(ctx); err != nil {
			t.Fatalf("first export: %v", err)
		}
		time.Sleep(1200 * time.Millisecond)
		cpu.Record(ctx, 0.5, state("user"))
		cpu.Record(ctx, 0.5, state("idle"))
		load = 2
		requests.Add(ctx, 10, route("/a"))
		requests.Add(ctx, 2, route("/b"))
		inflight.Add(ctx, -1)
		for _, v := range []float64{30, 50, 70} {
			latency.Record(ctx, v)
		}
		if err := mp.ForceFlush(ctx); err != nil {
			t.Fatalf("second export: %v", err)
		}

		// The well-known features through the series API.
		var series struct {
			Samples []struct {
				Timestamp time.Time          `json:"timestamp"`
				Metrics   map[string]float64 `json:"metrics"`
			} `json:"samples"`
		}
		if code := getJSON(t, r.base+"/api/v1/hosts/"+url.PathEscape(host)+"/metrics", &series); code != http.StatusOK {
			t.Fatalf("series: %d", code)
		}
		if len(series.Samples) != 2 {
			t.Fatalf("%d rows, want one per collection: %+v", len(series.Samples), series.Samples)
		}
		for i, want := range []map[string]float64{{"cpu_usage": 25, "load_average": 1.5}, {"cpu_usage": 50, "load_average": 2}} {
			for k, v := range want {
				if got := series.Samples[i].Metrics[k]; math.Abs(got-v) > 1e-9 {
					t.Errorf("row %d %s = %v, want %v", i, k, got, v)
				}
			}
		}

		// The others are stored beside them: read the store itself.
		st, err := store.Open(ctx, store.Options{URL: dbURL, PoolSize: 2})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		rows, err := st.MetricHistory(ctx, domain.HistoryQuery{Host: host})
		if err != nil || len(rows) != 2 {
			t.Fatalf("history: %d rows, %v", len(rows), err)
		}
		dt := rows[1].Timestamp.Sub(rows[0].Timestamp).Seconds()
		if dt < 1 {
			t.Fatalf("rows %v apart", dt)
		}
		check := func(row int, name string, want float64, present bool) {
			t.Helper()
			got, ok := rows[row].Extra[name]
			if ok != present || (ok && math.Abs(got-want) > 1e-3*math.Max(1, math.Abs(want))) {
				t.Errorf("row %d %s = %v (present %v), want %v (present %v); row %+v", row, name, got, ok, want, present, rows[row].Extra)
			}
		}
		check(0, "app_inflight", 4, true)
		check(0, "app_requests", 0, false) // a counter's first collection gives no rate
		check(0, "app_latency_rate", 0, false)
		check(1, "app_inflight", 3, true)
		check(1, "app_requests", 12/dt, true)
		check(1, "app_latency_rate", 3/dt, true)
		check(1, "app_latency_avg", 50, true)

		// The receiver counted what it did.
		fams := scrape(t, r.base)
		if n := counterValue(fams, "smartcloudops_ingest_requests_total", map[string]string{"source": "otlp", "code": "200"}); n != 2 {
			t.Errorf("requests{code=200} = %v, want 2", n)
		}
		if n := counterValue(fams, "smartcloudops_ingest_samples_total", map[string]string{"source": "otlp", "outcome": "first_counter_sample"}); n != 3 {
			t.Errorf("samples{first_counter_sample} = %v, want 3 (two routes and the histogram)", n)
		}
	})
}

// counterValue is the value of family's counter whose labels include
// labels, or -1.
func counterValue(fams map[string]*dto.MetricFamily, family string, labels map[string]string) float64 {
	f := fams[family]
	if f == nil {
		return -1
	}
	for _, m := range f.GetMetric() {
		n := 0
		for _, l := range m.GetLabel() {
			if v, ok := labels[l.GetName()]; ok && v == l.GetValue() {
				n++
			}
		}
		if n == len(labels) {
			return m.GetCounter().GetValue()
		}
	}
	return -1
}
