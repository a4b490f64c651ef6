package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartcloudops/smartcloudops/internal/cache"
	"github.com/smartcloudops/smartcloudops/internal/config"
	"github.com/smartcloudops/smartcloudops/internal/health"
	"github.com/smartcloudops/smartcloudops/internal/logtest"
	"github.com/smartcloudops/smartcloudops/internal/spantest"
)

const (
	callerTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerParent = "00f067aa0ba902b7"
)

// TestTracingServerSpan drives a cached GET with a caller's traceparent
// through the API and a real (memory-only) cache that share one provider.
func TestTracingServerSpan(t *testing.T) {
	tp, rec := spantest.Recorder(t)
	c, err := cache.New(context.Background(), cache.Options{TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	logs := &logtest.Buffer{}
	f := newFixture(t, func(d *Deps) {
		d.Cache = c
		d.MaxBodyBytes = 4096
		d.TracerProvider = tp
		d.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	})
	if _, err := c.PutRaw(context.Background(), "team-a", "user/42", "text/plain", []byte("Ada"), 0); err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/performance/cache/team-a/user/42", nil)
	r.Header.Set("Authorization", tenantJWT(t, "team-a"))
	r.Header.Set("X-Request-ID", "req-1")
	r.Header.Set("Traceparent", "00-"+callerTrace+"-"+callerParent+"-01")
	w := httptest.NewRecorder()
	f.srv.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("GET: %d %s", w.Code, w.Body)
	}

	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want the cache's and the server's", len(spans))
	}
	get, srv := spans[0], spans[1]
	if srv.Name() != "GET /performance/cache/{namespace}/{key...}" || srv.SpanKind() != trace.SpanKindServer {
		t.Errorf("server span %q kind %v", srv.Name(), srv.SpanKind())
	}
	if srv.SpanContext().TraceID().String() != callerTrace || srv.Parent().SpanID().String() != callerParent || !srv.Parent().IsRemote() {
		t.Errorf("server span does not continue the caller's trace: trace %s parent %s", srv.SpanContext().TraceID(), srv.Parent().SpanID())
	}
	want := map[attribute.Key]any{
		"http.request.method":       "GET",
		"http.route":                "/performance/cache/{namespace}/{key...}",
		"http.response.status_code": int64(200),
		"url.path":                  "/performance/cache/team-a/user/42",
		"smartcloudops.request_id":  "req-1",
	}
	got := spantest.Attrs(srv)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("server span %s = %v, want %v", k, got[k], v)
		}
	}
	if srv.Status().Code != codes.Unset {
		t.Errorf("a 200 has status %v", srv.Status())
	}
	if get.Name() != "cache.get" || get.Parent().SpanID() != srv.SpanContext().SpanID() {
		t.Errorf("cache span %q parent %s, want cache.get under the server span %s", get.Name(), get.Parent().SpanID(), srv.SpanContext().SpanID())
	}
	if a := spantest.Attrs(get); a["cache.hit"] != true || a["cache.tier"] != "l1" {
		t.Errorf("cache span attributes %v", a)
	}

	lines := logs.Records(t, "http request")
	if len(lines) != 1 || lines[0]["trace_id"] != callerTrace {
		t.Errorf("access line lacks the trace id: %v", lines)
	}
}

