package main

import (
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/anomaly"
	"github.com/smartcloudops/smartcloudops/internal/cache"
	"github.com/smartcloudops/smartcloudops/internal/config"
	"github.com/smartcloudops/smartcloudops/internal/logs"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/tuning"
)

// tunables lists the settings PUT /performance/config may change without a
// restart, each wired to the part that applies it. c may be nil (cache off).
func tunables(log *slog.Logger, level *slog.LevelVar, lg *logs.Logger, c *cache.Cache, st *store.Store, an *anomaly.Service) *tuning.Registry {
	r := tuning.New(log, nil)

	r.Add(tuning.Enum("logs.level", "lowest level logged", []string{"debug", "info", "warn", "error"},
		func() string { return strings.ToLower(level.Level().String()) },
		func(v string) { _ = level.UnmarshalText([]byte(v)) }))
	setLimits := func(f func(*logs.Limits)) {
		l := lg.Limits()
		f(&l)
		_ = lg.SetLimits(l) // prepared values are within the bounds SetLimits accepts
	}
	r.Add(tuning.Bytes("logs.max_file_size", "rotate the current log file past this size", 1<<10, 1<<40, config.ParseSize,
		func() int64 { return lg.Limits().MaxFileSize },
		func(n int64) { setLimits(func(l *logs.Limits) { l.MaxFileSize = n }) }))
	r.Add(tuning.Integer("logs.max_files", "rotated log files kept; 0 keeps all", 0, 100000,
		func() int64 { return int64(lg.Limits().MaxFiles) },
		func(n int64) { setLimits(func(l *logs.Limits) { l.MaxFiles = int(n) }) }, nil))
	r.Add(tuning.Integer("logs.max_age_days", "remove rotated log files older than this many days; 0 keeps them", 0, 36500,
		func() int64 { return int64(lg.Limits().MaxAge / (24 * time.Hour)) },
		func(n int64) { setLimits(func(l *logs.Limits) { l.MaxAge = time.Duration(n) * 24 * time.Hour }) }, nil))

	if c != nil {
		r.Add(tuning.Duration("cache.default_ttl", "TTL of cache entries written without one", time.Second, cache.MaxTTL,
			c.DefaultTTL, func(d time.Duration) { _ = c.SetDefaultTTL(d) }, nil))
		r.Add(tuning.Bytes("cache.compression_threshold", "compress encoded cache values from this size", 1, 1<<30, config.ParseSize,
			func() int64 { return int64(c.CompressionThreshold()) },
			func(n int64) { _ = c.SetCompressionThreshold(int(n)) }))
	}

	r.Add(tuning.Duration("database.slow_query_threshold", "log statements at least this slow; 0 turns the slow log off", 0, time.Hour,
		st.Diagnostics().SlowQueryThreshold, st.Diagnostics().SetSlowQueryThreshold, nil))

	batchingOn := func() error {
		if _, _, ok := an.Batching(); !ok {
			return errors.New("batching is disabled (ENABLE_BATCH_PROCESSING=false)")
		}
		return nil
	}
	r.Add(tuning.Integer("anomaly.batch_size", "largest micro-batch of model scoring", 1, 10000,
		func() int64 { n, _, _ := an.Batching(); return int64(n) },
		func(n int64) { _, to, _ := an.Batching(); _ = an.SetBatching(int(n), to) },
		func(int64) error { return batchingOn() }))
	r.Add(tuning.Duration("anomaly.batch_timeout", "longest a sample waits for its batch to fill", time.Millisecond, time.Minute,
		func() time.Duration { _, to, _ := an.Batching(); return to },
		func(d time.Duration) { n, _, _ := an.Batching(); _ = an.SetBatching(n, d) },
		func(time.Duration) error { return batchingOn() }))
	for _, m := range []string{anomaly.MetricCPU, anomaly.MetricMemory, anomaly.MetricDisk, anomaly.MetricErrorRate} {
		r.Add(tuning.Number("anomaly.thresholds."+m, "fallback limit (percent) for "+m+" while no model can score", 0.01, 100,
			func() float64 { return an.Thresholds()[m] },
			func(f float64) {
				t := an.Thresholds()
				t[m] = f
				_ = an.SetThresholds(t)
			}))
	}
	return r
}
