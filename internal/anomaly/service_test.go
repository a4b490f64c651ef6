package anomaly

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/smartcloudops/smartcloudops/internal/anomaly/iforest"
	"github.com/smartcloudops/smartcloudops/internal/anomaly/stream"
	"github.com/smartcloudops/smartcloudops/internal/domain"
	"github.com/smartcloudops/smartcloudops/internal/health"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

var t0 = time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)

// *store.Store is the Store the service runs with in production.
var _ Store = (*store.Store)(nil)

func newService(t testing.TB, mod func(o *Options)) (*Service, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	o := Options{Registerer: reg}
	if mod != nil {
		mod(&o)
	}
	s, err := New(context.Background(), o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, reg
}

func detectOne(t testing.TB, s *Service, smp Sample, o DetectOptions) Result {
	t.Helper()
	n, err := Normalize(smp)
	if err != nil {
		t.Fatalf("Normalize: %v", err)
	}
	res, err := s.Detect(context.Background(), []Sample{n}, o)
	if err != nil {
		t.Fatalf("Detect: %v", err)
	}
	return res[0]
}

// learnOne scores one sample the way Ingest does, teaching its series,
// without a store.
func learnOne(t testing.TB, s *Service, smp Sample) Result {
	t.Helper()
	n, err := Normalize(smp)
	if err != nil {
		t.Fatalf("Normalize: %v", err)
	}
	res, err := s.learn(context.Background(), []Sample{n}, 0)
	if err != nil {
		t.Fatalf("learn: %v", err)
	}
	return res[0]
}

// normalHost is a host's ordinary load: correlated cpu, memory and request
// rate around a level, with noise.
func normalHost(rng *rand.Rand, host string, at time.Time) Sample {
	load := 0.5 + 0.1*rng.NormFloat64()
	return Sample{Host: host, Timestamp: at, Metrics: map[string]float64{
		MetricCPU:         40 + 20*load + 2*rng.NormFloat64(),
		MetricMemory:      55 + 5*load + rng.NormFloat64(),
		MetricDisk:        60 + 0.1*rng.NormFloat64(),
		MetricRequestRate: 200 + 150*load + 5*rng.NormFloat64(),
	}}
}

func TestThresholdScores(t *testing.T) {
	th := DefaultThresholds()
	for _, c := range []struct {
		metric string
		v      float64
		want   float64
		over   bool
	}{
		{MetricCPU, 95, 0.75, true}, {MetricCPU, 100, 1, true}, {MetricMemory, 91, 0.55, true}, {MetricDisk, 97.5, 0.75, true},
		{MetricErrorRate, 10, 1, true}, {MetricErrorRate, 6, 0.6, true}, {MetricCPU, 90, 0.5 * 0.9999, false}, {MetricCPU, 45, 0.125, false},
	} {
		got, over, ok := th.score(c.metric, c.v)
		if !ok || over != c.over || math.Abs(got-c.want) > 1e-3 {
			t.Errorf("score(%s, %v) = %v, %v, %v; want %v, %v", c.metric, c.v, got, over, ok, c.want, c.over)
		}
	}
	if _, _, ok := th.score("queue_len", 5); ok {
		t.Error("a metric without a threshold was judged")
	}
}

func TestFallbackWhileWarming(t *testing.T) {
	s, reg := newService(t, func(o *Options) { o.Stream.WarmUp = 30 })
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 29 {
		smp := normalHost(rng, "web-1", t0.Add(time.Duration(i)*time.Minute))
		if i == 10 {
			smp.Metrics[MetricCPU] = 95 // above the 90 limit while warming
		}
		r := learnOne(t, s, smp)
		if r.ModelVersion != ThresholdVersion {
			t.Fatalf("point %d while warming: model_version %q; want %q", i, r.ModelVersion, ThresholdVersion)
		}
		if want := i == 10; r.IsAnomaly != want {
			t.Fatalf("point %d: is_anomaly %v; want %v (%+v)", i, r.IsAnomaly, want, r)
		}
		if i == 10 {
			if r.Severity != domain.SeverityHigh || math.Abs(r.AnomalyScore-0.75) > 1e-9 || len(r.Contributors) == 0 ||
				r.Contributors[0].Metric != MetricCPU || r.Contributors[0].Source != "threshold" || !strings.Contains(r.Explanation, "cpu_usage") {
				t.Fatalf("cpu 95 while warming: %+v", r)
			}
			if r.Confidence <= 0.25 || r.Confidence > 0.75 {
				t.Fatalf("threshold-only confidence %v outside (0.25, 0.75]", r.Confidence)
			}
		}
		if _, ok := r.Features[MetricCPU+"_mean"]; !ok {
			t.Fatalf("context features missing: %v", r.Features)
		}
	}
	fallbacks := 29
	if r := learnOne(t, s, normalHost(rng, "web-1", t0.Add(29*time.Minute))); r.ModelVersion == ThresholdVersion {
		fallbacks++ // the last warm-up point; whether it still counts is the stream's business
	}
	r := learnOne(t, s, normalHost(rng, "web-1", t0.Add(30*time.Minute)))
	if r.ModelVersion != StreamVersion {
		t.Fatalf("after the warm-up: model_version %q; want %q", r.ModelVersion, StreamVersion)
	}
	// A metric with no threshold while warming: no verdict, said so.
	r = detectOne(t, s, Sample{Host: "web-2", Timestamp: t0, Metrics: map[string]float64{"queue_len": 1e6}}, DetectOptions{})
	if r.ModelVersion != ThresholdVersion || r.IsAnomaly || !strings.Contains(r.Explanation, "warming") {
		t.Fatalf("unjudgeable sample: %+v", r)
	}
	// A late point (not newer than its series' newest) teaches nothing.
	r = learnOne(t, s, normalHost(rng, "web-1", t0))
	if !r.Late || r.ModelVersion != ThresholdVersion {
		t.Fatalf("late point: %+v", r)
	}
	st := s.Stats()
	fallbacks += 2
	if st.FallbackCount != uint64(fallbacks) || st.SamplesScored != 33 || st.AnomaliesBySeverity["high"] != 1 || st.ActiveModel != nil {
		t.Fatalf("stats = %+v; want %d fallbacks", st, fallbacks)
	}
	if got := testutil.ToFloat64(s.metrics.fallback); got != float64(fallbacks) {
		t.Fatalf("fallback metric = %v", got)
	}
	if n, err := testutil.GatherAndCount(reg, "smartcloudops_anomaly_anomalies_total"); err != nil || n != 4 {
		t.Fatalf("anomalies_total series = %d, %v; want one per severity", n, err)
	}
	if c := s.Check(context.Background()); c.Status != health.StatusUp || c.Details["mode"] != "stream+threshold" {
		t.Fatalf("health = %+v", c)
	}
}

func TestSeriesEviction(t *testing.T) {
	s, _ := newService(t, func(o *Options) { o.MaxSeries = seriesShards })
	for i := range 10 * seriesShards {
		learnOne(t, s, Sample{Host: fmt.Sprintf("h-%d", i), Timestamp: t0, Metrics: map[string]float64{MetricCPU: 1}})
	}
	if n := s.series.len(); n > seriesShards {
		t.Fatalf("%d series kept; bound is %d", n, seriesShards)
	}
	if got := testutil.ToFloat64(s.metrics.evicted); got < float64(9*seriesShards) {
		t.Fatalf("evicted = %v", got)
	}
}

// fitModel trains a small forest on synthetic normal hosts, without a store.
func fitModel(t testing.TB, version string, seed uint64) *activeModel {
	t.Helper()
	return fitModelWith(t, version, iforest.Options{Seed: seed})
}

// fitModelWith is fitModel with the forest's options.
func fitModelWith(t testing.TB, version string, o iforest.Options) *activeModel {
	t.Helper()
	seed := o.Seed
	rng := rand.New(rand.NewPCG(seed, 7))
	var hist []domain.MetricSample
	for i := range 2000 {
		hist = append(hist, ToStore(normalHost(rng, fmt.Sprintf("h%d", i%5), t0.Add(time.Duration(i)*time.Minute))))
	}
	ts := buildTrainingSet(hist, 0)
	f, err := iforest.FitMatrix(ts.train, len(ts.columns), o)
	if err != nil {
		t.Fatal(err)
	}
	scores := make([]float64, len(ts.train)/len(ts.columns))
	if err := f.ScoreMatrix(ts.train, scores); err != nil {
		t.Fatal(err)
	}
	return &activeModel{info: ModelInfo{Version: version, Kind: ModelKind, ModelType: TypeIForest, Active: true}, columns: ts.columns,
		fleet: &hostModel{typ: TypeIForest, forest: f, impute: ts.impute, calib: calibrate(f, ts.train, len(ts.columns), scores, 0.005), scope: version}}
}

func TestForestScoresAndExplains(t *testing.T) {
	s, _ := newService(t, nil)
	s.model.Store(fitModel(t, "iforest-test", 1))
	rng := rand.New(rand.NewPCG(3, 4))
	normal := detectOne(t, s, normalHost(rng, "web-1", t0), DetectOptions{})
	if normal.Components["iforest"] >= 0.5 || !strings.Contains(normal.ModelVersion, "iforest-test") {
		t.Fatalf("normal host: %+v", normal)
	}
	odd := normalHost(rng, "web-2", t0)
	// A traffic surge that drives cpu and memory up, each still under its
	// static limit: only the forest can see it.
	odd.Metrics[MetricRequestRate] = 1000
	odd.Metrics[MetricCPU] = 85
	odd.Metrics[MetricMemory] = 80
	r := detectOne(t, s, odd, DetectOptions{})
	if r.Components["iforest"] < 0.5 || !r.IsAnomaly {
		t.Fatalf("odd host not flagged: %+v", r)
	}
	found := false
	for _, c := range r.Contributors {
		found = found || (c.Source == "iforest" && c.Metric == MetricRequestRate)
	}
	if !found {
		t.Fatalf("contributors do not name the odd metrics: %+v", r.Contributors)
	}
	// The version names every component that spoke, sorted.
	if r.ModelVersion != "iforest-test+"+ThresholdVersion {
		t.Fatalf("model_version = %q", r.ModelVersion)
	}
}

func testPredictionCache(t *testing.T, c PredictionCache) {
	s, _ := newService(t, func(o *Options) { o.Cache = c })
	s.model.Store(fitModel(t, fmt.Sprintf("iforest-cache-%d", time.Now().UnixNano()), 1))
	metrics := map[string]float64{MetricCPU: 50, MetricMemory: 57, MetricDisk: 60, MetricRequestRate: 270}
	first := detectOne(t, s, Sample{Host: "a", Timestamp: t0, Metrics: metrics}, DetectOptions{})
	if first.Cached {
		t.Fatal("first detection came from the cache")
	}
	// Another host with the same vector: the forest's prediction is reused.
	second := detectOne(t, s, Sample{Host: "b", Timestamp: t0, Metrics: metrics}, DetectOptions{})
	if !second.Cached || second.Components["iforest"] != first.Components["iforest"] {
		t.Fatalf("second detection: cached %v, forest %v vs %v", second.Cached, second.Components["iforest"], first.Components["iforest"])
	}
	bypass := detectOne(t, s, Sample{Host: "c", Timestamp: t0, Metrics: metrics}, DetectOptions{NoCache: true})
	if bypass.Cached || bypass.Components["iforest"] != first.Components["iforest"] {
		t.Fatalf("use_cache=false: %+v", bypass)
	}
	other := map[string]float64{MetricCPU: 51, MetricMemory: 57, MetricDisk: 60, MetricRequestRate: 270}
	if r := detectOne(t, s, Sample{Host: "d", Timestamp: t0, Metrics: other}, DetectOptions{}); r.Cached {
		t.Fatal("a different vector hit the cache")
	}
	st := s.Stats().Cache
	if st.Hits != 1 || st.Misses != 2 || st.Errors != 0 || math.Abs(st.HitRate-1.0/3) > 1e-9 {
		t.Fatalf("cache stats = %+v", st)
	}
	if got := testutil.ToFloat64(s.metrics.cache.WithLabelValues("hit")); got != 1 {
		t.Fatalf("cache hit metric = %v", got)
	}
}

func TestPredictionCacheMemory(t *testing.T) {
	clock := newFakeClock()
	c := newMemoryCache(10, clock.Now)
	testPredictionCache(t, c)
	ctx := context.Background()
	if err := c.Set(ctx, "k", []byte("v"), 300*time.Second); err != nil {
		t.Fatal(err)
	}
	clock.Advance(299 * time.Second)
	if _, ok, _ := c.Get(ctx, "k"); !ok {
		t.Fatal("entry expired before its TTL")
	}
	clock.Advance(time.Second)
	if _, ok, _ := c.Get(ctx, "k"); ok {
		t.Fatal("entry outlived its TTL")
	}
	for i := range 20 {
		_ = c.Set(ctx, fmt.Sprint(i), []byte{1}, time.Hour)
	}
	if _, ok, _ := c.Get(ctx, "0"); ok {
		t.Fatal("cache grew past its bound")
	}
}

// failingCache fails every call: detection must go on as if it missed.
type failingCache struct{}

func (failingCache) Get(context.Context, string) ([]byte, bool, error) {
	return nil, false, errors.New("down")
}
func (failingCache) Set(context.Context, string, []byte, time.Duration) error {
	return errors.New("down")
}

func TestPredictionCacheFailureIsAMiss(t *testing.T) {
	s, _ := newService(t, func(o *Options) { o.Cache = failingCache{} })
	s.model.Store(fitModel(t, "iforest-x", 1))
	r := detectOne(t, s, Sample{Host: "a", Timestamp: t0, Metrics: map[string]float64{MetricCPU: 50}}, DetectOptions{})
	if r.Cached || r.Components["iforest"] == 0 || s.Stats().Cache.Errors != 2 {
		t.Fatalf("result %+v, stats %+v", r, s.Stats().Cache)
	}
}

func TestCloseDrainsAndRefuses(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := New(context.Background(), Options{Registerer: reg, BatchSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	s.model.Store(fitModel(t, "iforest-x", 1))
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				smp, _ := Normalize(Sample{Host: fmt.Sprint(g), Timestamp: t0.Add(time.Duration(i) * time.Second), Metrics: map[string]float64{MetricCPU: float64(i)}})
				if _, err := s.Detect(context.Background(), []Sample{smp}, DetectOptions{}); err != nil && !errors.Is(err, ErrClosed) {
					errs <- err
				}
			}
		}()
	}
	time.Sleep(time.Millisecond) // let some requests be in flight; correctness does not depend on it
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("request failed during close: %v", err)
	}
	if _, err := s.Detect(ctx, nil, DetectOptions{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Detect after Close = %v", err)
	}
	if c := s.Check(ctx); c.Status != health.StatusDown {
		t.Fatalf("health after close = %s", c.Status)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestInlineScoringMatchesBatched(t *testing.T) {
	m := fitModel(t, "iforest-x", 1)
	inline, _ := newService(t, func(o *Options) { o.DisableBatching = true })
	batched, _ := newService(t, nil)
	inline.model.Store(m)
	batched.model.Store(m)
	smp := Sample{Host: "a", Timestamp: t0, Metrics: map[string]float64{MetricCPU: 97, MetricRequestRate: 10}}
	a, b := detectOne(t, inline, smp, DetectOptions{}), detectOne(t, batched, smp, DetectOptions{})
	if a.AnomalyScore != b.AnomalyScore || a.ModelVersion != b.ModelVersion || inline.QueueDepth() != 0 || inline.Stats().Batching.Enabled {
		t.Fatalf("inline %+v vs batched %+v", a, b)
	}
}

// seedHistory stores n samples per host ending at end.
func seedHistory(t *testing.T, st *store.Store, hosts, n int, end time.Time) {
	t.Helper()
	rng := rand.New(rand.NewPCG(11, 12))
	var rows []domain.MetricSample
	for i := range n {
		for h := range hosts {
			rows = append(rows, ToStore(normalHost(rng, fmt.Sprintf("web-%d", h), end.Add(-time.Duration(n-i)*time.Minute))))
		}
	}
	if _, err := st.InsertMetrics(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
}

func openStore(t *testing.T, url string) *store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{URL: url, PoolSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestModelRoundTripThroughStore(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		st := openStore(t, url)
		clock := newFakeClock()
		s, _ := newService(t, func(o *Options) { o.Store = st; o.Clock = clock; o.DisableBatching = true })
		if _, err := s.Train(ctx, true); !errors.Is(err, ErrNotEnoughData) {
			t.Fatalf("Train on an empty store = %v", err)
		}
		seedHistory(t, st, 3, 400, clock.Now())
		info, err := s.Train(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		if info.TrainingRows != 1200 || !info.Active || !strings.HasPrefix(info.Version, info.ModelType+"-") || len(info.Validation) < 10 {
			t.Fatalf("trained %+v", info)
		}
		list, err := s.Models(ctx)
		if err != nil || len(list) != 1 || list[0].Version != info.Version || !list[0].Active {
			t.Fatalf("Models = %+v, %v", list, err)
		}
		// A new service on the same store loads the active version and
		// scores every row exactly as the one that trained it.
		s2, _ := newService(t, func(o *Options) { o.Store = st; o.Clock = clock })
		if a := s2.Stats().ActiveModel; a == nil || a.Version != info.Version {
			t.Fatalf("reloaded active model = %+v", a)
		}
		rng := rand.New(rand.NewPCG(5, 6))
		for i := range 20 {
			smp := normalHost(rng, "x", t0.Add(time.Duration(i)*time.Minute))
			if i%4 == 0 {
				smp.Metrics[MetricCPU] = 99
			}
			a, b := detectOne(t, s, smp, DetectOptions{NoCache: true}), detectOne(t, s2, smp, DetectOptions{NoCache: true})
			k := info.ModelType
			if a.Components[k] != b.Components[k] || a.Components[k] == 0 {
				t.Fatalf("row %d: %s %v before the round trip, %v after", i, k, a.Components[k], b.Components[k])
			}
		}
	})
}

func TestActivateAndRollbackUnderLoad(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		st := openStore(t, url)
		clock := newFakeClock()
		s, _ := newService(t, func(o *Options) {
			o.Store, o.Clock, o.Cache, o.BatchSize, o.BatchTimeout = st, clock, newMemoryCache(0, clock.Now), 16, time.Millisecond
		})
		seedHistory(t, st, 3, 300, clock.Now())
		a, err := s.Train(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second)
		b, err := s.Train(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		// Reference models, loaded independently, to check that every
		// result's forest score is the one its named version gives.
		ref := map[string]*activeModel{}
		for _, v := range []string{a.Version, b.Version} {
			rec, err := st.Model(ctx, v)
			if err != nil {
				t.Fatal(err)
			}
			if ref[v], err = decodeArtifact(infoFromStore(rec), rec.Artifact); err != nil {
				t.Fatal(err)
			}
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan string, 100)
		seen := [2]int{}
		var mu sync.Mutex
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(g), 1))
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					batch := make([]Sample, 5)
					for k := range batch {
						batch[k], _ = Normalize(normalHost(rng, fmt.Sprintf("g%d-%d", g, k), t0.Add(time.Duration(i)*time.Minute)))
					}
					res, err := s.Detect(ctx, batch, DetectOptions{NoCache: i%2 == 0})
					if err != nil {
						errs <- err.Error()
						return
					}
					for k, r := range res {
						var v string
						switch {
						case strings.Contains(r.ModelVersion, a.Version) && !strings.Contains(r.ModelVersion, b.Version):
							v = a.Version
						case strings.Contains(r.ModelVersion, b.Version) && !strings.Contains(r.ModelVersion, a.Version):
							v = b.Version
						default:
							errs <- "result names no single model: " + r.ModelVersion
							return
						}
						m := ref[v]
						h, row := m.row(batch[k])
						want := []float64{0}
						if err := h.scoreRows([][]float64{row}, want); err != nil {
							errs <- err.Error()
							return
						}
						if r.Components[h.typ] != want[0] {
							errs <- fmt.Sprintf("model score %v under %s; that model gives %v", r.Components[h.typ], v, want[0])
							return
						}
						mu.Lock()
						if v == a.Version {
							seen[0]++
						} else {
							seen[1]++
						}
						mu.Unlock()
					}
				}
			}()
		}
		for i := range 20 {
			v := b.Version
			if i%2 == 1 {
				v = a.Version // rollback
			}
			if _, err := s.Activate(ctx, v); err != nil {
				t.Fatalf("Activate %s: %v", v, err)
			}
			time.Sleep(time.Millisecond) // let requests run under each version
		}
		close(stop)
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
		act, err := st.ActiveModel(ctx, ModelKind)
		if err != nil || act.Version != a.Version || s.Stats().ActiveModel.Version != a.Version {
			t.Fatalf("after the last rollback the store says %s (%v), the service %s", act.Version, err, s.Stats().ActiveModel.Version)
		}
		if seen[0] == 0 || seen[1] == 0 {
			t.Logf("results per version: %v (the swap timing decides; correctness does not)", seen)
		}
		if _, err := s.Activate(ctx, "iforest-nope"); !errors.Is(err, ErrModelNotFound) {
			t.Fatalf("Activate(unknown) = %v", err)
		}
	})
}

