package anomaly

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/smartcloudops/smartcloudops/internal/spantest"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

func normalized(t *testing.T, in ...Sample) []Sample {
	t.Helper()
	for i := range in {
		var err error
		if in[i], err = Normalize(in[i]); err != nil {
			t.Fatal(err)
		}
	}
	return in
}

func TestTracingDetectAndBatches(t *testing.T) {
	tp, rec := spantest.Recorder(t)
	s, _ := newService(t, func(o *Options) { o.TracerProvider = tp })
	s.model.Store(fitModel(t, "iforest-test", 1))
	rng := rand.New(rand.NewPCG(3, 4))
	in := normalized(t, normalHost(rng, "web-1", t0), normalHost(rng, "web-2", t0), normalHost(rng, "web-3", t0))

	ctx, root := tp.Tracer("test").Start(context.Background(), "request")
	if _, err := s.Detect(ctx, in, DetectOptions{}); err != nil {
		t.Fatal(err)
	}
	root.End()
	spans := rec.Ended()
	detects := spantest.Named(spans, spanDetect)
	if len(detects) != 1 {
		t.Fatalf("%d detect spans", len(detects))
	}
	d := detects[0]
	if d.Parent().SpanID() != root.SpanContext().SpanID() {
		t.Error("detect span is not a child of the caller's")
	}
	if a := spantest.Attrs(d); a[attrSamples] != int64(3) || a[attrAnomalies] != int64(0) || a[attrModel] != "iforest-test+"+ThresholdVersion {
		t.Errorf("detect attributes %v", a)
	}
	// The batcher may cut the request's rows into several batches (it
	// hands a batch over as soon as a worker is idle); each is the
	// detect span's child, and together they hold every row.
	batches := spantest.Named(spans, spanBatch)
	rows := int64(0)
	for _, b := range batches {
		if b.Parent().SpanID() != d.SpanContext().SpanID() || len(b.Links()) != 0 {
			t.Errorf("batch span parent %s links %d; want the detect span %s and no links", b.Parent().SpanID(), len(b.Links()), d.SpanContext().SpanID())
		}
		rows += spantest.Attrs(b)[attrBatchSize].(int64)
	}
	if len(batches) == 0 || rows != 3 {
		t.Errorf("%d batch spans holding %d rows; want the 3 rows", len(batches), rows)
	}
}

// TestTracingBatchLinksItsRequests scores one batch made of two requests'
// rows: its span is the first request's child and links to the second.
func TestTracingBatchLinksItsRequests(t *testing.T) {
	tp, rec := spantest.Recorder(t)
	s, _ := newService(t, func(o *Options) { o.TracerProvider = tp; o.DisableBatching = true })
	m := fitModel(t, "iforest-test", 1)
	rng := rand.New(rand.NewPCG(5, 6))
	tr := tp.Tracer("test")
	_, a := tr.Start(context.Background(), "request a")
	_, b := tr.Start(context.Background(), "request b")
	row := func() []float64 { _, r := m.row(normalHost(rng, "h", t0)); return r }
	h := m.fleet
	s.scoreBatch([]*job{{model: m, host: h, row: row(), span: a}, {model: m, host: h, row: row(), span: a}, {model: m, host: h, row: row(), span: b}})
	batches := spantest.Named(rec.Ended(), spanBatch)
	if len(batches) != 1 {
		t.Fatalf("%d batch spans", len(batches))
	}
	sp := batches[0]
	if sp.Parent().SpanID() != a.SpanContext().SpanID() || sp.SpanContext().TraceID() != a.SpanContext().TraceID() {
		t.Error("the batch is not the first request's child")
	}
	if l := sp.Links(); len(l) != 1 || l[0].SpanContext.SpanID() != b.SpanContext().SpanID() {
		t.Errorf("links %v; want the second request's span", l)
	}
	if at := spantest.Attrs(sp); at[attrBatchSize] != int64(3) || at[attrRequests] != int64(2) {
		t.Errorf("batch attributes %v", at)
	}
}

func TestTracingIngestAndTrain(t *testing.T) {
	tp, rec := spantest.Recorder(t)
	st := openStore(t, storetest.SQLiteURL(t))
	clock := newFakeClock()
	s, _ := newService(t, func(o *Options) { o.Store = st; o.Clock = clock; o.TracerProvider = tp })
	ctx := context.Background()

	in := normalized(t, Sample{Host: "db-1", Timestamp: t0, Metrics: map[string]float64{MetricCPU: 99.5}},
		Sample{Host: "db-2", Timestamp: t0, Metrics: map[string]float64{MetricCPU: 50}})
	if _, err := s.Ingest(ctx, in); err != nil {
		t.Fatal(err)
	}
	spans := rec.Ended()
	ingest, detect := spantest.Named(spans, spanIngest), spantest.Named(spans, spanDetect)
	if len(ingest) != 1 || len(detect) != 1 || detect[0].Parent().SpanID() != ingest[0].SpanContext().SpanID() {
		t.Fatalf("ingest %d, detect %d spans; want one each, detect under ingest", len(ingest), len(detect))
	}
	if a := spantest.Attrs(ingest[0]); a[attrSamples] != int64(2) || a[attrStored] != int64(2) || a[attrDuplicates] != int64(0) || a[attrAnomalies] != int64(1) {
		t.Errorf("ingest attributes %v", a)
	}

	// Too little history: recorded on the span, but not a failure.
	rec.Reset()
	if _, err := s.Train(ctx, true); !errors.Is(err, ErrNotEnoughData) {
		t.Fatalf("Train = %v", err)
	}
	seedHistory(t, st, 3, 400, clock.Now())
	info, err := s.Train(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	trains := spantest.Named(rec.Ended(), spanTrain)
	if len(trains) != 2 {
		t.Fatalf("%d train spans", len(trains))
	}
	if trains[0].Status().Code != codes.Unset || len(trains[0].Events()) == 0 || spantest.Attrs(trains[0])[attrActivate] != true {
		t.Errorf("not-enough-data training: status %v, events %v, attributes %v", trains[0].Status(), trains[0].Events(), spantest.Attrs(trains[0]))
	}
	if a := spantest.Attrs(trains[1]); a[attrModel] != info.Version || a[attrTrainRows] != info.TrainingRows || a[attrActivate] != false {
		t.Errorf("training attributes %v; want version %s, %d rows", a, info.Version, info.TrainingRows)
	}
	// A call without a span of its own starts a trace: the schedule's trainings are roots.
	if trains[1].Parent().IsValid() {
		t.Error("a training with no caller span has a parent")
	}
}

func TestTracingOffMakesNoTracer(t *testing.T) {
	for _, tp := range []trace.TracerProvider{nil, noop.NewTracerProvider()} {
		s, _ := newService(t, func(o *Options) { o.TracerProvider = tp })
		if s.tracer != nil {
			t.Errorf("%T: a tracer was made", tp)
		}
	}
}
