package otlp

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"

	"github.com/smartcloudops/smartcloudops/internal/anomaly"
	"github.com/smartcloudops/smartcloudops/internal/ingest"
)

// Source is the receiver's source label on the ingest metrics.
const Source = "otlp"

// DefaultHostAttributes are the resource attributes that name a host, the
// first one present winning: the semantic conventions' host.name, then
// service.instance.id for a service that does not say its host.
var DefaultHostAttributes = []string{"host.name", "service.instance.id"}

// DefaultMaxFutureSkew is how far past the server's clock a data point may
// be, as for POST /api/v1/metrics: clocks drift, a point from tomorrow is
// a bug to report.
const DefaultMaxFutureSkew = time.Hour

// Options configure a Receiver. The zero values of the limits turn them
// off.
type Options struct {
	// Sink is where rows go: the anomaly service.
	Sink ingest.Sink
	// HostAttributes name the host, first present wins; DefaultHostAttributes
	// when empty.
	HostAttributes []string
	// MaxDecodedBytes bounds a request's body after decompression.
	MaxDecodedBytes int64
	// MaxDataPoints bounds the data points of one request.
	MaxDataPoints int
	// MaxSeriesPerTenant caps the series one tenant has at a time.
	MaxSeriesPerTenant int
	// AlignWindow gives a host's points within this of each other one
	// time (one row); 0 keeps every point's own time.
	AlignWindow time.Duration
	// MaxFutureSkew is how far ahead of Now a point may be;
	// DefaultMaxFutureSkew when 0.
	MaxFutureSkew time.Duration
	// Registerer takes the ingest metrics (source "otlp"); optional.
	Registerer prometheus.Registerer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Receiver is the OTLP/HTTP metrics receiver. It is safe for concurrent use.
type Receiver struct {
	opt     Options
	tracker *ingest.Tracker
	metrics *ingest.Metrics
	// seed keys the series hashes for the Tracker's lifetime.
	seed maphash.Seed
}

// New returns a Receiver delivering to o.Sink.
func New(o Options) (*Receiver, error) {
	if o.Sink == nil {
		return nil, errors.New("otlp: a Sink is required")
	}
	if len(o.HostAttributes) == 0 {
		o.HostAttributes = DefaultHostAttributes
	}
	if o.MaxFutureSkew <= 0 {
		o.MaxFutureSkew = DefaultMaxFutureSkew
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	tr := ingest.NewTracker(ingest.TrackerOptions{MaxSeriesPerTenant: o.MaxSeriesPerTenant, Now: o.Now})
	return &Receiver{opt: o, tracker: tr, metrics: ingest.NewMetrics(o.Registerer, Source, tr), seed: maphash.MakeSeed()}, nil
}

// hostOf is the host a resource names, "" when none.
func (r *Receiver) hostOf(attrs []*commonpb.KeyValue) string {
	for _, key := range r.opt.HostAttributes {
		if v := strings.TrimSpace(attr(attrs, key)); v != "" {
			return v
		}
	}
	return ""
}

// Result is what one request's export did.
type Result struct {
	// Points is the number of data points in the request.
	Points int `json:"points"`
	// Rejected are the data points not accepted, reported to the sender
	// as partial success; Message says why, by outcome.
	Rejected int64  `json:"rejected"`
	Message  string `json:"message,omitempty"`
	// Outcomes count the data points by what became of them.
	Outcomes map[string]int `json:"outcomes"`
	// Report is the delivery's.
	Report ingest.Report `json:"report"`
}

// Ingest maps a decoded request's data points for tenant and delivers the
// rows. It fails only when delivery does (the sender retries the whole
// request), or with ingest.ErrTooLarge before anything is observed.
func (r *Receiver) Ingest(ctx context.Context, tenant string, req *colmetricpb.ExportMetricsServiceRequest) (Result, error) {
	res := Result{Points: countDataPoints(req), Outcomes: map[string]int{}}
	if r.opt.MaxDataPoints > 0 && res.Points > r.opt.MaxDataPoints {
		r.metrics.Samples(outTooMany, res.Points)
		return res, tooManyPoints(res.Points, r.opt.MaxDataPoints, false)
	}
	b := &batch{r: r, tenant: tenant, now: r.opt.Now(), counts: res.Outcomes, rows: map[rowKey]map[string]*accum{},
		recs: make([]record, 0, res.Points)}
	b.h.h.SetSeed(r.seed)
	b.collect(req)
	b.align(r.opt.AlignWindow)
	b.observe(r.tracker)
	pts, carried := b.points()
	rep, err := ingest.Deliver(ctx, r.opt.Sink, pts)
	res.Report = rep
	for label, n := range carried {
		if err != nil {
			label = outNotStored
		}
		b.count(label, n)
	}
	for label, n := range res.Outcomes {
		r.metrics.Samples(label, n)
		if rejectedOutcomes[label] {
			res.Rejected += int64(n)
		}
	}
	res.Message = rejectionMessage(res.Outcomes, res.Points, r.opt.MaxFutureSkew)
	return res, err
}

// rejectionMessage says why points were rejected, by outcome, or "" when
// none were.
func rejectionMessage(outcomes map[string]int, points int, skew time.Duration) string {
	var parts []string
	total := 0
	for label, n := range outcomes {
		if rejectedOutcomes[label] && n > 0 {
			parts = append(parts, strconv.Itoa(n)+" "+label)
			total += n
		}
	}
	if total == 0 {
		return ""
	}
	slices.Sort(parts)
	msg := fmt.Sprintf("%d of %d data points rejected: %s", total, points, strings.Join(parts, ", "))
	if outcomes[outFuture] > 0 {
		msg += fmt.Sprintf(" (future: over %s ahead of the server's clock)", skew)
	}
	if outcomes[outNoHost] > 0 {
		msg += " (no_host: the resource has no host.name or other host attribute)"
	}
	return msg
}

// Request is one OTLP/HTTP export as the HTTP layer hands it over.
type Request struct {
	// Tenant is the caller's tenant ("" for none): hosts are stored as
	// "<tenant>/<host>".
	Tenant          string
	ContentType     string
	ContentEncoding string
	Body            io.Reader
}

// Response is the answer to an export: on success an
// ExportMetricsServiceResponse, on failure a google.rpc.Status, encoded as
// the request was (binary protobuf when its Content-Type was refused).
type Response struct {
	Status      int
	ContentType string
	Body        []byte
	// RetryAfter is sent as Retry-After when positive.
	RetryAfter time.Duration
	// Err is a failure's cause for the server's log; never sent as is.
	Err error
	// Result is what the export did (zero when the body was refused).
	Result Result
}

// Export decodes, maps and delivers one request and says what to answer,
// following OTLP/HTTP: 200 (with partial_success when some data points
// were rejected), 400 for a body that does not decode (not retryable), 413
// over a size limit, 415 for a Content-Type or Content-Encoding it does
// not read, 503 with Retry-After when the service cannot take the rows now
// (retryable: queue full, database down, shutting down).
func (r *Receiver) Export(ctx context.Context, in Request) Response {
	enc, err := ParseContentType(in.ContentType)
	if err != nil {
		return r.fail(enc, err, Result{})
	}
	req, err := Decode(in.Body, enc, in.ContentEncoding, r.opt.MaxDecodedBytes, r.opt.MaxDataPoints)
	if err != nil {
		return r.fail(enc, err, Result{})
	}
	res, err := r.Ingest(ctx, in.Tenant, req)
	if err != nil {
		return r.fail(enc, err, res)
	}
	out := &colmetricpb.ExportMetricsServiceResponse{}
	if res.Rejected > 0 {
		out.PartialSuccess = &colmetricpb.ExportMetricsPartialSuccess{RejectedDataPoints: res.Rejected, ErrorMessage: res.Message}
	}
	body, err := marshal(enc, out)
	if err != nil {
		return r.fail(enc, err, res)
	}
	r.metrics.Request("200")
	return Response{Status: http.StatusOK, ContentType: enc.ContentType(), Body: body, Result: res}
}

// fail answers err with its status and a google.rpc.Status body.
func (r *Receiver) fail(enc Encoding, err error, res Result) Response {
	status, code, retry := classify(err)
	msg := err.Error()
	if status >= 500 {
		// The cause may name internals (SQL, paths); the log has it.
		msg = "the data points could not be stored now; retry later"
		var full *anomaly.QueueFullError
		if errors.As(err, &full) {
			msg = "the scoring queue is full; retry later"
		}
	}
	body, merr := marshalStatus(enc, code, msg)
	if merr != nil {
		body = nil
	}
	r.metrics.Request(strconv.Itoa(status))
	return Response{Status: status, ContentType: enc.ContentType(), Body: body, RetryAfter: retry, Err: err, Result: res}
}

// retryLater is the Retry-After of a failure that says nothing better.
const retryLater = 5 * time.Second

// classify maps an export's error to its HTTP status, gRPC code and
// Retry-After. Every delivery failure but an invalid sample is retryable:
// OTLP senders retry only 429, 502, 503 and 504, and a lost batch of
// metrics is worse than a retried one (the store keeps one copy).
func classify(err error) (status int, code codeT, retry time.Duration) {
	var full *anomaly.QueueFullError
	switch {
	case errors.Is(err, ErrUnsupportedMedia):
		return http.StatusUnsupportedMediaType, codeInvalidArgument, 0
	case errors.Is(err, ingest.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, codeResourceExhausted, 0
	case errors.Is(err, ErrMalformed):
		return http.StatusBadRequest, codeInvalidArgument, 0
	case errors.As(err, &full):
		return http.StatusServiceUnavailable, codeUnavailable, max(full.RetryAfter, time.Second)
	case errors.Is(err, anomaly.ErrInvalidSample):
		return http.StatusBadRequest, codeInvalidArgument, 0
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, codeUnavailable, time.Second
	}
	return http.StatusServiceUnavailable, codeUnavailable, retryLater
}
