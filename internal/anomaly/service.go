package anomaly

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/smartcloudops/smartcloudops/internal/anomaly/stream"
	"github.com/smartcloudops/smartcloudops/internal/domain"
)

// Store is what the service needs of storage, in the domain's types, so
// this package does not depend on the database part (*store.Store implements
// it; the service's tests check that). Model and ActiveModel wrap
// domain.ErrModelNotFound when no version matches; InsertMetrics and
// InsertAnomalies return how many rows were new, skipping a sample or an
// anomaly already stored for the same host and timestamp.
type Store interface {
	InsertMetrics(ctx context.Context, samples []domain.MetricSample) (int64, error)
	InsertAnomalies(ctx context.Context, rows []domain.Anomaly) (int64, error)
	MetricHistory(ctx context.Context, q domain.HistoryQuery) ([]domain.MetricSample, error)
	SaveModel(ctx context.Context, m domain.Model) error
	Models(ctx context.Context, kind string) ([]domain.Model, error)
	Model(ctx context.Context, version string) (domain.Model, error)
	ActiveModel(ctx context.Context, kind string) (domain.Model, error)
	ActivateModel(ctx context.Context, version string) error
}

// Options configure New. Zero values mean the documented defaults.
type Options struct {
	// Store persists samples, anomalies and models; without it Ingest, Train
	// and Activate fail with ErrNoStore and only Detect works.
	Store Store
	// Cache holds forest predictions; nil disables the prediction cache.
	Cache PredictionCache
	// CacheTTL is how long a prediction is reused (default 300s).
	CacheTTL time.Duration
	// Registerer receives the smartcloudops_anomaly_* metrics; nil registers
	// into a private registry.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Clock drives batching windows, the retraining schedule and training
	// timestamps (SystemClock when nil).
	Clock Clock

	// Stream configures every series' detector; Stream.Threshold is set to
	// Threshold.
	Stream stream.Options
	// Threshold is the score at which every component decides "anomaly" (default 0.5).
	Threshold float64
	// Thresholds are the fallback's static limits (DefaultThresholds when nil).
	Thresholds Thresholds
	// MaxSeries bounds the series kept in memory (default 100000); the least
	// recently updated are evicted past it or past MaxSeriesBytes.
	MaxSeries int
	// MaxSeriesBytes bounds the estimated heap bytes of the series (default
	// 256 MiB; a series is about 2.3 KB of live heap, 4–5 KB of RSS at the
	// default GOGC).
	MaxSeriesBytes int64

	// DisableBatching scores the forest inline in the caller
	// (ENABLE_BATCH_PROCESSING=false).
	DisableBatching bool
	// BatchSize is the largest batch (default 100).
	BatchSize int
	// BatchTimeout is the longest a sample waits for its batch to fill (default 0.5s).
	BatchTimeout time.Duration
	// MaxWorkers bounds the goroutines scoring batches (default 4).
	MaxWorkers int
	// QueueSize bounds the samples waiting for a worker (default 10000); a
	// request that does not fit is refused whole with a *QueueFullError.
	QueueSize int
	// MaxBatch is the most samples one request may carry (default 1000).
	MaxBatch int

	// TrainingWindow is how far back training reads history (default 7 days).
	TrainingWindow time.Duration
	// MaxTrainingRows caps the samples read for training, the most recent
	// kept (default 50000).
	MaxTrainingRows int
	// MinTrainingRows is the fewest samples a forest is trained on (default 256).
	MinTrainingRows int
	// Contamination is the share of training samples the forest's threshold
	// lets through as anomalies (default 0.005).
	Contamination float64
	// Trees and SampleSize configure the forest (defaults 100 and 256, as scikit-learn).
	Trees, SampleSize int
	// RetrainInterval trains and activates a new forest this often; 0 disables it.
	RetrainInterval time.Duration

	// TracerProvider records spans of Detect, Ingest, Train and each scoring
	// batch (see tracing.go); nil or a no-op provider records nothing and
	// costs nothing.
	TracerProvider trace.TracerProvider
}

