package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/smartcloudops/smartcloudops/internal/health"
	"github.com/smartcloudops/smartcloudops/internal/latency"
	"github.com/smartcloudops/smartcloudops/internal/logs"
	"github.com/smartcloudops/smartcloudops/internal/redistest"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

func TestSummaryFromLiveParts(t *testing.T) {
	f, _ := newCacheFixture(t, redistest.URL())
	lg, err := logs.New(logs.Options{Dir: t.TempDir(), Copy: io.Discard, Fallback: io.Discard}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close(context.Background())
	f.srv.deps.Logs = lg
	a := tenantJWT(t, "team-a")
	f.do(t, http.MethodPut, "/performance/cache/team-a/k", a, "text/plain", "v")
	for range 5 {
		f.do(t, http.MethodGet, "/performance/cache/team-a/k", a, "", "")
	}
	f.do(t, http.MethodGet, "/nope", "", "", "")

	w := f.do(t, http.MethodGet, "/performance/summary", "", "", "")
	if w.Code != http.StatusOK {
		t.Fatalf("summary: %d %s", w.Code, w.Body)
	}
	var s Summary
	if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	if s.HTTP.Requests < 7 || s.HTTP.Latency.P99 <= 0 { // the fixture's clock is frozen, so no rate
		t.Errorf("http summary did not follow the traffic: %+v", s.HTTP)
	}
	if s.Cache == nil || s.Cache.Mode != "redis" || s.Cache.HitRate["l1"]+s.Cache.HitRate["l2"] == 0 {
		t.Errorf("cache summary: %+v", s.Cache)
	}
	if s.Logs == nil || s.Status != health.StatusUp || s.Score != 100 || len(s.ScoreDeducted) != 0 {
		t.Errorf("status %s score %d %+v logs %+v", s.Status, s.Score, s.ScoreDeducted, s.Logs)
	}
	names := map[string]bool{}
	for _, c := range s.Cost {
		names[c.Name] = true
		if c.Method == "" || math.IsNaN(c.Value) {
			t.Errorf("saving %+v lacks its method or value", c)
		}
	}
	for _, want := range []string{"redis_bytes_saved_by_compression", "redis_round_trips_avoided", "log_bytes_not_kept_on_disk"} {
		if !names[want] {
			t.Errorf("cost lacks %s: %+v", want, s.Cost)
		}
	}
}

// TestSummaryDatabasePart checks that the database part, which the store
// now reports itself, says what its registered histogram says.
func TestSummaryDatabasePart(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		reg := prometheus.NewRegistry()
		st, err := store.Open(ctx, store.Options{URL: url, PoolSize: 2, Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if _, err := st.Migrate(ctx, nil); err != nil {
			t.Fatal(err)
		}
		f := newFixture(t, func(d *Deps) { d.Registry, d.Database, d.Series = reg, adminOf(t, st), st })
		if w := f.do(t, http.MethodGet, "/api/v1/hosts", "Bearer "+adminToken, "", ""); w.Code != http.StatusOK {
			t.Fatalf("hosts: %d %s", w.Code, w.Body)
		}
		s := decodeBody[Summary](t, f.do(t, http.MethodGet, "/performance/summary", "", "", ""))
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var hs []*dto.Histogram
		for _, mf := range mfs {
			if mf.GetName() == "smartcloudops_db_query_duration_seconds" {
				for _, m := range mf.GetMetric() {
					hs = append(hs, m.GetHistogram())
				}
			}
		}
		want := latency.FromHistograms(hs...)
		d := s.Database
		if d == nil || d.Driver != string(st.Kind()) || d.Queries == 0 || d.Queries != want.Count || d.MeanSeconds != want.Mean() ||
			d.Latency != (Quantiles{P50: want.P50, P90: want.P90, P99: want.P99}) {
			t.Fatalf("database part %+v; the registered histogram says %+v", d, want)
		}
		// A database that does not answer leaves the part out, as documented.
		st.Close()
		if s := decodeBody[Summary](t, f.do(t, http.MethodGet, "/performance/summary", "", "", "")); s.Database != nil {
			t.Fatalf("database part with the database closed: %+v", s.Database)
		}
	})
}

func TestScoreDeductions(t *testing.T) {
	up := map[string]health.Component{"database": {Status: health.StatusUp}}
	cases := []struct {
		name string
		s    Summary
		want int
	}{
		{"healthy", Summary{Status: health.StatusUp, Components: up}, 100},
		{"down", Summary{Status: health.StatusDown, Components: up}, 0},
		{"degraded cache", Summary{Status: health.StatusDegraded, Components: map[string]health.Component{"cache": {Status: health.StatusDegraded}, "redis": {Status: health.StatusDegraded}}}, 70},
		{"5xx over 5%", Summary{Status: health.StatusUp, HTTP: HTTPSummary{Requests: 100, ServerErrorPct: 0.06}}, 75},
		{"5xx over 1%", Summary{Status: health.StatusUp, HTTP: HTTPSummary{Requests: 100, ServerErrorPct: 0.02}}, 90},
		{"slow", Summary{Status: health.StatusUp, HTTP: HTTPSummary{Latency: Quantiles{P99: 2}}}, 90},
		{"log drops", Summary{Status: health.StatusUp, Logs: &LogSummary{Dropped: 1}}, 90},
		{"cold cache", Summary{Status: health.StatusUp, HTTP: HTTPSummary{Requests: 500}, Cache: &CacheSummary{HitRate: map[string]float64{"l1": 0.2}}}, 95},
	}
	for _, tc := range cases {
		if got, ds := score(tc.s); got != tc.want {
			t.Errorf("%s: score %d %+v; want %d", tc.name, got, ds, tc.want)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "h", Buckets: []float64{0.1, 0.2, 0.4}}, []string{"route"})
	for i := range 100 {
		route := "a"
		if i%2 == 0 {
			route = "b"
		}
		h.WithLabelValues(route).Observe(0.15) // all in (0.1, 0.2]
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(h)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var mf *dto.MetricFamily
	for _, m := range mfs {
		mf = m
	}
	q := histogramQuantiles(mf)
	if math.Abs(q.P50-0.15) > 1e-9 || math.Abs(q.P99-0.199) > 1e-9 {
		t.Fatalf("quantiles %+v; want p50 0.15, p99 0.199 (linear inside the (0.1,0.2] bucket)", q)
	}
	if got := histogramQuantiles(nil); got != (Quantiles{}) {
		t.Fatalf("nil family: %+v", got)
	}
}
