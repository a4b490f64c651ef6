package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// instrumentationName names the tracer, as OpenTelemetry asks: the package path.
const instrumentationName = "github.com/smartcloudops/smartcloudops/internal/httpapi"

// attrRequestID carries the request id (X-Request-ID) on the server span, so
// a trace leads to the access line and back. It is ours, hence the prefix.
var attrRequestID = attribute.Key("smartcloudops.request_id")

// httpTracer makes the server span of each request. The middleware holds a
// nil *httpTracer when Deps.TracerProvider is nil or a no-op provider, and
// then does no tracing work at all: no header parsing, no context, no span.
type httpTracer struct {
	tracer trace.Tracer
	// prop reads the caller's W3C traceparent/tracestate, so the server span
	// joins the caller's trace; it is fixed here rather than taken from
	// OpenTelemetry's global, which this service never sets.
	prop propagation.TraceContext
}

func newHTTPTracer(tp trace.TracerProvider) *httpTracer {
	switch tp.(type) {
	case nil, noop.TracerProvider, *noop.TracerProvider:
		return nil
	}
	return &httpTracer{tracer: tp.Tracer(instrumentationName)}
}

// start begins the server span of r. Its name is only the method for now:
// the route pattern is known once the mux has matched, and end renames it.
func (t *httpTracer) start(r *http.Request, requestID string) (*http.Request, trace.Span) {
	ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	method := spanMethod(r.Method)
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	ctx, span := t.tracer.Start(ctx, method, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		semconv.HTTPRequestMethodKey.String(method),
		semconv.URLPath(r.URL.Path),
		semconv.URLScheme(scheme),
		attrRequestID.String(requestID),
	))
	return r.WithContext(ctx), span
}

// end names the span after the route pattern ("GET /performance/cache/
// {namespace}/{key...}"), never the raw path, so span names stay as few as the
// routes; records the status; and marks 5xx answers, the server's own
// failures, as errors with the error behind them. 4xx answers are the
// caller's mistakes and leave the status unset, as the HTTP conventions ask.
func (t *httpTracer) end(span trace.Span, method string, info *reqInfo, status int) {
	if !span.IsRecording() {
		// Not sampled: nothing would keep the name or the attributes.
		span.End()
		return
	}
	method = spanMethod(method)
	if route := routePath(info.route); route != "" {
		span.SetName(method + " " + route)
		span.SetAttributes(semconv.HTTPRoute(route))
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(status))
	if status >= 500 {
		span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(status)))
		msg := http.StatusText(status)
		if info.err != nil {
			span.RecordError(info.err)
			msg = info.err.Error()
		}
		span.SetStatus(codes.Error, msg)
	}
	span.End()
}

// spanMethod bounds the method as the HTTP conventions do: unknown methods
// are "_OTHER", so a client cannot mint span names.
func spanMethod(m string) string {
	if m = knownMethod(m); m == "other" {
		return "_OTHER"
	}
	return m
}

// routePath turns a mux pattern ("GET /livez") into the route template the
// conventions call http.route ("/livez"); "" when no route matched.
func routePath(pattern string) string {
	if pattern == "" || pattern == "unmatched" {
		return ""
	}
	if i := strings.IndexByte(pattern, '/'); i > 0 {
		return pattern[i:]
	}
	return pattern
}

// traceIDHandler adds trace_id to every record logged with the context of a
// sampled request — the access line and whatever a handler logs through the
// server's logger — so a log search leads to the trace. Unsampled requests
// have no trace to find, and their lines stay as they were.
type traceIDHandler struct{ slog.Handler }

func (h traceIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsSampled() {
		// Clone: the caller's record must not see the added attribute.
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceIDHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceIDHandler{h.Handler.WithAttrs(as)}
}

func (h traceIDHandler) WithGroup(name string) slog.Handler {
	return traceIDHandler{h.Handler.WithGroup(name)}
}
