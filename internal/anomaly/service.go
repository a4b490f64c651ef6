package anomaly

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/smartcloudops/smartcloudops/internal/domain"
	"github.com/smartcloudops/smartcloudops/internal/latency"
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
	scores    *scoreGauge
	model     atomic.Pointer[activeModel]
	// thresholds are the fallback limits in force; SetThresholds swaps them
	// whole, so a request sees either the old set or the new one.
	thresholds atomic.Pointer[Thresholds]
	batch      *batcher // nil when batching is disabled
	metrics    *metrics
	tracer     trace.Tracer   // nil when tracing is off
	lat        latency.Window // request latencies for /performance/anomaly/stats

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
	if s.scores, err = newScoreGauge(o.Registerer, o.MaxScoreSeries); err != nil {
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
		return s.detect(ctx, samples, o, false, 0)
	}
	ctx, sp := s.tracer.Start(ctx, spanDetect, trace.WithAttributes(attrSamples.Int(len(samples))))
	out, err := s.detect(ctx, samples, o, false, 0)
	endDetect(sp, out, err)
	return out, err
}

// detect scores samples; learn says whether they teach the shared series
// state (ingest) or are read against a copy of it (Detect). held is queue
// room the caller already reserved for these samples (Ingest); detect
// takes it over and releases what it does not use, so a caller that stored
// the samples first cannot be refused for a full queue after the fact.
func (s *Service) detect(ctx context.Context, samples []Sample, o DetectOptions, learn bool, held int) ([]Result, error) {
	reserved := held
	release := func() {
		if reserved > 0 {
			s.batch.release(reserved)
			reserved = 0
		}
	}
	defer release()
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if len(samples) > s.opt.MaxBatch {
		return nil, fmt.Errorf("anomaly: %d samples in one request; at most %d: %w", len(samples), s.opt.MaxBatch, ErrInvalidSample)
	}
	start := time.Now()
	m := s.model.Load()
	if m != nil && s.batch != nil && reserved < len(samples) {
		if err := s.batch.reserve(len(samples) - reserved); err != nil {
			s.metrics.rejected.Inc()
			return nil, err
		}
		reserved = len(samples)
	}

	observe, latest := s.series.observe, s.series.latest
	if !learn {
		sn := s.series.snapshot()
		defer sn.release()
		observe, latest = sn.observe, sn.latest
	}
	preps := make([]prepared, len(samples))
	for i, smp := range samples {
		preps[i] = s.prepare(smp, m, observe, latest)
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
	took := time.Since(start)
	elapsed := float64(took.Microseconds()) / 1000
	for i := range preps {
		out[i] = s.combine(&preps[i], m, view, learn)
		out[i].ProcessingTimeMS = elapsed
		s.count(&out[i])
	}
	s.lat.Record(took)
	s.metrics.latency.Observe(took.Seconds())
	return out, nil
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
