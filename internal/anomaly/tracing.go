package anomaly

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Tracing. With Options.TracerProvider set, Detect, Ingest and Train each
// record a span (a child of the caller's, or a trace of their own: the
// retraining schedule has no caller), and every batch the forest scores
// records one too. A batch mixes samples of several requests, so its span
// is a child of the first request's detect span and links to the others'.
// With no provider the service holds a nil tracer and does no span work.

// instrumentationName names the tracer, as OpenTelemetry asks: the package path.
const instrumentationName = "github.com/smartcloudops/smartcloudops/internal/anomaly"

// Span names.
const (
	spanDetect = "anomaly.detect"
	spanIngest = "anomaly.ingest"
	spanBatch  = "anomaly.score_batch"
	spanTrain  = "anomaly.train"
)

// Span attributes.
var (
	attrSamples    = attribute.Key("anomaly.samples")   // samples in the request
	attrAnomalies  = attribute.Key("anomaly.anomalies") // samples found anomalous
	attrCached     = attribute.Key("anomaly.cached")    // forest scores from the prediction cache
	attrStored     = attribute.Key("anomaly.stored")
	attrDuplicates = attribute.Key("anomaly.duplicates")
	attrBatchSize  = attribute.Key("anomaly.batch.size")
	attrRequests   = attribute.Key("anomaly.batch.requests") // requests whose samples the batch holds
	attrModel      = attribute.Key("anomaly.model.version")
	attrActivate   = attribute.Key("anomaly.train.activate")
	attrTrainRows  = attribute.Key("anomaly.train.rows")
)

// tracerFor returns nil when tp cannot record (nil or the no-op provider).
func tracerFor(tp trace.TracerProvider) trace.Tracer {
	switch tp.(type) {
	case nil, noop.TracerProvider, *noop.TracerProvider:
		return nil
	}
	return tp.Tracer(instrumentationName)
}

// endSpan ends sp, marking it failed when err is set. Too little history
// for training is the normal state of a new install: recorded, not failed.
func endSpan(sp trace.Span, err error) {
	if err != nil {
		sp.RecordError(err)
		if !errors.Is(err, ErrNotEnoughData) {
			sp.SetStatus(codes.Error, err.Error())
		}
	}
	sp.End()
}

// endDetect records what a Detect call found.
func endDetect(sp trace.Span, out []Result, err error) {
	anomalies, cached := 0, 0
	for i := range out {
		if out[i].IsAnomaly {
			anomalies++
		}
		if out[i].Cached {
			cached++
		}
	}
	if err == nil {
		sp.SetAttributes(attrAnomalies.Int(anomalies), attrCached.Int(cached))
		if len(out) > 0 {
			sp.SetAttributes(attrModel.String(out[0].ModelVersion))
		}
	}
	endSpan(sp, err)
}

// startBatch starts a scoring batch's span: a child of the first job's
// request span, linked to the other requests' spans, so the batch shows in
// one request's trace and can be reached from every other's.
func (s *Service) startBatch(batch []*job) trace.Span {
	ctx := context.Background()
	var links []trace.Link
	var first trace.SpanContext
	seen := map[trace.SpanID]bool{}
	for _, j := range batch {
		if j.span == nil {
			continue
		}
		sc := j.span.SpanContext()
		if !sc.IsValid() || seen[sc.SpanID()] {
			continue
		}
		seen[sc.SpanID()] = true
		if !first.IsValid() {
			first = sc
			ctx = trace.ContextWithSpanContext(ctx, sc)
			continue
		}
		links = append(links, trace.Link{SpanContext: sc})
	}
	_, sp := s.tracer.Start(ctx, spanBatch, trace.WithLinks(links...), trace.WithAttributes(
		attrBatchSize.Int(len(batch)), attrRequests.Int(len(seen))))
	return sp
}