func (o *Options) defaults() {
	if o.CacheTTL == 0 {
		o.CacheTTL = 300 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Threshold == 0 {
		o.Threshold = 0.5
	}
	if o.Thresholds == nil {
		o.Thresholds = DefaultThresholds()
	}
	if o.MaxSeries == 0 {
		o.MaxSeries = 100000
	}
	if o.MaxSeriesBytes == 0 {
		o.MaxSeriesBytes = 256 << 20
	}
	if o.BatchSize == 0 {
		o.BatchSize = 100
	}
	if o.BatchTimeout == 0 {
		o.BatchTimeout = 500 * time.Millisecond
	}
	if o.MaxWorkers == 0 {
		o.MaxWorkers = 4
	}
	if o.QueueSize == 0 {
		o.QueueSize = 10000
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = 1000
	}
	if o.TrainingWindow == 0 {
		o.TrainingWindow = 7 * 24 * time.Hour
	}
	if o.MaxTrainingRows == 0 {
		o.MaxTrainingRows = 50000
	}
	if o.MinTrainingRows == 0 {
		o.MinTrainingRows = 256
	}
	if o.Contamination == 0 {
		o.Contamination = 0.005
	}
	o.Stream.Threshold = o.Threshold
}

func (o *Options) validate() error {
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(!(o.Threshold > 0 && o.Threshold < 1), "threshold %v: must be in (0,1)", o.Threshold)
	check(o.BatchSize < 1, "batch size %d: must be at least 1", o.BatchSize)
	check(o.BatchTimeout < 0, "batch timeout %s: must not be negative", o.BatchTimeout)
	check(o.MaxWorkers < 1, "max workers %d: must be at least 1", o.MaxWorkers)
	check(o.MaxBatch < 1, "max batch %d: must be at least 1", o.MaxBatch)
	check(o.QueueSize < o.MaxBatch, "queue size %d: must hold at least one full request (%d)", o.QueueSize, o.MaxBatch)
	check(o.CacheTTL < 0, "cache TTL %s: must not be negative", o.CacheTTL)
	check(o.MaxSeries < 1, "max series %d: must be at least 1", o.MaxSeries)
	check(o.MaxSeriesBytes < 1<<20, "max series bytes %d: must be at least 1 MiB", o.MaxSeriesBytes)
	check(o.TrainingWindow < 0 || o.RetrainInterval < 0, "training window and retrain interval must not be negative")
	check(o.MinTrainingRows < 2 || o.MaxTrainingRows < o.MinTrainingRows, "training rows: need 2 ≤ min (%d) ≤ max (%d)", o.MinTrainingRows, o.MaxTrainingRows)
	check(!(o.Contamination > 0 && o.Contamination < 0.5), "contamination %v: must be in (0, 0.5)", o.Contamination)
	if err := o.Thresholds.validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := stream.New(o.Stream); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("anomaly: options: %w", err)
	}
	return nil
}

// Service scores samples, keeps series state and model versions. It is safe
// for concurrent use.
type Service struct {
	opt    Options
	log    *slog.Logger
	clock  Clock
	series *seriesSet
	// incidents remembers the open incidents of the components without a
	// memory of their own (incident.go).
	incidents *incidents
	alerts    *alertMetrics
	model     atomic.Pointer[activeModel]
	// thresholds are the fallback limits in force; SetThresholds swaps them
	// whole, so a request sees either the old set or the new one.
	thresholds atomic.Pointer[Thresholds]
	batch      *batcher // nil when batching is disabled
	metrics    *metrics
	tracer     trace.Tracer // nil when tracing is off
	lat        latencyWindow

	// adminMu serialises training and activation, so two admins cannot
	// interleave a store swap and a pointer swap.
	adminMu sync.Mutex

	scored, fallbacks        atomic.Uint64
	severities               [4]atomic.Uint64
	batchSizes               [len(batchBuckets) + 1]atomic.Uint64
	flushes                  [numFlushReasons]atomic.Uint64
	cacheHits, cacheMisses   atomic.Uint64
	cacheErrors              atomic.Uint64
	lastTrainErr, loadErrMsg atomic.Pointer[string]

	stop      chan struct{}
	bg        sync.WaitGroup
	closeOnce sync.Once
	closed    atomic.Bool
}

// batchBuckets are the upper bounds of the batch-size distribution on the stats page.
var batchBuckets = [...]int{1, 10, 50, 100}

