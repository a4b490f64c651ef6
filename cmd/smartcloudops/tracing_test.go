package main

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/smartcloudops/smartcloudops/internal/httpapi"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

func TestTracingFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name     string
		env      map[string]string
		on       bool
		protocol string
		service  string
		sampler  string // a prefix of the sampler's description
		err      string
	}{
		{name: "nothing set: off", env: map[string]string{}},
		{name: "endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
			on: true, protocol: "http/protobuf", service: "smartcloudops", sampler: "ParentBased{root:AlwaysOnSampler"},
		{name: "traces endpoint, grpc", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			on: true, protocol: "grpc", service: "smartcloudops"},
		{name: "traces protocol wins", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
			on: true, protocol: "grpc"},
		{name: "sdk disabled", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "TRUE"}},
		{name: "sdk disabled=false", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "false"}, on: true},
		{name: "exporter none", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}},
		{name: "exporter otlp without endpoint", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, on: true, protocol: "http/protobuf"},
		{name: "service name", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SERVICE_NAME": "sco-eu",
			"OTEL_RESOURCE_ATTRIBUTES": "service.name=other,deployment.environment.name=prod"}, on: true, service: "sco-eu"},
		{name: "service name from resource attributes", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
			"OTEL_RESOURCE_ATTRIBUTES": "service.name=sco%20eu"}, on: true, service: "sco eu"},
		{name: "ratio sampler", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
			on: true, sampler: "ParentBased{root:TraceIDRatioBased{0.25}"},
		{name: "always off", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_SAMPLER": "always_off"}, on: true, sampler: "AlwaysOffSampler"},
		{name: "bad exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, err: "OTEL_TRACES_EXPORTER"},
		{name: "bad protocol", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, err: "http/json"},
		{name: "bad sampler", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_SAMPLER": "sometimes"}, err: "OTEL_TRACES_SAMPLER"},
		{name: "bad ratio", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"}, err: "OTEL_TRACES_SAMPLER_ARG"},
		{name: "bad resource attributes", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_RESOURCE_ATTRIBUTES": "novalue"}, err: "OTEL_RESOURCE_ATTRIBUTES"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, on, err := tracingFromEnv(envOf(tc.env))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one naming %s", err, tc.err)
				}
				return
			}
			if err != nil || on != tc.on {
				t.Fatalf("on = %v, %v; want %v", on, err, tc.on)
			}
			if tc.protocol != "" && s.protocol != tc.protocol {
				t.Errorf("protocol %q, want %q", s.protocol, tc.protocol)
			}
			if tc.service != "" && s.serviceName != tc.service {
				t.Errorf("service %q, want %q", s.serviceName, tc.service)
			}
			if tc.sampler != "" && !strings.HasPrefix(s.sampler.Description(), tc.sampler) {
				t.Errorf("sampler %q, want %q…", s.sampler.Description(), tc.sampler)
			}
		})
	}
}

// TestStartTracingOffIsANilInterface: the parts tell "off" by a nil
// provider; a typed nil pointer in the interface would look like one on.
func TestStartTracingOffIsANilInterface(t *testing.T) {
	tp, stop, err := startTracing(context.Background(), envOf(map[string]string{}), httpapi.BuildInfo{}, slog.New(slog.DiscardHandler))
	if err != nil || tp != nil {
		t.Fatalf("no OTEL env: provider %v (%T), %v; want a nil interface", tp, tp, err)
	}
	stop()
}

// receiver is a minimal OTLP/HTTP trace collector on loopback.
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []*coltracepb.ExportTraceServiceRequest
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("receiver: %s %s (%s)", req.Method, req.URL.Path, req.Header.Get("Content-Type"))
			http.Error(w, "unexpected", http.StatusNotFound)
			return
		}
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		data, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		msg := &coltracepb.ExportTraceServiceRequest{}
		if err := proto.Unmarshal(data, msg); err != nil {
			t.Errorf("receiver: decode: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.got = append(r.got, msg)
		r.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// receivedSpan is one span the collector received with its resource's attributes.
type receivedSpan struct {
	span     *tracepb.Span
	resource map[string]string
}

func (r *receiver) spans() []receivedSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []receivedSpan
	for _, req := range r.got {
		for _, rs := range req.ResourceSpans {
			res := map[string]string{}
			for _, kv := range rs.GetResource().GetAttributes() {
				res[kv.Key] = kv.GetValue().GetStringValue()
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					out = append(out, receivedSpan{span: s, resource: res})
				}
			}
		}
	}
	return out
}

