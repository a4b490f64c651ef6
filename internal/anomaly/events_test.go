package anomaly

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

// recorder is a Notifier that keeps what it hears.
type recorder struct {
	mu     sync.Mutex
	events []string // "open host metric" / "resolve host metric"
	opened []Incident
	closed []Incident
}

func (r *recorder) Opened(i Incident) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, "open "+i.Host+" "+i.Metric)
	r.opened = append(r.opened, i)
}

func (r *recorder) Resolved(i Incident) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, "resolve "+i.Host+" "+i.Metric)
	r.closed = append(r.closed, i)
}

func (r *recorder) log() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

// scoreSeries is smartcloudops_anomaly_score's series as "host metric=value".
func scoreSeries(t *testing.T, reg prometheus.Gatherer) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if mf.GetName() != "smartcloudops_anomaly_score" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			out = append(out, fmt.Sprintf("%s %s=%.2f", l["host"], l["metric"], m.GetGauge().GetValue()))
		}
	}
	return out
}

func cpuAt(host string, i int, cpu float64) Sample {
	return Sample{Host: host, Timestamp: t0.Add(time.Duration(i) * time.Minute), Metrics: map[string]float64{MetricCPU: cpu}}
}

// TestIncidentEventsOnceEach: a cpu pinned past its limit for a while opens
// one incident and resolves it once, whatever happens between: points that
// continue it, late points on either side of the limit, a detect that
// crosses back and forth, a second metric joining and leaving. The score
// gauge holds the series exactly while it is in the incident.
func TestIncidentEventsOnceEach(t *testing.T) {
	rec := &recorder{}
	s, reg := newService(t, func(o *Options) { o.Notifier = rec })
	for i := range 5 {
		learnOne(t, s, cpuAt("acme/web-1", i, 40))
	}
	if got := rec.log(); len(got) != 0 {
		t.Fatalf("events on normal points: %v", got)
	}
	r := learnOne(t, s, cpuAt("acme/web-1", 5, 97))
	if !r.IsAnomaly {
		t.Fatalf("crossing did not alert: %+v", r)
	}
	if got := scoreSeries(t, reg); len(got) != 1 || !strings.HasPrefix(got[0], "acme/web-1 cpu_usage=") {
		t.Fatalf("score gauge after the open = %v", got)
	}
	for i := 6; i < 20; i++ {
		learnOne(t, s, cpuAt("acme/web-1", i, 99))
	}
	// A late point under the limit does not close it, nor does a detect.
	learnOne(t, s, cpuAt("acme/web-1", 3, 10))
	if _, err := s.Detect(context.Background(), []Sample{cpuAt("acme/web-1", 20, 10), cpuAt("acme/web-1", 21, 99)}, DetectOptions{}); err != nil {
		t.Fatal(err)
	}
	// A second metric alerts: a second incident, resolved on its own.
	learnOne(t, s, Sample{Host: "acme/web-1", Timestamp: t0.Add(20 * time.Minute), Metrics: map[string]float64{MetricCPU: 99, MetricDisk: 99}})
	learnOne(t, s, Sample{Host: "acme/web-1", Timestamp: t0.Add(21 * time.Minute), Metrics: map[string]float64{MetricCPU: 99, MetricDisk: 50}})
	if got := scoreSeries(t, reg); len(got) != 1 {
		t.Fatalf("score gauge after the disk's incident closed = %v", got)
	}
	r = learnOne(t, s, cpuAt("acme/web-1", 22, 40))
	if r.Sustained {
		t.Fatalf("back under the limit but sustained: %+v", r)
	}
	// A late point over the limit does not reopen it.
	learnOne(t, s, cpuAt("acme/web-1", 21, 99))
	for i := 23; i < 30; i++ {
		learnOne(t, s, cpuAt("acme/web-1", i, 40))
	}
	want := []string{"open acme/web-1 cpu_usage", "open acme/web-1 disk_usage", "resolve acme/web-1 disk_usage", "resolve acme/web-1 cpu_usage"}
	if got := rec.log(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("events = %q\nwant     %q", got, want)
	}
	open := rec.opened[0]
	if open.Source != "threshold" || !open.StartsAt.Equal(t0.Add(5*time.Minute)) || open.Score < 0.5 ||
		len(open.Reasons) == 0 || !strings.Contains(open.Reasons[0], "above its limit") || open.Explanation == "" || open.Untracked {
		t.Fatalf("opened = %+v", open)
	}
	if closed := rec.closed[1]; !closed.EndsAt.Equal(t0.Add(22 * time.Minute)) {
		t.Fatalf("resolved = %+v", closed)
	}
	if got := scoreSeries(t, reg); len(got) != 0 {
		t.Fatalf("score gauge after every incident closed = %v", got)
	}
}