// New builds the service, loads the active model from the store (a service
// without one scores by the streaming detector and the thresholds), and
// starts the batcher and the retraining schedule.
func New(ctx context.Context, o Options) (*Service, error) {
	o.defaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	s := &Service{opt: o, log: o.Logger, clock: o.Clock, stop: make(chan struct{}), tracer: tracerFor(o.TracerProvider)}
	var evicted func()
	var err error
	if s.series, err = newSeriesSet(o.MaxSeries, o.MaxSeriesBytes, o.Stream, func() { evicted() }); err != nil {
		return nil, fmt.Errorf("anomaly: %w", err)
	}
	m, err := newMetrics(o.Registerer,
		func() float64 { return float64(s.QueueDepth()) },
		func() float64 { return float64(s.series.len()) },
		func() float64 { return float64(s.series.heapBytes()) },
		func() float64 {
			if am := s.model.Load(); am != nil {
				return float64(am.info.TrainingRows)
			}
			return 0
		})
	if err != nil {
		return nil, err
	}
	s.metrics = m
	evicted = m.evicted.Inc
	if s.alerts, err = newAlertMetrics(o.Registerer, s.sustainedSeries); err != nil {
		return nil, err
	}
	s.incidents = newIncidents(o.MaxSeries, s.alerts.untracked.Inc)
	limits := maps.Clone(o.Thresholds)
	s.thresholds.Store(&limits)
	if o.Store != nil {
		if err := s.loadActive(ctx); err != nil {
			// A model that cannot be loaded must not keep the service from
			// scoring: it runs on the stream and the thresholds, and health
			// says so.
			msg := err.Error()
			s.loadErrMsg.Store(&msg)
			s.log.WarnContext(ctx, "anomaly: active model not loaded; scoring without it", slog.String("error", msg))
		}
	}
	if !o.DisableBatching {
		s.batch = newBatcher(o.BatchSize, o.BatchTimeout, o.MaxWorkers, o.QueueSize, o.Clock, s.scoreBatch, s.observeFlush)
	}
	if o.RetrainInterval > 0 && o.Store != nil {
		s.bg.Add(1)
		go s.retrainLoop()
	}
	return s, nil
}

func (s *Service) loadActive(ctx context.Context) error {
	rec, err := s.opt.Store.ActiveModel(ctx, ModelKind)
	if errors.Is(err, domain.ErrModelNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("anomaly: load active model: %w", err)
	}
	am, err := decodeArtifact(infoFromStore(rec), rec.Artifact)
	if err != nil {
		return err
	}
	s.model.Store(am)
	return nil
}

func (s *Service) observeFlush(n int, r flushReason) {
	s.flushes[r].Add(1)
	s.metrics.flushes.WithLabelValues([...]string{"idle", "size", "timeout", "close"}[r]).Inc()
}

// scoreBatch is the workers' job: one ScoreBatch per model in the batch
// (normally one; two only across a swap).
func (s *Service) scoreBatch(batch []*job) {
	if s.tracer != nil {
		sp := s.startBatch(batch)
		defer sp.End()
	}
	s.metrics.batch.Observe(float64(len(batch)))
	i := sort.SearchInts(batchBuckets[:], len(batch))
	s.batchSizes[i].Add(1)
	for start := 0; start < len(batch); {
		m := batch[start].host
		end := start + 1
		for end < len(batch) && batch[end].host == m {
			end++
		}
		rows := make([][]float64, end-start)
		for k := range rows {
			rows[k] = batch[start+k].row
		}
		out := make([]float64, len(rows))
		if err := m.scoreRows(rows, out); err != nil {
			// Rows are built from the model's own columns with finite
			// values, so this is a bug; score them as unknown rather than
			// failing the requests.
			s.log.Error("anomaly: model batch scoring", slog.String("error", err.Error()))
			for k := range out {
				out[k] = math.NaN()
			}
		}
		for k, v := range out {
			batch[start+k].score = v
		}
		start = end
	}
}

func severityIndex(s domain.Severity) int {
	switch s {
	case domain.SeverityMedium:
		return 1
	case domain.SeverityHigh:
		return 2
	case domain.SeverityCritical:
		return 3
	}
	return 0
}

// Contributor is one metric's part in a result, worded for an operator.
type Contributor struct {
	Metric string  `json:"metric"`
	Value  float64 `json:"value"`
	// Score is this metric's own score on the result's scale.
	Score float64 `json:"score"`
	// State is this metric's anomaly state, when its component keeps one
	// (the stream): it stays high while the series is held away from its
	// baseline.
	State float64 `json:"state,omitempty"`
	// Source is the component that judged it: stream, iforest or threshold.
	Source string `json:"source"`
	// Expected is what the component expected, when it has such a figure.
	Expected *float64 `json:"expected,omitempty"`
	Reason   string   `json:"reason"`
}

