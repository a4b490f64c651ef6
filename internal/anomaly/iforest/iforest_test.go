package iforest

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"testing"
)

// gaussian returns n rows of cols correlated normal values around 50, the
// shape of a host's metrics on a quiet day.
func gaussian(rng *rand.Rand, n, cols int) [][]float64 {
	rows := make([][]float64, n)
	for i := range rows {
		common := rng.NormFloat64()
		r := make([]float64, cols)
		for j := range r {
			r[j] = 50 + 5*common + 2*rng.NormFloat64() + float64(j)
		}
		rows[i] = r
	}
	return rows
}

func flatten(rows [][]float64) []float64 {
	var m []float64
	for _, r := range rows {
		m = append(m, r...)
	}
	return m
}

func mustFit(t testing.TB, rows [][]float64, opts Options) *Forest {
	t.Helper()
	f, err := Fit(rows, opts)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestAveragePathLength(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want float64
	}{
		{-1, 0},
		{0, 0},
		{1, 0},
		{2, 1},
		{3, 1.207392357589623},
		{4, 1.8516559071392855},
		{10, 3.748880484475505},
		{256, 10.244770920119917},
		{100000, 22.180282259643523},
	} {
		if got := AveragePathLength(tc.n); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("c(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
}

func TestShape(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name      string
		rows      int
		opts      Options
		trees     int
		psi       int
		depth     int
		maxFeatOK bool
	}{
		{"defaults", 1000, Options{}, 100, 256, 8, true},
		{"sample clamped to rows", 100, Options{}, 100, 100, 7, true},
		{"two rows", 2, Options{Trees: 3}, 3, 2, 1, true},
		{"trees not a multiple of lanes", 500, Options{Trees: 7, SampleSize: 64}, 7, 64, 6, true},
		{"sample not a power of two", 500, Options{Trees: 10, SampleSize: 300}, 10, 300, 9, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := mustFit(t, gaussian(rng, tc.rows, 3), tc.opts)
			if f.NumTrees() != tc.trees || f.SampleSize() != tc.psi || f.MaxDepth() != tc.depth || f.NumFeatures() != 3 || f.TrainingRows() != tc.rows {
				t.Errorf("trees %d psi %d depth %d features %d rows %d; want %d %d %d 3 %d",
					f.NumTrees(), f.SampleSize(), f.MaxDepth(), f.NumFeatures(), f.TrainingRows(), tc.trees, tc.psi, tc.depth, tc.rows)
			}
			for _, r := range gaussian(rng, 20, 3) {
				if s := f.Score(r); !(s > 0 && s <= 1) {
					t.Errorf("score %v outside (0, 1]", s)
				}
			}
		})
	}
}

func TestDeterminism(t *testing.T) {
	rows := gaussian(rand.New(rand.NewPCG(3, 4)), 2000, 5)
	probe := gaussian(rand.New(rand.NewPCG(5, 6)), 200, 5)
	fitAt := func(procs int, seed uint64) ([]byte, []float64) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		f := mustFit(t, rows, Options{Seed: seed})
		blob, err := f.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		out := make([]float64, len(probe))
		if err := f.ScoreBatch(probe, out); err != nil {
			t.Fatal(err)
		}
		return blob, out
	}
	blob1, scores1 := fitAt(1, 42)
	for _, tc := range []struct {
		name  string
		procs int
		seed  uint64
		same  bool
	}{
		{"same seed", 1, 42, true},
		{"same seed, more goroutines", 4, 42, true},
		{"other seed", 1, 43, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blob, scores := fitAt(tc.procs, tc.seed)
			if got := bytes.Equal(blob, blob1) && slices.Equal(scores, scores1); got != tc.same {
				t.Errorf("identical forests and scores: %v, want %v", got, tc.same)
			}
		})
	}
}

