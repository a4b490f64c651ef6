package anomaly

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/smartcloudops/smartcloudops/internal/anomaly/iforest"
	"github.com/smartcloudops/smartcloudops/internal/domain"
	"github.com/smartcloudops/smartcloudops/internal/health"
)

// holdoutShare is the most recent part of the training window kept out of
// training to measure the forest on data it has not seen.
const holdoutShare = 0.2

// Train fits the host models on the store's history of the training window, stores
// it as a new version with its parameters and validation figures, and makes
// it the active model when activate is set. It fails with ErrBusy while
// another training or activation runs, and with ErrNotEnoughData when the
// window holds fewer than MinTrainingRows samples.
func (s *Service) Train(ctx context.Context, activate bool) (ModelInfo, error) {
	if s.tracer == nil {
		return s.trainGuarded(ctx, activate)
	}
	ctx, sp := s.tracer.Start(ctx, spanTrain, trace.WithAttributes(attrActivate.Bool(activate)))
	info, err := s.trainGuarded(ctx, activate)
	if err == nil {
		sp.SetAttributes(attrModel.String(info.Version), attrTrainRows.Int64(info.TrainingRows))
	}
	endSpan(sp, err)
	return info, err
}

// trainGuarded is Train without its span: one training at a time, with its
// outcome counted and kept for health.
func (s *Service) trainGuarded(ctx context.Context, activate bool) (ModelInfo, error) {
	if s.opt.Store == nil {
		return ModelInfo{}, ErrNoStore
	}
	if !s.adminMu.TryLock() {
		return ModelInfo{}, ErrBusy
	}
	defer s.adminMu.Unlock()
	info, err := s.train(ctx, activate)
	if err != nil {
		s.metrics.trainings.WithLabelValues("error").Inc()
		// Too little history is the normal state of a new install, not a
		// fault; health reports only trainings that broke.
		if !errors.Is(err, ErrNotEnoughData) {
			msg := err.Error()
			s.lastTrainErr.Store(&msg)
		}
		return ModelInfo{}, err
	}
	s.metrics.trainings.WithLabelValues("ok").Inc()
	s.lastTrainErr.Store(nil)
	return info, nil
}

func (s *Service) train(ctx context.Context, activate bool) (ModelInfo, error) {
	now := s.clock.Now().UTC()
	from := now.Add(-s.opt.TrainingWindow)
	hist, err := s.opt.Store.MetricHistory(ctx, domain.HistoryQuery{From: from, To: now.Add(time.Nanosecond), Limit: s.opt.MaxTrainingRows})
	if err != nil {
		return ModelInfo{}, fmt.Errorf("anomaly: train: read history: %w", err)
	}
	if len(hist) < s.opt.MinTrainingRows {
		return ModelInfo{}, fmt.Errorf("anomaly: train: %d samples since %s; need at least %d: %w", len(hist), from.Format(time.RFC3339), s.opt.MinTrainingRows, ErrNotEnoughData)
	}
	ts := buildTrainingSet(hist, holdoutShare)
	cols := len(ts.columns)
	if cols == 0 || len(ts.train)/cols < s.opt.MinTrainingRows/2 {
		return ModelInfo{}, fmt.Errorf("anomaly: train: no metric is reported by half the samples, or too few samples before the holdout: %w", ErrNotEnoughData)
	}
	fo := fitOptions{trees: s.opt.Trees, sampleSize: s.opt.SampleSize, contamination: s.opt.Contamination}
	am, val, err := trainModel(ts, fo, s.opt.Threshold, s.opt.MinTrainingRows)
	if err != nil {
		return ModelInfo{}, fmt.Errorf("anomaly: train: %w", err)
	}
	var suffix [3]byte
	_, _ = rand.Read(suffix[:])
	version := am.fleet.typ + "-" + now.Format("20060102T150405Z") + "-" + hex.EncodeToString(suffix[:])
	params := Parameters{Trees: fo.trees, SampleSize: fo.sampleSize, Contamination: s.opt.Contamination,
		Columns: ts.columns, Window: s.opt.TrainingWindow.String(), HoldoutShare: holdoutShare,
		Candidates: []string{TypeIForest, TypePCA}, MaxHostModels: maxHostModels}
	if val.forest != nil {
		params.Trees, params.SampleSize, params.Seed = val.forest.NumTrees(), val.forest.SampleSize(), val.forest.Seed()
	}
	pj, err := json.Marshal(params)
	if err != nil {
		return ModelInfo{}, fmt.Errorf("anomaly: train: parameters: %w", err)
	}
	vj, err := json.Marshal(val)
	if err != nil {
		return ModelInfo{}, fmt.Errorf("anomaly: train: validation: %w", err)
	}
	info := ModelInfo{Version: version, Kind: ModelKind, ModelType: am.fleet.typ, HostModels: len(am.hosts), Active: activate,
		TrainedAt: now, TrainingFrom: ts.from, TrainingTo: ts.to, TrainingRows: int64(len(hist)), Parameters: pj, Validation: vj}
	am.info = info
	am.fleet.scope = version
	for h, m := range am.hosts {
		m.scope = version + "@" + h
	}
	art, err := encodeArtifact(am)
	if err != nil {
		return ModelInfo{}, err
	}
	rec := domain.Model{Version: version, Kind: ModelKind, Parameters: pj, Validation: vj, TrainedAt: now, TrainingFrom: ts.from,
		TrainingTo: ts.to, TrainingRows: int64(len(hist)), Artifact: art, Active: activate}
	if err := s.opt.Store.SaveModel(ctx, rec); err != nil {
		return ModelInfo{}, fmt.Errorf("anomaly: train: %w", err)
	}
	if activate {
		s.model.Store(am)
		s.loadErrMsg.Store(nil)
	}
	s.log.InfoContext(ctx, "anomaly: model trained", slog.String("version", version), slog.Int("rows", len(hist)),
		slog.Int("columns", cols), slog.Bool("active", activate), slog.String("type", am.fleet.typ),
		slog.Int("host_models", len(am.hosts)), slog.String("why", val.Selection.Reason))
	return info, nil
}

