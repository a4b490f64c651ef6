package dbadmin_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/smartcloudops/smartcloudops/internal/store/dbadmin"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

// TestRetentionJob starts the Admin's periodic job on a store whose samples
// are all older than the raw window: it rolls them up, then deletes them,
// counting both, and Close stops it.
func TestRetentionJob(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		s, _ := open(t, url)
		insertMetrics(t, s, 2000, 4)
		reg := prometheus.NewRegistry()
		ad, err := dbadmin.New(s, dbadmin.Options{Registerer: reg,
			Retention: dbadmin.RetentionOptions{Interval: 20 * time.Millisecond, Raw: time.Hour, BatchSize: 300}})
		if err != nil {
			t.Fatal(err)
		}
		deleted := func() float64 {
			return metricValue(t, reg, "smartcloudops_db_retention_deleted_rows_total", "system_metrics")
		}
		deadline := time.Now().Add(30 * time.Second)
		for deleted() < 2000 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		ad.Close()
		if got := deleted(); got != 2000 {
			t.Fatalf("raw rows deleted = %v, want 2000", got)
		}
		var raw, rollups int64
		ctx := context.Background()
		if err := s.Reader().QueryRowContext(ctx, "SELECT count(*) FROM system_metrics").Scan(&raw); err != nil || raw != 0 {
			t.Fatalf("raw rows left = %d, %v", raw, err)
		}
		if err := s.Reader().QueryRowContext(ctx, "SELECT count(*) FROM metric_rollups").Scan(&rollups); err != nil || rollups == 0 {
			t.Fatalf("rollup rows = %d, %v", rollups, err)
		}
		// 500 seconds of 4 hosts with two metrics: 9 minutes each.
		if written := metricValue(t, reg, "smartcloudops_db_rollup_rows_total", ""); written != float64(rollups) || rollups != 4*2*9 {
			t.Errorf("rollup rows written %v, stored %d, want %d", written, rollups, 4*2*9)
		}
		if errs := metricValue(t, reg, "smartcloudops_db_retention_errors_total", "rollup"); errs != 0 {
			t.Errorf("rollup errors = %v", errs)
		}
		if n := testutil.CollectAndCount(reg, "smartcloudops_db_retention_run_duration_seconds"); n != 1 {
			t.Errorf("run duration series = %d", n)
		}
	})
}

// metricValue is the counter name (with label value lv, or unlabelled when
// lv is "") in reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name, lv string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if lv == "" && len(m.GetLabel()) == 0 || len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == lv {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("metric %s{%s} not registered", name, lv)
	return 0
}

func TestRetentionOptionsValidated(t *testing.T) {
	s, _ := open(t, storetest.SQLiteURL(t))
	for _, o := range []dbadmin.RetentionOptions{
		{Interval: -time.Second},
		{Raw: 48 * time.Hour, Rollup: 24 * time.Hour},
	} {
		if ad, err := dbadmin.New(s, dbadmin.Options{Retention: o}); err == nil {
			ad.Close()
			t.Errorf("New accepted %+v", o)
		}
	}
}

// TestDatabaseSize checks the size report against the database's own
// figures: it grows with rows and, on SQLite, deletes show as free pages.
func TestDatabaseSize(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		s, ad := open(t, url)
		ctx := context.Background()
		before, err := ad.Size(ctx)
		if err != nil || before.TotalBytes <= 0 {
			t.Fatalf("size of an empty database = %+v, %v", before, err)
		}
		insertMetrics(t, s, 5000, 5)
		after, err := ad.Size(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("size before %d bytes, after 5000 rows %d bytes", before.TotalBytes, after.TotalBytes)
		if after.TotalBytes <= before.TotalBytes {
			t.Errorf("size did not grow with 5000 rows: %d → %d", before.TotalBytes, after.TotalBytes)
		}
		stats, err := ad.Stats(ctx, dbadmin.StatsOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if stats.Size.TotalBytes <= 0 {
			t.Errorf("stats size = %+v", stats.Size)
		}
		for _, ts := range stats.Tables {
			if ts.Name == "system_metrics" && (ts.TotalBytes == nil || *ts.TotalBytes < *ts.TableBytes+*ts.IndexBytes || *ts.TotalBytes == 0) {
				t.Errorf("system_metrics total bytes = %v (table %v, index %v)", ts.TotalBytes, *ts.TableBytes, *ts.IndexBytes)
			}
		}
		if s.File() == "" {
			if after.PageCount != nil || after.FileBytes != nil {
				t.Errorf("PostgreSQL size reports SQLite fields: %+v", after)
			}
			return
		}
		if after.PageSize == nil || after.FileBytes == nil || after.WALBytes == nil || *after.PageSize**after.PageCount <= 0 ||
			after.TotalBytes != max(*after.FileBytes, *after.PageSize**after.PageCount)+*after.WALBytes {
			t.Fatalf("SQLite size = %+v", after)
		}
		if _, err := s.Exec(ctx, "DELETE FROM system_metrics"); err != nil {
			t.Fatal(err)
		}
		// Checkpoint so the freed pages reach the database file's header.
		if _, err := s.Writer().ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			t.Fatal(err)
		}
		freed, err := ad.Size(ctx)
		if err != nil || freed.FreelistPages == nil || *freed.FreelistPages == 0 || *freed.FreeBytes != *freed.FreelistPages**freed.PageSize {
			t.Fatalf("after deleting every row: %+v, %v", freed, err)
		}
	})
}
