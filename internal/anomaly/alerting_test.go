package anomaly

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/smartcloudops/smartcloudops/internal/domain"
	"github.com/smartcloudops/smartcloudops/internal/metrictest"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

// memorySample is a host's memory, noisy around level: a metric with a
// static limit (90) the level stays under, so the stream alone judges it.
func memorySample(rng *rand.Rand, host string, i int, level float64) Sample {
	return Sample{Host: host, Timestamp: t0.Add(time.Duration(i) * time.Minute),
		Metrics: map[string]float64{MetricMemory: level + rng.NormFloat64()}}
}

// TestSustainedFaultStaysVisible: memory steps from 55% to 80% and stays
// there. The service alerts once, then reports the anomalous state on every
// point (state at or above the threshold, sustained, memory named, the
// gauge at 1) until an operator re-baselines the series; after that the same
// level is calm, the gauge is back to 0, and the change was audited.
func TestSustainedFaultStaysVisible(t *testing.T) {
	var logs bytes.Buffer
	s, reg := newService(t, func(o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	})
	rng := rand.New(rand.NewPCG(21, 22))
	i := 0
	for ; i < 600; i++ {
		if r := learnOne(t, s, memorySample(rng, "db-1", i, 55)); r.IsAnomaly {
			t.Logf("chance alert on normal data at point %d: %s", i, r.Explanation)
		}
	}
	alerts, first := 0, -1
	for ; i < 900; i++ {
		r := learnOne(t, s, memorySample(rng, "db-1", i, 80))
		if r.IsAnomaly {
			alerts++
			if first < 0 {
				first = i
			}
		}
		if first < 0 {
			if i > 605 {
				t.Fatalf("no alert 5 points into the fault: %+v", r)
			}
			continue
		}
		if !r.Sustained || r.State < 0.5 || !slices.Equal(r.SustainedMetrics, []string{MetricMemory}) ||
			r.Severity == domain.SeverityLow || r.Explanation == "no metric is unusual" {
			t.Fatalf("point %d, %d into the fault, not visible: %+v", i, i-first, r)
		}
	}
	if alerts != 1 {
		t.Fatalf("%d alerts for one sustained fault; want 1", alerts)
	}
	if got := metrictest.Value(t, reg, "smartcloudops_anomaly_series_sustained"); got != 1 {
		t.Fatalf("sustained series gauge = %v during the fault", got)
	}

	if _, err := s.Rebaseline(context.Background(), "db-1", "gc_ms", "ops"); !errors.Is(err, ErrSeriesNotFound) {
		t.Fatalf("rebaseline of a metric never seen: %v", err)
	}
	if _, err := s.Rebaseline(context.Background(), "db-9", "", "ops"); !errors.Is(err, ErrSeriesNotFound) {
		t.Fatalf("rebaseline of a host never seen: %v", err)
	}
	if _, err := s.Rebaseline(context.Background(), "db 1", "", "ops"); !errors.Is(err, ErrInvalidSample) {
		t.Fatalf("rebaseline of a malformed host: %v", err)
	}
	rep, err := s.Rebaseline(context.Background(), "db-1", "memory", "ops")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Host != "db-1" || !slices.Equal(rep.Metrics, []string{MetricMemory}) || !slices.Equal(rep.Held, []string{MetricMemory}) ||
		len(rep.OverLimit) != 0 || rep.By != "ops" || rep.At.IsZero() {
		t.Fatalf("report = %+v", rep)
	}
	for end := i + 300; i < end; i++ {
		r := learnOne(t, s, memorySample(rng, "db-1", i, 80))
		if r.IsAnomaly || r.Sustained {
			t.Fatalf("point %d after the re-baseline still anomalous: %+v", i, r)
		}
	}
	if got := metrictest.Value(t, reg, "smartcloudops_anomaly_series_sustained"); got != 0 {
		t.Fatalf("sustained series gauge = %v after the re-baseline", got)
	}
	if got := testutil.ToFloat64(s.alerts.rebaselined); got != 1 {
		t.Fatalf("rebaselined counter = %v", got)
	}
	line := ""
	for l := range strings.Lines(logs.String()) {
		if strings.Contains(l, `"audit":"rebaseline"`) {
			line = l
		}
	}
	for _, want := range []string{`"host":"db-1"`, `"metrics":["memory_usage"]`, `"held":["memory_usage"]`, `"by":"ops"`, `"at":"`} {
		if !strings.Contains(line, want) {
			t.Fatalf("audit line %q lacks %s (log: %s)", line, want, logs.String())
		}
	}
}

