package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/smartcloudops/smartcloudops/internal/config"
	"github.com/smartcloudops/smartcloudops/internal/httpapi"
)

// Tracing is off unless an OTLP endpoint is configured with the standard
// OpenTelemetry variables; off, serve hands the parts a nil provider and
// they do no span work at all. On, the provider batches spans to an OTLP
// exporter, and serve shuts it down (flushing what is queued) after the HTTP
// server has drained and the parts have closed, so the last requests'
// spans are sent too.
//
// What this file reads through getenv, the standard names and meanings:
//
//	OTEL_SDK_DISABLED=true                  tracing off, whatever else is set
//	OTEL_TRACES_EXPORTER                    otlp (the default once an endpoint is set) or none
//	OTEL_EXPORTER_OTLP_ENDPOINT             collector base URL; /v1/traces is appended for HTTP
//	OTEL_EXPORTER_OTLP_TRACES_ENDPOINT      full URL for traces only (wins over the above)
//	OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL    http/protobuf (default) or grpc
//	OTEL_SERVICE_NAME                       service.name (default smartcloudops)
//	OTEL_RESOURCE_ATTRIBUTES                extra resource attributes, k=v,k2=v2
//	OTEL_TRACES_SAMPLER, _ARG               sampler (default parentbased_always_on)
//
// The exporter itself reads the rest of OTEL_EXPORTER_OTLP_* (the endpoint
// too, headers, TLS certificates, compression, timeout) and the batch
// processor OTEL_BSP_*, from the process environment: main passes
// os.Getenv as getenv, so both see the same values.

// defaultServiceName is service.name when OTEL_SERVICE_NAME is unset.
const defaultServiceName = "smartcloudops"

// tracingSettings is what newTracerProvider decided from the environment.
type tracingSettings struct {
	endpoint    string // as configured, for the log; empty means the exporter's default
	protocol    string
	sampler     sdktrace.Sampler
	serviceName string
	attrs       []attribute.KeyValue
}

// tracingFromEnv reads the variables above. ok is false when tracing is off.
func tracingFromEnv(getenv func(string) string) (s tracingSettings, ok bool, err error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return s, false, nil
	}
	s.endpoint = first(getenv, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
	switch exp := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exp {
	case "none":
		return s, false, nil
	case "":
		// The SDKs' default exporter is otlp to localhost; this service
		// exports only when asked to, by an endpoint or by otlp.
		if s.endpoint == "" {
			return s, false, nil
		}
	case "otlp":
	default:
		return s, false, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: only otlp and none are supported", exp)
	}
	s.protocol = first(getenv, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
	switch s.protocol {
	case "":
		s.protocol = "http/protobuf"
	case "http/protobuf", "grpc":
	default:
		return s, false, fmt.Errorf("OTLP protocol %q: only http/protobuf and grpc are supported", s.protocol)
	}
	if s.sampler, err = samplerFromEnv(getenv("OTEL_TRACES_SAMPLER"), getenv("OTEL_TRACES_SAMPLER_ARG")); err != nil {
		return s, false, err
	}
	if s.attrs, err = resourceAttrs(getenv("OTEL_RESOURCE_ATTRIBUTES")); err != nil {
		return s, false, err
	}
	s.serviceName = strings.TrimSpace(getenv("OTEL_SERVICE_NAME"))
	if s.serviceName == "" {
		s.serviceName = defaultServiceName
		// service.name from OTEL_RESOURCE_ATTRIBUTES counts when
		// OTEL_SERVICE_NAME is unset, as the specification orders.
		for _, kv := range s.attrs {
			if kv.Key == semconv.ServiceNameKey {
				s.serviceName = kv.Value.AsString()
			}
		}
	}
	return s, true, nil
}

// first returns the first non-empty of the variables.
func first(getenv func(string) string, keys ...string) string {
	for _, k := range keys {
		if v := strings.TrimSpace(getenv(k)); v != "" {
			return v
		}
	}
	return ""
}

// samplerFromEnv builds the sampler OTEL_TRACES_SAMPLER names. Unlike the
// SDK, which warns and falls back on a bad value, it fails: a typo in a
// sampling ratio should stop the start, not silently trace everything.
func samplerFromEnv(name, arg string) (sdktrace.Sampler, error) {
	ratio := func() (float64, error) {
		if arg == "" {
			return 1, nil
		}
		r, err := strconv.ParseFloat(strings.TrimSpace(arg), 64)
		if err != nil || r < 0 || r > 1 {
			return 0, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG=%q: want a ratio between 0 and 1", arg)
		}
		return r, nil
	}
	switch strings.TrimSpace(name) {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "traceidratio":
		r, err := ratio()
		return sdktrace.TraceIDRatioBased(r), err
	case "parentbased_traceidratio":
		r, err := ratio()
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r)), err
	}
	return nil, fmt.Errorf("OTEL_TRACES_SAMPLER=%q: want always_on, always_off, traceidratio or their parentbased_ forms", name)
}

