package anomaly

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/domain"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

// TestModelJudgesTheStateOfItsMetrics: with a host model trained on rows
// where memory ranges over 40–80%, a host whose memory steps from 50% to
// 70% gets the stream's alert, and that point is sustained; afterwards the
// stream still holds memory away from its old level, but memory is a model
// metric and the row is inside the model's limit, so the host is not in an
// anomalous state. A metric the model was not fitted on (queue_depth) keeps
// the stream's hold as its state, as without a model.
func TestModelJudgesTheStateOfItsMetrics(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, storetest.SQLiteURL(t))
	clock := newFakeClock()
	rng := rand.New(rand.NewPCG(31, 32))
	// noise is the other metrics' spread: the training hosts' normal one,
	// a tenth of it on the host under test, so no chance exceedance of the
	// model's limit mixes into what is tested.
	row := func(host string, at time.Time, memory, noise float64) Sample {
		return Sample{Host: host, Timestamp: at, Metrics: map[string]float64{
			MetricCPU: 40 + 2*noise*rng.NormFloat64(), MetricMemory: memory,
			MetricDisk: 60 + 0.1*noise*rng.NormFloat64(), MetricRequestRate: 200 + 5*noise*rng.NormFloat64()}}
	}
	var hist []domain.MetricSample
	for i := range 600 {
		for h := range 2 {
			at := clock.Now().Add(-time.Duration(600-i) * time.Minute)
			hist = append(hist, ToStore(row(fmt.Sprintf("web-%d", h), at, 40+40*rng.Float64(), 1)))
		}
	}
	if _, err := st.InsertMetrics(ctx, hist); err != nil {
		t.Fatal(err)
	}
	s, _ := newService(t, func(o *Options) { o.Store = st; o.Clock = clock; o.DisableBatching = true })
	info, err := s.Train(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }
	i := 0
	for ; i < 600; i++ {
		smp := row("db-2", at(i), 50+0.3*rng.NormFloat64(), 0.1)
		smp.Metrics["queue_depth"] = 10 + 0.3*rng.NormFloat64()
		learnOne(t, s, smp)
	}
	alert := -1
	for end := i + 100; i < end; i++ {
		smp := row("db-2", at(i), 70+0.3*rng.NormFloat64(), 0.1)
		smp.Metrics["queue_depth"] = 10 + 0.3*rng.NormFloat64()
		r := learnOne(t, s, smp)
		if r.Components[info.ModelType] >= 0.5 {
			t.Fatalf("point %d: the model scores memory at 70%% %v, want under its limit", i, r.Components[info.ModelType])
		}
		switch {
		case r.IsAnomaly && alert < 0:
			alert = i
			if !r.Sustained || !slices.Equal(r.SustainedMetrics, []string{MetricMemory}) {
				t.Fatalf("point %d: the stream's alert is not state: %+v", i, r)
			}
		case alert >= 0 && (slices.Contains(r.SustainedMetrics, MetricMemory) || !r.IsAnomaly && (r.Sustained || r.State >= 0.5)):
			t.Fatalf("point %d, %d after the alert: the stream's hold on a model metric made the host anomalous: %+v", i, i-alert, r)
		}
	}
	if alert < 0 || alert > 605 {
		t.Fatalf("the stream did not alert on memory's step (alert at %d)", alert)
	}
	held := 0
	for end := i + 100; i < end; i++ {
		smp := row("db-2", at(i), 70+0.3*rng.NormFloat64(), 0.1)
		smp.Metrics["queue_depth"] = 30 + 0.3*rng.NormFloat64()
		r := learnOne(t, s, smp)
		if slices.Contains(r.SustainedMetrics, "queue_depth") {
			held++
		}
		if slices.Contains(r.SustainedMetrics, MetricMemory) {
			t.Fatalf("point %d: memory sustained again: %+v", i, r)
		}
	}
	if held < 95 {
		t.Fatalf("queue_depth, which the model does not know, was sustained on %d of 100 points of its fault", held)
	}
}