// calibrate sets the forest's scale: the median and the 1-contamination
// quantile of the training scores, and the score of a row past the training
// range on every metric. A degenerate training set (constant metrics) gives
// every row the same score; the result is kept well-formed so it still loads.
func calibrate(f *iforest.Forest, train []float64, cols int, trainScores []float64, contamination float64) calibration {
	c := calibration{Median: quantile(trainScores, 0.5), Threshold: quantile(trainScores, 1-contamination)}
	far := make([]float64, cols)
	for j := range cols {
		lo, hi := math.Inf(1), math.Inf(-1)
		for i := j; i < len(train); i += cols {
			lo, hi = min(lo, train[i]), max(hi, train[i])
		}
		far[j] = hi + (hi - lo) + 1
	}
	c.Extreme = f.Score(far)
	c.Median = min(max(c.Median, 1e-6), 0.97)
	c.Threshold = min(max(c.Threshold, c.Median+1e-6), 0.98)
	if !(c.Extreme > c.Threshold+0.01) || c.Extreme > 1 {
		c.Extreme = min(1, c.Threshold+0.01)
	}
	return c
}

func flagRate(scores []float64, thr float64) float64 {
	if len(scores) == 0 {
		return 0
	}
	n := 0
	for _, v := range scores {
		if v >= thr {
			n++
		}
	}
	return float64(n) / float64(len(scores))
}

// Activate makes a stored version the active model: it loads and checks the
// artifact first, then swaps the store's active flag in one transaction, then
// swaps the in-memory pointer. A request in flight keeps the model it
// started with; none fails or mixes two. Activating an older version is a
// rollback.
func (s *Service) Activate(ctx context.Context, version string) (ModelInfo, error) {
	if s.opt.Store == nil {
		return ModelInfo{}, ErrNoStore
	}
	if !s.adminMu.TryLock() {
		return ModelInfo{}, ErrBusy
	}
	defer s.adminMu.Unlock()
	rec, err := s.opt.Store.Model(ctx, version)
	if errors.Is(err, domain.ErrModelNotFound) {
		return ModelInfo{}, fmt.Errorf("anomaly: activate %q: %w", version, ErrModelNotFound)
	}
	if err != nil {
		return ModelInfo{}, fmt.Errorf("anomaly: activate %s: %w", version, err)
	}
	rec.Active = true
	am, err := decodeArtifact(infoFromStore(rec), rec.Artifact)
	if err != nil {
		return ModelInfo{}, err
	}
	if err := s.opt.Store.ActivateModel(ctx, version); err != nil {
		return ModelInfo{}, fmt.Errorf("anomaly: activate %s: %w", version, err)
	}
	s.model.Store(am)
	s.loadErrMsg.Store(nil)
	s.log.InfoContext(ctx, "anomaly: model activated", slog.String("version", version))
	return am.info, nil
}

