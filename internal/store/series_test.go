package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/domain"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

func f64(v float64) *float64 { return &v }

var seriesBase = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// seedSeries stores n samples a minute apart for each host, cpu_usage = i,
// memory_usage only on even minutes.
func seedSeries(t *testing.T, s *store.Store, n int, hosts ...string) {
	t.Helper()
	var samples []domain.MetricSample
	for _, h := range hosts {
		for i := range n {
			m := domain.MetricSample{Host: h, Timestamp: seriesBase.Add(time.Duration(i) * time.Minute), CPUUsage: f64(float64(i))}
			if i%2 == 0 {
				m.MemoryUsage = f64(50)
			}
			samples = append(samples, m)
		}
	}
	if _, err := s.InsertMetrics(context.Background(), samples); err != nil {
		t.Fatal(err)
	}
}

func TestSeriesHosts(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := migrated(t, url)
		got, err := s.Hosts(ctx, store.HostsQuery{})
		if err != nil || len(got.Hosts) != 0 || got.Truncated || got.Hosts == nil {
			t.Fatalf("empty table: %+v, %v", got, err)
		}
		// "acme_x" and "ACME/x" must not pass as tenant acme's hosts: no
		// wildcard, no case folding. "acme/" alone is not a host of acme.
		seedSeries(t, s, 3, "web-2", "acme/db-1", "acme/web-1", "acme_x", "ACME/x", "acme/")
		got, err = s.Hosts(ctx, store.HostsQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Hosts) != 6 || got.Truncated {
			t.Fatalf("all hosts = %+v", got)
		}
		for i, h := range got.Hosts {
			if !h.LastSample.Equal(seriesBase.Add(2*time.Minute)) || h.LastSample.Location() != time.UTC {
				t.Fatalf("host %d %q last sample = %v", i, h.Host, h.LastSample)
			}
			if i > 0 && got.Hosts[i-1].Host >= h.Host && strings.HasPrefix(url, "sqlite") {
				t.Fatalf("hosts not in order: %+v", got.Hosts)
			}
		}
		got, err = s.Hosts(ctx, store.HostsQuery{Filter: store.HostFilter{Prefix: "acme/"}})
		if err != nil || len(got.Hosts) != 2 || got.Hosts[0].Host != "acme/db-1" || got.Hosts[1].Host != "acme/web-1" {
			t.Fatalf("tenant acme hosts = %+v, %v", got, err)
		}
		got, err = s.Hosts(ctx, store.HostsQuery{Limit: 4})
		if err != nil || len(got.Hosts) != 4 || !got.Truncated {
			t.Fatalf("limit 4 = %+v, %v", got, err)
		}
		got, err = s.Hosts(ctx, store.HostsQuery{Filter: store.HostFilter{Host: "web-2"}})
		if err != nil || len(got.Hosts) != 1 || got.Hosts[0].Host != "web-2" {
			t.Fatalf("one host = %+v, %v", got, err)
		}
	})
}

