// Package pca is a multivariate anomaly model fitted on rows taken as normal:
// robust scaling per column, principal components of the scaled training rows,
// Hotelling's T² inside the retained subspace and the squared prediction error
// Q outside it, with control limits taken from the training rows themselves.
//
// T² catches a row that moves far along the directions the training rows
// varied in; Q catches a row that leaves the subspace, which is what a broken
// correlation does even when every column stays inside its own range (the case
// an axis-parallel model such as an Isolation Forest misses).
//
// A fitted Model is immutable and safe for concurrent use; a Scorer adds the
// short causal smoothing and is owned by one goroutine.
package pca

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat/distuv"
)

// Rules of the model. None was chosen by looking at evaluation scores.
const (
	// VarianceShare is the share of the scaled training variance the retained
	// components explain: the usual chemometrics choice (90–95%); what is left
	// is treated as noise and measured by Q.
	VarianceShare = 0.95
	// LimitQuantile is the training quantile of T² and Q taken as the control
	// limit by Fit: about one training row in a hundred sits above it.
	// FitQuantile takes another (the service passes 1 - its contamination, so
	// every model it compares aims at the same false-alarm share).
	LimitQuantile = 0.99
	// minEmpiricalRows is the training size from which the LimitQuantile
	// order statistic is not simply the maximum (1/(1-0.99)). Below it the
	// limit is the larger of the training maximum and the textbook
	// approximation (χ² for T², Box's scaled χ² for Q), so a tiny training
	// set does not give a limit every new row exceeds.
	minEmpiricalRows = 100
	// DefaultWindow is the causal smoothing window in rows: single-row
	// exceedances on 1 s sensor data are mostly noise, a fault lasts longer.
	DefaultWindow = 5
	// MaxColumns bounds the model size (and what UnmarshalBinary accepts).
	MaxColumns = 1024
	// MaxAbsValue is the largest magnitude a column value is taken at; larger
	// values are clamped, NaN is taken as the column's median. It equals
	// stream.MaxAbsValue, so both models accept the same inputs.
	MaxAbsValue = 1e30

	// scaleFloorRel keeps a constant training column from dividing by zero:
	// its spread is taken as a billionth of its magnitude (at least 1e-9), so
	// any later change of it is far outside the limits, as it should be.
	scaleFloorRel = 1e-9
	// eigFloorRel is the smallest eigenvalue kept, relative to the largest;
	// smaller ones are numerical noise and would blow T² up.
	eigFloorRel = 1e-12
	// eigFloorAbs and limitFloor are absolute floors in scaled units (one
	// spread is 1): far below any variation that matters.
	eigFloorAbs = 1e-12
	limitFloor  = 1e-6
	// maxState bounds every stored quantity UnmarshalBinary accepts; with it
	// and the floors above, T² and Q stay finite for any input.
	maxState = 1e100
)

// ErrTooFewRows is returned by Fit when there are fewer training rows than
// columns (or fewer than two): the covariance would be singular by
// construction and the limits meaningless.
var ErrTooFewRows = errors.New("pca: fewer training rows than columns")

// Model is a fitted PCA model.
type Model struct {
	d, k   int
	median []float64 // per column, raw units
	scale  []float64 // per column, raw units per scaled unit (> 0)
	mean   []float64 // per column, scaled units
	eig    []float64 // retained eigenvalues, descending
	comp   []float64 // d×k row-major: comp[j*k+c] is column j's loading on component c
	limT2  float64
	limQ   float64
}

