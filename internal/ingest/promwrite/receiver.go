package promwrite

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/smartcloudops/smartcloudops/internal/ingest"
)

// Options configure a Receiver. Zero limits are off ("0 means off").
type Options struct {
	// Sink stores and scores the rows (*anomaly.Service). Required.
	Sink ingest.Sink
	// Tracker holds the per-series state (counter rates, order, the
	// per-tenant series cap). Required.
	Tracker *ingest.Tracker
	// Registerer takes the receiver's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger logs refusals worth an operator's attention (rate-limited).
	Logger *slog.Logger

	// HostLabels are the label names that name a series' host, first
	// present wins; DefaultHostLabels when empty.
	HostLabels []string
	// Select lists the selectors a series must match one of to be taken;
	// ParseSelectors(DefaultSelect) when nil.
	Select []Selector
	// RootMountpoint is the filesystem disk_usage reads; "/" when empty.
	RootMountpoint string

	// MaxBodyBytes bounds the compressed body, MaxDecodedBytes the
	// decompressed one (checked from snappy's header before allocating).
	MaxBodyBytes    int64
	MaxDecodedBytes int64
	// MaxSeries and MaxSamples bound one request's series and samples
	// (histogram samples included), counted on the wire before decoding.
	MaxSeries  int
	MaxSamples int
	// MaxFuture refuses samples stamped further ahead of the server's
	// clock; MaxAge samples older than this. Zero turns either off.
	MaxFuture time.Duration
	MaxAge    time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// DefaultHostLabels name a series' host when Options.HostLabels is empty:
// Prometheus's scrape target (instance), then a host label that exporters
// behind a proxy or a pushgateway often carry.
var DefaultHostLabels = []string{"instance", "host"}

// The default limits, sized for Prometheus's own senders
// (max_samples_per_send is 2,000 by default; even 50,000 samples of
// node_exporter's labels compress to about 1 MiB).
const (
	DefaultMaxBodyBytes    = 8 << 20
	DefaultMaxDecodedBytes = 32 << 20
	DefaultMaxSeries       = 100_000
	DefaultMaxSamples      = 500_000
	DefaultMaxFuture       = 10 * time.Minute
	DefaultMaxAge          = 24 * time.Hour
)

// Receiver takes remote-write requests: decode, map, deliver. It is safe
// for concurrent use.
type Receiver struct {
	opt      Options
	metrics  *ingest.Metrics
	features *prometheus.CounterVec
	asm      *assembler
	pool     sync.Pool
	counters counterTypes
	lastLog  atomic.Int64
}

// state is one request's reusable memory.
type state struct {
	body, raw []byte
	v1        prompb.WriteRequest
	v2        writev2.Request
	lbls      []label
	inputs    []input
	points    []ingest.Point
	derived   []assembled
	counts    [numOutcomes]int
}

// New builds a Receiver.
func New(o Options) (*Receiver, error) {
	if o.Sink == nil || o.Tracker == nil {
		return nil, errors.New("promwrite: Sink and Tracker are required")
	}
	if len(o.HostLabels) == 0 {
		o.HostLabels = DefaultHostLabels
	}
	if o.Select == nil {
		sel, err := ParseSelectors(DefaultSelect)
		if err != nil {
			return nil, err
		}
		o.Select = sel
	}
	if o.RootMountpoint == "" {
		o.RootMountpoint = "/"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Receiver{opt: o, metrics: ingest.NewMetrics(o.Registerer, "remote_write", o.Tracker),
		features: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartcloudops_promwrite_features_total",
			Help: "Features computed from several series of one scrape (cpu_usage from every cpu and mode, …), by whether the scrape's inputs all arrived (emitted) or not (incomplete: dropped, not computed from part of them).",
		}, []string{"feature", "outcome"}),
		counters: counterTypes{m: map[string]bool{}}}
	if o.Registerer != nil {
		if err := o.Registerer.Register(r.features); err != nil {
			return nil, err
		}
	}
	r.asm = newAssembler(ingest.DefaultIdleAfter, func(f feature, emitted bool) {
		outcome := "incomplete"
		if emitted {
			outcome = "emitted"
		}
		r.features.WithLabelValues(featureNames[f], outcome).Inc()
	})
	r.pool.New = func() any { return &state{} }
	return r, nil
}