// resourceAttrs parses OTEL_RESOURCE_ATTRIBUTES: k=v pairs separated by
// commas, values percent-encoded.
func resourceAttrs(s string) ([]attribute.KeyValue, error) {
	var out []attribute.KeyValue
	for _, pair := range strings.Split(s, ",") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %q is not key=value", pair)
		}
		val, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: value of %s: %w", k, err)
		}
		out = append(out, attribute.String(k, val))
	}
	return out, nil
}

// newTracerProvider returns the provider the environment asks for, or nil
// when tracing is off. Creating it connects to nothing: the exporter dials
// the collector when the first batch is sent.
func newTracerProvider(ctx context.Context, getenv func(string) string, b httpapi.BuildInfo, log *slog.Logger) (*sdktrace.TracerProvider, error) {
	s, on, err := tracingFromEnv(getenv)
	if err != nil || !on {
		return nil, err
	}
	var exp sdktrace.SpanExporter
	if s.protocol == "grpc" {
		exp, err = otlptracegrpc.New(ctx)
	} else {
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithAttributes(s.attrs...),
		resource.WithAttributes(semconv.ServiceName(s.serviceName), semconv.ServiceVersion(b.Version)),
	)
	if err != nil {
		_ = exp.Shutdown(ctx)
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(&loggedExporter{SpanExporter: exp, log: log}),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(s.sampler),
	)
	endpoint := "the exporter's default"
	if s.endpoint != "" {
		endpoint = config.RedactURL(s.endpoint)
	}
	log.Info("tracing on", slog.String("endpoint", endpoint), slog.String("protocol", s.protocol),
		slog.String("sampler", s.sampler.Description()), slog.String("service", s.serviceName))
	return tp, nil
}

// loggedExporter reports export failures in the service's own log, once
// when they start and once when they stop. Returned to the batch processor,
// the error would go to OpenTelemetry's global handler, which prints every
// failure straight to the process's stderr, outside the log pipeline.
type loggedExporter struct {
	sdktrace.SpanExporter
	log     *slog.Logger
	failing atomic.Bool
}

func (e *loggedExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	switch {
	case err != nil && e.failing.CompareAndSwap(false, true):
		e.log.Warn("tracing: exporting spans failed; spans are dropped until the collector answers",
			slog.Int("spans", len(spans)), slog.String("error", err.Error()))
	case err == nil && e.failing.CompareAndSwap(true, false):
		e.log.Info("tracing: exporting spans again")
	}
	return nil
}

// shutdownTracing flushes the spans still queued and stops the exporter.
func shutdownTracing(ctx context.Context, tp *sdktrace.TracerProvider) error {
	if tp == nil {
		return nil
	}
	if err := tp.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("tracing: flush on shutdown: %w", err)
	}
	return nil
}

// startTracing builds the provider for serve. The provider it returns is a
// nil interface when tracing is off — never a typed nil pointer, which the
// parts would take for a real provider. stop flushes the spans still queued
// and stops the exporter; serve defers it before building the parts, so it
// runs after they have closed and after the HTTP server has drained.
func startTracing(ctx context.Context, getenv func(string) string, b httpapi.BuildInfo, log *slog.Logger) (tp trace.TracerProvider, stop func(), err error) {
	sdk, err := newTracerProvider(ctx, getenv, b, log)
	if err != nil || sdk == nil {
		return nil, func() {}, err
	}
	return sdk, func() {
		// Bounded: with the collector gone, the exporter would retry for a minute.
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdownTracing(cctx, sdk); err != nil {
			log.Error("tracing: spans lost at shutdown", slog.String("error", err.Error()))
		}
	}, nil
}