// FitQuantile fits a model on rows (each of the same length, the columns),
// all taken as normal, with the control limits at the q-quantile of the
// training statistics (q in [0.5, 1)). It copies what it keeps.
func FitQuantile(rows [][]float64, q float64) (*Model, error) {
	if !(q >= 0.5 && q < 1) {
		return nil, fmt.Errorf("pca: limit quantile %v not in [0.5, 1)", q)
	}
	n := len(rows)
	if n == 0 {
		return nil, fmt.Errorf("%w: no rows", ErrTooFewRows)
	}
	d := len(rows[0])
	if d == 0 {
		return nil, errors.New("pca: rows have no columns")
	}
	if d > MaxColumns {
		return nil, fmt.Errorf("pca: %d columns, at most %d", d, MaxColumns)
	}
	for i, r := range rows {
		if len(r) != d {
			return nil, fmt.Errorf("pca: row %d has %d columns, row 0 has %d", i, len(r), d)
		}
		for j, v := range r {
			if math.IsNaN(v) {
				return nil, fmt.Errorf("pca: row %d, column %d: NaN in training rows", i, j)
			}
		}
	}
	if n < d || n < 2 {
		return nil, fmt.Errorf("%w: %d rows, %d columns", ErrTooFewRows, n, d)
	}
	m := &Model{d: d, median: make([]float64, d), scale: make([]float64, d), mean: make([]float64, d)}
	col := make([]float64, n)
	for j := 0; j < d; j++ {
		for i, r := range rows {
			col[i] = clampValue(r[j], 0)
		}
		m.median[j], m.scale[j] = robustScale(col)
	}
	z := mat.NewDense(n, d, nil)
	for i, r := range rows {
		for j := 0; j < d; j++ {
			v := (clampValue(r[j], m.median[j]) - m.median[j]) / m.scale[j]
			z.Set(i, j, v)
			m.mean[j] += v / float64(n)
		}
	}
	for i := 0; i < n; i++ {
		for j := 0; j < d; j++ {
			z.Set(i, j, z.At(i, j)-m.mean[j])
		}
	}
	cov := mat.NewSymDense(d, nil)
	cov.SymOuterK(1/float64(n-1), z.T())
	var es mat.EigenSym
	if !es.Factorize(cov, true) {
		return nil, errors.New("pca: eigen decomposition did not converge")
	}
	vals := es.Values(nil) // ascending
	var vecs mat.Dense
	es.VectorsTo(&vecs)
	order := make([]int, d)
	for i := range order {
		order[i] = d - 1 - i
	}
	total := 0.0
	for _, v := range vals {
		total += max(v, 0)
	}
	k := 0
	if total > 0 {
		floor := max(eigFloorRel*vals[d-1], eigFloorAbs)
		cum := 0.0
		for _, idx := range order {
			if cum >= VarianceShare*total || vals[idx] < floor {
				break
			}
			cum += vals[idx]
			k++
		}
		// Keep a residual subspace whenever there is more than one column:
		// without it Q is always zero and correlation breaks go unseen.
		if d > 1 && k == d {
			k = d - 1
		}
	}
	m.k = k
	m.eig = make([]float64, k)
	m.comp = make([]float64, d*k)
	for c := 0; c < k; c++ {
		idx := order[c]
		m.eig[c] = vals[idx]
		// Fix each vector's sign (largest entry positive) so two fits of the
		// same rows give the same bytes whatever the solver's choice.
		big := 0
		for j := 0; j < d; j++ {
			if math.Abs(vecs.At(j, idx)) > math.Abs(vecs.At(big, idx)) {
				big = j
			}
		}
		sign := 1.0
		if vecs.At(big, idx) < 0 {
			sign = -1
		}
		for j := 0; j < d; j++ {
			m.comp[j*k+c] = sign * vecs.At(j, idx)
		}
	}
	t2s, qs := make([]float64, n), make([]float64, n)
	buf := make([]float64, d+k)
	for i, r := range rows {
		t2s[i], qs[i] = m.stats(r, buf, nil)
	}
	m.limT2 = limit(t2s, chiSquareLimit(float64(k), q), q)
	resid := vals[:d-k] // the eigenvalues left out (ascending order: the smallest)
	m.limQ = limit(qs, boxLimit(resid, q), q)
	return m, nil
}