// Request is one remote-write HTTP request as the receiver needs it.
type Request struct {
	// Tenant is the caller's tenant ("" for none): its hosts are stored
	// as "tenant/host".
	Tenant          string
	ContentType     string
	ContentEncoding string
	// ContentLength is the declared length, -1 when unknown.
	ContentLength int64
	Body          io.Reader
}

// Response says what became of a request.
type Response struct {
	Version Version
	// Samples, Histograms and Exemplars are what the receiver accepted
	// (stored, or deliberately left out by the mapping), for remote write
	// 2.0's X-Prometheus-Remote-Write-*-Written headers.
	Samples, Histograms, Exemplars int
	Report                         ingest.Report
}

// Write decodes, maps and delivers one request. A refusal is an *Error
// (400, 413, 415) and nothing of the request is stored; a failure of the
// sink is returned as it is (the caller maps it to 503/500, which the
// sender retries, and the retry stores each row once).
func (r *Receiver) Write(ctx context.Context, req Request) (Response, error) {
	resp, err := r.write(ctx, req)
	code := "204"
	var pe *Error
	switch {
	case errors.As(err, &pe):
		code = itoa(pe.Status)
	case err != nil:
		code = "5xx"
	}
	r.metrics.Request(code)
	return resp, err
}

func (r *Receiver) write(ctx context.Context, req Request) (Response, error) {
	var resp Response
	v, err := parseContentType(req.ContentType)
	if err != nil {
		return resp, err
	}
	resp.Version = v
	if enc := req.ContentEncoding; enc != "" && enc != "snappy" {
		return resp, refuse(http.StatusUnsupportedMediaType, nil, "Content-Encoding %q is not accepted; remote write bodies are snappy block-compressed", enc)
	}
	st := r.pool.Get().(*state)
	defer r.release(st)
	if st.body, err = readBody(req.Body, req.ContentLength, r.opt.MaxBodyBytes, st.body); err != nil {
		return resp, err
	}
	if st.raw, err = decompress(st.body, r.opt.MaxDecodedBytes, st.raw); err != nil {
		return resp, err
	}
	fields := v1Fields
	if v == V2 {
		fields = v2Fields
	}
	if err := countWire(st.raw, fields, r.opt.MaxSeries, r.opt.MaxSamples); err != nil {
		return resp, err
	}
	if err := st.unmarshal(v, st.raw); err != nil {
		return resp, err
	}
	if v == V1 {
		r.counters.learnV1(st.v1.Metadata)
	}
	m := r.mapper(req.Tenant, st)
	if v == V1 {
		err = m.mapV1(&st.v1)
	} else {
		err = m.mapV2(&st.v2)
	}
	st.counts = m.counts
	if err != nil {
		r.count(st)
		return resp, err
	}
	resp.Samples, resp.Histograms, resp.Exemplars = m.accepted(), m.histograms, m.exemplars
	st.derived = r.asm.add(m.nowNS, st.inputs, st.derived[:0])
	for _, d := range st.derived {
		st.points = append(st.points, ingest.Point{Host: d.host, Metric: d.metric, Time: time.UnixMilli(d.t), Value: d.value})
	}
	if m.refusedAll() {
		r.count(st)
		r.logRefusal(req.Tenant, m)
		return resp, refuse(http.StatusBadRequest, nil, "every sample was refused (%d stamped outside the accepted time range, %d over the tenant's series limit); nothing was stored",
			m.counts[outOutOfBounds], m.counts[outSeriesLimit])
	}
	if m.counts[outSeriesLimit]+m.counts[outOutOfBounds] > 0 {
		r.logRefusal(req.Tenant, m)
	}
	rep, err := ingest.Deliver(ctx, r.opt.Sink, st.points)
	resp.Report = rep
	st.counts[outInvalidRow] += rep.Invalid
	r.count(st)
	if rep.InvalidErr != nil {
		r.logEvery("promwrite: rows refused by validation", slog.String("tenant", req.Tenant), slog.Int("rows", rep.Invalid), slog.String("error", rep.InvalidErr.Error()))
	}
	return resp, err
}

