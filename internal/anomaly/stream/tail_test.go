package stream

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// TestTailRecoversExcessScale feeds excursions whose peaks exceed the base
// by exponential amounts of known mean: the estimate is that mean (within
// the 10% that tailPeaks peaks allow), never below the nominal slope.
func TestTailRecoversExcessScale(t *testing.T) {
	const base = 0.25
	for _, tc := range []struct {
		name  string
		beta  float64
		peaks int
		want  float64
	}{
		{"no peak: the prior", 0.1, 0, nominalBeta},
		{"heavy tail", 0.2, 2000, 0.2},
		{"moderate tail", 0.08, 2000, 0.08},
		{"lighter than nominal: the floor", 0.02, 2000, nominalBeta},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(3, 4))
			tl := tail{beta: nominalBeta}
			for range tc.peaks {
				peak := base + tc.beta*r.ExpFloat64()
				// An excursion: a rise, its peak, a fall, then calm.
				for _, s := range []float64{base, math.Min(1, peak), base, 0.1} {
					tl.observe(math.Min(1, s), base)
				}
			}
			if got := tl.slope(); math.Abs(got-tc.want) > 0.15*tc.want {
				t.Fatalf("slope %.4f after %d peaks of mean excess %.3f; want %.4f", got, tc.peaks, tc.beta, tc.want)
			}
		})
	}
}

// TestThresholdFollowsMeasuredTail: on incident-free Gaussian noise at 10 s
// the score's excursions thin out more slowly than an exact probability's,
// so the threshold rises above the nominal 0.648 within a day, keeps that
// through a state round trip, and a 5-minute series keeps Options.Threshold
// whatever its tail.
func TestThresholdFollowsMeasuredTail(t *testing.T) {
	vals := series(8640, 17, func(int) float64 { return 50 }, 5)
	d := mustNew(t, Options{})
	runFast(d, vals, 0)
	nominal := 0.5 + math.Log10(30)/logTailScale
	if thr := d.Threshold(); thr <= nominal+0.05 || thr > maxThreshold {
		t.Fatalf("threshold %.3f after a day of Gaussian noise at 10 s; want above the nominal %.3f, at most %.2f", thr, nominal, maxThreshold)
	}
	if r, _ := restore(t, d); r.Threshold() != d.Threshold() {
		t.Fatalf("threshold %.4f after a round trip, %.4f before", r.Threshold(), d.Threshold())
	}
	slow := mustNew(t, Options{})
	runStep(slow, vals, 0, 5*time.Minute)
	if thr := slow.Threshold(); thr != 0.5 || slow.tail.n == 0 {
		t.Fatalf("5-minute series: threshold %.3f after %d excursions; want Options.Threshold and some excursions", thr, slow.tail.n)
	}
}

// TestCPUPinnedAlertsAtOnce: 5.5 hours of steady noise on a 10 s series,
// then cpu pinned at 99% for ten points: the first of them alerts, whatever
// the measured tail did to the threshold.
func TestCPUPinnedAlertsAtOnce(t *testing.T) {
	for seed := uint64(1); seed <= 8; seed++ {
		const calm = 1980 // 5.5 h at 10 s
		vals := series(calm+10, seed, func(int) float64 { return 30 }, 3)
		for i := calm; i < len(vals); i++ {
			vals[i] = 99
		}
		rs := runFast(mustNew(t, Options{}), vals, 0)
		if f := flags(rs[calm:], calm); len(f) == 0 || f[0] != calm {
			t.Fatalf("seed %d: cpu 99%% from %d alerted at %v (score %.3f, threshold %.3f); want the first point",
				seed, calm, f, rs[calm].Score, rs[calm].Threshold)
		}
	}
}
