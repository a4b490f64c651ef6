package pca

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// correlated returns n rows of three columns: a and b move together (b ≈ 2a),
// c is independent noise.
func correlated(n int, seed uint64) [][]float64 {
	r := rand.New(rand.NewPCG(seed, 1))
	rows := make([][]float64, n)
	for i := range rows {
		a := 50 + 10*r.NormFloat64()
		rows[i] = []float64{a, 2*a + 0.5*r.NormFloat64(), 5 + r.NormFloat64()}
	}
	return rows
}

func TestCorrelationBreakCaught(t *testing.T) {
	m, err := Fit(correlated(500, 1))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		row  []float64
		want bool
	}{
		{"typical row", []float64{50, 100, 5}, false},
		{"high but correlated", []float64{65, 130, 5}, false},
		// a=65 and b=70 are each within their training range (a in ~20..80,
		// b in ~40..160), but b should be about 130.
		{"correlation broken", []float64{65, 70, 5}, true},
		{"other direction", []float64{35, 130, 5}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t2, q := m.Stats(tc.row)
			lt, lq := m.Limits()
			got := t2 > lt || q > lq
			if got != tc.want {
				t.Errorf("T²=%g (limit %g) Q=%g (limit %g): over=%v, want %v", t2, lt, q, lq, got, tc.want)
			}
			if tc.want {
				c := m.Contributions(tc.row, nil)
				if c[2] >= c[0] || c[2] >= c[1] {
					t.Errorf("contributions %v: the independent column should contribute least", c)
				}
				sum := c[0] + c[1] + c[2]
				if math.Abs(sum-q) > 1e-9*max(1, q) {
					t.Errorf("contributions sum to %g, Q is %g", sum, q)
				}
			}
		})
	}
	// Each column alone is normal: a one-column model of each sees nothing.
	for j, v := range []float64{65, 70} {
		rows := correlated(500, 1)
		one := make([][]float64, len(rows))
		for i, r := range rows {
			one[i] = []float64{r[j]}
		}
		mj, err := Fit(one)
		if err != nil {
			t.Fatal(err)
		}
		if r := mj.Ratio([]float64{v}); r > 1 {
			t.Errorf("column %d alone at %g: ratio %g, want within the limit", j, v, r)
		}
	}
}

func TestDeterministic(t *testing.T) {
	rows := correlated(300, 7)
	a, err := Fit(rows)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Fit(rows)
	if err != nil {
		t.Fatal(err)
	}
	ba, _ := a.MarshalBinary()
	bb, _ := b.MarshalBinary()
	if !bytes.Equal(ba, bb) {
		t.Fatal("two fits of the same rows differ")
	}
	var c Model
	if err := c.UnmarshalBinary(ba); err != nil {
		t.Fatal(err)
	}
	sa, sc := NewScorer(a, 0), NewScorer(&c, 0)
	for _, r := range correlated(50, 8) {
		if x, y := sa.Score(r), sc.Score(r); x != y {
			t.Fatalf("decoded model scores %+v, original %+v", y, x)
		}
	}
}

func TestFitEdgeCases(t *testing.T) {
	constant := make([][]float64, 50)
	for i := range constant {
		constant[i] = []float64{float64(i % 7), 42, 0}
	}
	tests := []struct {
		name    string
		rows    [][]float64
		wantErr error
	}{
		{"constant columns", constant, nil},
		{"all constant", [][]float64{{1, 2}, {1, 2}, {1, 2}}, nil},
		{"fewer rows than columns", [][]float64{{1, 2, 3}, {4, 5, 6}}, ErrTooFewRows},
		{"one row one column", [][]float64{{1}}, ErrTooFewRows},
		{"no rows", nil, ErrTooFewRows},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Fit(tc.rows)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s := NewScorer(m, 1)
			if r := s.Score(tc.rows[0]); r.IsAnomaly || !finite(r) {
				t.Errorf("a training row scores %+v", r)
			}
			moved := append([]float64(nil), tc.rows[0]...)
			moved[1] += 1 // the constant column changes
			if r := s.Score(moved); !r.IsAnomaly || !finite(r) {
				t.Errorf("a change of a constant column scores %+v, want an anomaly", r)
			}
		})
	}
	if _, err := Fit([][]float64{{1, 2}, {3}}); err == nil {
		t.Error("ragged rows accepted")
	}
	if _, err := Fit([][]float64{{1, math.NaN()}, {3, 4}, {5, 6}}); err == nil {
		t.Error("NaN in training accepted")
	}
}

func finite(r Result) bool {
	for _, v := range []float64{r.T2, r.Q, r.Ratio, r.Score} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return r.Score >= 0 && r.Score <= 1
}

func TestExtremeValuesStayFinite(t *testing.T) {
	extremes := []float64{MaxAbsValue, -MaxAbsValue, 1e-300, 0, math.Inf(1), math.NaN()}
	train := make([][]float64, 40)
	for i := range train {
		train[i] = []float64{extremes[i%4], extremes[(i+1)%4], float64(i), 7}
	}
	for _, rows := range [][][]float64{train, correlated(100, 3)} {
		m, err := Fit(rows)
		if err != nil {
			t.Fatal(err)
		}
		s := NewScorer(m, 3)
		for _, a := range extremes {
			for _, b := range extremes {
				r := s.Score([]float64{a, b, -a, b})
				if !finite(r) {
					t.Fatalf("row (%g,%g): %+v", a, b, r)
				}
				for _, c := range m.Contributions([]float64{a, b, a}, nil) {
					if math.IsNaN(c) || math.IsInf(c, 0) {
						t.Fatalf("row (%g,%g): contribution %g", a, b, c)
					}
				}
			}
		}
	}
}

