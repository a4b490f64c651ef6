package anomaly

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/trace"

	"github.com/smartcloudops/smartcloudops/internal/domain"
)

// IngestReport is the outcome of Ingest.
type IngestReport struct {
	Accepted   int      `json:"accepted"`
	Stored     int64    `json:"stored"`
	Duplicates int64    `json:"duplicates"`
	Anomalies  int64    `json:"anomalies"`
	Results    []Result `json:"results"`
}

// Ingest stores samples through the store's bulk path, scores them, and
// stores the anomalies among them with their severity. A sample whose host
// and timestamp are stored already is merged into that row (it fills the
// metrics the row lacks: remote write sends one scrape in parts); one that
// adds nothing is counted as a duplicate and scored, but
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
	// Reserve queue room before storing and keep it for scoring, so a full
	// queue refuses the whole request before anything is written ("nothing
	// was stored or scored" is then true) and never after.
	held := 0
	if s.batch != nil && s.model.Load() != nil {
		if err := s.batch.reserve(len(samples)); err != nil {
			s.metrics.rejected.Inc()
			return IngestReport{}, err
		}
		held = len(samples)
	}
	defer func() {
		if held > 0 {
			s.batch.release(held)
		}
	}()
	rows := make([]domain.MetricSample, len(samples))
	for i, smp := range samples {
		rows[i] = ToStore(smp)
	}
	stored, err := s.opt.Store.InsertMetrics(ctx, rows)
	if err != nil {
		return IngestReport{}, fmt.Errorf("anomaly: ingest: %w", err)
	}
	results, err := s.learn(ctx, samples, held)
	held = 0 // learn took the reservation over
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
// traced like Detect. held is queue room Ingest reserved; learn owns it.
func (s *Service) learn(ctx context.Context, samples []Sample, held int) ([]Result, error) {
	if s.tracer == nil {
		return s.detect(ctx, samples, DetectOptions{}, true, held)
	}
	ctx, sp := s.tracer.Start(ctx, spanDetect, trace.WithAttributes(attrSamples.Int(len(samples))))
	out, err := s.detect(ctx, samples, DetectOptions{}, true, held)
	endDetect(sp, out, err)
	return out, err
}
