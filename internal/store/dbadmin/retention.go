package dbadmin

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartcloudops/smartcloudops/internal/store"
)

// RetentionOptions configure the rollup and retention job: every Interval it
// rolls the raw samples up into 1-minute aggregates (store.RollupMetrics),
// then deletes what is past its window (store.DeleteExpired). See
// internal/store/rollup.go for how minutes are rolled and late samples met.
type RetentionOptions struct {
	// Interval (METRICS_ROLLUP_INTERVAL) is the time between runs; 0 turns
	// the job off: nothing is rolled up and nothing deleted.
	Interval time.Duration
	// Lag (METRICS_ROLLUP_LAG) is how long a minute stays open before it is rolled up. Default 2m.
	Lag time.Duration
	// Raw (METRICS_RAW_RETENTION) is how long raw samples are kept; 0 keeps them forever.
	Raw time.Duration
	// Rollup (METRICS_ROLLUP_RETENTION) is how long 1-minute rollups are kept; 0 keeps them forever.
	Rollup time.Duration
	// BatchSize (METRICS_RETENTION_BATCH_SIZE) bounds the rows one DELETE removes. Default 1000.
	BatchSize int
	// Pause is the wait between delete batches. Default 10ms.
	Pause time.Duration
}

// RetentionRun is what one run of the job did.
type RetentionRun struct {
	Rollup    store.RollupResult
	Retention store.RetentionResult
	Duration  time.Duration
}

// retentionMetrics are the job's smartcloudops_db_rollup_* and
// smartcloudops_db_retention_* series.
type retentionMetrics struct {
	rollupRows prometheus.Counter
	late       *prometheus.CounterVec
	deleted    *prometheus.CounterVec
	duration   prometheus.Histogram
	errors     *prometheus.CounterVec
	delay      prometheus.Gauge
}

func newRetentionMetrics() *retentionMetrics {
	m := &retentionMetrics{
		rollupRows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smartcloudops_db_rollup_rows_total",
			Help: "Rollup rows (host, metric, minute) written or rewritten by the rollup job.",
		}),
		late: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartcloudops_db_rollup_late_total",
			Help: "Host-minutes that received samples after they were rolled up: rolled again, or expired (older than the raw window, left out).",
		}, []string{"outcome"}),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartcloudops_db_retention_deleted_rows_total",
			Help: "Rows deleted by retention, by table.",
		}, []string{"table"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "smartcloudops_db_retention_run_duration_seconds",
			Help:    "Time of one rollup and retention run.",
			Buckets: []float64{.01, .05, .1, .5, 1, 5, 10, 30, 60, 300, 900},
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartcloudops_db_retention_errors_total",
			Help: "Rollup and retention runs that failed, by step.",
		}, []string{"step"}),
		delay: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "smartcloudops_db_rollup_delay_seconds",
			Help: "How far the rollup watermark is behind now, as of the last run: about METRICS_ROLLUP_LAG when the job keeps up.",
		}),
	}
	for _, o := range []string{"rerolled", "expired"} {
		m.late.WithLabelValues(o)
	}
	for _, t := range []string{"system_metrics", "metric_rollups"} {
		m.deleted.WithLabelValues(t)
	}
	for _, s := range []string{"rollup", "delete"} {
		m.errors.WithLabelValues(s)
	}
	return m
}

func (m *retentionMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.rollupRows, m.late, m.deleted, m.duration, m.errors, m.delay}
}

func (o RetentionOptions) validate() error {
	if o.Interval < 0 || o.Lag < 0 || o.Raw < 0 || o.Rollup < 0 || o.BatchSize < 0 || o.Pause < 0 {
		return fmt.Errorf("store: retention options must not be negative: %+v", o)
	}
	if o.Raw > 0 && o.Rollup > 0 && o.Rollup < o.Raw {
		return fmt.Errorf("store: rollup retention %s is shorter than raw retention %s: reads before the raw window would find nothing", o.Rollup, o.Raw)
	}
	return nil
}

// RunRetention runs the rollup and retention job once, now: it rolls up,
// and deletes only when the rollup succeeded, so a failing rollup never
// lets raw rows go. The periodic job calls it; so can an operator's tool.
func (ad *Admin) RunRetention(ctx context.Context) (RetentionRun, error) {
	o := ad.retention
	start := time.Now()
	now := ad.now()
	var run RetentionRun
	defer func() {
		run.Duration = time.Since(start)
		ad.rm.duration.Observe(run.Duration.Seconds())
	}()
	r, err := ad.st.RollupMetrics(ctx, store.RollupOptions{Now: now, Lag: o.Lag})
	run.Rollup = r
	ad.rm.rollupRows.Add(float64(r.Rows))
	ad.rm.late.WithLabelValues("rerolled").Add(float64(r.LateMinutes))
	ad.rm.late.WithLabelValues("expired").Add(float64(r.ExpiredMinutes))
	if !r.Watermark.IsZero() {
		ad.rm.delay.Set(now.Sub(r.Watermark).Seconds())
	}
	if err != nil {
		// A run cut short by Close is not a fault.
		if ctx.Err() == nil {
			ad.rm.errors.WithLabelValues("rollup").Inc()
		}
		return run, err
	}
	d, err := ad.st.DeleteExpired(ctx, store.RetentionOptions{Now: now, Raw: o.Raw, Rollup: o.Rollup, BatchSize: o.BatchSize, Pause: o.Pause})
	run.Retention = d
	ad.rm.deleted.WithLabelValues("system_metrics").Add(float64(d.RawDeleted))
	ad.rm.deleted.WithLabelValues("metric_rollups").Add(float64(d.RollupsDeleted))
	if err != nil {
		if ctx.Err() == nil {
			ad.rm.errors.WithLabelValues("delete").Inc()
		}
		return run, err
	}
	return run, nil
}

// retentionLoop runs the job every interval until ctx ends (Close).
func (ad *Admin) retentionLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Another replica leads and runs the job. A run under way when
		// leadership is lost finishes: its batches are idempotent (a minute
		// rolls to the same row, a delete finds what is left), so a brief
		// overlap with the new leader costs work, not data.
		if !ad.leads() {
			continue
		}
		run, err := ad.RunRetention(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			ad.log.WarnContext(ctx, "rollup and retention run failed", slog.String("error", err.Error()))
			continue
		}
		if run.Rollup.Rows > 0 || run.Retention.RawDeleted > 0 || run.Retention.RollupsDeleted > 0 {
			ad.log.InfoContext(ctx, "rollup and retention run",
				slog.Int64("rollup_rows", run.Rollup.Rows), slog.Int64("late_minutes", run.Rollup.LateMinutes),
				slog.Time("watermark", run.Rollup.Watermark), slog.Int64("raw_deleted", run.Retention.RawDeleted),
				slog.Int64("rollups_deleted", run.Retention.RollupsDeleted), slog.Int("batches", run.Retention.Batches),
				slog.Duration("duration", run.Duration))
		}
	}
}