func TestOutliersScoreHigher(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	f := mustFit(t, gaussian(rng, 2000, 4), Options{Seed: 1})
	inliers := gaussian(rng, 500, 4)
	in := make([]float64, len(inliers))
	if err := f.ScoreBatch(inliers, in); err != nil {
		t.Fatal(err)
	}
	slices.Sort(in)
	median, p99 := in[len(in)/2], in[len(in)*99/100]
	if median > 0.5 {
		t.Errorf("median inlier score %v, want below 0.5", median)
	}
	// A row far out in one metric but central in the others isolates only as
	// fast as the most extreme training rows of that metric (splits are axis
	// parallel); scikit-learn scores it 0.55 on this data, so it is only
	// required to beat the typical inlier.
	for _, tc := range []struct {
		name string
		row  []float64
		beat float64
	}{
		{"far in one metric", []float64{50, 51, 152, 53}, median},
		{"far below in all", []float64{-50, -49, -48, -47}, p99},
		{"breaks the correlation", []float64{30, 71, 30, 73}, p99},
		{"just outside the range", []float64{85, 86, 87, 88}, p99},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s := f.Score(tc.row); s <= tc.beat {
				t.Errorf("score %v, want above %v (inliers: median %v, 99th percentile %v)", s, tc.beat, median, p99)
			}
		})
	}
}

func TestBatchEqualsScore(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	f := mustFit(t, gaussian(rng, 3000, 6), Options{Trees: 37, Seed: 2})
	// Sizes around the block and walker widths, and one large enough for
	// several goroutines.
	for _, n := range []int{0, 1, 2, 3, 4, 47, 48, 49, 97, 1000} {
		rows := gaussian(rng, n, 6)
		batch := make([]float64, n)
		matrix := make([]float64, n)
		if err := f.ScoreBatch(rows, batch); err != nil {
			t.Fatal(err)
		}
		if err := f.ScoreMatrix(flatten(rows), matrix); err != nil {
			t.Fatal(err)
		}
		for i, r := range rows {
			if s := f.Score(r); s != batch[i] || s != matrix[i] {
				t.Fatalf("n=%d row %d: Score %v, ScoreBatch %v, ScoreMatrix %v", n, i, s, batch[i], matrix[i])
			}
		}
	}
}

func TestMaxFeatures(t *testing.T) {
	f := mustFit(t, gaussian(rand.New(rand.NewPCG(11, 12)), 500, 6), Options{Trees: 20, MaxFeatures: 1})
	stride := 1 << f.depth
	for tr := range f.trees {
		used := map[uint16]bool{}
		for i := range stride - 1 {
			if !math.IsInf(f.thr[tr*stride+i], 1) {
				used[f.feat[tr*stride+i]] = true
			}
		}
		if len(used) != 1 {
			t.Errorf("tree %d splits on %d features, want 1", tr, len(used))
		}
	}
}

func TestConstantData(t *testing.T) {
	rows := make([][]float64, 50)
	for i := range rows {
		rows[i] = []float64{1, 2, 3}
	}
	f := mustFit(t, rows, Options{})
	for _, r := range [][]float64{{1, 2, 3}, {100, -5, 0}} {
		if s := f.Score(r); math.Abs(s-0.5) > 1e-12 {
			t.Errorf("score %v on constant training data, want 0.5", s)
		}
		out := make([]float64, 3)
		if err := f.Explain(r, out); err != nil || slices.ContainsFunc(out, func(v float64) bool { return v != 0 }) {
			t.Errorf("explain = %v, %v; want zeros", out, err)
		}
	}
}

func TestExplain(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	f := mustFit(t, gaussian(rng, 2000, 5), Options{Seed: 3})
	for col := range 5 {
		row := []float64{50, 51, 52, 53, 54}
		row[col] += 60
		out := make([]float64, 5)
		if err := f.Explain(row, out); err != nil {
			t.Fatal(err)
		}
		sum := 0.0
		for _, v := range out {
			sum += v
		}
		if math.Abs(sum-1) > 1e-9 {
			t.Errorf("shares sum to %v", sum)
		}
		if top := slices.Index(out, slices.Max(out)); top != col {
			t.Errorf("outlier in column %d: shares %.3f, top column %d", col, out, top)
		}
	}
}