func TestTracingStatusAndUnmatchedRoutes(t *testing.T) {
	tp, rec := spantest.Recorder(t)
	logs := &logtest.Buffer{}
	f := newFixture(t, func(d *Deps) {
		d.TracerProvider = tp
		d.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	})
	f.srv.handle("GET /boom", Public, func(http.ResponseWriter, *http.Request) error { panic("kaboom") })
	f.do(t, http.MethodGet, "/boom", "", "", "")
	f.do(t, http.MethodGet, "/no/such/thing/42", "", "", "")
	f.do(t, "BREW", "/livez", "", "", "")
	// A caller that did not sample: the span follows its decision, and
	// the access line has no trace to point at.
	r := httptest.NewRequest(http.MethodGet, "/livez", nil)
	r.Header.Set("Traceparent", "00-"+callerTrace+"-"+callerParent+"-00")
	f.srv.ServeHTTP(httptest.NewRecorder(), r)

	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans recorded, want 3 (the unsampled request records none)", len(spans))
	}
	boom, missing, brew := spans[0], spans[1], spans[2]
	if boom.Name() != "GET /boom" || boom.Status().Code != codes.Error || spantest.Attrs(boom)["error.type"] != "500" {
		t.Errorf("panic: span %q status %v attrs %v", boom.Name(), boom.Status(), spantest.Attrs(boom))
	}
	if len(boom.Events()) == 0 || boom.Events()[0].Name != "exception" {
		t.Errorf("panic: error not recorded on the span: %v", boom.Events())
	}
	// Unmatched paths share one name, whatever the path: bounded cardinality.
	if a := spantest.Attrs(missing); missing.Name() != "GET" || a["http.route"] != nil || a["http.response.status_code"] != int64(404) || missing.Status().Code != codes.Unset {
		t.Errorf("404: span %q status %v attrs %v", missing.Name(), missing.Status(), a)
	}
	if brew.Name() != "_OTHER" {
		t.Errorf("unknown method named %q", brew.Name())
	}
	lines := logs.Records(t, "http request")
	if len(lines) != 4 {
		t.Fatalf("%d access lines", len(lines))
	}
	for i, l := range lines[:3] {
		if l["trace_id"] != spans[i].SpanContext().TraceID().String() {
			t.Errorf("line %d: trace_id %v, want %s", i, l["trace_id"], spans[i].SpanContext().TraceID())
		}
	}
	if _, ok := lines[3]["trace_id"]; ok {
		t.Errorf("an unsampled request's line has a trace_id: %v", lines[3])
	}
}

func TestTracingOffLeavesLogsAlone(t *testing.T) {
	logs := &logtest.Buffer{}
	f := newFixture(t, func(d *Deps) { d.Logger = slog.New(slog.NewJSONHandler(logs, nil)) })
	if _, wrapped := f.srv.log.Handler().(traceIDHandler); wrapped {
		t.Error("the logger is wrapped with tracing off")
	}
	r := httptest.NewRequest(http.MethodGet, "/livez", nil)
	r.Header.Set("Traceparent", "00-"+callerTrace+"-"+callerParent+"-01")
	f.srv.ServeHTTP(httptest.NewRecorder(), r)
	for _, l := range logs.Records(t, "http request") {
		if _, ok := l["trace_id"]; ok {
			t.Errorf("tracing off, yet a trace_id was logged: %v", l)
		}
	}
}

func TestRoutePath(t *testing.T) {
	for in, want := range map[string]string{
		"GET /livez": "/livez", "unmatched": "", "": "", "/x/{id}": "/x/{id}",
		"PUT /performance/cache/{namespace}/{key...}": "/performance/cache/{namespace}/{key...}",
	} {
		if got := routePath(in); got != want {
			t.Errorf("routePath(%q) = %q, want %q", in, got, want)
		}
	}
}

// BenchmarkTracingOn is the price of tracing when it is on: the cached GET of
// BenchmarkTracingOff with every request sampled (server span and cache
// span, batched to an exporter that drops them), and with none sampled.
//
//	go test -run '^$' -bench 'BenchmarkTracingO' -benchmem ./internal/httpapi/
func BenchmarkTracingOn(b *testing.B) {
	for name, sampler := range map[string]sdktrace.Sampler{"sampled": sdktrace.AlwaysSample(), "unsampled": sdktrace.NeverSample()} {
		b.Run(name, func(b *testing.B) {
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler), sdktrace.WithBatcher(tracetest.NewNoopExporter()))
			b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			c, err := cache.New(context.Background(), cache.Options{TracerProvider: tp})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = c.Close() })
			if _, err := c.PutRaw(context.Background(), "bench", "user/42", "text/plain", []byte("a small cached value"), 0); err != nil {
				b.Fatal(err)
			}
			cfg, err := config.Load(nil, func(k string) string { return map[string]string{"SMARTCLOUDOPS_ADMIN_TOKEN": adminToken}[k] }, io.Discard)
			if err != nil {
				b.Fatal(err)
			}
			up := health.CheckerFunc(func(context.Context) health.Component { return health.Component{Status: health.StatusUp} })
			srv, err := New(Deps{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), Registry: prometheus.NewRegistry(), Ready: up, Config: cfg,
				Cache: c, Auth: AuthOptions{AdminToken: adminToken}, TracerProvider: tp})
			if err != nil {
				b.Fatal(err)
			}
			r := httptest.NewRequest(http.MethodGet, "/performance/cache/bench/user/42", nil)
			r.Header.Set("Authorization", "Bearer "+adminToken)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				srv.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}