// robustScale returns the median of col and its spread: the MAD scaled to a
// standard deviation for Gaussian data, the standard deviation when more than
// half the values are equal, and the floor for a constant column. col is
// reordered.
func robustScale(col []float64) (median, scale float64) {
	slices.Sort(col)
	median = quantileSorted(col, 0.5)
	dev := make([]float64, len(col))
	mean := 0.0
	for i, v := range col {
		dev[i] = math.Abs(v - median)
		mean += v / float64(len(col))
	}
	slices.Sort(dev)
	scale = 1.4826 * quantileSorted(dev, 0.5)
	if scale == 0 {
		ss := 0.0
		for _, v := range col {
			ss += (v - mean) * (v - mean) / float64(len(col))
		}
		scale = math.Sqrt(ss)
	}
	floor := scaleFloorRel * max(1, math.Abs(median))
	if !(scale >= floor) {
		scale = floor
	}
	return median, scale
}

// quantileSorted is the linear-interpolation quantile of sorted s.
func quantileSorted(s []float64, p float64) float64 {
	pos := p * float64(len(s)-1)
	lo := int(pos)
	if lo >= len(s)-1 {
		return s[len(s)-1]
	}
	f := pos - float64(lo)
	return s[lo] + f*(s[lo+1]-s[lo])
}

// limit is the control limit from the training statistics xs: the q order
// statistic, or when the rows are too few for it to be anything but the
// maximum (fewer than minEmpiricalRows, or than 1/(1-q)) the larger of the
// training maximum and the parametric limit.
func limit(xs []float64, parametric, q float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	var l float64
	if len(s) >= minEmpiricalRows && float64(len(s))*(1-q) >= 1 {
		l = s[int(math.Ceil(q*float64(len(s))))-1]
	} else {
		l = max(s[len(s)-1], parametric)
	}
	if !(l >= limitFloor) {
		l = limitFloor
	}
	return min(l, maxState)
}

// chiSquareLimit is the q-quantile of χ² with k degrees of freedom, the
// distribution of T² for Gaussian rows (0 when k is 0).
func chiSquareLimit(k, q float64) float64 {
	if k <= 0 {
		return 0
	}
	return distuv.ChiSquared{K: k}.Quantile(q)
}

// boxLimit approximates Q's q-quantile by Box's g·χ²_h, matching the mean
// and variance of a weighted sum of χ²₁ with the left-out eigenvalues as weights.
func boxLimit(resid []float64, q float64) float64 {
	t1, t2 := 0.0, 0.0
	for _, v := range resid {
		v = max(v, 0)
		t1 += v
		t2 += v * v
	}
	if t1 <= 0 || t2 <= 0 {
		return 0
	}
	g, h := t2/t1, t1*t1/t2
	return g * distuv.ChiSquared{K: h}.Quantile(q)
}

// clampValue takes v into ±MaxAbsValue; NaN becomes nan (the median).
func clampValue(v, nan float64) float64 {
	switch {
	case math.IsNaN(v):
		return nan
	case v > MaxAbsValue:
		return MaxAbsValue
	case v < -MaxAbsValue:
		return -MaxAbsValue
	}
	return v
}

// Widened returns a copy of m with both control limits multiplied by f
// (f ≥ 1; smaller factors leave m as it is). It is how a limit taken on the
// training rows is raised to what later rows need (see DriftFactor).
func (m *Model) Widened(f float64) *Model {
	if !(f > 1) {
		return m
	}
	c := *m
	c.limT2 = min(m.limT2*f, maxState)
	c.limQ = min(m.limQ*f, maxState)
	return &c
}

// DriftFactor is how much further from the training centre later rows lie
// than the rows m was fitted on: the median of later's limit ratios (Ratio)
// over the median of fitted's. Above 1 the process has moved on (drift, or
// training rows too alike to show its range). Medians, so that an incident
// among the later rows, up to half of them, does not set the factor, as a
// tail quantile of a short holdout would. 0 when either set is empty or
// fitted's median is 0.
func (m *Model) DriftFactor(later, fitted [][]float64) float64 {
	a, b := m.medianRatio(later), m.medianRatio(fitted)
	if !(a > 0 && b > 0) {
		return 0
	}
	return a / b
}

// medianRatio is the median of rows' limit ratios, 0 for no rows.
func (m *Model) medianRatio(rows [][]float64) float64 {
	if len(rows) == 0 {
		return 0
	}
	rs := make([]float64, len(rows))
	buf := make([]float64, m.d+m.k)
	for i, r := range rows {
		t2, q := m.stats(r, buf, nil)
		rs[i] = max(t2/m.limT2, q/m.limQ)
	}
	slices.Sort(rs)
	return quantileSorted(rs, 0.5)
}