func TestScoreOf(t *testing.T) {
	tests := []struct{ ratio, want float64 }{{0, 0}, {-1, 0}, {math.NaN(), 0}, {1, 0.5}}
	for _, tc := range tests {
		if got := ScoreOf(tc.ratio); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("ScoreOf(%g) = %g, want %g", tc.ratio, got, tc.want)
		}
	}
	prev := 0.0
	for _, r := range []float64{1e-6, 0.5, 2, 1e6, 1e100, math.MaxFloat64, math.Inf(1)} {
		got := ScoreOf(r)
		if !(got > prev && got < 1) && !(r == math.Inf(1) && got == prev) {
			t.Errorf("ScoreOf(%g) = %g, not rising in (0,1)", r, got)
		}
		prev = got
	}
}

func TestSmoothingIsCausalMean(t *testing.T) {
	m, err := Fit(correlated(200, 5))
	if err != nil {
		t.Fatal(err)
	}
	s := NewScorer(m, 3)
	rows := [][]float64{{50, 100, 5}, {65, 70, 5}, {50, 100, 5}, {50, 100, 5}, {50, 100, 5}}
	var ratios []float64
	for _, r := range rows {
		ratios = append(ratios, m.Ratio(r))
	}
	for i, r := range rows {
		got := s.Score(r).Ratio
		lo := max(0, i-2)
		want := 0.0
		for _, x := range ratios[lo : i+1] {
			want += x / float64(i+1-lo)
		}
		if math.Abs(got-want) > 1e-9*max(1, want) {
			t.Errorf("row %d: smoothed ratio %g, want %g", i, got, want)
		}
	}
}

func TestUnmarshalRefuses(t *testing.T) {
	m, err := Fit(correlated(100, 2))
	if err != nil {
		t.Fatal(err)
	}
	good, _ := m.MarshalBinary()
	set := func(off int, v float64) []byte {
		b := bytes.Clone(good)
		for i := 0; i < 8; i++ {
			b[off+i] = byte(math.Float64bits(v) >> (8 * i))
		}
		return b
	}
	d := m.Columns()
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"bad magic", append([]byte("XXXXXXXX"), good[8:]...)},
		{"truncated", good[:len(good)-1]},
		{"trailing", append(bytes.Clone(good), 0)},
		{"NaN median", set(16, math.NaN())},
		{"zero scale", set(16+8*d, 0)},
		{"zero limit", set(len(good)-8, 0)},
		{"huge loading", set(16+8*(3*d+m.Components()), 2)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var x Model
			if err := x.UnmarshalBinary(tc.b); !errors.Is(err, ErrCorrupt) {
				t.Errorf("err = %v, want ErrCorrupt", err)
			}
		})
	}
}

func BenchmarkScore(b *testing.B) {
	rows := make([][]float64, 400)
	r := rand.New(rand.NewPCG(9, 9))
	for i := range rows {
		rows[i] = make([]float64, 8)
		base := r.NormFloat64()
		for j := range rows[i] {
			rows[i][j] = float64(j)*base + r.NormFloat64()
		}
	}
	m, err := Fit(rows)
	if err != nil {
		b.Fatal(err)
	}
	s := NewScorer(m, 0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.Score(rows[i%len(rows)])
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// TestDriftFactor: rows like the training rows need no widening; rows that
// drifted need it, and the widened model scores them as the original scored
// its training rows (the same median ratio); an incident among the later
// rows, a tenth of them far outside, leaves the factor near 1, so a model
// trained just after an incident is not blinded by it.
func TestDriftFactor(t *testing.T) {
	train := correlated(400, 3)
	m, err := FitQuantile(train, 0.99)
	if err != nil {
		t.Fatal(err)
	}
	drifted := func(n int, by float64) [][]float64 {
		rows := correlated(n, 4)
		for _, r := range rows {
			r[2] += by
		}
		return rows
	}
	incident := correlated(400, 7)
	for _, r := range incident[100:140] {
		r[1] -= 200 // b far off its relation to a: Q hundreds of times its limit
	}
	tests := []struct {
		name     string
		later    [][]float64
		min, max float64
	}{
		{"no rows", nil, 0, 0},
		{"same process", correlated(400, 5), 0.8, 1.25},
		{"same process, 50 rows", correlated(50, 6), 0.6, 1.6},
		{"drifted by 3 sd", drifted(400, 3), 3, math.Inf(1)},
		{"a tenth of the rows an incident", incident, 0.8, 1.4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := m.DriftFactor(tc.later, train)
			if !(f >= tc.min && f <= tc.max) {
				t.Fatalf("factor %g, want within [%g, %g]", f, tc.min, tc.max)
			}
			w := m.Widened(f)
			if f <= 1 {
				if w != m {
					t.Fatalf("factor %g ≤ 1 changed the model", f)
				}
				return
			}
			if got, want := w.medianRatio(tc.later), m.medianRatio(train); math.Abs(got-want) > 1e-9*want {
				t.Fatalf("widened by %g, the later rows' median ratio is %g, the training rows' was %g", f, got, want)
			}
			lt, lq := m.Limits()
			wt, wq := w.Limits()
			if wt != lt*f || wq != lq*f {
				t.Fatalf("limits %g, %g widened by %g to %g, %g", lt, lq, f, wt, wq)
			}
			b, err := w.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			back := &Model{}
			if err := back.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if bt, bq := back.Limits(); bt != wt || bq != wq {
				t.Fatalf("widened limits %g, %g read back as %g, %g", wt, wq, bt, bq)
			}
		})
	}
}
