package store

import (
	"context"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/smartcloudops/smartcloudops/internal/dburl"
)

// instrumentationName names the tracer, as OpenTelemetry asks: the package path.
const instrumentationName = "github.com/smartcloudops/smartcloudops/internal/store"

// Our attributes, beside the database conventions' own.
var (
	// attrQueryID is the statement's fingerprint id, the query_id of the
	// statistics and the slow log, so a span leads to its statistics.
	attrQueryID = attribute.Key("smartcloudops.db.query_id")
	// attrRows is the rows returned, or affected by a write, as the
	// statistics count them.
	attrRows = attribute.Key("smartcloudops.db.rows")
)

// storeTracer makes one span per statement. Every statement the store runs
// (Exec, Query, transactions, bulk inserts, maintenance) ends in observe, so
// that is the one place spans are made: after the fact, with the start and
// end the statistics measured, which leaves the statement path itself
// untouched. A span is made only under a recording parent span (a request,
// a training run): a statement alone is not worth a trace, and startup
// migrations or the advisor's background queries would otherwise each open
// one. The span carries the normalised statement (literals and placeholders
// as ?) and never the bound values, which can hold personal data.
type storeTracer struct {
	tracer trace.Tracer
	system attribute.KeyValue
}

// newStoreTracer returns nil when tp cannot record (nil or the no-op
// provider): observe then skips tracing with one nil check.
func newStoreTracer(tp trace.TracerProvider, kind dburl.Kind) *storeTracer {
	switch tp.(type) {
	case nil, noop.TracerProvider, *noop.TracerProvider:
		return nil
	}
	system := semconv.DBSystemNameSQLite
	if kind == dburl.Postgres {
		system = semconv.DBSystemNamePostgreSQL
	}
	return &storeTracer{tracer: tp.Tracer(instrumentationName), system: system}
}

// statement records one execution as a client span from start to end.
func (t *storeTracer) statement(ctx context.Context, qi *queryInfo, start, end time.Time, rows int64, failed bool, err error) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return
	}
	op := operation(qi.fp.Normalized)
	// The conventions' "{operation} {target}", with the target only when
	// the store knows it (the table a write changes): bounded either way.
	name := op
	attrs := []attribute.KeyValue{
		t.system,
		semconv.DBOperationName(op),
		semconv.DBQueryText(qi.fp.Normalized),
		attrQueryID.String(qi.fp.ID),
		attrRows.Int64(rows),
	}
	if len(qi.writes) > 0 {
		name += " " + qi.writes[0]
		attrs = append(attrs, semconv.DBCollectionName(qi.writes[0]))
	}
	_, sp := t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(start), trace.WithAttributes(attrs...))
	if failed {
		sp.RecordError(err)
		sp.SetStatus(codes.Error, err.Error())
	}
	sp.End(trace.WithTimestamp(end))
}

// operation is a normalised statement's first word in capitals (SELECT,
// INSERT, WITH …): the conventions' db.operation.name.
func operation(normalized string) string {
	op, _, _ := strings.Cut(normalized, " ")
	if op == "" {
		return "UNKNOWN"
	}
	return strings.ToUpper(op)
}