func TestSeriesMetricWindow(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := migrated(t, url)
		seedSeries(t, s, 10, "web-1", "web-2")

		got, err := s.MetricSeries(ctx, store.SeriesQuery{Host: "web-1"})
		if err != nil || len(got.Samples) != 10 || got.Truncated {
			t.Fatalf("whole series = %d samples, truncated %v, %v", len(got.Samples), got.Truncated, err)
		}
		for i, m := range got.Samples {
			if m.Host != "web-1" || !m.Timestamp.Equal(seriesBase.Add(time.Duration(i)*time.Minute)) || m.CPUUsage == nil || *m.CPUUsage != float64(i) {
				t.Fatalf("sample %d = %+v", i, m)
			}
			if (m.MemoryUsage != nil) != (i%2 == 0) || m.DiskUsage != nil || m.Extra != nil {
				t.Fatalf("sample %d: absent metrics must stay nil: %+v", i, m)
			}
		}

		// [From, To) and the most recent Limit samples of it, oldest first.
		got, err = s.MetricSeries(ctx, store.SeriesQuery{Host: "web-1", From: seriesBase.Add(2 * time.Minute), To: seriesBase.Add(8 * time.Minute), Limit: 3})
		if err != nil || len(got.Samples) != 3 || !got.Truncated {
			t.Fatalf("window = %+v, %v", got, err)
		}
		for i, want := range []float64{5, 6, 7} {
			if *got.Samples[i].CPUUsage != want {
				t.Fatalf("window sample %d cpu = %v, want %v", i, *got.Samples[i].CPUUsage, want)
			}
		}
		got, err = s.MetricSeries(ctx, store.SeriesQuery{Host: "web-1", From: seriesBase.Add(7 * time.Minute), Limit: 3})
		if err != nil || len(got.Samples) != 3 || got.Truncated {
			t.Fatalf("exactly the limit is not truncated: %+v, %v", got, err)
		}
		got, err = s.MetricSeries(ctx, store.SeriesQuery{Host: "nope"})
		if err != nil || len(got.Samples) != 0 || got.Samples == nil {
			t.Fatalf("unknown host = %+v, %v", got, err)
		}
		if _, err := s.MetricSeries(ctx, store.SeriesQuery{}); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("no host: %v, want ErrInvalid", err)
		}
		// A limit past the maximum is cut to it rather than loading everything.
		got, err = s.MetricSeries(ctx, store.SeriesQuery{Host: "web-2", Limit: store.MaxSeriesLimit * 10})
		if err != nil || len(got.Samples) != 10 {
			t.Fatalf("huge limit = %d, %v", len(got.Samples), err)
		}
	})
}

func TestSeriesAnomalyRange(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := migrated(t, url)
		var rows []domain.Anomaly
		for i, h := range []string{"acme/web-1", "acme/web-1", "web-2", "acme_x", "acme/db-1"} {
			rows = append(rows, domain.Anomaly{Host: h, Metric: "cpu_usage", DetectedAt: seriesBase.Add(time.Duration(i) * time.Minute),
				Score: 0.9, Confidence: 0.8, Severity: "high", ModelVersion: "threshold-v1",
				Features: map[string]float64{"cpu_usage": 97}, Explanation: "cpu_usage 97 > 90"})
		}
		rows[1].Metric, rows[1].Features = "", nil
		if _, err := s.InsertAnomalies(ctx, rows); err != nil {
			t.Fatal(err)
		}

		all, err := s.AnomalyRange(ctx, store.AnomalyRangeQuery{})
		if err != nil || len(all.Anomalies) != 5 || all.Truncated {
			t.Fatalf("all = %+v, %v", all, err)
		}
		for i, a := range all.Anomalies {
			want := rows[4-i]
			if a.Host != want.Host || !a.DetectedAt.Equal(want.DetectedAt) || a.Metric != want.Metric || a.Severity != "high" ||
				a.Status != "open" || a.Score != 0.9 || a.ModelVersion != "threshold-v1" || a.ID == 0 {
				t.Fatalf("anomaly %d = %+v, want %+v (newest first)", i, a, want)
			}
		}
		if all.Anomalies[4].Features["cpu_usage"] != 97 || all.Anomalies[3].Features != nil {
			t.Fatalf("features = %v / %v", all.Anomalies[4].Features, all.Anomalies[3].Features)
		}

		tenant, err := s.AnomalyRange(ctx, store.AnomalyRangeQuery{Filter: store.HostFilter{Prefix: "acme/"}})
		if err != nil || len(tenant.Anomalies) != 3 {
			t.Fatalf("tenant acme = %+v, %v", tenant, err)
		}
		for _, a := range tenant.Anomalies {
			if a.Host != "acme/web-1" && a.Host != "acme/db-1" {
				t.Fatalf("tenant acme sees %q", a.Host)
			}
		}
		one, err := s.AnomalyRange(ctx, store.AnomalyRangeQuery{Filter: store.HostFilter{Host: "acme/web-1"},
			From: seriesBase.Add(30 * time.Second), To: seriesBase.Add(2 * time.Minute)})
		if err != nil || len(one.Anomalies) != 1 || !one.Anomalies[0].DetectedAt.Equal(seriesBase.Add(time.Minute)) {
			t.Fatalf("host window = %+v, %v", one, err)
		}
		lim, err := s.AnomalyRange(ctx, store.AnomalyRangeQuery{Limit: 2})
		if err != nil || len(lim.Anomalies) != 2 || !lim.Truncated || lim.Anomalies[0].Host != "acme/db-1" {
			t.Fatalf("limit 2 = %+v, %v", lim, err)
		}
	})
}