func TestNoAllocation(t *testing.T) {
	f := mustFit(t, gaussian(rand.New(rand.NewPCG(15, 16)), 500, 4), Options{})
	row := []float64{50, 51, 52, 53}
	out := make([]float64, 4)
	var sink float64
	if n := testing.AllocsPerRun(100, func() { sink += f.Score(row) }); n != 0 {
		t.Errorf("Score allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = f.Explain(row, out) }); n != 0 {
		t.Errorf("Explain allocates %v times", n)
	}
	if math.IsNaN(sink) {
		t.Fatal("NaN")
	}
}

func TestBadInput(t *testing.T) {
	good := gaussian(rand.New(rand.NewPCG(17, 18)), 10, 3)
	with := func(i, j int, v float64) [][]float64 {
		rows := make([][]float64, len(good))
		for k := range good {
			rows[k] = slices.Clone(good[k])
		}
		rows[i][j] = v
		return rows
	}
	for _, tc := range []struct {
		name string
		rows [][]float64
		opts Options
		want error
	}{
		{"no rows", nil, Options{}, ErrTooFewRows},
		{"one row", good[:1], Options{}, ErrTooFewRows},
		{"ragged", append(slices.Clone(good), []float64{1, 2}), Options{}, ErrRagged},
		{"empty rows", [][]float64{{}, {}}, Options{}, ErrRagged},
		{"NaN", with(3, 1, math.NaN()), Options{}, ErrNonFinite},
		{"+Inf", with(0, 0, math.Inf(1)), Options{}, ErrNonFinite},
		{"-Inf", with(9, 2, math.Inf(-1)), Options{}, ErrNonFinite},
		{"negative trees", good, Options{Trees: -1}, ErrOptions},
		{"too many trees", good, Options{Trees: MaxTrees + 1}, ErrOptions},
		{"sample size 1", good, Options{SampleSize: 1}, ErrOptions},
		{"sample size too large", good, Options{SampleSize: MaxSampleSize + 1}, ErrOptions},
		{"max features above width", good, Options{MaxFeatures: 4}, ErrOptions},
		{"negative max features", good, Options{MaxFeatures: -1}, ErrOptions},
	} {
		t.Run("fit "+tc.name, func(t *testing.T) {
			if _, err := Fit(tc.rows, tc.opts); !errors.Is(err, tc.want) {
				t.Errorf("Fit: %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("fit matrix not a multiple of cols", func(t *testing.T) {
		if _, err := FitMatrix(make([]float64, 10), 3, Options{}); !errors.Is(err, ErrRagged) {
			t.Errorf("FitMatrix: %v", err)
		}
		if _, err := FitMatrix(make([]float64, 10), 0, Options{}); !errors.Is(err, ErrRagged) {
			t.Errorf("FitMatrix 0 cols: %v", err)
		}
	})

	f := mustFit(t, good, Options{Trees: 5})
	for _, tc := range []struct {
		name string
		rows [][]float64
		out  int
		want error
	}{
		{"short row", [][]float64{{1, 2, 3}, {1, 2}}, 2, ErrRagged},
		{"long row", [][]float64{{1, 2, 3, 4}}, 1, ErrRagged},
		{"output length", [][]float64{{1, 2, 3}}, 2, ErrRagged},
		{"NaN", [][]float64{{1, 2, 3}, {1, math.NaN(), 3}}, 2, ErrNonFinite},
		{"Inf", [][]float64{{math.Inf(-1), 2, 3}}, 1, ErrNonFinite},
	} {
		t.Run("score "+tc.name, func(t *testing.T) {
			if err := f.ScoreBatch(tc.rows, make([]float64, tc.out)); !errors.Is(err, tc.want) {
				t.Errorf("ScoreBatch: %v, want %v", err, tc.want)
			}
			if len(tc.rows) == tc.out {
				if err := f.ScoreMatrix(flatten(tc.rows), make([]float64, tc.out)); !errors.Is(err, tc.want) {
					t.Errorf("ScoreMatrix: %v, want %v", err, tc.want)
				}
			}
		})
	}
	for _, tc := range []struct {
		name string
		row  []float64
		want error
	}{
		{"short", []float64{1, 2}, ErrRagged},
		{"long", []float64{1, 2, 3, 4}, ErrRagged},
		{"NaN", []float64{1, math.NaN(), 3}, ErrNonFinite},
		{"Inf", []float64{1, 2, math.Inf(1)}, ErrNonFinite},
	} {
		t.Run("row "+tc.name, func(t *testing.T) {
			if s := f.Score(tc.row); !math.IsNaN(s) {
				t.Errorf("Score = %v, want NaN", s)
			}
			if err := f.CheckRow(tc.row); !errors.Is(err, tc.want) {
				t.Errorf("CheckRow: %v, want %v", err, tc.want)
			}
			if err := f.Explain(tc.row, make([]float64, 3)); !errors.Is(err, tc.want) {
				t.Errorf("Explain: %v, want %v", err, tc.want)
			}
		})
	}
	if err := f.Explain([]float64{1, 2, 3}, make([]float64, 2)); !errors.Is(err, ErrRagged) {
		t.Errorf("Explain with short output: %v", err)
	}
}

func TestSyntheticAUC(t *testing.T) {
	// Two thousand samples of a correlated 6-metric host, 3% of them shifted
	// by a random offset of about two standard deviations: an easier cousin
	// of the scikit-learn comparison data, small enough for every test run.
	rng := rand.New(rand.NewPCG(19, 20))
	const n, cols = 4000, 6
	rows := gaussian(rng, n, cols)
	labels := make([]int, n)
	for i := range rows {
		if rng.Float64() < 0.03 {
			labels[i] = 1
			for j := range rows[i] {
				rows[i][j] += 12 * rng.NormFloat64()
			}
		}
	}
	f := mustFit(t, rows[:n/2], Options{Seed: 4})
	scores := make([]float64, n)
	if err := f.ScoreBatch(rows, scores); err != nil {
		t.Fatal(err)
	}
	if auc := rocAUC(scores, labels); auc < 0.85 {
		t.Errorf("AUC %.4f, want at least 0.85", auc)
	} else {
		t.Logf("AUC %.4f", auc)
	}
}

func TestRocAUC(t *testing.T) {
	for _, tc := range []struct {
		scores []float64
		labels []int
		want   float64
	}{
		{[]float64{0.1, 0.2, 0.8, 0.9}, []int{0, 0, 1, 1}, 1},
		{[]float64{0.9, 0.8, 0.2, 0.1}, []int{0, 0, 1, 1}, 0},
		{[]float64{0.5, 0.5, 0.5, 0.5}, []int{0, 1, 0, 1}, 0.5},
		{[]float64{0.1, 0.4, 0.35, 0.8}, []int{0, 0, 1, 1}, 0.75},
	} {
		if got := rocAUC(tc.scores, tc.labels); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("rocAUC(%v, %v) = %v, want %v", tc.scores, tc.labels, got, tc.want)
		}
	}
}

func TestConcurrentScoring(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	f := mustFit(t, gaussian(rng, 1000, 4), Options{})
	rows := gaussian(rng, 500, 4)
	want := make([]float64, len(rows))
	if err := f.ScoreBatch(rows, want); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			got := make([]float64, len(rows))
			if err := f.ScoreBatch(rows, got); err != nil {
				errs <- err
				return
			}
			for i, r := range rows {
				if got[i] != want[i] || f.Score(r) != want[i] {
					errs <- errors.New("concurrent scores differ")
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func BenchmarkFit(b *testing.B) {
	rows := gaussian(rand.New(rand.NewPCG(27, 28)), 100000, 8)
	m := flatten(rows)
	for b.Loop() {
		if _, err := FitMatrix(m, 8, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkScore(b *testing.B) {
	rng := rand.New(rand.NewPCG(29, 30))
	f := mustFit(b, gaussian(rng, 10000, 8), Options{})
	rows := gaussian(rng, 1024, 8)
	b.ReportAllocs()
	var sink float64
	i := 0
	for b.Loop() {
		sink += f.Score(rows[i%len(rows)])
		i++
	}
	if math.IsNaN(sink) {
		b.Fatal("NaN")
	}
}

func BenchmarkScoreBatch(b *testing.B) {
	rng := rand.New(rand.NewPCG(31, 32))
	f := mustFit(b, gaussian(rng, 10000, 8), Options{})
	for _, n := range []int{100, 100000} {
		rows := gaussian(rng, n, 8)
		out := make([]float64, n)
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			for b.Loop() {
				if err := f.ScoreBatch(rows, out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

func BenchmarkExplain(b *testing.B) {
	rng := rand.New(rand.NewPCG(33, 34))
	f := mustFit(b, gaussian(rng, 10000, 8), Options{})
	row := gaussian(rng, 1, 8)[0]
	out := make([]float64, 8)
	for b.Loop() {
		if err := f.Explain(row, out); err != nil {
			b.Fatal(err)
		}
	}
}
