package anomaly

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/smartcloudops/smartcloudops/internal/anomaly/iforest"
	"github.com/smartcloudops/smartcloudops/internal/domain"
)

// verdict is what a result says about its sample, without timings.
func verdict(r Result) Result {
	r.ProcessingTimeMS = 0
	return r
}

// TestDetectIsReadOnly replays the attacks on the series state that a detect
// request could make when it taught the series: poisoning with extreme
// values, blinding with a timestamp from the future, and eviction by a flood
// of invented metric names. The attacked service must reach exactly the
// verdicts of a control service that never saw a detect.
func TestDetectIsReadOnly(t *testing.T) {
	ctx := context.Background()
	opts := func(o *Options) { o.Stream.WarmUp = 50; o.MaxSeries = 4 * seriesShards }
	control, _ := newService(t, opts)
	attacked, _ := newService(t, opts)
	rng := rand.New(rand.NewPCG(5, 6))
	attacks := []func(at time.Time) []Sample{
		func(at time.Time) []Sample { // poisoning
			return []Sample{
				{Host: "web-1", Timestamp: at, Metrics: map[string]float64{MetricCPU: MaxMetricMagnitude}},
				{Host: "web-1", Timestamp: at.Add(time.Second), Metrics: map[string]float64{MetricCPU: -MaxMetricMagnitude}},
			}
		},
		func(at time.Time) []Sample { // blinding
			return []Sample{{Host: "web-1", Timestamp: at.Add(time.Hour), Metrics: map[string]float64{MetricCPU: 30, MetricMemory: 50}}}
		},
		func(at time.Time) []Sample { // eviction
			var out []Sample
			for i := range 20 {
				m := map[string]float64{}
				for j := range MaxMetricsPerSample {
					m[fmt.Sprintf("junk_%d_%d", i, j)] = float64(j)
				}
				out = append(out, Sample{Host: fmt.Sprintf("web-%d", i), Timestamp: at, Metrics: m})
			}
			return out
		},
	}
	for i := range 300 {
		at := t0.Add(time.Duration(i) * time.Minute)
		smp := normalHost(rng, "web-1", at)
		if i == 250 {
			smp.Metrics[MetricCPU] = 75 // the jump the blinding attack hid
		}
		if i%10 == 5 {
			for _, attack := range attacks {
				batch := attack(at)
				for k := range batch {
					n, err := Normalize(batch[k])
					if err != nil {
						t.Fatalf("attack sample: %v", err)
					}
					batch[k] = n
				}
				if _, err := attacked.Detect(ctx, batch, DetectOptions{}); err != nil {
					t.Fatalf("detect: %v", err)
				}
			}
		}
		want, got := learnOne(t, control, smp), learnOne(t, attacked, smp)
		if !reflect.DeepEqual(verdict(want), verdict(got)) {
			t.Fatalf("point %d: attacked service answered\n%+v\ncontrol answered\n%+v", i, got, want)
		}
		if i == 250 && !got.IsAnomaly {
			t.Fatalf("cpu jump to 75 not flagged: %+v", got)
		}
	}
	if a, c := attacked.series.len(), control.series.len(); a != c {
		t.Fatalf("attacked service holds %d series; control %d", a, c)
	}
	if n := attacked.series.evicted.Load(); n != 0 {
		t.Fatalf("detect evicted %d series", n)
	}
}