// TestSeriesQueriesAreInstrumented checks the reads go through the store's
// instrumented path: they appear in the statement statistics.
func TestSeriesQueriesAreInstrumented(t *testing.T) {
	ctx := context.Background()
	s := migrated(t, storetest.SQLiteURL(t))
	seedSeries(t, s, 2, "web-1")
	if _, err := s.Hosts(ctx, store.HostsQuery{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MetricSeries(ctx, store.SeriesQuery{Host: "web-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AnomalyRange(ctx, store.AnomalyRangeQuery{}); err != nil {
		t.Fatal(err)
	}
	queries, _, _ := s.Diagnostics().Statements(store.SortTotalTime, 100)
	seen := map[string]bool{}
	for _, q := range queries {
		for _, frag := range []string{"with recursive walk", "from system_metrics where host = ?", "from anomalies"} {
			if strings.Contains(strings.ToLower(q.Query), frag) && q.Calls > 0 {
				seen[frag] = true
			}
		}
	}
	if len(seen) != 3 {
		t.Fatalf("statements recorded: %v; want the three series reads among %d statements", seen, len(queries))
	}
}

// TestAnomalyRangeThroughQueryCache checks the dashboard's anomaly read is
// served from the query cache and that a newly stored anomaly is never hidden
// by a cached answer.
func TestAnomalyRangeThroughQueryCache(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		rc := newRedisCache(t)
		s, err := store.Open(ctx, store.Options{URL: url, PoolSize: 4, Cache: rc})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.Migrate(ctx, nil); err != nil {
			t.Fatal(err)
		}
		add := func(host string, at time.Time) {
			if _, err := s.InsertAnomalies(ctx, []domain.Anomaly{{Host: host, Metric: "cpu_usage", DetectedAt: at, Score: 0.9, Confidence: 0.7,
				Severity: "critical", ModelVersion: "threshold-v1", Features: map[string]float64{"cpu_usage": 97}, Explanation: "cpu high"}}); err != nil {
				t.Fatal(err)
			}
		}
		add("web-1", seriesBase)
		first, err := s.AnomalyRange(ctx, store.AnomalyRangeQuery{})
		if err != nil || len(first.Anomalies) != 1 {
			t.Fatalf("first read: %+v, %v", first, err)
		}
		again, err := s.AnomalyRange(ctx, store.AnomalyRangeQuery{})
		if err != nil || len(again.Anomalies) != 1 {
			t.Fatalf("second read: %+v, %v", again, err)
		}
		a, b := first.Anomalies[0], again.Anomalies[0]
		if a.ID != b.ID || !a.DetectedAt.Equal(b.DetectedAt) || a.Features["cpu_usage"] != 97 || b.Features["cpu_usage"] != 97 || b.Explanation != "cpu high" {
			t.Fatalf("cached answer differs: %+v vs %+v", a, b)
		}
		if cs := s.Diagnostics().CacheStats(); cs.Hits < 1 {
			t.Fatalf("the second read was not a cache hit: %+v", cs)
		}
		add("web-2", seriesBase.Add(time.Minute))
		after, err := s.AnomalyRange(ctx, store.AnomalyRangeQuery{})
		if err != nil || len(after.Anomalies) != 2 || after.Anomalies[0].Host != "web-2" {
			t.Fatalf("a new anomaly was hidden by the cache: %+v, %v", after, err)
		}
	})
}