// Result is the verdict on one sample.
type Result struct {
	Host      string    `json:"host"`
	Timestamp time.Time `json:"timestamp"`
	// IsAnomaly is the alert: true on the point that opens an incident, once
	// per incident, however long it lasts (docs/alerting.md). Only alerts
	// are stored as anomalies.
	IsAnomaly bool `json:"is_anomaly"`
	// AnomalyScore is how unusual this point is, in [0,1].
	AnomalyScore float64 `json:"anomaly_score"`
	// State is the anomaly state in [0,1] on AnomalyScore's scale: how far
	// the host stands from its accepted normal now. It stays high for as
	// long as a fault lasts (a series held away from its baseline, a value
	// past its static limit, a row the model finds unusual), while the
	// alert fires only at its start.
	State float64 `json:"state"`
	// Sustained says the host is in an anomalous state at this point, from
	// an incident's first point (the alert) to its last: a series' state at
	// or above the threshold, a value past its static limit or a row the
	// model scores at or above the threshold.
	Sustained bool `json:"sustained"`
	// SustainedMetrics names the metrics in an anomalous state, sorted. A
	// series held away from its baseline stays there until it comes back or
	// an operator accepts its level (POST /performance/anomaly/series/rebaseline);
	// a value past its static limit stays there until it is back within it.
	SustainedMetrics []string `json:"sustained_metrics,omitempty"`
	// Confidence is the confidence in the state verdict (Sustained).
	Confidence float64 `json:"confidence"`
	// Severity grades the worse of AnomalyScore and State, so a sustained
	// fault keeps its severity after its alert.
	Severity     domain.Severity `json:"severity"`
	ModelVersion string          `json:"model_version"`
	// Components holds each component's own score (stream, iforest, threshold).
	Components map[string]float64 `json:"components"`
	// Features are the sample's values with their series context
	// (<metric>_delta, _mean, _std, taken before this sample).
	Features map[string]float64 `json:"features"`
	// Contributors are the metrics that contributed most, highest first (at most 3).
	Contributors []Contributor `json:"contributors"`
	Explanation  string        `json:"explanation"`
	// Cached says the forest's prediction came from the prediction cache.
	Cached bool `json:"cached"`
	// Late marks a sample no newer than its series' newest: scored, but not learned from.
	Late             bool    `json:"late,omitempty"`
	ProcessingTimeMS float64 `json:"processing_time_ms"`
}

// DetectOptions tune one Detect call.
type DetectOptions struct {
	// NoCache bypasses the prediction cache (use_cache=false).
	NoCache bool
}

// MaxBatch is the most samples one request may carry.
func (s *Service) MaxBatch() int { return s.opt.MaxBatch }

// QueueDepth is the number of samples waiting for a scoring worker.
func (s *Service) QueueDepth() int {
	if s.batch == nil {
		return 0
	}
	return s.batch.queued()
}

// Detect scores samples in order. Samples must have passed Normalize. It is
// read-only: each series is read from a private copy of what ingest learned
// (see snapshot), so a later sample of the same request is read against an
// earlier one, but nothing Detect is sent changes what the service has
// learned or what a later request sees, and nothing is stored. Callers decide
// who may read which hosts: the result's features carry the series' recent
// level and spread. A full queue returns a *QueueFullError.
func (s *Service) Detect(ctx context.Context, samples []Sample, o DetectOptions) ([]Result, error) {
	if s.tracer == nil {
		return s.detect(ctx, samples, o, false)
	}
	ctx, sp := s.tracer.Start(ctx, spanDetect, trace.WithAttributes(attrSamples.Int(len(samples))))
	out, err := s.detect(ctx, samples, o, false)
	endDetect(sp, out, err)
	return out, err
}

// detect scores samples; learn says whether they teach the shared series
// state (ingest) or are read against a copy of it (Detect).
func (s *Service) detect(ctx context.Context, samples []Sample, o DetectOptions, learn bool) ([]Result, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if len(samples) > s.opt.MaxBatch {
		return nil, fmt.Errorf("anomaly: %d samples in one request; at most %d: %w", len(samples), s.opt.MaxBatch, ErrInvalidSample)
	}
	start := time.Now()
	m := s.model.Load()
	reserved := 0
	if m != nil && s.batch != nil {
		if err := s.batch.reserve(len(samples)); err != nil {
			s.metrics.rejected.Inc()
			return nil, err
		}
		reserved = len(samples)
	}
	release := func() {
		if reserved > 0 {
			s.batch.release(reserved)
			reserved = 0
		}
	}
	defer release()

	observe := s.series.observe
	if !learn {
		sn := s.series.snapshot()
		defer sn.release()
		observe = sn.observe
	}
	preps := make([]prepared, len(samples))
	for i, smp := range samples {
		preps[i] = s.prepare(smp, m, observe)
	}
	if m != nil {
		if err := s.scoreForest(ctx, m, preps, !o.NoCache, &reserved); err != nil {
			return nil, err
		}
	}
	// Ingest advances the hosts' open incidents; detect reads them through
	// a private overlay, as it reads the series through a snapshot.
	var view incidentView = s.incidents
	if !learn {
		view = &overlay{base: s.incidents}
	}
	out := make([]Result, len(samples))
	elapsed := float64(time.Since(start).Microseconds()) / 1000
	for i := range preps {
		out[i] = s.combine(&preps[i], m, view)
		out[i].ProcessingTimeMS = elapsed
		s.count(&out[i])
	}
	s.lat.add(elapsed)
	s.metrics.latency.Observe(elapsed / 1000)
	return out, nil
}

