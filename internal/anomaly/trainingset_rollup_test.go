package anomaly

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/domain"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

// TestTrainFromRollups trains on a store whose raw samples are kept for one
// hour of the six it received: the five older hours come from the 1-minute
// rollups, so the model's training window reaches back past the raw window,
// with one row per host and minute there.
func TestTrainFromRollups(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		st := openStore(t, url)
		clock := newFakeClock()
		now := clock.Now()
		rng := rand.New(rand.NewPCG(21, 22))
		var rows []domain.MetricSample
		const hosts, every = 3, 20 * time.Second
		start := now.Add(-6 * time.Hour)
		for at := start; at.Before(now); at = at.Add(every) {
			for h := range hosts {
				rows = append(rows, ToStore(normalHost(rng, "web-"+string(rune('a'+h)), at)))
			}
		}
		if _, err := st.InsertMetrics(ctx, rows); err != nil {
			t.Fatal(err)
		}
		if _, err := st.RollupMetrics(ctx, store.RollupOptions{Now: now}); err != nil {
			t.Fatal(err)
		}
		ret, err := st.DeleteExpired(ctx, store.RetentionOptions{Now: now, Raw: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		rawFrom := now.Add(-time.Hour)
		if !ret.RawFrom.Equal(rawFrom) {
			t.Fatalf("raw_from = %v, want %v", ret.RawFrom, rawFrom)
		}
		s, _ := newService(t, func(o *Options) { o.Store = st; o.Clock = clock; o.DisableBatching = true })
		info, err := s.Train(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		// One hour of raw samples, five hours of one mean per host and minute.
		wantRows := int64(hosts*int(time.Hour/every) + hosts*5*60)
		if !info.TrainingFrom.Equal(start) || info.TrainingRows != wantRows {
			t.Fatalf("trained from %v on %d rows; want from %v on %d rows", info.TrainingFrom, info.TrainingRows, start, wantRows)
		}
		// The model scores a plain sample as normal and a wild one as not.
		ok := detectOne(t, s, normalHost(rng, "web-a", now), DetectOptions{NoCache: true})
		wild := normalHost(rng, "web-a", now.Add(time.Second))
		wild.Metrics[MetricCPU], wild.Metrics[MetricRequestRate] = 99, 5
		bad := detectOne(t, s, wild, DetectOptions{NoCache: true})
		if k := info.ModelType; bad.Components[k] <= ok.Components[k] {
			t.Errorf("%s score of a wild sample %v, of a plain one %v", k, bad.Components[k], ok.Components[k])
		}
	})
}
