package cache

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/smartcloudops/smartcloudops/internal/redistest"
	"github.com/smartcloudops/smartcloudops/internal/spantest"
)

// wantSpan checks one recorded span's name, parent and attributes.
func wantSpan(t *testing.T, s sdktrace.ReadOnlySpan, name string, parent trace.SpanContext, want map[attribute.Key]any) {
	t.Helper()
	if s.Name() != name {
		t.Errorf("span name %q, want %q", s.Name(), name)
		return
	}
	if s.Parent().SpanID() != parent.SpanID() || s.SpanContext().TraceID() != parent.TraceID() {
		t.Errorf("%s: parent %s/%s, want %s/%s", name, s.SpanContext().TraceID(), s.Parent().SpanID(), parent.TraceID(), parent.SpanID())
	}
	got := spantest.Attrs(s)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s = %v, want %v (all: %v)", name, k, got[k], v, s.Attributes())
		}
	}
	if _, ok := got["cache.key"]; ok {
		t.Errorf("%s records the key", name)
	}
}

func TestTracingSpansUnderCallersSpan(t *testing.T) {
	tp, rec := spantest.Recorder(t)
	c, _ := newMemoryCache(t, func(o *Options) { o.TracerProvider = tp })
	ctx, root := tp.Tracer("test").Start(context.Background(), "request")
	parent := root.SpanContext()

	if err := c.Set(ctx, "ns", "k", "v", time.Minute); err != nil {
		t.Fatal(err)
	}
	var s string
	if ok, err := c.Get(ctx, "ns", "k", &s); !ok || err != nil {
		t.Fatalf("Get: %v %v", ok, err)
	}
	if ok, _ := c.Get(ctx, "ns", "absent", &s); ok {
		t.Fatal("absent key found")
	}
	if _, err := c.PutRaw(ctx, "ns", "raw", "text/plain", []byte("x"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := c.GetRaw(ctx, "ns", "raw"); !ok {
		t.Fatal("GetRaw missed")
	}
	load := func(context.Context) (any, error) { return "loaded", nil }
	if err := c.GetOrLoad(ctx, "ns", "lazy", &s, time.Minute, load); err != nil {
		t.Fatal(err)
	}
	if err := c.GetOrLoad(ctx, "ns", "lazy", &s, time.Minute, load); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(ctx, "ns", "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ClearNamespace(ctx, "ns"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "", "k", &s); err == nil {
		t.Fatal("invalid namespace accepted")
	}
	root.End()

	spans := rec.Ended()
	want := []struct {
		name  string
		attrs map[attribute.Key]any
	}{
		{spanSet, map[attribute.Key]any{"cache.namespace": "ns", "cache.tier": "l1"}},
		{spanGet, map[attribute.Key]any{"cache.namespace": "ns", "cache.tier": "l1", "cache.hit": true}},
		{spanGet, map[attribute.Key]any{"cache.tier": "l1", "cache.hit": false}},
		{spanSet, map[attribute.Key]any{"cache.tier": "l1"}},
		{spanGet, map[attribute.Key]any{"cache.tier": "l1", "cache.hit": true}},
		{spanGetOrLoad, map[attribute.Key]any{"cache.tier": "l1", "cache.hit": false}},
		{spanGetOrLoad, map[attribute.Key]any{"cache.tier": "l1", "cache.hit": true}},
		{spanDelete, map[attribute.Key]any{"cache.hit": true}},
		{spanClear, map[attribute.Key]any{"cache.namespace": "ns", "cache.removed": int64(2)}},
		{spanGet, map[attribute.Key]any{"cache.namespace": ""}},
		{"request", nil},
	}
	if len(spans) != len(want) {
		for _, s := range spans {
			t.Logf("span %s %v", s.Name(), s.Attributes())
		}
		t.Fatalf("%d spans, want %d", len(spans), len(want))
	}
	for i, w := range want[:len(want)-1] {
		wantSpan(t, spans[i], w.name, parent, w.attrs)
	}
	failed := spans[len(spans)-2]
	if failed.Status().Code != codes.Error || len(failed.Events()) == 0 {
		t.Errorf("a failed call's span has status %v and %d events; want Error and the recorded error", failed.Status(), len(failed.Events()))
	}
}

func TestTracingRedisTiers(t *testing.T) {
	tp, rec := spantest.Recorder(t)
	cl := rawClient(t, redistest.URL())
	prefix := testPrefix(t, cl)
	writer, _ := newRedisCache(t, prefix, func(o *Options) { o.TracerProvider = tp })
	reader, _ := newRedisCache(t, prefix, func(o *Options) { o.TracerProvider = tp })
	ctx, root := tp.Tracer("test").Start(context.Background(), "request")
	if err := writer.Set(ctx, "ns", "k", 42, time.Minute); err != nil {
		t.Fatal(err)
	}
	var n int
	// The other replica has nothing in its L1: Redis answers.
	if ok, err := reader.Get(ctx, "ns", "k", &n); !ok || err != nil {
		t.Fatalf("Get: %v %v", ok, err)
	}
	root.End()
	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3", len(spans))
	}
	wantSpan(t, spans[0], spanSet, root.SpanContext(), map[attribute.Key]any{"cache.tier": "l2"})
	wantSpan(t, spans[1], spanGet, root.SpanContext(), map[attribute.Key]any{"cache.tier": "l2", "cache.hit": true})
}

func TestTracingNeedsARecordingParent(t *testing.T) {
	tp, rec := spantest.Recorder(t)
	c, _ := newMemoryCache(t, func(o *Options) { o.TracerProvider = tp })
	var s string
	_, _ = c.Get(context.Background(), "ns", "k", &s)
	// A parent that was not sampled: its children would not be either.
	unsampled := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1},
	}))
	_, _ = c.Get(unsampled, "ns", "k", &s)
	if n := len(rec.Started()); n != 0 {
		t.Fatalf("%d spans started without a recording parent", n)
	}
}

// TestTracingOffAllocatesNothing pins the promise that tracing off (no
// provider, or the no-op one) and tracing on under an unsampled request add
// no allocation to an operation: the span bookkeeping around it is free.
func TestTracingOffAllocatesNothing(t *testing.T) {
	tp, _ := spantest.Recorder(t)
	for name, p := range map[string]trace.TracerProvider{"nil": nil, "noop": noop.NewTracerProvider(), "sdk, no parent": tp} {
		c, _ := newMemoryCache(t, func(o *Options) { o.TracerProvider = p })
		if name != "sdk, no parent" && c.tracer != nil {
			t.Errorf("%s: a tracer was made", name)
		}
		ctx := context.Background()
		allocs := testing.AllocsPerRun(100, func() {
			sctx, sp := c.startSpan(ctx, spanGet, "ns")
			_ = sctx
			endLookup(sp, tL1, true, true, nil)
		})
		if allocs != 0 {
			t.Errorf("%s: span bookkeeping allocates %.0f times per operation", name, allocs)
		}
	}
}