// prepared is one sample between the streaming step and the combination.
type prepared struct {
	sample Sample
	obs    []observation
	feats  map[string]float64
	row    []float64
	sub    *hostModel // the model that scores row: the host's or the fleet's
	raw    float64    // the model's calibrated score, NaN when none
	cached bool
	key    string
}

func (s *Service) prepare(smp Sample, m *activeModel, observe func(Sample, map[string]float64) []observation) prepared {
	p := prepared{sample: smp, feats: make(map[string]float64, 4*len(smp.Metrics)), raw: math.NaN()}
	p.obs = observe(smp, p.feats)
	if m != nil {
		p.sub, p.row = m.row(smp)
	}
	return p
}

// scoreForest fills raw for every prepared sample with a forest row: from the
// cache when allowed, else through the batcher (or inline).
func (s *Service) scoreForest(ctx context.Context, m *activeModel, preps []prepared, useCache bool, reserved *int) error {
	var jobs []*job
	var misses []int
	// The request's span, which the batch that scores its jobs links to.
	var span trace.Span
	if s.tracer != nil {
		span = trace.SpanFromContext(ctx)
	}
	for i := range preps {
		p := &preps[i]
		if p.row == nil {
			continue
		}
		if useCache && s.opt.Cache != nil {
			p.key = cacheKey(p.sub.scope, p.row)
			b, ok, err := s.opt.Cache.Get(ctx, p.key)
			switch {
			case err != nil:
				s.cacheErrors.Add(1)
				s.metrics.cache.WithLabelValues("error").Inc()
			case ok:
				if v, valid := decodeScore(b); valid {
					p.raw, p.cached = v, true
					s.cacheHits.Add(1)
					s.metrics.cache.WithLabelValues("hit").Inc()
					continue
				}
				fallthrough
			default:
				s.cacheMisses.Add(1)
				s.metrics.cache.WithLabelValues("miss").Inc()
			}
		}
		misses = append(misses, i)
		jobs = append(jobs, &job{model: m, host: p.sub, row: p.row, span: span})
	}
	if s.batch != nil {
		s.batch.release(*reserved - len(jobs))
		*reserved = 0
		if len(jobs) > 0 {
			if err := s.batch.submit(ctx, jobs); err != nil {
				return err
			}
		}
	} else if len(jobs) > 0 {
		s.scoreBatch(jobs)
	}
	for k, i := range misses {
		p := &preps[i]
		p.raw = jobs[k].score
		if p.key != "" && !math.IsNaN(p.raw) {
			if err := s.opt.Cache.Set(ctx, p.key, encodeScore(p.raw), s.opt.CacheTTL); err != nil {
				s.cacheErrors.Add(1)
				s.metrics.cache.WithLabelValues("error").Inc()
			}
		}
	}
	return nil
}

