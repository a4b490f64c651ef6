package stream

import (
	"math"
	"reflect"
	"testing"
	"time"
)

// runFast runs vals[from:] at a 10-second step, where the alert threshold
// is raised (0.648) and chance alerts on calm noise are rarer.
func runFast(d *Detector, vals []float64, from int) []Result {
	return runStep(d, vals, from, 10*time.Second)
}

func runStep(d *Detector, vals []float64, from int, step time.Duration) []Result {
	out := make([]Result, 0, len(vals)-from)
	for i := from; i < len(vals); i++ {
		out = append(out, d.Update(t0.Add(time.Duration(i)*step), vals[i]))
	}
	return out
}

// faultSeries is calm noise around 50 with a fault from..to at level.
func faultSeries(n, from, to int, level float64, seasonal bool) []float64 {
	f := func(int) float64 { return 50 }
	if seasonal {
		f = daily
	}
	v := series(n, 5, f, 2)
	for i := from; i < to; i++ {
		v[i] += level
	}
	return v
}

func TestSustainedFaultStaysVisible(t *testing.T) {
	for _, tc := range []struct {
		name     string
		seasonal bool
		step     time.Duration
	}{{"flat, 10 s", false, 10 * time.Second}, {"daily, 5 min", true, step}} {
		t.Run(tc.name, func(t *testing.T) {
			const from, to = 3000, 4500
			vals := faultSeries(6000, from, to, 25, tc.seasonal)
			d := mustNew(t, Options{})
			rs := runStep(d, vals, 0, tc.step)
			thr := d.Threshold()
			alerts := flags(rs[from:to], from)
			if len(alerts) == 0 || alerts[0] > from+5 {
				t.Fatalf("fault alerted at %v; want an alert within 5 points of %d", alerts, from)
			}
			first := alerts[0]
			// The views adapt, so the score falls during the fault; the
			// state does not, on any point of it.
			for i := first; i < to; i++ {
				if rs[i].State < thr || !rs[i].Holding {
					t.Fatalf("point %d of the fault (%d..%d): state %.3f, holding %v; want ≥ %.2f and holding",
						i, from, to, rs[i].State, rs[i].Holding, thr)
				}
			}
			if s := maxScore(rs, to-200, to); s >= thr {
				t.Fatalf("score %.3f late in the fault; this test wants the views to have adapted (else it proves nothing)", s)
			}
			if (tc.step < 5*time.Minute) != (thr > d.Options().Threshold) {
				t.Fatalf("threshold %.3f at a %v step; want it raised above %.2f only below 5 minutes", thr, tc.step, d.Options().Threshold)
			}
			// Back to normal: the hold ends within a short window and the
			// state falls with it.
			for i := to + 60; i < len(rs); i++ {
				if rs[i].Holding {
					t.Fatalf("still holding at %d, %d points after the fault ended", i, i-to)
				}
			}
		})
	}
}

func TestSpikeHoldsBriefly(t *testing.T) {
	vals := series(4000, 9, func(int) float64 { return 50 }, 2)
	vals[3000] = 120
	rs := runFast(mustNew(t, Options{}), vals, 0)
	if !rs[3000].IsAnomaly || !rs[3000].Holding {
		t.Fatalf("spike: alert %v holding %v; want both", rs[3000].IsAnomaly, rs[3000].Holding)
	}
	// The hold's short average forgets the spike in about two Short
	// windows.
	for i := 3045; i < 4000; i++ {
		if rs[i].Holding {
			t.Fatalf("a lone spike still holds %d points later", i-3000)
		}
	}
}