// ActiveVersion is the version of the model in memory ("" when none).
func (s *Service) ActiveVersion() string {
	if am := s.model.Load(); am != nil {
		return am.info.Version
	}
	return ""
}

// AdoptActive makes the store's active model, activated there by another
// replica, the model in memory as Activate does, without touching the
// store's active flag, and returns its version. It reads the store under
// the same lock Activate and Train hold from their store write to their
// swap, so it never swaps in a version older than one activated here. It
// does nothing when that version is already in memory or none is active,
// and fails with ErrBusy while a training or activation runs here: the
// caller retries later.
func (s *Service) AdoptActive(ctx context.Context) (string, bool, error) {
	if s.opt.Store == nil {
		return "", false, ErrNoStore
	}
	if !s.adminMu.TryLock() {
		return "", false, ErrBusy
	}
	defer s.adminMu.Unlock()
	rec, err := s.opt.Store.ActiveModel(ctx, ModelKind)
	if errors.Is(err, domain.ErrModelNotFound) {
		return s.ActiveVersion(), false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("anomaly: adopt the active model: %w", err)
	}
	if rec.Version == s.ActiveVersion() {
		return rec.Version, false, nil
	}
	am, err := decodeArtifact(infoFromStore(rec), rec.Artifact)
	if err != nil {
		return "", false, err
	}
	s.model.Store(am)
	s.loadErrMsg.Store(nil)
	s.log.InfoContext(ctx, "anomaly: adopted the model activated on another replica", slog.String("version", rec.Version))
	return rec.Version, true, nil
}

// Models lists the stored versions, newest first.
func (s *Service) Models(ctx context.Context) ([]ModelInfo, error) {
	if s.opt.Store == nil {
		return nil, ErrNoStore
	}
	recs, err := s.opt.Store.Models(ctx, ModelKind)
	if err != nil {
		return nil, fmt.Errorf("anomaly: list models: %w", err)
	}
	out := make([]ModelInfo, len(recs))
	for i, r := range recs {
		out[i] = infoFromStore(r)
	}
	return out, nil
}

// retrainLoop trains and activates a new forest every RetrainInterval, on
// the leader only (Options.IsLeader).
func (s *Service) retrainLoop() {
	defer s.bg.Done()
	for {
		t := s.clock.NewTimer(s.opt.RetrainInterval)
		select {
		case <-s.stop:
			t.Stop()
			return
		case <-t.C():
		}
		// Another replica leads and retrains for all. A training under way
		// when leadership is lost finishes: it is bounded by its timeout,
		// and one extra activated version is harmless.
		if s.opt.IsLeader != nil && !s.opt.IsLeader() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(time.Minute, s.opt.RetrainInterval/2))
		info, err := s.Train(ctx, true)
		cancel()
		if err != nil {
			s.log.Warn("anomaly: scheduled retraining failed", slog.String("error", err.Error()))
			continue
		}
		s.log.Info("anomaly: scheduled retraining", slog.String("version", info.Version))
	}
}

// Stats is the body of GET /performance/anomaly/stats.
type Stats struct {
	ActiveModel   *ModelInfo `json:"active_model"`
	Mode          string     `json:"mode"`
	SamplesScored uint64     `json:"samples_scored"`
	// AnomaliesBySeverity counts samples found anomalous since start.
	AnomaliesBySeverity map[string]uint64 `json:"anomalies_by_severity"`
	FallbackCount       uint64            `json:"fallback_count"`
	// BatchSizes counts scored batches by size ("1", "2-10", "11-50", "51-100", "101+").
	BatchSizes    map[string]uint64 `json:"batch_sizes"`
	BatchFlushes  map[string]uint64 `json:"batch_flushes"`
	Latency       LatencyStats      `json:"latency_ms"`
	QueueDepth    int               `json:"queue_depth"`
	QueueCapacity int               `json:"queue_capacity"`
	Batching      BatchingStats     `json:"batching"`
	Cache         CacheStats        `json:"cache"`
	Series        int               `json:"series"`
	// SeriesBytes is the estimated live heap of the series' state.
	SeriesBytes int64 `json:"series_bytes"`
}