// TestDetectReadsItsOwnBatchInOrder: within one request, a sample is read
// against the ones before it (as ingest reads them), and the same request
// sent twice gets the same answer.
func TestDetectReadsItsOwnBatchInOrder(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t, func(o *Options) { o.Stream.WarmUp = 20 })
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range 40 {
		learnOne(t, s, normalHost(rng, "db-1", t0.Add(time.Duration(i)*time.Minute)))
	}
	batch := []Sample{
		{Host: "db-1", Timestamp: t0.Add(40 * time.Minute), Metrics: map[string]float64{MetricCPU: 10}},
		{Host: "db-1", Timestamp: t0.Add(41 * time.Minute), Metrics: map[string]float64{MetricCPU: 12}},
		{Host: "new-1", Timestamp: t0, Metrics: map[string]float64{MetricCPU: 5}},
		{Host: "new-1", Timestamp: t0.Add(time.Minute), Metrics: map[string]float64{MetricCPU: 8}},
	}
	first, err := s.Detect(ctx, batch, DetectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d := first[1].Features[MetricCPU+"_delta"]; d != 2 {
		t.Fatalf("second sample's delta = %v; want 2 (read against the first)", d)
	}
	if d := first[3].Features[MetricCPU+"_delta"]; d != 3 {
		t.Fatalf("unknown host's second sample delta = %v; want 3", d)
	}
	if first[0].Late || first[1].Late {
		t.Fatalf("newer samples marked late: %+v", first[:2])
	}
	again, err := s.Detect(ctx, batch, DetectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range first {
		if !reflect.DeepEqual(verdict(first[i]), verdict(again[i])) {
			t.Fatalf("sample %d answered differently the second time:\n%+v\n%+v", i, first[i], again[i])
		}
	}
	if n := s.series.len(); n != 4 { // db-1's four metrics; new-1 was never added
		t.Fatalf("%d series held; want 4", n)
	}
}

// finiteResult reports the first non-finite number in r, and whether r
// encodes as JSON.
func finiteResult(r Result) error {
	check := func(name string, v float64) error {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%s = %v", name, v)
		}
		return nil
	}
	errs := []error{check("anomaly_score", r.AnomalyScore), check("confidence", r.Confidence)}
	for k, v := range r.Components {
		errs = append(errs, check("components."+k, v))
	}
	for k, v := range r.Features {
		errs = append(errs, check("features."+k, v))
	}
	for _, c := range r.Contributors {
		errs = append(errs, check("contributor "+c.Metric+" value", c.Value), check("contributor "+c.Metric+" score", c.Score))
		if c.Expected != nil {
			errs = append(errs, check("contributor "+c.Metric+" expected", *c.Expected))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if r.AnomalyScore < 0 || r.AnomalyScore > 1 {
		return fmt.Errorf("anomaly_score %v outside [0,1]", r.AnomalyScore)
	}
	if _, err := json.Marshal(r); err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	return nil
}

// extremeValue draws a value that is finite and accepted, biased to the
// edges where arithmetic overflows: the bound itself, its negation, tiny
// values, zero, and ordinary metrics.
func extremeValue(rng *rand.Rand) float64 {
	switch rng.IntN(8) {
	case 0:
		return MaxMetricMagnitude
	case 1:
		return -MaxMetricMagnitude
	case 2:
		return (rng.Float64()*2 - 1) * MaxMetricMagnitude
	case 3:
		return math.SmallestNonzeroFloat64 * float64(rng.IntN(3)-1)
	case 4:
		return 0
	case 5:
		return math.Ldexp(rng.Float64(), rng.IntN(200)-100)
	}
	return 50 + 10*rng.NormFloat64()
}

// TestScoringStaysFinite is the property test of the issue: any accepted
// (finite, within MaxMetricMagnitude) input, after ordinary history or
// instead of it, through ingest's learning path and detect's read-only one,
// with and without a forest, yields finite scores and valid JSON.
func TestScoringStaysFinite(t *testing.T) {
	ctx := context.Background()
	for _, withForest := range []bool{false, true} {
		t.Run(fmt.Sprintf("forest=%v", withForest), func(t *testing.T) {
			s, _ := newService(t, func(o *Options) { o.Stream.WarmUp = 30 })
			if withForest {
				s.model.Store(fitModel(t, "iforest-finite", 3))
			}
			rng := rand.New(rand.NewPCG(11, 12))
			for i := range 600 {
				at := t0.Add(time.Duration(i) * time.Minute)
				smp := normalHost(rng, fmt.Sprintf("h-%d", i%3), at)
				if i > 100 && rng.IntN(3) == 0 {
					for _, m := range WellKnownMetrics()[:4] {
						if rng.IntN(2) == 0 {
							smp.Metrics[m] = extremeValue(rng)
						}
					}
					smp.Metrics["custom"] = extremeValue(rng)
				}
				n, err := Normalize(smp)
				if err != nil {
					t.Fatalf("point %d: %v", i, err)
				}
				learned, err := s.learn(ctx, []Sample{n}, 0)
				if err != nil {
					t.Fatalf("point %d: learn: %v", i, err)
				}
				read, err := s.Detect(ctx, []Sample{n}, DetectOptions{NoCache: true})
				if err != nil {
					t.Fatalf("point %d: detect: %v", i, err)
				}
				for _, r := range append(learned, read...) {
					if err := finiteResult(r); err != nil {
						t.Fatalf("point %d (%v): %v", i, n.Metrics, err)
					}
				}
			}
		})
	}
}

func TestNormalizeRefusesWhatWouldBreakScoring(t *testing.T) {
	for _, c := range []struct {
		name  string
		smp   Sample
		field string
	}{
		{"invalid UTF-8 host", Sample{Host: "web-\xff", Timestamp: t0, Metrics: map[string]float64{MetricCPU: 1}}, "host"},
		{"replacement character in host", Sample{Host: "web-\uFFFD", Timestamp: t0, Metrics: map[string]float64{MetricCPU: 1}}, "host"},
		{"largest float", Sample{Host: "web-1", Timestamp: t0, Metrics: map[string]float64{MetricCPU: math.MaxFloat64}}, "metrics.cpu_usage"},
		{"most negative float", Sample{Host: "web-1", Timestamp: t0, Metrics: map[string]float64{"cpu": -1.7e308}}, "metrics.cpu"},
		{"just past the bound", Sample{Host: "web-1", Timestamp: t0, Metrics: map[string]float64{"q": 1.0000001e30}}, "metrics.q"},
		{"NaN", Sample{Host: "web-1", Timestamp: t0, Metrics: map[string]float64{"q": math.NaN()}}, "metrics.q"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Normalize(c.smp)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != c.field {
				t.Fatalf("Normalize = %v; want a FieldError on %s", err, c.field)
			}
		})
	}
	if _, err := Normalize(Sample{Host: "wéb-1", Timestamp: t0, Metrics: map[string]float64{"q": -MaxMetricMagnitude}}); err != nil {
		t.Fatalf("valid UTF-8 host and a value at the bound refused: %v", err)
	}
}

// TestForestTrainsOnExtremeHistory: a forest trained on rows holding values
// of opposite sign at the float64 limit (stored before the bound existed)
// still scores finitely, and FromStore drops such values.
func TestForestTrainsOnExtremeHistory(t *testing.T) {
	rows := make([]float64, 0, 512*2)
	for i := range 512 {
		v := float64(i)
		if i%7 == 0 {
			v = math.MaxFloat64 * float64(1-2*(i%2))
		}
		rows = append(rows, v, float64(i%13))
	}
	f, err := iforest.FitMatrix(rows, 2, iforest.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float64, 512)
	if err := f.ScoreMatrix(rows, out); err != nil {
		t.Fatal(err)
	}
	for i, v := range out {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("row %d scored %v", i, v)
		}
	}
	huge := math.MaxFloat64
	s := FromStore(domain.MetricSample{Host: "h", Timestamp: t0, CPUUsage: &huge, Extra: map[string]float64{"q": -huge, "ok": 1}})
	if _, ok := s.Metrics[MetricCPU]; ok || s.Metrics["ok"] != 1 || len(s.Metrics) != 1 {
		t.Fatalf("FromStore kept out-of-range values: %v", s.Metrics)
	}
}