func TestRebaselineAcceptsNewLevel(t *testing.T) {
	for _, seasonal := range []bool{false, true} {
		vals := faultSeries(7000, 3000, 7000, 25, seasonal)
		d := mustNew(t, Options{})
		st := 10 * time.Second
		if seasonal {
			st = step // daily() has its period at 5-minute steps
		}
		rs := runStep(d, vals[:4000], 0, st)
		if !d.Holding() || !rs[3999].Anomalous {
			t.Fatalf("seasonal=%v: not holding a sustained fault before re-baselining (state %.3f)", seasonal, rs[3999].State)
		}
		d.Rebaseline()
		if d.Holding() {
			t.Fatal("still holding after Rebaseline")
		}
		after := runStep(d, vals, 4000, st)
		// Calm right away, and afterwards no more anomalous than noise is.
		anomalous := 0
		for i, r := range after {
			if i < 300 && (r.IsAnomaly || r.Holding || r.Anomalous) {
				t.Fatalf("seasonal=%v: point %d after re-baselining: alert %v holding %v state %.3f; want calm",
					seasonal, 4000+i, r.IsAnomaly, r.Holding, r.State)
			}
			if r.Anomalous {
				anomalous++
			}
		}
		if anomalous > len(after)/100 {
			t.Fatalf("seasonal=%v: %d of %d points anomalous after re-baselining; want under 1%%", seasonal, anomalous, len(after))
		}
	}
}

func TestRebaselineThenNewFaultAlerts(t *testing.T) {
	vals := faultSeries(6000, 3000, 6000, 25, false)
	for i := 5000; i < 6000; i++ {
		vals[i] += 25 // a second step on the accepted level
	}
	d := mustNew(t, Options{})
	runFast(d, vals[:4000], 0)
	d.Rebaseline()
	rs := runFast(d, vals, 4000)
	if f := flags(rs[:1000], 4000); len(f) != 0 {
		t.Fatalf("alerts %v on the accepted level", f)
	}
	if f := flags(rs[1000:1006], 5000); len(f) != 1 {
		t.Fatalf("alerts %v at the second step (5000..5005); want one", f)
	}
	if !rs[5999-4000].Holding {
		t.Fatal("the second fault is not held")
	}
}

func TestHoldSurvivesRoundTrip(t *testing.T) {
	vals := faultSeries(5000, 3000, 5000, 25, true)
	whole := runAll(mustNew(t, Options{}), vals, 0)
	d := mustNew(t, Options{})
	runAll(d, vals[:3500], 0)
	if !d.Holding() {
		t.Fatal("not holding at the cut; the test needs a hold in the state")
	}
	r, _ := restore(t, d)
	if rest := runAll(r, vals, 3500); !reflect.DeepEqual(rest, whole[3500:]) {
		t.Fatal("a restored holding detector diverges from the uninterrupted one")
	}
}

func TestThresholdFollowsSamplingInterval(t *testing.T) {
	for _, tc := range []struct {
		step time.Duration
		want float64
	}{
		{time.Hour, 0.5},
		{5 * time.Minute, 0.5},
		{10 * time.Second, 0.5 + 0.1*1.4771},
		{time.Second, 0.5 + 0.1*2.4771},
		{time.Millisecond, 0.95},
	} {
		d := mustNew(t, Options{})
		if got := d.Threshold(); got != 0.5 {
			t.Fatalf("threshold %v before any point; want Options.Threshold", got)
		}
		vals := series(300, 3, func(int) float64 { return 10 }, 1)
		rs := runStep(d, vals, 0, tc.step)
		if got := rs[len(rs)-1].Threshold; math.Abs(got-tc.want) > 1e-3 {
			t.Errorf("step %v: threshold %.4f; want %.4f", tc.step, got, tc.want)
		}
	}
	// Gaps (missing scrapes) do not pass for slow sampling.
	d := mustNew(t, Options{})
	at := t0
	for i := range 2000 {
		gap := 10 * time.Second
		if i%50 == 0 {
			gap = time.Hour
		}
		at = at.Add(gap)
		d.Update(at, float64(i%7))
	}
	if got := d.Threshold(); got < 0.6 {
		t.Errorf("10 s series with an hour's gap every 50 points: threshold %.3f; want it near 0.648", got)
	}
}