func TestIngestPersistsWithSeverity(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		st := openStore(t, url)
		s, _ := newService(t, func(o *Options) { o.Store = st })
		in := []Sample{
			{Host: "db-1", Timestamp: t0, Metrics: map[string]float64{"cpu": 99.5}},                      // 0.975 critical
			{Host: "db-2", Timestamp: t0, Metrics: map[string]float64{MetricCPU: 93}},                    // 0.65 high
			{Host: "db-3", Timestamp: t0, Metrics: map[string]float64{MetricMemory: 91}},                 // 0.55 medium
			{Host: "db-4", Timestamp: t0, Metrics: map[string]float64{MetricErrorRate: 5.5, "gc_ms": 3}}, // 0.55 medium
			{Host: "db-5", Timestamp: t0, Metrics: map[string]float64{MetricCPU: 50}},                    // normal
		}
		for i := range in {
			var err error
			if in[i], err = Normalize(in[i]); err != nil {
				t.Fatal(err)
			}
		}
		rep, err := s.Ingest(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Accepted != 5 || rep.Stored != 5 || rep.Duplicates != 0 || rep.Anomalies != 4 || len(rep.Results) != 5 {
			t.Fatalf("report = %+v", rep)
		}
		want := map[string]domain.Severity{"db-1": "critical", "db-2": "high", "db-3": "medium", "db-4": "medium"}
		list, err := st.AnomalyRange(ctx, store.AnomalyRangeQuery{})
		rows := list.Anomalies
		if err != nil || len(rows) != 4 {
			t.Fatalf("stored anomalies = %d, %v", len(rows), err)
		}
		for _, a := range rows {
			if want[a.Host] != a.Severity || a.ModelVersion != ThresholdVersion || a.Metric == "" || a.Explanation == "" {
				t.Errorf("stored anomaly %+v; want severity %s", a, want[a.Host])
			}
		}
		// A re-sent batch: duplicates, no second anomaly, no new rows.
		rep, err = s.Ingest(ctx, in)
		if err != nil || rep.Stored != 0 || rep.Duplicates != 5 || rep.Anomalies != 0 {
			t.Fatalf("re-sent: %+v, %v", rep, err)
		}
		hist, err := st.MetricHistory(ctx, domain.HistoryQuery{})
		if err != nil || len(hist) != 5 || hist[3].Extra["gc_ms"] != 3 {
			t.Fatalf("stored samples = %+v, %v", hist, err)
		}
		if _, err := (&Service{opt: Options{}}).Ingest(ctx, in); !errors.Is(err, ErrNoStore) {
			t.Fatalf("Ingest without store = %v", err)
		}
	})
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{
		{Threshold: 1.5}, {BatchSize: -1}, {MaxWorkers: -2}, {QueueSize: 10, MaxBatch: 100}, {Contamination: 0.7},
		{Thresholds: Thresholds{MetricCPU: math.NaN()}}, {Stream: stream.Options{WarmUp: -1}},
	} {
		o.Registerer = prometheus.NewRegistry()
		if _, err := New(context.Background(), o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

// fillingStore stores samples and then lets fill take every free slot of the
// scoring queue, as concurrent requests would between storing and scoring.
type fillingStore struct {
	Store
	fill func()
}

func (f *fillingStore) InsertMetrics(ctx context.Context, rows []domain.MetricSample) (int64, error) {
	n, err := f.Store.InsertMetrics(ctx, rows)
	f.fill()
	return n, err
}

// TestIngestQueueFullMeansNothingStored holds the 503 text ("nothing was
// stored or scored") true: a full queue refuses Ingest before it writes, and
// a queue that fills after the write cannot refuse the scoring it reserved.
func TestIngestQueueFullMeansNothingStored(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		st := openStore(t, url)
		fs := &fillingStore{Store: st}
		s, _ := newService(t, func(o *Options) { o.Store = fs; o.MaxBatch = 10; o.QueueSize = 20 })
		s.model.Store(fitModel(t, "iforest-test", 1))
		rng := rand.New(rand.NewPCG(5, 6))
		batch := func(at time.Time) []Sample {
			out := make([]Sample, 5)
			for i := range out {
				n, err := Normalize(normalHost(rng, fmt.Sprintf("web-%d", i), at))
				if err != nil {
					t.Fatal(err)
				}
				out[i] = n
			}
			return out
		}
		stored := func() int {
			h, err := st.MetricHistory(ctx, domain.HistoryQuery{})
			if err != nil {
				t.Fatal(err)
			}
			return len(h)
		}

		// The queue fills while the samples are being stored.
		taken := 0
		fs.fill = func() {
			taken = s.batch.capacity - s.batch.queued()
			if err := s.batch.reserve(taken); err != nil {
				t.Errorf("fill the queue: %v", err)
			}
		}
		rep, err := s.Ingest(ctx, batch(t0))
		if err != nil || rep.Stored != 5 || len(rep.Results) != 5 {
			t.Fatalf("ingest while the queue fills: %+v, %v; want 5 stored and scored", rep, err)
		}
		if got := stored(); got != 5 {
			t.Fatalf("stored rows = %d, want 5", got)
		}

		// The queue is full before the request: refused whole, nothing written.
		fs.fill = func() {}
		more := s.batch.capacity - s.batch.queued()
		if err := s.batch.reserve(more); err != nil {
			t.Fatal(err)
		}
		taken += more
		_, err = s.Ingest(ctx, batch(t0.Add(time.Minute)))
		var full *QueueFullError
		if !errors.As(err, &full) {
			t.Fatalf("ingest into a full queue = %v; want *QueueFullError", err)
		}
		if got := stored(); got != 5 {
			t.Fatalf("a refused ingest stored rows: %d, want still 5", got)
		}
		s.batch.release(taken)
		if got := s.batch.queued(); got != 0 {
			t.Fatalf("queue depth after the requests = %d, want 0 (a reservation leaked)", got)
		}
	})
}
