package main

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestQuietFleetShortRun runs one fixed-seed day of every quiet series. The
// alert rate is logged, not asserted against the goal (≤ 0.1 per
// series-day): this harness measures the detector, it does not grade it.
func TestQuietFleetShortRun(t *testing.T) {
	a, err := QuietFleet(1, 7)
	if err != nil {
		t.Fatal(err)
	}
	b, err := QuietFleet(1, 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(quietKinds()) {
		t.Fatalf("%d rows, want %d", len(a), len(quietKinds()))
	}
	for i, r := range a {
		if r != b[i] {
			t.Errorf("%s: %+v then %+v with the same seed", r.Name, r, b[i])
		}
		if r.Points != 8640 {
			t.Errorf("%s: %d points in a day at 10 s, want 8640", r.Name, r.Points)
		}
		if r.Name == "constant" && r.Alerts != 0 {
			t.Errorf("constant series raised %d alerts", r.Alerts)
		}
		t.Logf("%-24s alerts %3d  per series-day %.2f  max score %.3f", r.Name, r.Alerts, r.PerDay(), r.MaxScore)
	}
	var out strings.Builder
	printQuiet(&out, a, 1)
	if !strings.Contains(out.String(), "| **all** | 60480 |") {
		t.Errorf("table lacks the total row:\n%s", out.String())
	}
}

// TestQuietGenerators checks that each kind is what its name says.
func TestQuietGenerators(t *testing.T) {
	kinds := map[string]QuietSeries{}
	for _, k := range quietKinds() {
		kinds[k.Name] = k
	}
	sample := func(name string, n int) []float64 {
		k, ok := kinds[name]
		if !ok {
			t.Fatalf("no quiet series %q", name)
		}
		r := rand.New(rand.NewPCG(1, 2))
		v := make([]float64, n)
		for i := range v {
			v[i] = k.gen(r, i)
		}
		return v
	}
	for _, v := range sample("percentage, integer", 5000) {
		if v != math.Round(v) || v < 0 || v > 100 {
			t.Fatalf("percentage value %v", v)
		}
	}
	var mean float64
	for _, v := range sample("counts (Poisson 4)", 20000) {
		if v != math.Round(v) || v < 0 {
			t.Fatalf("count value %v", v)
		}
		mean += v / 20000
	}
	if math.Abs(mean-4) > 0.1 {
		t.Errorf("Poisson mean %.3f, want 4", mean)
	}
	// Heavy tail: beyond 5 scale units far more often than a Gaussian would be.
	far := 0
	for _, v := range sample("student-t (3 dof)", 20000) {
		if math.Abs(v-50) > 10 {
			far++
		}
	}
	if far < 50 {
		t.Errorf("student-t: %d of 20000 beyond 5 scales, want a heavy tail (expected about 150)", far)
	}
	drift := sample("slow drift (+30 a week)", 60480)
	if d := drift[60479] - drift[0]; d < 20 || d > 40 {
		t.Errorf("drift over a week %.1f, want about 30", d)
	}
}