// TestStreamIncidentEvents: a level shift the stream alerts on and holds
// gives one open (source stream) and, after the re-baseline lets the series
// go, one resolution.
func TestStreamIncidentEvents(t *testing.T) {
	rec := &recorder{}
	s, _ := newService(t, func(o *Options) { o.Notifier = rec })
	rng := rand.New(rand.NewPCG(21, 22))
	i := 0
	for ; i < 600; i++ {
		learnOne(t, s, memorySample(rng, "db-1", i, 55))
	}
	rec.mu.Lock()
	rec.events, rec.opened, rec.closed = nil, nil, nil // chance alerts on normal data
	rec.mu.Unlock()
	for ; i < 800; i++ {
		learnOne(t, s, memorySample(rng, "db-1", i, 80))
	}
	if got := rec.log(); len(got) != 1 || got[0] != "open db-1 memory_usage" || rec.opened[0].Source != "stream" {
		t.Fatalf("events during the fault = %v %+v", got, rec.opened)
	}
	if _, err := s.Rebaseline(context.Background(), "db-1", "", "ops"); err != nil {
		t.Fatal(err)
	}
	for end := i + 50; i < end; i++ {
		learnOne(t, s, memorySample(rng, "db-1", i, 80))
	}
	if got := rec.log(); len(got) != 2 || got[1] != "resolve db-1 memory_usage" {
		t.Fatalf("events after the re-baseline = %v", got)
	}
}

// TestConcurrentIngestOneEventEach: requests racing for one host's points
// (out of order between them) give one open and one resolution, in that
// order, through the real ingest path and store.
func TestConcurrentIngestOneEventEach(t *testing.T) {
	st := openStore(t, storetest.SQLiteURL(t))
	rec := &recorder{}
	s, _ := newService(t, func(o *Options) { o.Store = st; o.Notifier = rec })
	values := make([]float64, 40)
	for i := range values {
		values[i] = 40
		if i >= 10 && i < 25 {
			values[i] = 99
		}
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < len(values); i += 4 {
				if _, err := s.Ingest(context.Background(), []Sample{cpuAt("web-9", i, values[i])}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	got := rec.log()
	opens, resolves := 0, 0
	for k, e := range got {
		switch {
		case strings.HasPrefix(e, "open"):
			opens++
		case strings.HasPrefix(e, "resolve"):
			resolves++
			if opens != resolves {
				t.Fatalf("resolution before its open at event %d: %v", k, got)
			}
		}
	}
	if opens != resolves {
		t.Fatalf("%d opens, %d resolutions: %v", opens, resolves, got)
	}
	t.Logf("events: %v", got)
}

// TestScoreGaugeCap: past MaxScoreSeries the gauge counts what it leaves
// out, and a slot freed by a resolution is used again.
func TestScoreGaugeCap(t *testing.T) {
	s, reg := newService(t, func(o *Options) { o.MaxScoreSeries = 2 })
	for h := range 3 {
		learnOne(t, s, cpuAt(fmt.Sprintf("h-%d", h), 0, 99))
	}
	if got := scoreSeries(t, reg); len(got) != 2 {
		t.Fatalf("gauge series = %v; want 2", got)
	}
	if got := testutil.ToFloat64(s.scores.dropped); got != 1 {
		t.Fatalf("dropped = %v", got)
	}
	learnOne(t, s, cpuAt("h-0", 1, 10))
	learnOne(t, s, cpuAt("h-1", 1, 10))
	learnOne(t, s, cpuAt("h-2", 1, 99))
	if got := scoreSeries(t, reg); len(got) != 1 || !strings.HasPrefix(got[0], "h-2 ") {
		t.Fatalf("gauge series after two resolutions = %v", got)
	}
}

// BenchmarkLearnInIncident is the ingest step of a point that continues an
// open incident (the score gauge is updated on each) against one that is
// normal, with a notifier listening.
func BenchmarkLearnInIncident(b *testing.B) {
	for _, cpu := range []float64{40, 99} {
		b.Run(fmt.Sprintf("cpu=%g", cpu), func(b *testing.B) {
			s, _ := newService(b, func(o *Options) { o.Notifier = &recorder{} })
			i := 0
			for b.Loop() {
				if _, err := s.learn(context.Background(), []Sample{cpuAt("web-1", i, cpu)}, 0); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// TestModelIncidentEvents: the host model's incident has no metric: it
// opens when the model crosses its threshold on a host with nothing open and
// resolves when it scores the host under it.
func TestModelIncidentEvents(t *testing.T) {
	rec := &recorder{}
	s, reg := newService(t, func(o *Options) { o.Notifier = rec })
	s.model.Store(fitModel(t, "iforest-test", 1))
	rng := rand.New(rand.NewPCG(3, 4))
	odd := normalHost(rng, "web-2", t0)
	odd.Metrics[MetricRequestRate] = 1000
	odd.Metrics[MetricCPU] = 85
	odd.Metrics[MetricMemory] = 80
	if r := learnOne(t, s, odd); !r.IsAnomaly || r.Components["iforest"] < 0.5 {
		t.Fatalf("odd host not flagged: %+v", r)
	}
	if got := scoreSeries(t, reg); len(got) != 1 || !strings.HasPrefix(got[0], "web-2 =") {
		t.Fatalf("score gauge = %v", got)
	}
	for i := 1; i <= 3; i++ {
		learnOne(t, s, normalHost(rng, "web-2", t0.Add(time.Duration(i)*time.Minute)))
	}
	want := []string{"open web-2 ", "resolve web-2 "}
	if got := rec.log(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("events = %q; want %q", got, want)
	}
	if o := rec.opened[0]; o.Source != TypeIForest || o.Score < 0.5 || len(o.Reasons) == 0 {
		t.Fatalf("opened = %+v", o)
	}
	if got := scoreSeries(t, reg); len(got) != 0 {
		t.Fatalf("score gauge after the resolution = %v", got)
	}
}