// TestLimitAndStreamPageOnce: a metric crossing its limit alerts through the
// threshold at once and through the stream a point or two later; the host
// pages once. Re-baselining leaves the limit a floor: the value stays
// anomalous, and the report says so.
func TestLimitAndStreamPageOnce(t *testing.T) {
	s, _ := newService(t, nil)
	rng := rand.New(rand.NewPCG(5, 6))
	i := 0
	for ; i < 400; i++ {
		learnOne(t, s, Sample{Host: "web-1", Timestamp: t0.Add(time.Duration(i) * time.Minute), Metrics: map[string]float64{MetricCPU: 40 + 2*rng.NormFloat64()}})
	}
	alerts := 0
	for end := i + 100; i < end; i++ {
		r := learnOne(t, s, Sample{Host: "web-1", Timestamp: t0.Add(time.Duration(i) * time.Minute), Metrics: map[string]float64{MetricCPU: 99}})
		if r.IsAnomaly {
			alerts++
		}
		if !r.Sustained || r.State < 0.5 {
			t.Fatalf("cpu 99 at point %d not sustained: %+v", i, r)
		}
	}
	if alerts != 1 {
		t.Fatalf("%d alerts for one incident", alerts)
	}
	rep, err := s.Rebaseline(context.Background(), "web-1", "", "ops")
	if err != nil || !slices.Equal(rep.OverLimit, []string{MetricCPU}) {
		t.Fatalf("rebaseline: %+v, %v", rep, err)
	}
	r := learnOne(t, s, Sample{Host: "web-1", Timestamp: t0.Add(time.Duration(i) * time.Minute), Metrics: map[string]float64{MetricCPU: 99}})
	if r.IsAnomaly || !r.Sustained || r.Components["threshold"] < 0.5 {
		t.Fatalf("cpu 99 after the re-baseline: %+v", r)
	}
}

// TestDetectReadsIncidentsWithoutMovingThem: detect sees a host's open
// incident (no second alert for a point that continues it) and follows its
// own samples in order, but opens or closes nothing for ingest.
func TestDetectReadsIncidentsWithoutMovingThem(t *testing.T) {
	s, _ := newService(t, nil)
	at := func(i int, cpu float64) Sample {
		return Sample{Host: "web-1", Timestamp: t0.Add(time.Duration(i) * time.Minute), Metrics: map[string]float64{MetricCPU: cpu}}
	}
	if r := learnOne(t, s, at(0, 97)); !r.IsAnomaly {
		t.Fatalf("first crossing: %+v", r)
	}
	res, err := s.Detect(context.Background(), []Sample{at(1, 98), at(2, 50), at(3, 97)}, DetectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].IsAnomaly || !res[0].Sustained || res[1].Sustained || !res[2].IsAnomaly {
		t.Fatalf("detect against an open incident: %+v", res)
	}
	// Ingest did not see the detect's return below the limit.
	if r := learnOne(t, s, at(1, 98)); r.IsAnomaly || !r.Sustained {
		t.Fatalf("ingest after detect: %+v", r)
	}
}

// TestOneAnomalyRowPerIncident: ingesting sustained faults stores one
// anomaly row per incident, its alert, on both databases: a stream-judged
// level shift and a value pinned past its limit from its first point.
func TestOneAnomalyRowPerIncident(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		st := openStore(t, url)
		s, _ := newService(t, func(o *Options) { o.Store = st })
		rng := rand.New(rand.NewPCG(7, 8))
		var batch []Sample
		flush := func() {
			if _, err := s.Ingest(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
		for i := range 800 {
			level := 55.0
			if i >= 600 {
				level = 80
			}
			batch = append(batch, memorySample(rng, "db-1", i, level),
				Sample{Host: "web-1", Timestamp: t0.Add(time.Duration(i) * time.Minute), Metrics: map[string]float64{MetricCPU: 99}})
			if len(batch) >= 100 {
				flush()
			}
		}
		flush()
		list, err := st.AnomalyRange(ctx, store.AnomalyRangeQuery{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		per := map[string][]time.Time{}
		for _, a := range list.Anomalies {
			if a.Host == "db-1" && a.DetectedAt.Before(t0.Add(600*time.Minute)) {
				continue // a chance alert on the normal part is not this test's business
			}
			per[a.Host] = append(per[a.Host], a.DetectedAt)
		}
		if len(per["db-1"]) != 1 || len(per["web-1"]) != 1 || !per["web-1"][0].Equal(t0) {
			t.Fatalf("anomaly rows per host = %v; want one per incident", per)
		}
	})
}

// BenchmarkSustainedGauge is one scrape of the sustained-series gauge at
// 100000 series (the default bound; the set is given room so that uneven
// shards evict none).
func BenchmarkSustainedGauge(b *testing.B) {
	s, _ := newService(b, func(o *Options) { o.MaxSeries, o.MaxSeriesBytes = 200000, 1<<30 })
	feats := map[string]float64{}
	for i := range 100000 {
		s.series.observe(Sample{Host: fmt.Sprintf("h-%d", i/4), Timestamp: t0, Metrics: map[string]float64{WellKnownMetrics()[i%4]: 50}}, feats)
	}
	if s.series.len() != 100000 {
		b.Fatalf("%d series", s.series.len())
	}
	for b.Loop() {
		s.sustainedSeries()
	}
}
