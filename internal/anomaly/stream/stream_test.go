package stream

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

var t0 = time.Date(2024, 3, 4, 0, 0, 0, 0, time.UTC)

const step = 5 * time.Minute

// series is a deterministic test signal: f(i) plus Gaussian noise.
func series(n int, seed uint64, f func(i int) float64, noise float64) []float64 {
	r := rand.New(rand.NewPCG(seed, 1))
	v := make([]float64, n)
	for i := range v {
		v[i] = f(i) + noise*r.NormFloat64()
	}
	return v
}

func mustNew(t testing.TB, o Options) *Detector {
	t.Helper()
	d, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// restore round-trips d's state through MarshalBinary and UnmarshalBinary,
// as a service restart does, and returns the restored detector and the
// encoded state; the test fails if either step does.
func restore(t testing.TB, d *Detector) (*Detector, []byte) {
	t.Helper()
	b, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var r Detector
	if err := r.UnmarshalBinary(b); err != nil {
		t.Fatalf("state does not decode: %v", err)
	}
	return &r, b
}

func runAll(d *Detector, vals []float64, from int) []Result {
	out := make([]Result, 0, len(vals)-from)
	for i := from; i < len(vals); i++ {
		out = append(out, d.Update(t0.Add(time.Duration(i)*step), vals[i]))
	}
	return out
}

func flags(rs []Result, from int) []int {
	var f []int
	for i, r := range rs {
		if r.IsAnomaly {
			f = append(f, i+from)
		}
	}
	return f
}

func daily(i int) float64 {
	return 50 + 20*math.Sin(2*math.Pi*float64(i)/288)
}

func TestOptionsValidation(t *testing.T) {
	bad := []Options{
		{WarmUp: -1}, {Threshold: 1.5}, {Threshold: -0.1}, {Refractory: -3},
		{History: 5}, {Short: 3000}, {Period: time.Hour},
		{Tuning: &Tuning{TailNu: 0.1}}, {Tuning: &Tuning{Corroboration: 2}}, {Tuning: &Tuning{LevelAlpha: -0.5}},
		{Tuning: &Tuning{LikMin: -1}}, {Tuning: &Tuning{RecurSpan: 100}}, {Tuning: &Tuning{SigmaFloor: math.NaN()}},
	}
	for _, o := range bad {
		if _, err := New(o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("New(%+v) = %v, want ErrInvalidOptions", o, err)
		}
	}
	d := mustNew(t, Options{})
	if got := d.Options(); got.WarmUp != defaultWarmUp || got.Threshold != defaultThreshold || got.Period != 24*time.Hour {
		t.Errorf("defaults not applied: %+v", got)
	}
	if got := *d.Options().Tuning; got != DefaultTuning() {
		t.Errorf("tuning defaults not applied: %+v", got)
	}
	// Spelled-out defaults are the defaults: the same results, one shared copy.
	def := DefaultTuning()
	e := mustNew(t, Options{Tuning: &def})
	if d.Options().Tuning != e.Options().Tuning {
		t.Error("equal tunings are not shared between detectors")
	}
	vals := series(2000, 4, daily, 2)
	if !reflect.DeepEqual(runAll(d, vals, 0), runAll(e, vals, 0)) {
		t.Error("DefaultTuning spelled out scores differently from nil")
	}
	// A changed field changes the model.
	other := DefaultTuning()
	other.Corroboration = 0.1
	vals[1500] += 30
	if reflect.DeepEqual(runAll(mustNew(t, Options{}), vals, 0), runAll(mustNew(t, Options{Tuning: &other}), vals, 0)) {
		t.Error("Corroboration 0.1 scores exactly like the default 0.3")
	}
}

func TestDeterministic(t *testing.T) {
	vals := series(3000, 7, daily, 3)
	vals[2500] += 60
	a := runAll(mustNew(t, Options{}), vals, 0)
	b := runAll(mustNew(t, Options{}), vals, 0)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two detectors fed the same series disagree")
	}
}