// LatencyStats are request scoring latencies over the most recent requests.
type LatencyStats struct {
	Window int     `json:"window"`
	P50    float64 `json:"p50"`
	P90    float64 `json:"p90"`
	P99    float64 `json:"p99"`
}

// BatchingStats is the batching configuration in force.
type BatchingStats struct {
	Enabled        bool    `json:"enabled"`
	BatchSize      int     `json:"batch_size"`
	BatchTimeoutMS float64 `json:"batch_timeout_ms"`
	MaxWorkers     int     `json:"max_workers"`
}

// CacheStats are the prediction cache's figures.
type CacheStats struct {
	Enabled bool    `json:"enabled"`
	Hits    uint64  `json:"hits"`
	Misses  uint64  `json:"misses"`
	Errors  uint64  `json:"errors"`
	HitRate float64 `json:"hit_rate"`
}

// Stats reports the service's figures since start.
func (s *Service) Stats() Stats {
	st := Stats{
		SamplesScored:       s.scored.Load(),
		FallbackCount:       s.fallbacks.Load(),
		AnomaliesBySeverity: map[string]uint64{},
		BatchSizes:          map[string]uint64{},
		BatchFlushes:        map[string]uint64{},
		QueueDepth:          s.QueueDepth(),
		Series:              s.series.len(),
		SeriesBytes:         s.series.heapBytes(),
		Mode:                "stream+threshold",
		Batching: BatchingStats{Enabled: s.batch != nil, BatchSize: s.opt.BatchSize,
			BatchTimeoutMS: float64(s.opt.BatchTimeout.Microseconds()) / 1000, MaxWorkers: s.opt.MaxWorkers},
	}
	if s.batch != nil {
		st.QueueCapacity = s.opt.QueueSize
	}
	if am := s.model.Load(); am != nil {
		info := am.info
		st.ActiveModel = &info
		st.Mode = am.fleet.typ + "+stream+threshold"
	}
	for i, sev := range []domain.Severity{domain.SeverityLow, domain.SeverityMedium, domain.SeverityHigh, domain.SeverityCritical} {
		st.AnomaliesBySeverity[string(sev)] = s.severities[i].Load()
	}
	for i, name := range []string{"1", "2-10", "11-50", "51-100", "101+"} {
		st.BatchSizes[name] = s.batchSizes[i].Load()
	}
	for i, name := range []string{"idle", "size", "timeout", "close"} {
		st.BatchFlushes[name] = s.flushes[i].Load()
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	lat := s.lat.Summary()
	st.Latency = LatencyStats{Window: lat.N, P50: ms(lat.P50), P90: ms(lat.P90), P99: ms(lat.P99)}
	st.Cache = CacheStats{Enabled: s.opt.Cache != nil, Hits: s.cacheHits.Load(), Misses: s.cacheMisses.Load(), Errors: s.cacheErrors.Load()}
	if total := st.Cache.Hits + st.Cache.Misses; total > 0 {
		st.Cache.HitRate = float64(st.Cache.Hits) / float64(total)
	}
	return st
}

// Check implements health.Checker for the "anomaly" component: DOWN once
// closed; DEGRADED when the stored active model could not be loaded, the
// last training failed, or the queue is over 90% full; UP otherwise,
// including when no model is trained yet (the fallback is the configured
// behaviour then, and details say so).
func (s *Service) Check(ctx context.Context) health.Component {
	st := s.Stats()
	d := map[string]any{"mode": st.Mode, "queue_depth": st.QueueDepth, "series": st.Series, "samples_scored": st.SamplesScored}
	if st.ActiveModel != nil {
		d["active_model"] = st.ActiveModel.Version
	}
	status := health.StatusUp
	if p := s.loadErrMsg.Load(); p != nil {
		status, d["model_error"] = health.StatusDegraded, "the active model could not be loaded; see the service log"
	}
	if p := s.lastTrainErr.Load(); p != nil {
		status, d["last_training_error"] = health.StatusDegraded, *p
	}
	if st.QueueCapacity > 0 && st.QueueDepth*10 > st.QueueCapacity*9 {
		status, d["queue"] = health.StatusDegraded, "over 90% full"
	}
	if s.closed.Load() || ctx.Err() != nil {
		status = health.StatusDown
	}
	return health.Component{Status: status, Details: d}
}