// combine applies the documented score combination (see the package
// comment) and splits alert from state (docs/alerting.md): the stream keeps
// its own; the thresholds and the model are state on every point past their
// line and alert only on the first, which view remembers.
func (s *Service) combine(p *prepared, m *activeModel, view incidentView) Result {
	thr := s.opt.Threshold
	limits := *s.thresholds.Load()
	r := Result{Host: p.sample.Host, Timestamp: p.sample.Timestamp, Features: p.feats, Components: map[string]float64{}, Cached: p.cached}
	var (
		contribs  []Contributor
		decisions []bool
		versions  []string
	)
	streamScore, streamState, streamInState, streamUsed := 0.0, 0.0, false, false
	// thUsed: the thresholds stood in for the stream (fallback); thFloor:
	// a value passed its limit while the stream scored it.
	thScore, thUsed, thFloor, over := 0.0, false, false, false
	// sustained lists the metrics in an anomalous state, open those whose
	// incident stays open (sustained, or held by the stream), alerted those
	// a component alerts on at this point (the stream's alert, a limit
	// crossed or not), all sorted as p.obs is.
	var sustained, open, alerted []string
	for _, o := range p.obs {
		r.Late = r.Late || o.late
		if o.scored {
			streamUsed = true
			streamScore = max(streamScore, o.res.Score)
			streamState = max(streamState, o.res.State)
			// The stream's own verdict on its state: its threshold may be
			// raised above thr for a fast series (stream.Result.Threshold).
			inState := o.res.IsAnomaly || o.res.Anomalous
			streamInState = streamInState || inState
			if o.res.IsAnomaly {
				alerted = append(alerted, o.metric)
			}
			if o.res.Score > 0 || inState {
				contribs = append(contribs, streamContributor(o))
			}
			// The static limits stay a floor while the stream speaks: a
			// host pinned at 99% cpu is not healthy because the stream has
			// grown used to it. Within its limit the threshold stays silent,
			// since the stream knows the series better than a fixed line.
			sc, isOver, ok := limits.score(o.metric, o.value)
			if ok && isOver {
				thFloor = true
				thScore = max(thScore, sc)
				over = true
				contribs = append(contribs, thresholdContributor(o, sc, isOver, limits[o.metric]))
			}
			if inState || isOver {
				sustained = append(sustained, o.metric)
			}
			if inState || isOver || o.res.Holding {
				open = append(open, o.metric)
			}
			if isOver && !o.res.IsAnomaly {
				alerted = append(alerted, o.metric)
			}
			continue
		}
		if sc, isOver, ok := limits.score(o.metric, o.value); ok {
			thUsed = true
			thScore = max(thScore, sc)
			if isOver {
				over = true
				sustained = append(sustained, o.metric)
				open = append(open, o.metric)
				alerted = append(alerted, o.metric)
			}
			contribs = append(contribs, thresholdContributor(o, sc, isOver, limits[o.metric]))
		}
	}
	if streamUsed {
		versions = append(versions, StreamVersion)
		decisions = append(decisions, streamInState)
		r.Components["stream"] = streamScore
	}
	forestScore, forestUsed := 0.0, false
	if m != nil && !math.IsNaN(p.raw) {
		forestUsed = true
		forestScore = p.raw
		versions = append(versions, m.info.Version)
		decisions = append(decisions, forestScore >= thr)
		r.Components[p.sub.typ] = forestScore
		contribs = append(contribs, modelContributors(m, p.sub, p.row, forestScore, thr)...)
	}
	if thUsed || thFloor {
		versions = append(versions, ThresholdVersion)
		decisions = append(decisions, over)
		r.Components["threshold"] = thScore
	}
	// One alert per incident: a metric alerts only when it opens one (it
	// was not in an anomalous state at the host's previous point), whichever
	// component saw it first, so a limit crossed at one point and the
	// stream's alert at the next page once; the thresholds and the model
	// alert when their line is crossed, not on every point past it. The
	// model judges the host as a whole, so it opens an incident only on a
	// host with none open. A late point (older than its series' newest, or
	// than the host's newest recorded) reads the open incidents but neither
	// moves them nor opens one: it teaches no series, and the incident it
	// belongs to was decided by the points around it.
	forestOver := forestUsed && forestScore >= thr
	prev, fresh := view.advance(r.Host, r.Timestamp, !r.Late, func(prev openIncident) openIncident {
		n := openIncident{model: prev.model}
		if forestUsed {
			n.model = forestOver
		}
		// A metric this sample does not report keeps its verdict.
		for _, name := range prev.open {
			if _, reported := p.sample.Metrics[name]; !reported {
				n.open = append(n.open, name)
			}
		}
		n.open = append(n.open, open...)
		slices.Sort(n.open)
		return n
	})
	opens := fresh && forestOver && !prev.model && len(prev.open) == 0
	for _, name := range alerted {
		opens = opens || (fresh && !prev.isOpen(name))
	}
	if thUsed {
		s.fallbacks.Add(1)
		s.metrics.fallback.Inc()
	}
	if len(versions) == 0 {
		// No component could speak (a warming series of a metric without a
		// threshold): say so, on the fallback's version.
		versions = append(versions, ThresholdVersion)
		s.fallbacks.Add(1)
		s.metrics.fallback.Inc()
	}
	sort.Strings(versions)
	r.ModelVersion = strings.Join(versions, "+")
	r.AnomalyScore = clamp01(max(streamScore, forestScore, thScore))
	r.State = clamp01(max(streamState, forestScore, thScore))
	r.IsAnomaly = opens
	r.Sustained = len(sustained) > 0 || forestOver
	r.SustainedMetrics = sustained
	r.Severity = domain.SeverityOf(max(r.AnomalyScore, r.State))
	r.Confidence = confidence(max(r.AnomalyScore, r.State), thr, r.Sustained, decisions, !streamUsed && !forestUsed)

	sort.SliceStable(contribs, func(i, j int) bool { return contribs[i].weight() > contribs[j].weight() })
	if len(contribs) > 3 {
		contribs = contribs[:3]
	}
	r.Contributors = contribs
	switch {
	case (r.IsAnomaly || r.Sustained) && len(contribs) > 0:
		reasons := make([]string, 0, len(contribs))
		for _, c := range contribs {
			if c.weight() >= thr/2 {
				reasons = append(reasons, c.Reason)
			}
		}
		if len(reasons) == 0 {
			reasons = append(reasons, contribs[0].Reason)
		}
		r.Explanation = strings.Join(reasons, "; ")
	case len(p.obs) > 0 && !streamUsed && !forestUsed && !thUsed:
		r.Explanation = "series still warming up and no threshold applies; no verdict yet"
	default:
		r.Explanation = "no metric is unusual"
	}
	if r.Contributors == nil {
		r.Contributors = []Contributor{}
	}
	return r
}

