package ingest

import (
	"math"
	"sync"
	"testing"
	"time"
)

func TestTrackerObserve(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	type step struct {
		id      uint64
		kind    Kind
		sec     int
		v       float64
		want    float64
		outcome Outcome
		ok      bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"gauge kept as is", []step{
			{1, Gauge, 0, 42, 42, Kept, true},
			{1, Gauge, 15, 43, 43, Kept, true},
		}},
		{"counter gives rates", []step{
			{1, Counter, 0, 100, 0, First, false},
			{1, Counter, 10, 150, 5, Kept, true},
			{1, Counter, 20, 150, 0, Kept, true},
		}},
		{"counter reset reads as counted since zero", []step{
			{1, Counter, 0, 1000, 0, First, false},
			{1, Counter, 10, 30, 3, Kept, true},
		}},
		{"retry of a kept sample rebuilds its value", []step{
			{1, Counter, 0, 100, 0, First, false},
			{1, Counter, 10, 200, 10, Kept, true},
			{1, Counter, 10, 200, 10, Repeat, true},
		}},
		{"retry of a counter's first sample still gives nothing", []step{
			{1, Counter, 0, 100, 0, First, false},
			{1, Counter, 0, 100, 0, Repeat, false},
		}},
		{"older sample refused", []step{
			{1, Gauge, 10, 1, 1, Kept, true},
			{1, Gauge, 5, 2, 0, OutOfOrder, false},
		}},
		{"same time other value refused", []step{
			{1, Gauge, 10, 1, 1, Kept, true},
			{1, Gauge, 10, 2, 0, OutOfOrder, false},
		}},
		{"repeated NaN is a repeat", []step{
			{1, Gauge, 10, math.NaN(), math.NaN(), Kept, true},
			{1, Gauge, 10, math.NaN(), math.NaN(), Repeat, true},
		}},
		{"series are independent", []step{
			{1, Counter, 0, 10, 0, First, false},
			{2, Counter, 0, 20, 0, First, false},
			{2, Counter, 2, 24, 2, Kept, true},
			{1, Counter, 2, 10, 0, Kept, true},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTracker(TrackerOptions{})
			for i, s := range tc.steps {
				got, outcome, ok := tr.Observe("acme", s.id, s.kind, at(s.sec), s.v)
				same := got == s.want || (math.IsNaN(got) && math.IsNaN(s.want))
				if outcome != s.outcome || ok != s.ok || (ok && !same) {
					t.Fatalf("step %d: got (%v, %v, %v), want (%v, %v, %v)", i, got, outcome, ok, s.want, s.outcome, s.ok)
				}
			}
		})
	}
}

func TestTrackerTenantCap(t *testing.T) {
	tr := NewTracker(TrackerOptions{MaxSeriesPerTenant: 2})
	now := time.Unix(1_700_000_000, 0)
	for id := uint64(1); id <= 3; id++ {
		_, outcome, _ := tr.Observe("acme", id, Gauge, now, 1)
		if want := map[bool]Outcome{true: Kept, false: OverLimit}[id <= 2]; outcome != want {
			t.Fatalf("series %d: %v, want %v", id, outcome, want)
		}
	}
	if _, outcome, _ := tr.Observe("other", 3, Gauge, now, 1); outcome != Kept {
		t.Fatalf("another tenant's series: %v, want kept", outcome)
	}
	if !tr.Forget("acme", 1) {
		t.Fatal("Forget of a known series reported unknown")
	}
	if _, outcome, _ := tr.Observe("acme", 3, Gauge, now, 1); outcome != Kept {
		t.Fatalf("after a stale marker freed room: %v, want kept", outcome)
	}
	if got := tr.TenantSeries("acme"); got != 2 {
		t.Fatalf("acme has %d series, want 2", got)
	}
	if got := tr.Series(); got != 3 {
		t.Fatalf("%d series in all, want 3", got)
	}
}

func TestTrackerForgetsIdleSeries(t *testing.T) {
	clock := time.Unix(1_700_000_000, 0)
	tr := NewTracker(TrackerOptions{MaxSeriesPerTenant: 1, IdleAfter: time.Minute, Now: func() time.Time { return clock }})
	tr.Observe("acme", 1, Counter, clock, 5)
	clock = clock.Add(2 * time.Minute)
	// The sweep runs per shard on Observe: a series of the same shard
	// reaches the idle one.
	_, outcome, _ := tr.Observe("acme", 1+trackerShards, Gauge, clock, 1)
	if outcome != Kept {
		t.Fatalf("a new series after the old went idle: %v, want kept", outcome)
	}
	if got := tr.Series(); got != 1 {
		t.Fatalf("%d series tracked, want 1", got)
	}
}

func TestTrackerConcurrentCap(t *testing.T) {
	const limit = 100
	tr := NewTracker(TrackerOptions{MaxSeriesPerTenant: limit})
	now := time.Unix(1_700_000_000, 0)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				tr.Observe("acme", uint64(g*1000+i), Gauge, now, 1)
			}
		}()
	}
	wg.Wait()
	if got := tr.TenantSeries("acme"); got != limit {
		t.Fatalf("acme holds %d series, want the cap %d", got, limit)
	}
}

func BenchmarkTrackerObserve(b *testing.B) {
	tr := NewTracker(TrackerOptions{MaxSeriesPerTenant: 1 << 20})
	t0 := time.Unix(1_700_000_000, 0)
	const series = 10_000
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tr.Observe("acme", uint64(i%series), Counter, t0.Add(time.Duration(i/series)*15*time.Second), float64(i))
	}
}

func TestTrackerObserveSinceStartTimeReset(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	tr := NewTracker(TrackerOptions{})
	steps := []struct {
		start, sec int
		v, want    float64
		outcome    Outcome
	}{
		{-100, 0, 100, 0, First},
		{-100, 10, 150, 5, Kept},
		// Restarted at 12 s and counted 400 by 20 s: more than before, but
		// a reset all the same, so the rate is 400 over the 10 s.
		{12, 20, 400, 40, Kept},
		{12, 30, 500, 10, Kept},
		// The retry of that sample rebuilds its rate.
		{12, 30, 500, 10, Repeat},
	}
	for i, s := range steps {
		got, outcome, _ := tr.ObserveSince("acme", 1, at(s.start), at(s.sec), s.v)
		if outcome != s.outcome || (outcome != First && got != s.want) {
			t.Fatalf("step %d: got (%v, %v), want (%v, %v)", i, got, outcome, s.want, s.outcome)
		}
	}
	// A zero start leaves the value-based rule in charge.
	if _, o, _ := tr.ObserveSince("acme", 2, time.Time{}, at(0), 10); o != First {
		t.Fatalf("zero start: %v", o)
	}
	if got, _, _ := tr.ObserveSince("acme", 2, time.Time{}, at(10), 30); got != 2 {
		t.Fatalf("zero start rate %v, want 2", got)
	}
}
