package anomaly

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

// trainings is smartcloudops_anomaly_trainings_total over both outcomes.
func trainings(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == "smartcloudops_anomaly_trainings_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// TestRetrainOnlyWhileLeader: a scheduled tick retrains only while
// Options.IsLeader says so; the other ticks pass without training.
func TestRetrainOnlyWhileLeader(t *testing.T) {
	st := openStore(t, storetest.SQLiteURL(t))
	clock := newFakeClock()
	var leads atomic.Bool
	_, reg := newService(t, func(o *Options) {
		o.Store, o.Clock, o.DisableBatching = st, clock, true
		o.RetrainInterval = time.Hour
		o.IsLeader = leads.Load
	})
	tick := func() {
		clock.waitTimer(t) // the loop armed its timer for the next tick
		clock.Advance(time.Hour)
	}
	tick()
	tick()
	clock.waitTimer(t) // both ticks fully handled: the loop is waiting again
	if n := trainings(t, reg); n != 0 {
		t.Fatalf("a follower retrained %v times", n)
	}
	leads.Store(true)
	clock.Advance(time.Hour)
	clock.waitTimer(t)
	// The store is empty: the training fails for want of data, but it ran.
	if n := trainings(t, reg); n != 1 {
		t.Fatalf("the leader retrained %v times on one tick, want 1", n)
	}
}