func clamp01(v float64) float64 { return min(1, max(0, v)) }

// weight ranks contributors: a held series whose point score has fallen
// still counts by its state.
func (c Contributor) weight() float64 { return max(c.Score, c.State) }

// thresholdContributor words a static limit's verdict on one metric.
func thresholdContributor(o observation, score float64, over bool, limit float64) Contributor {
	c := Contributor{Metric: o.metric, Value: o.value, Score: score, Source: "threshold", Expected: &limit}
	if over {
		c.Reason = fmt.Sprintf("%s is %.4g, above its limit of %.4g", o.metric, o.value, limit)
	} else {
		c.Reason = fmt.Sprintf("%s is %.4g, within its limit of %.4g", o.metric, o.value, limit)
	}
	return c
}

// confidence is 0.5·margin + 0.5·agreement (see the package comment).
func confidence(score, thr float64, decided bool, decisions []bool, thresholdsOnly bool) float64 {
	var margin float64
	if score >= thr {
		margin = (score - thr) / (1 - thr)
	} else {
		margin = (thr - score) / thr
	}
	margin = clamp01(margin)
	if thresholdsOnly || len(decisions) == 0 {
		return clamp01(0.25 + 0.5*margin)
	}
	agree := 0
	for _, d := range decisions {
		if d == decided {
			agree++
		}
	}
	return clamp01(0.5*margin + 0.5*float64(agree)/float64(len(decisions)))
}

func streamContributor(o observation) Contributor {
	c := Contributor{Metric: o.metric, Value: o.value, Score: o.res.Score, State: o.res.State, Source: "stream"}
	if len(o.res.Reasons) == 0 {
		if o.res.Anomalous {
			// The point itself is unremarkable next to the last ones (the
			// alert is behind it), but the series has not come back.
			c.Reason = fmt.Sprintf("%s is %.4g, still away from its accepted normal (state %.2f)", o.metric, o.value, o.res.State)
		} else {
			c.Reason = fmt.Sprintf("%s is %.4g, in line with its recent behaviour", o.metric, o.value)
		}
	} else {
		top := o.res.Reasons[0]
		exp := top.Expected
		c.Expected = &exp
		switch top.View {
		case stream.ViewChange:
			c.Reason = fmt.Sprintf("%s jumped to %.4g from %.4g", o.metric, o.value, top.Expected)
		case stream.ViewSpread:
			c.Reason = fmt.Sprintf("%s became unusually erratic (typical step %.4g, now %.4g)", o.metric, top.Expected, top.Observed)
		case stream.ViewSeasonal:
			c.Reason = fmt.Sprintf("%s is %.4g where this time of day usually shows %.4g", o.metric, o.value, top.Expected)
		case stream.ViewLevel:
			c.Reason = fmt.Sprintf("%s is %.4g against a recent level of %.4g", o.metric, o.value, top.Expected)
		default:
			// Views the stream part adds later are named, not worded.
			c.Reason = fmt.Sprintf("%s is %.4g; its %s view expected %.4g, saw %.4g", o.metric, o.value, top.View, top.Expected, top.Observed)
		}
	}
	if o.res.Holding {
		c.Reason += "; its baseline is held until it returns or an operator re-baselines it"
	}
	return c
}

func (s *Service) count(r *Result) {
	s.scored.Add(1)
	s.metrics.samples.Inc()
	if r.IsAnomaly {
		s.severities[severityIndex(r.Severity)].Add(1)
		s.metrics.anomalies.WithLabelValues(string(r.Severity)).Inc()
	}
}

// IngestReport is the outcome of Ingest.
type IngestReport struct {
	Accepted   int      `json:"accepted"`
	Stored     int64    `json:"stored"`
	Duplicates int64    `json:"duplicates"`
	Anomalies  int64    `json:"anomalies"`
	Results    []Result `json:"results"`
}

// Ingest stores samples through the store's bulk path, scores them, and
// stores the anomalies among them with their severity. A sample already
// stored (same host and timestamp) is counted as a duplicate and scored, but
// teaches no series and records no second anomaly.
func (s *Service) Ingest(ctx context.Context, samples []Sample) (IngestReport, error) {
	if s.tracer == nil {
		return s.ingest(ctx, samples)
	}
	ctx, sp := s.tracer.Start(ctx, spanIngest, trace.WithAttributes(attrSamples.Int(len(samples))))
	rep, err := s.ingest(ctx, samples)
	sp.SetAttributes(attrStored.Int64(rep.Stored), attrDuplicates.Int64(rep.Duplicates), attrAnomalies.Int64(rep.Anomalies))
	endSpan(sp, err)
	return rep, err
}

