package pca

// Fit fits a model with limits at LimitQuantile.
func Fit(rows [][]float64) (*Model, error) { return FitQuantile(rows, LimitQuantile) }

// Result is one scored row.
type Result struct {
	// T2 and Q are the row's own statistics (not smoothed).
	T2, Q float64
	// Ratio is the mean over the smoothing window of max(T²/limit, Q/limit).
	Ratio float64
	// Score is ScoreOf(Ratio): 0.5 at the limit.
	Score float64
	// IsAnomaly is Ratio > 1, the smoothed statistic past a limit.
	IsAnomaly bool
}

// Scorer scores rows in arrival order with a causal mean of the limit ratio
// over the last few rows. It is owned by one goroutine.
type Scorer struct {
	m      *Model
	ring   []float64
	next   int
	filled int
	buf    []float64
}

// NewScorer returns a scorer over m smoothing over window rows (DefaultWindow
// when window < 1).
func NewScorer(m *Model, window int) *Scorer {
	if window < 1 {
		window = DefaultWindow
	}
	return &Scorer{m: m, ring: make([]float64, window), buf: make([]float64, m.d+m.k)}
}

// Score scores the next row. It allocates nothing.
func (s *Scorer) Score(row []float64) Result {
	t2, q := s.m.stats(row, s.buf, nil)
	r := max(t2/s.m.limT2, q/s.m.limQ)
	s.ring[s.next] = r
	s.next = (s.next + 1) % len(s.ring)
	if s.filled < len(s.ring) {
		s.filled++
	}
	// Recomputed rather than kept as a running sum: ratios span many decades
	// and a running sum would lose the small ones after a huge one left.
	sum := 0.0
	for i := 0; i < s.filled; i++ {
		sum += s.ring[i] / float64(s.filled)
	}
	return Result{T2: t2, Q: q, Ratio: sum, Score: ScoreOf(sum), IsAnomaly: sum > 1}
}