// Columns is the number of columns the model scores.
func (m *Model) Columns() int { return m.d }

// Components is the number of retained principal components.
func (m *Model) Components() int { return m.k }

// Limits returns the control limits of T² and Q.
func (m *Model) Limits() (t2, q float64) { return m.limT2, m.limQ }

// stats computes T² and Q of row; buf has room for d+k values. When contrib
// is not nil (length d) it receives each column's share of Q.
func (m *Model) stats(row, buf, contrib []float64) (t2, q float64) {
	d, k := m.d, m.k
	z, proj := buf[:d], buf[d:d+k]
	for j := 0; j < d; j++ {
		v := 0.0
		if j < len(row) {
			v = clampValue(row[j], m.median[j])
		} else {
			v = m.median[j]
		}
		z[j] = (v-m.median[j])/m.scale[j] - m.mean[j]
	}
	for c := 0; c < k; c++ {
		s := 0.0
		for j := 0; j < d; j++ {
			s += z[j] * m.comp[j*k+c]
		}
		proj[c] = s
		t2 += s * s / m.eig[c]
	}
	for j := 0; j < d; j++ {
		e := z[j]
		for c := 0; c < k; c++ {
			e -= proj[c] * m.comp[j*k+c]
		}
		q += e * e
		if contrib != nil {
			contrib[j] = e * e
		}
	}
	return t2, q
}

// Stats returns Hotelling's T² and the squared prediction error Q of row
// (length Columns; missing columns are taken at their median, extra ones
// ignored). Both are
// finite for any input.
func (m *Model) Stats(row []float64) (t2, q float64) {
	return m.stats(row, make([]float64, m.d+m.k), nil)
}

// Ratio is how far row is past the nearer limit: max(T²/limit, Q/limit),
// 1 at the limit.
func (m *Model) Ratio(row []float64) float64 {
	t2, q := m.Stats(row)
	return max(t2/m.limT2, q/m.limQ)
}

// Contributions writes each column's share of Q for row into dst (grown to
// Columns) and returns it: the squared residual of the column, so the shares
// sum to Q and the largest names the column that broke the pattern.
func (m *Model) Contributions(row, dst []float64) []float64 {
	dst = slices.Grow(dst[:0], m.d)[:m.d]
	m.stats(row, make([]float64, m.d+m.k), dst)
	return dst
}

// ScoreOf maps a limit ratio to a score in [0,1]: 0 at 0, 0.5 at the limit,
// rising towards 1. The logarithm keeps far-out rows apart at six decimals.
func ScoreOf(ratio float64) float64 {
	if !(ratio > 0) {
		return 0
	}
	l := math.Log1p(min(ratio, math.MaxFloat64))
	return l / (l + math.Ln2)
}

// Explain writes into out (length Columns) each column's share, summing to 1,
// of the statistic that is further past its limit: for Q the squared
// residuals, for T² the usual contributions z_j·Σ_c p_jc·t_c/λ_c (negative
// ones taken as 0). All zeros means the row sits exactly on the training
// centre.
func (m *Model) Explain(row, out []float64) error {
	if len(out) != m.d {
		return fmt.Errorf("pca: explain: %d outputs for %d columns", len(out), m.d)
	}
	buf := make([]float64, m.d+m.k)
	t2, q := m.stats(row, buf, out)
	if t2/m.limT2 > q/m.limQ {
		z, proj := buf[:m.d], buf[m.d:]
		for j := 0; j < m.d; j++ {
			s := 0.0
			for c := 0; c < m.k; c++ {
				s += m.comp[j*m.k+c] * proj[c] / m.eig[c]
			}
			out[j] = max(0, z[j]*s)
		}
	}
	total := 0.0
	for _, v := range out {
		total += v
	}
	for j := range out {
		if total > 0 && !math.IsInf(total, 1) {
			out[j] /= total
		} else {
			out[j] = 0
		}
	}
	return nil
}
