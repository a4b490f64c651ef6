package anomaly

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrSeriesNotFound is returned by Rebaseline when the service holds no
// series of that host (and metric): it never saw them, or evicted them.
var ErrSeriesNotFound = errors.New("anomaly: no such series in memory")

// alertMetrics are the Prometheus series of the alert/state split and of
// re-baselining.
type alertMetrics struct {
	rebaselined prometheus.Counter
	untracked   prometheus.Counter
}

func newAlertMetrics(reg prometheus.Registerer, sustained func() float64) (*alertMetrics, error) {
	const ns = "smartcloudops_anomaly_"
	m := &alertMetrics{
		rebaselined: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "series_rebaselined_total",
			Help: "Series whose current level an operator accepted as normal (POST /performance/anomaly/series/rebaseline)."}),
		untracked: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "incidents_untracked_total",
			Help: "Open threshold or model incidents not remembered because the incident table was full; each may alert again."}),
	}
	for _, c := range []prometheus.Collector{m.rebaselined, m.untracked,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "series_sustained",
			Help: "Series in a sustained anomaly state now: held away from their baseline by the streaming detector, or last seen past their static limit."}, sustained),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("anomaly: register metrics: %w", err)
		}
	}
	return m, nil
}

// sustainedSeries counts the series in a sustained anomaly state: the
// stream holds them, or their newest value is past its static limit. It
// walks every series, which is fine at scrape intervals (about 13 ms for
// 100000 series, BenchmarkSustainedGauge), and it counts from the series
// themselves, so an evicted series leaves the count with its state.
func (s *Service) sustainedSeries() float64 {
	limits := *s.thresholds.Load()
	n := 0
	ss := s.series
	for i := range ss.shards {
		sh := &ss.shards[i]
		sh.mu.Lock()
		for k, sr := range sh.m {
			if sr.det.Holding() {
				n++
				continue
			}
			if sr.ctx.n > 0 {
				if _, over, ok := limits.score(k.metric, sr.ctx.prev); ok && over {
					n++
				}
			}
		}
		sh.mu.Unlock()
	}
	return float64(n)
}

// ValidSeries checks a host and an optional metric name the way Normalize
// checks a sample's, and returns the metric's canonical name ("" stays "").
// The error is a *FieldError naming "host" or "metric".
func ValidSeries(host, metric string) (string, error) {
	smp := Sample{Host: host, Timestamp: time.Unix(1, 0), Metrics: map[string]float64{"x": 0}}
	if metric != "" {
		smp.Metrics = map[string]float64{metric: 0}
	}
	n, err := Normalize(smp)
	var fe *FieldError
	if errors.As(err, &fe) {
		if fe.Field != "host" {
			fe = &FieldError{Field: "metric", Detail: fe.Detail}
		}
		return "", fe
	}
	if err != nil {
		return "", err
	}
	if metric == "" {
		return "", nil
	}
	for name := range n.Metrics {
		return name, nil
	}
	return "", nil
}

// RebaselineReport is the outcome of Rebaseline.
type RebaselineReport struct {
	Host string `json:"host"`
	// Metrics are the series re-baselined, sorted.
	Metrics []string `json:"metrics"`
	// Held are those of Metrics that were held away from their baseline.
	Held []string `json:"held"`
	// OverLimit are those of Metrics whose newest value is past its static
	// limit: the limit stays a floor, so they stay anomalous until they are
	// back within it or the limit is changed (PUT /performance/config).
	OverLimit []string  `json:"over_limit"`
	By        string    `json:"by"`
	At        time.Time `json:"at"`
}

// Rebaseline accepts the current level of host's series as their new
// normal: every metric of the host, or only metric when it is not empty
// (any spelling CanonicalMetric accepts). A held series leaves its hold, its
// state drops and it learns from here. The static limits and the trained
// model are left alone: they have their own ways to change (the runtime
// settings, a new training). who names the operator for the audit line.
// A host or metric the service holds no series of returns
// ErrSeriesNotFound; a malformed name a *FieldError wrapped with
// ErrInvalidSample.
func (s *Service) Rebaseline(ctx context.Context, host, metric, who string) (RebaselineReport, error) {
	canon, err := ValidSeries(host, metric)
	if err != nil {
		return RebaselineReport{}, fmt.Errorf("%w: %w", ErrInvalidSample, err)
	}
	limits := *s.thresholds.Load()
	rep := RebaselineReport{Host: host, Metrics: []string{}, Held: []string{}, OverLimit: []string{}, By: who, At: s.clock.Now().UTC()}
	ss := s.series
	visit := func(sr *series) {
		if sr.det.Holding() {
			rep.Held = append(rep.Held, sr.key.metric)
		}
		sr.det.Rebaseline()
		rep.Metrics = append(rep.Metrics, sr.key.metric)
		if sr.ctx.n > 0 {
			if _, over, ok := limits.score(sr.key.metric, sr.ctx.prev); ok && over {
				rep.OverLimit = append(rep.OverLimit, sr.key.metric)
			}
		}
	}
	if canon != "" {
		k := seriesKey{host, canon}
		sh := ss.shard(k)
		sh.mu.Lock()
		if sr := sh.m[k]; sr != nil {
			visit(sr)
		}
		sh.mu.Unlock()
	} else {
		for i := range ss.shards {
			sh := &ss.shards[i]
			sh.mu.Lock()
			for k, sr := range sh.m {
				if k.host == host {
					visit(sr)
				}
			}
			sh.mu.Unlock()
		}
	}
	if len(rep.Metrics) == 0 {
		if canon != "" {
			return rep, fmt.Errorf("anomaly: rebaseline %s %s: %w", host, canon, ErrSeriesNotFound)
		}
		return rep, fmt.Errorf("anomaly: rebaseline %s: %w", host, ErrSeriesNotFound)
	}
	slices.Sort(rep.Metrics)
	slices.Sort(rep.Held)
	slices.Sort(rep.OverLimit)
	s.alerts.rebaselined.Add(float64(len(rep.Metrics)))
	s.log.InfoContext(ctx, "anomaly series re-baselined", slog.String("audit", "rebaseline"), slog.String("host", host),
		slog.Any("metrics", rep.Metrics), slog.Any("held", rep.Held), slog.String("by", who), slog.Time("at", rep.At))
	return rep, nil
}