// TestCausal: the results for a prefix do not depend on what follows, and
// equal the first rows of the whole run.
func TestCausal(t *testing.T) {
	vals := series(2000, 3, daily, 2)
	vals[1500] -= 50
	whole := runAll(mustNew(t, Options{}), vals, 0)
	for _, n := range []int{1, 151, 1000, 1501} {
		part := runAll(mustNew(t, Options{}), vals[:n], 0)
		if !reflect.DeepEqual(part, whole[:n]) {
			t.Fatalf("prefix of %d points scored differently from the whole run", n)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, o := range []Options{{}, {Period: 7 * 24 * time.Hour}, {NoSeasonality: true, Threshold: 0.4}} {
		vals := series(4000, 11, daily, 2)
		vals[3000] += 80
		whole := runAll(mustNew(t, o), vals, 0)
		d := mustNew(t, o)
		runAll(d, vals[:1777], 0)
		r, b := restore(t, d)
		b2, _ := r.MarshalBinary()
		if !reflect.DeepEqual(b, b2) {
			t.Fatal("marshal(unmarshal(state)) differs from state")
		}
		rest := runAll(r, vals, 1777)
		if !reflect.DeepEqual(rest, whole[1777:]) {
			t.Fatalf("%+v: restored detector diverges from the uninterrupted one", o)
		}
	}
}

func TestUnmarshalRejects(t *testing.T) {
	d := mustNew(t, Options{})
	runAll(d, series(300, 1, daily, 1), 0)
	good, _ := d.MarshalBinary()
	cases := map[string][]byte{
		"empty":     nil,
		"magic":     append([]byte("XXXX"), good[4:]...),
		"version":   append(append([]byte{}, good[:4]...), append([]byte{99}, good[5:]...)...),
		"truncated": good[:len(good)-3],
		"trailing":  append(append([]byte{}, good...), 0),
	}
	// The score tail's peak, mean excess and count close the state's fixed
	// part, just before the profile's length and bins.
	tailAt := len(good) - 4 - len(d.prof)*6 - 20
	for name, patch := range map[string]func(b []byte){
		"tail peak above 1":  func(b []byte) { binary.LittleEndian.PutUint64(b[tailAt:], math.Float64bits(2)) },
		"tail beta NaN":      func(b []byte) { binary.LittleEndian.PutUint64(b[tailAt+8:], math.Float64bits(math.NaN())) },
		"tail count too big": func(b []byte) { binary.LittleEndian.PutUint32(b[tailAt+16:], tailPeaks+1) },
	} {
		b := append([]byte{}, good...)
		patch(b)
		cases[name] = b
	}
	for name, b := range cases {
		before, _ := d.MarshalBinary()
		if err := d.UnmarshalBinary(b); !errors.Is(err, ErrBadState) {
			t.Errorf("%s: err = %v, want ErrBadState", name, err)
		}
		after, _ := d.MarshalBinary()
		if !reflect.DeepEqual(before, after) {
			t.Errorf("%s: failed decode changed the detector", name)
		}
	}
}

func TestWarmUp(t *testing.T) {
	d := mustNew(t, Options{WarmUp: 200})
	vals := series(400, 5, func(int) float64 { return 10 }, 1)
	vals[50] = 1000 // an outlier during warm-up is not reported
	for i, r := range runAll(d, vals, 0) {
		if w := i < 199; r.Warming != w {
			t.Fatalf("point %d: Warming = %v, want %v", i, r.Warming, w)
		}
		if r.Warming && (r.Score != 0 || r.IsAnomaly) {
			t.Fatalf("point %d: warming result %+v carries a score", i, r)
		}
	}
}

// TestLevelShift: a lasting step is flagged once, near its start, and the
// new level is then accepted.
func TestLevelShift(t *testing.T) {
	const at = 2000
	vals := series(4000, 9, func(i int) float64 {
		if i >= at {
			return 40
		}
		return 10
	}, 1)
	rs := runAll(mustNew(t, Options{NoSeasonality: true}), vals, 0)
	f := flags(rs, 0)
	var after []int
	for _, i := range f {
		if i >= at {
			after = append(after, i)
		}
	}
	if len(after) != 1 || after[0] > at+5 {
		t.Fatalf("flags after the shift at %d: %v, want exactly one within 5 points", at, after)
	}
	if r := rs[at+len(rs[at:])/2]; r.Score > 0.2 {
		t.Errorf("long after the shift the score is still %.3f", r.Score)
	}
	if len(rs[after[0]].Reasons) == 0 {
		t.Error("the flag carries no reason")
	}
}

// TestSeasonalSpike: a daily cycle is learned (its regular swings are not
// flagged once learned; the calibration tolerates an odd stretch of noise, so
// at most one false flag in ten days of 5-minute points) and a spike in it is
// flagged with a reason.
func TestSeasonalSpike(t *testing.T) {
	const spike = 288*9 + 100
	vals := series(288*12, 21, daily, 1.5)
	vals[spike] += 25
	rs := runAll(mustNew(t, Options{}), vals, 0)
	f := flags(rs, 0)
	found, falseFlags := false, 0
	for _, i := range f {
		switch {
		case i >= spike && i <= spike+2:
			found = true
		case i > 288*2:
			falseFlags++
			t.Logf("false flag at %d (%.1f): %+v", i, vals[i], rs[i].Reasons)
		}
	}
	if falseFlags > 1 {
		t.Errorf("%d false flags on a clean daily cycle", falseFlags)
	}
	if !found {
		t.Fatalf("spike at %d not flagged; flags %v, score there %.3f", spike, f, rs[spike].Score)
	}
	if len(rs[spike].Reasons) == 0 {
		t.Error("spike flag has no reason")
	}
}

// TestSeasonalViewLearns: a series that follows its daily profile, then
// skips a day's rise, is caught by the seasonal view.
func TestSeasonalViewLearns(t *testing.T) {
	vals := series(288*10, 4, daily, 1)
	for i := 288 * 8; i < 288*8+144; i++ {
		vals[i] = 50 + 1*math.Sin(float64(i)) // the rise does not come
	}
	rs := runAll(mustNew(t, Options{}), vals, 0)
	best := 0.0
	for _, r := range rs[288*8 : 288*8+144] {
		best = math.Max(best, r.Views[ViewSeasonal])
	}
	if best < 0.5 {
		t.Fatalf("seasonal view peaked at %.3f on a missing daily rise", best)
	}
}

func TestNonFiniteAndOutOfRangeIgnored(t *testing.T) {
	d := mustNew(t, Options{})
	runAll(d, series(300, 2, daily, 1), 0)
	before, _ := d.MarshalBinary()
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), math.MaxFloat64, -1.23e38, math.Nextafter(MaxAbsValue, math.Inf(1))} {
		if r := d.Update(t0, v); r.Score != 0 || r.IsAnomaly {
			t.Errorf("Update(%v) = %+v", v, r)
		}
	}
	after, _ := d.MarshalBinary()
	if !reflect.DeepEqual(before, after) {
		t.Error("a non-finite value changed the state")
	}
}

