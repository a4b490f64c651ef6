package cache

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Tracing. A Cache records a span per Get, GetRaw, Set, PutRaw, GetOrLoad,
// Delete and ClearNamespace, but only when Options.TracerProvider is a real
// provider and the caller's context already carries a recording span (an
// HTTP request, a training run). A cache call on its own is too small and
// too frequent to be worth a trace of its own, and the rule keeps an
// unsampled request's cache calls free of span work. With no provider the
// check is one nil comparison: an L1 hit allocates nothing more than it
// did before tracing existed (BenchmarkTracingOff).

// instrumentationName names the tracer, as OpenTelemetry asks: the package path.
const instrumentationName = "github.com/smartcloudops/smartcloudops/internal/cache"

// Span names.
const (
	spanGet       = "cache.get"
	spanSet       = "cache.set"
	spanGetOrLoad = "cache.get_or_load"
	spanDelete    = "cache.delete"
	spanClear     = "cache.clear_namespace"
)

// Span attributes. Keys are never recorded: callers put user data in them.
var (
	attrNamespace = attribute.Key("cache.namespace")
	attrTier      = attribute.Key("cache.tier") // l1, l2 or fallback, as the metrics' tier label
	attrHit       = attribute.Key("cache.hit")
	attrRemoved   = attribute.Key("cache.removed")
)

// tierNone marks an operation that failed before reaching a tier.
const tierNone tierIdx = -1

// tracerFor returns nil when tp cannot record (nil or the no-op provider),
// so the operations can skip span work with a nil check instead of paying
// for a no-op span's context.
func tracerFor(tp trace.TracerProvider) trace.Tracer {
	switch tp.(type) {
	case nil, noop.TracerProvider, *noop.TracerProvider:
		return nil
	}
	return tp.Tracer(instrumentationName)
}

// startSpan starts an operation's span under the caller's, or returns ctx
// and a nil span when there is nothing to record.
func (c *Cache) startSpan(ctx context.Context, name, ns string) (context.Context, trace.Span) {
	if c.tracer == nil || !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, nil
	}
	return c.tracer.Start(ctx, name, trace.WithAttributes(attrNamespace.String(ns)))
}

// endLookup ends a read's or a write's span with the tier that answered
// and, for reads, whether it found the value.
func endLookup(sp trace.Span, t tierIdx, hit, isRead bool, err error) {
	if sp == nil {
		return
	}
	if t >= 0 && t < numTiers {
		sp.SetAttributes(attrTier.String(tierLabel[t]))
	}
	if isRead {
		sp.SetAttributes(attrHit.Bool(hit))
	}
	endErr(sp, err)
}

// endErr ends sp, marking it failed when err is set.
func endErr(sp trace.Span, err error) {
	if sp == nil {
		return
	}
	if err != nil {
		sp.RecordError(err)
		sp.SetStatus(codes.Error, err.Error())
	}
	sp.End()
}

// tierIndex maps a Tier back to its index ("" is tierNone).
func tierIndex(t Tier) tierIdx {
	switch t {
	case TierL1:
		return tL1
	case TierL2:
		return tL2
	case TierFallback:
		return tFallback
	}
	return tierNone
}