func (r *receiver) requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func sendWithTraceparent(t *testing.T, method, url, token, traceparent, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if traceparent != "" {
		req.Header.Set("Traceparent", traceparent)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

const (
	e2eTrace  = "0af7651916cd43dd8448eb211c80319c"
	e2eParent = "b7ad6b7169203331"
)

// TestTracingEndToEnd runs the service with OTEL_EXPORTER_OTLP_ENDPOINT
// pointing at an in-process collector, and checks that the spans of real
// requests arrive, with their parents, once the service has shut down.
func TestTracingEndToEnd(t *testing.T) {
	recv := newReceiver(t)
	const token = "e2e-admin-token-0123456789"
	env := map[string]string{
		"DATABASE_URL":                storetest.SQLiteURL(t),
		"SMARTCLOUDOPS_ADMIN_TOKEN":   token,
		"OTEL_EXPORTER_OTLP_ENDPOINT": recv.srv.URL,
		"OTEL_SERVICE_NAME":           "sco-e2e",
	}
	// The exporter reads its endpoint from the process environment, as it
	// does in production, where getenv is os.Getenv.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", recv.srv.URL)
	t.Setenv("OTEL_SERVICE_NAME", "sco-e2e")
	r := start(t, env, nil)

	if code := sendWithTraceparent(t, http.MethodGet, r.base+"/livez", "", "00-"+e2eTrace+"-"+e2eParent+"-01", ""); code != http.StatusOK {
		t.Fatalf("livez: %d", code)
	}
	if code := sendWithTraceparent(t, http.MethodGet, r.base+"/api/v1/hosts", token, "", ""); code != http.StatusOK {
		t.Fatalf("hosts: %d", code)
	}
	ingest := `{"samples":[{"host":"web-1","timestamp":"2026-11-28T11:59:00Z","metrics":{"cpu_usage":99.5,"memory_usage":40}}]}`
	if code := sendWithTraceparent(t, http.MethodPost, r.base+"/api/v1/metrics", token, "", ingest); code != http.StatusOK && code != http.StatusAccepted {
		t.Fatalf("ingest: %d", code)
	}
	if code := sendWithTraceparent(t, http.MethodGet, r.base+"/api/v1/anomalies", token, "", ""); code != http.StatusOK {
		t.Fatalf("anomalies: %d", code)
	}
	if code := r.stop(t); code != exitOK {
		t.Fatalf("exit %d: %s", code, r.stderr)
	}

	spans := recv.spans()
	if len(spans) == 0 {
		t.Fatalf("no span reached the collector: %s", r.stderr)
	}
	byID := map[string]*tracepb.Span{}
	server := map[string]*tracepb.Span{}
	for _, e := range spans {
		if e.resource["service.name"] != "sco-e2e" || e.resource["service.version"] != "dev" {
			t.Fatalf("resource %v", e.resource)
		}
		byID[hex.EncodeToString(e.span.SpanId)] = e.span
		if e.span.Kind == tracepb.Span_SPAN_KIND_SERVER {
			server[e.span.Name] = e.span
		}
	}
	names := func() []string {
		var n []string
		for _, e := range spans {
			n = append(n, e.span.Name+"("+hex.EncodeToString(e.span.SpanId)[:4]+"<"+hex.EncodeToString(e.span.ParentSpanId)+")")
		}
		return n
	}

	livez := server["GET /livez"]
	if livez == nil || hex.EncodeToString(livez.TraceId) != e2eTrace || hex.EncodeToString(livez.ParentSpanId) != e2eParent {
		t.Fatalf("the livez span does not continue the caller's trace: %v (all: %v)", livez, names())
	}
	// under reports whether s descends from the server span root.
	under := func(s, root *tracepb.Span) bool {
		for s != nil && len(s.ParentSpanId) > 0 {
			if string(s.ParentSpanId) == string(root.SpanId) {
				return true
			}
			s = byID[hex.EncodeToString(s.ParentSpanId)]
		}
		return false
	}
	for route, want := range map[string][]string{
		"GET /api/v1/hosts": {"WITH"},
		// Ingest: the detector, the bulk insert, the stored anomaly.
		"POST /api/v1/metrics": {"anomaly.ingest", "anomaly.detect", "INSERT system_metrics", "INSERT anomalies"},
		// The anomaly read goes through the query cache (a miss) to the
		// database, and stores what it read.
		"GET /api/v1/anomalies": {"cache.get", "SELECT", "cache.set"},
	} {
		root := server[route]
		if root == nil {
			t.Errorf("no server span %q among %v", route, names())
			continue
		}
		for _, name := range want {
			found := false
			for _, e := range spans {
				found = found || (e.span.Name == name && under(e.span, root))
			}
			if !found {
				t.Errorf("%s: no %q span under it (spans: %v)", route, name, names())
			}
		}
	}

	// The access line of the traced request names its trace.
	data, err := os.ReadFile(filepath.Join(r.logDir, "smartcloudops.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"trace_id":"`+e2eTrace+`"`) {
		t.Errorf("no access line carries the trace id %s", e2eTrace)
	}
}

// TestTracingOffStartsNoExporter: with no OTEL variable, or with the SDK
// disabled while an endpoint is set, nothing is receivedSpan and no line has a
// trace id, even for a caller that sends one.
func TestTracingOffStartsNoExporter(t *testing.T) {
	recv := newReceiver(t)
	for name, otel := range map[string]map[string]string{
		"no OTEL variables": {},
		"OTEL_SDK_DISABLED": {"OTEL_EXPORTER_OTLP_ENDPOINT": recv.srv.URL, "OTEL_SDK_DISABLED": "true"},
	} {
		t.Run(name, func(t *testing.T) {
			env := map[string]string{"DATABASE_URL": storetest.SQLiteURL(t)}
			for k, v := range otel {
				env[k] = v
				t.Setenv(k, v)
			}
			r := start(t, env, nil)
			if code := sendWithTraceparent(t, http.MethodGet, r.base+"/livez", "", "00-"+e2eTrace+"-"+e2eParent+"-01", ""); code != http.StatusOK {
				t.Fatalf("livez: %d", code)
			}
			if code := r.stop(t); code != exitOK {
				t.Fatalf("exit %d: %s", code, r.stderr)
			}
			data, err := os.ReadFile(filepath.Join(r.logDir, "smartcloudops.log"))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(data), "tracing on") || strings.Contains(string(data), "trace_id") {
				t.Errorf("tracing is off, yet the log says otherwise:\n%s", data)
			}
		})
	}
	if n := recv.requests(); n != 0 {
		t.Errorf("the collector received %d exports", n)
	}
}