func TestScoreRangeAndViews(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	d := mustNew(t, Options{})
	for i := 0; i < 20000; i++ {
		v := r.ExpFloat64() * 100
		if i%997 == 0 {
			v = -1e9
		}
		res := d.Update(t0.Add(time.Duration(i)*time.Minute), v)
		if !(res.Score >= 0 && res.Score <= 1) {
			t.Fatalf("score %v out of [0,1] at %d", res.Score, i)
		}
		for _, why := range res.Reasons {
			if why.View.String() == "unknown" {
				t.Fatalf("reason with unknown view %d", why.View)
			}
		}
	}
}

func BenchmarkUpdate(b *testing.B) {
	vals := series(1<<14, 1, daily, 2)
	d := mustNew(b, Options{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d.Update(t0.Add(time.Duration(i)*step), vals[i&(1<<14-1)])
	}
	b.StopTimer()
	state, _ := d.MarshalBinary()
	b.ReportMetric(float64(d.MemBytes()), "bytes/series")
	b.ReportMetric(float64(len(state)), "state-bytes")
}

func TestMemBytes(t *testing.T) {
	d := mustNew(t, Options{})
	if n := d.MemBytes(); n > 2500 {
		t.Errorf("a daily detector takes %d bytes; it should stay under 2.5 KB", n)
	}
	t.Logf("bytes/series: daily %d", d.MemBytes())
	w := mustNew(t, Options{Period: 7 * 24 * time.Hour})
	t.Logf("bytes/series: weekly %d", w.MemBytes())
}

// TestExtremeValuesStayFinite feeds values at ±MaxAbsValue, alone and mixed
// with ordinary history: every score is finite and in [0,1], and the state
// still round-trips (nothing in it became NaN or Inf).
func TestExtremeValuesStayFinite(t *testing.T) {
	for _, warm := range []int{0, 500} {
		d := mustNew(t, Options{WarmUp: 30})
		vals := series(warm, 3, daily, 1)
		for i := range 400 {
			v := []float64{MaxAbsValue, -MaxAbsValue, 1e-300, 0, 50}[i%5]
			if i%3 == 0 {
				v = -v
			}
			vals = append(vals, v)
		}
		for i, r := range runAll(d, vals, 0) {
			if math.IsNaN(r.Score) || r.Score < 0 || r.Score > 1 {
				t.Fatalf("warm %d, point %d (%v): score %v", warm, i, vals[i], r.Score)
			}
			for _, rs := range r.Reasons {
				if math.IsNaN(rs.Expected) || math.IsInf(rs.Expected, 0) || math.IsNaN(rs.Observed) || math.IsInf(rs.Observed, 0) {
					t.Fatalf("warm %d, point %d: reason %+v", warm, i, rs)
				}
			}
		}
		restore(t, d) // the state after extreme values still decodes
		if r := d.Update(t0, 50); math.IsNaN(r.Score) {
			t.Fatal("ordinary value after extremes scored NaN")
		}
	}
}

// TestCloneIsIndependent: updating a clone leaves the original's state as
// it was, and the clone continues exactly as the original would.
func TestCloneIsIndependent(t *testing.T) {
	d := mustNew(t, Options{})
	vals := series(600, 4, daily, 1)
	runAll(d, vals[:500], 0)
	before, _ := d.MarshalBinary()
	c := d.Clone()
	got := runAll(c, vals, 500)
	after, _ := d.MarshalBinary()
	if !reflect.DeepEqual(before, after) {
		t.Fatal("updating the clone changed the original")
	}
	want := runAll(d, vals, 500)
	if !reflect.DeepEqual(got, want) {
		t.Fatal("the clone scored differently from the original")
	}
}