func (r *Receiver) count(st *state) {
	for o, n := range st.counts {
		r.metrics.Samples(outcomeNames[o], n)
	}
}

func (r *Receiver) release(st *state) {
	const keep = 4 << 20 // do not pin the memory of one huge request
	if cap(st.body) > keep {
		st.body = nil
	}
	if cap(st.raw) > keep {
		st.raw = nil
	}
	// The decoded series hold the request's label strings: drop them, and
	// the arrays of a request far larger than Prometheus's usual 2,000
	// samples.
	const keepSeries = 10_000
	clear(st.v1.Timeseries[:cap(st.v1.Timeseries)])
	clear(st.v1.Metadata[:cap(st.v1.Metadata)])
	clear(st.v2.Timeseries[:cap(st.v2.Timeseries)])
	clear(st.v2.Symbols[:cap(st.v2.Symbols)])
	if cap(st.v1.Timeseries) > keepSeries || cap(st.v2.Timeseries) > keepSeries {
		st.v1, st.v2 = prompb.WriteRequest{}, writev2.Request{}
	}
	clear(st.lbls[:cap(st.lbls)])
	clear(st.points[:cap(st.points)])
	clear(st.derived[:cap(st.derived)])
	clear(st.inputs[:cap(st.inputs)])
	st.lbls, st.points, st.derived, st.inputs = st.lbls[:0], st.points[:0], st.derived[:0], st.inputs[:0]
	st.counts = [numOutcomes]int{}
	r.pool.Put(st)
}

// logRefusal logs refused samples at most once a minute, so a tenant over
// its cap or a sender with a broken clock is visible without flooding.
func (r *Receiver) logRefusal(tenant string, m *mapper) {
	r.logEvery("promwrite: samples refused", slog.String("tenant", tenant),
		slog.Int("series_limit", m.counts[outSeriesLimit]), slog.Int("out_of_bounds", m.counts[outOutOfBounds]),
		slog.Int("tenant_series", r.opt.Tracker.TenantSeries(tenant)))
}

func (r *Receiver) logEvery(msg string, attrs ...slog.Attr) {
	now := r.opt.Now().UnixNano()
	last := r.lastLog.Load()
	if now-last < int64(time.Minute) || !r.lastLog.CompareAndSwap(last, now) {
		return
	}
	r.opt.Logger.LogAttrs(context.Background(), slog.LevelWarn, msg, attrs...)
}

func itoa(n int) string {
	if n < 0 || n > 999 {
		return "other"
	}
	return string([]byte{byte('0' + n/100), byte('0' + n/10%10), byte('0' + n%10)})
}

// counterTypes remembers which metric families remote write 1.0's
// metadata said are counters (it comes in separate requests), bounded.
type counterTypes struct {
	mu sync.RWMutex
	m  map[string]bool
}

const maxCounterTypes = 10_000

func (c *counterTypes) learnV1(md []prompb.MetricMetadata) {
	if len(md) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range md {
		if m.Type == prompb.MetricMetadata_COUNTER {
			if _, ok := c.m[m.MetricFamilyName]; !ok && len(c.m) >= maxCounterTypes {
				continue
			}
			c.m[m.MetricFamilyName] = true
		}
	}
}

func (c *counterTypes) isCounter(name string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[name]
}

// BodyLimit is the largest compressed body the receiver takes (0: none),
// for the HTTP layer's own limit on the route.
func (r *Receiver) BodyLimit() int64 { return r.opt.MaxBodyBytes }
