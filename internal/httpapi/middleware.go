package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/smartcloudops/smartcloudops/internal/logs"
)

// reqInfo is per-request state that inner handlers fill in and outer
// middleware reads after the handler returns (the route pattern, the error
// behind a problem response). A pointer in the context survives the request
// copies that r.WithContext makes further down the chain.
type reqInfo struct {
	id    string
	route string
	err   error
	who   *Principal
	// body is the request body before the server-wide size limit, for a
	// route with a limit of its own (remote write).
	body io.ReadCloser
}

type infoKey struct{}

func infoFrom(ctx context.Context) *reqInfo {
	if i, ok := ctx.Value(infoKey{}).(*reqInfo); ok {
		return i
	}
	return &reqInfo{}
}

// RequestID returns the id the API assigned to the request in ctx, or "".
func RequestID(ctx context.Context) string { return infoFrom(ctx).id }

// PrincipalFrom returns the authenticated caller of the request in ctx, or nil.
func PrincipalFrom(ctx context.Context) *Principal { return infoFrom(ctx).who }

// validRequestID accepts a caller's X-Request-ID only when it is short and
// printable, so it can be logged and echoed without escaping surprises.
func validRequestID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
	// authFailures counts presented credentials that were refused (401).
	authFailures prometheus.Counter
	// throttled counts 429 answers by which per-client budget ran out.
	throttled *prometheus.CounterVec
}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartcloudops_http_requests_total",
			Help: "HTTP requests served, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "smartcloudops_http_request_duration_seconds",
			Help:    "Time from request start to the handler's return, by route pattern and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "smartcloudops_http_requests_in_flight",
			Help: "HTTP requests being served now.",
		}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smartcloudops_http_auth_failures_total",
			Help: "Presented bearer credentials that were refused (bad, expired or malformed tokens; 401).",
		}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartcloudops_http_throttled_total",
			Help: "Requests refused with 429 by a per-client limit, by reason: auth_failures (too many refused credentials) or writes (too many state-changing requests).",
		}, []string{"reason"}),
	}
	// Both reasons exist from the start, so a rate() over them is 0 rather than absent.
	m.throttled.WithLabelValues(throttleAuthFailures)
	m.throttled.WithLabelValues(throttleWrites)
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.inFlight, m.authFailures, m.throttled} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("httpapi: register metrics: %w", err)
		}
	}
	return m, nil
}

// knownMethod bounds the method label: anything else is "other".
func knownMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// instrument is the outermost middleware: it assigns the request id, bounds
// the body, recovers panics into a 500 problem, and records one access-log
// line, the HTTP metrics and, when tracing is on, the server span per request.
func (s *Server) instrument(next http.Handler) http.Handler {
	// tr is nil when tracing is off: the request path then does no tracing
	// work at all (see tracing.go).
	tr := newHTTPTracer(s.deps.TracerProvider)
	if tr != nil {
		// Lines logged for a sampled request carry its trace_id.
		s.log = slog.New(traceIDHandler{s.log.Handler()})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &reqInfo{id: r.Header.Get("X-Request-ID"), route: "unmatched"}
		if !validRequestID(info.id) {
			info.id = newRequestID()
		}
		w.Header().Set("X-Request-ID", info.id)
		// The log pipeline stamps every record logged with this context
		// (access line included) with the request id.
		r = r.WithContext(logs.WithRequestID(context.WithValue(r.Context(), infoKey{}, info), info.id))
		var span trace.Span
		if tr != nil {
			// Handlers pass r's context to the parts, so their spans
			// (cache, store, detector) become children of this one.
			r, span = tr.start(r, info.id)
		}
		if r.Body != nil {
			info.body = r.Body
			r.Body = http.MaxBytesReader(w, r.Body, s.maxBody)
		}
		sw := &logs.ResponseRecorder{ResponseWriter: w}
		s.metrics.inFlight.Inc()
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				info.err = fmt.Errorf("panic: %v", p)
				if sw.Status == 0 {
					writeProblem(sw, r, info.err)
				}
			}
			s.metrics.inFlight.Dec()
			if sw.Status == 0 {
				sw.Status = http.StatusOK
			}
			d := time.Since(start)
			method := knownMethod(r.Method)
			s.metrics.requests.WithLabelValues(info.route, method, strconv.Itoa(sw.Status)).Inc()
			s.metrics.duration.WithLabelValues(info.route, method).Observe(d.Seconds())
			if span != nil {
				tr.end(span, r.Method, info, sw.Status)
			}
			s.accessLog(r, info, sw, d)
		}()
		next.ServeHTTP(sw, r)
	})
}

func (s *Server) accessLog(r *http.Request, info *reqInfo, sw *logs.ResponseRecorder, d time.Duration) {
	level := slog.LevelInfo
	switch {
	case sw.Status >= 500:
		level = slog.LevelError
	case sw.Status >= 400:
		level = slog.LevelWarn
	}
	if !s.log.Enabled(r.Context(), level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.String("route", info.route),
		slog.String("path", r.URL.Path),
		slog.Int("status", sw.Status),
		slog.Int64("bytes", sw.Bytes),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		slog.String("remote", r.RemoteAddr),
	}
	if info.who != nil {
		attrs = append(attrs, slog.String("subject", info.who.Subject))
	}
	if info.err != nil {
		attrs = append(attrs, slog.String("error", info.err.Error()))
	}
	logs.LogAttrs(r.Context(), s.log, level, "http request", attrs...)
}