// TestSeriesMemoryEstimate holds the per-series byte estimate that bounds
// the series table to the heap it really takes, so the documented figure
// and the bound stay true when the detector grows.
func TestSeriesMemoryEstimate(t *testing.T) {
	s, _ := newService(t, func(o *Options) { o.MaxSeries = 1 << 20; o.MaxSeriesBytes = 1 << 30 })
	const hosts = 2000
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	for i := range hosts {
		for k := range 3 {
			smp := Sample{Host: fmt.Sprintf("host-%06d.example.internal", i), Timestamp: t0.Add(time.Duration(k) * time.Minute),
				Metrics: map[string]float64{MetricCPU: 1, MetricMemory: 2, MetricDisk: 3, MetricNetworkIn: 4}}
			if _, err := s.learn(context.Background(), []Sample{smp}, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	n := s.series.len()
	measured := float64(m1.HeapAlloc-m0.HeapAlloc) / float64(n)
	estimated := float64(s.series.heapBytes()) / float64(n)
	t.Logf("%d series: %.0f heap bytes each measured, %.0f estimated", n, measured, estimated)
	// The race detector pads allocations, so the band is wide; without it the
	// two agree within a few percent.
	if estimated < 0.6*measured || estimated > 1.5*measured {
		t.Fatalf("estimate %.0f B per series is far from the measured %.0f B", estimated, measured)
	}
}

func TestSeriesBytesBound(t *testing.T) {
	s, reg := newService(t, func(o *Options) { o.MaxSeriesBytes = 1 << 20 })
	for i := range 2000 {
		learnOne(t, s, Sample{Host: fmt.Sprintf("h-%d", i), Timestamp: t0, Metrics: map[string]float64{MetricCPU: 1}})
	}
	if b := s.series.heapBytes(); b > 1<<20 {
		t.Fatalf("series hold %d bytes; bound is %d", b, 1<<20)
	}
	if n := s.series.len(); n < 300 || n == 2000 {
		t.Fatalf("%d series kept under a 1 MiB bound", n)
	}
	if st := s.Stats(); st.SeriesBytes != s.series.heapBytes() || st.Series != s.series.len() {
		t.Fatalf("stats = %d series, %d bytes", st.Series, st.SeriesBytes)
	}
	if n, err := testutil.GatherAndCount(reg, "smartcloudops_anomaly_series_bytes"); err != nil || n != 1 {
		t.Fatalf("series_bytes gauge: %d, %v", n, err)
	}
	if got := testutil.ToFloat64(s.metrics.evicted); got < 1 {
		t.Fatalf("evicted = %v", got)
	}
}

// TestThresholdsStayAFloor: once the stream scores a series, a value past
// its static limit is still anomalous state, point after point, even after
// the stream has grown used to it, and it alerts once per crossing of the
// limit; within the limit the thresholds are silent.
func TestThresholdsStayAFloor(t *testing.T) {
	s, _ := newService(t, func(o *Options) { o.Stream.WarmUp = 30 })
	rng := rand.New(rand.NewPCG(13, 14))
	for i := range 200 {
		r := learnOne(t, s, normalHost(rng, "web-1", t0.Add(time.Duration(i)*time.Minute)))
		if i >= 30 && strings.Contains(r.ModelVersion, ThresholdVersion) {
			t.Fatalf("point %d within every limit spoke through the thresholds: %+v", i, r)
		}
	}
	fallbacks := s.Stats().FallbackCount
	alerts := 0
	// Two crossings of the cpu limit, 60 and 20 points long, 40 points
	// apart, on cpu alone so that no other series' alert is counted.
	for i := 200; i < 320; i++ {
		smp := normalHost(rng, "web-1", t0.Add(time.Duration(i)*time.Minute))
		smp.Metrics = map[string]float64{MetricCPU: smp.Metrics[MetricCPU]}
		pinned := i < 260 || i >= 300
		if pinned {
			smp.Metrics[MetricCPU] = 99
		}
		r := learnOne(t, s, smp)
		if !pinned {
			// The limit lets go at once; the stream's hold a few points
			// later, when its short average (Stream.Short points) is back near
			// the old level.
			if r.Components["threshold"] != 0 || (i >= 285 && slices.Contains(r.SustainedMetrics, MetricCPU)) {
				t.Fatalf("cpu back within its limit at point %d, still anomalous: %+v", i, r)
			}
			continue
		}
		if r.IsAnomaly {
			alerts++
			if i != 200 && i != 300 {
				t.Fatalf("cpu 99 alerted again at point %d, inside its incident: %+v", i, r)
			}
		} else if i == 200 || i == 300 {
			t.Fatalf("cpu crossing its limit at point %d raised no alert: %+v", i, r)
		}
		if !r.Sustained || r.State < 0.5 || !slices.Contains(r.SustainedMetrics, MetricCPU) ||
			r.ModelVersion != StreamVersion+"+"+ThresholdVersion || r.Components["threshold"] < 0.5 {
			t.Fatalf("cpu 99 at point %d not in an anomalous state: %+v", i, r)
		}
		found := false
		for _, c := range r.Contributors {
			found = found || (c.Source == "threshold" && c.Metric == MetricCPU && strings.Contains(c.Reason, "above its limit"))
		}
		if !found || r.Explanation == "no metric is unusual" {
			t.Fatalf("cpu 99 at point %d not explained by its limit: %+v", i, r)
		}
	}
	if alerts != 2 {
		t.Fatalf("%d alerts for two crossings", alerts)
	}
	if got := s.Stats().FallbackCount; got != fallbacks {
		t.Fatalf("the floor counted as fallback: %d → %d", fallbacks, got)
	}
}