func (s *Service) ingest(ctx context.Context, samples []Sample) (IngestReport, error) {
	if s.opt.Store == nil {
		return IngestReport{}, ErrNoStore
	}
	if s.closed.Load() {
		return IngestReport{}, ErrClosed
	}
	// Reserve queue room before storing, so a full queue refuses the whole
	// request before anything is written.
	if s.batch != nil && s.model.Load() != nil {
		if err := s.batch.reserve(len(samples)); err != nil {
			s.metrics.rejected.Inc()
			return IngestReport{}, err
		}
		s.batch.release(len(samples))
	}
	rows := make([]domain.MetricSample, len(samples))
	for i, smp := range samples {
		rows[i] = ToStore(smp)
	}
	stored, err := s.opt.Store.InsertMetrics(ctx, rows)
	if err != nil {
		return IngestReport{}, fmt.Errorf("anomaly: ingest: %w", err)
	}
	results, err := s.learn(ctx, samples)
	if err != nil {
		return IngestReport{}, fmt.Errorf("anomaly: ingest: %w", err)
	}
	rep := IngestReport{Accepted: len(samples), Stored: stored, Duplicates: int64(len(samples)) - stored, Results: results}
	var anomalies []domain.Anomaly
	for _, r := range results {
		if !r.IsAnomaly {
			continue
		}
		a := domain.Anomaly{Host: r.Host, DetectedAt: r.Timestamp, Score: r.AnomalyScore, Confidence: r.Confidence,
			Severity: r.Severity, ModelVersion: r.ModelVersion, Features: r.Features, Explanation: r.Explanation}
		if len(r.Contributors) > 0 {
			a.Metric = r.Contributors[0].Metric
		}
		anomalies = append(anomalies, a)
	}
	if rep.Anomalies, err = s.opt.Store.InsertAnomalies(ctx, anomalies); err != nil {
		return rep, fmt.Errorf("anomaly: ingest: %w", err)
	}
	return rep, nil
}

// learn scores samples and teaches the series: the scoring step of Ingest,
// traced like Detect.
func (s *Service) learn(ctx context.Context, samples []Sample) ([]Result, error) {
	if s.tracer == nil {
		return s.detect(ctx, samples, DetectOptions{}, true)
	}
	ctx, sp := s.tracer.Start(ctx, spanDetect, trace.WithAttributes(attrSamples.Int(len(samples))))
	out, err := s.detect(ctx, samples, DetectOptions{}, true)
	endDetect(sp, out, err)
	return out, err
}

// Close stops admitting requests, lets the workers score everything queued,
// and stops the retraining schedule; it waits for them or for ctx. It is
// safe to call more than once.
func (s *Service) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.stop)
	})
	var errs []error
	if s.batch != nil {
		errs = append(errs, s.batch.close(ctx))
	}
	done := make(chan struct{})
	go func() { s.bg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("anomaly: waiting for retraining to stop: %w", ctx.Err()))
	}
	return errors.Join(errs...)
}

// Thresholds returns the fallback limits in force.
func (s *Service) Thresholds() Thresholds { return maps.Clone(*s.thresholds.Load()) }

// SetThresholds replaces the fallback limits while the service runs. Metrics
// missing from t lose their limit.
func (s *Service) SetThresholds(t Thresholds) error {
	if err := t.validate(); err != nil {
		return fmt.Errorf("anomaly: %w", err)
	}
	c := maps.Clone(t)
	s.thresholds.Store(&c)
	return nil
}

// Batching returns the batch size and timeout in force; ok is false when
// batching is disabled (ENABLE_BATCH_PROCESSING=false).
func (s *Service) Batching() (size int, timeout time.Duration, ok bool) {
	if s.batch == nil {
		return 0, 0, false
	}
	return int(s.batch.size.Load()), time.Duration(s.batch.timeout.Load()), true
}

// SetBatching changes the batch size and the longest wait for a batch to
// fill; batches being filled pick the change up with their next sample.
func (s *Service) SetBatching(size int, timeout time.Duration) error {
	if s.batch == nil {
		return errors.New("anomaly: batching is disabled (ENABLE_BATCH_PROCESSING=false)")
	}
	if size < 1 || timeout <= 0 {
		return fmt.Errorf("anomaly: batch size %d and timeout %s: need size >= 1 and a positive timeout", size, timeout)
	}
	s.batch.size.Store(int64(size))
	s.batch.timeout.Store(int64(timeout))
	return nil
}
