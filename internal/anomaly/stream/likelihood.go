package stream

import (
	"math"
)

// likelihood is the calibration of one view's surprise.
type likelihood struct {
	short float64 // short-window average surprise
	mean  float64 // long-run mean of short
	vari  float64 // long-run variance of short
	n     uint32  // samples in mean/vari
}

// ewma moves m towards x with weight a, but no slower than a running mean of
// the k samples seen so far, so early estimates are not biased to zero.
func ewma(m, x, a float64, k uint64) float64 {
	if k > 0 && 1/float64(k) > a {
		a = 1 / float64(k)
	}
	return m + a*(x-m)
}

// surprise is -log10 of the two-sided tail of a Student-like distribution at
// z, (1+z²/ν)^(-ν/2): 0 for a perfect prediction, ≈ 3·log10(z) for a large
// error, so a ten-times larger error is three more decades, not a hundred.
func surprise(z, nu float64) float64 {
	if math.IsNaN(z) || z <= 0 {
		return 0
	}
	if z > 1e100 {
		// z² would overflow; at this size 1+z²/ν is z²/ν to the last bit.
		return nu / 2 * (2*math.Log10(z) - math.Log10(nu))
	}
	return nu / 2 * math.Log10(1+z*z/nu)
}

// ratio is |num|/(mad2sd·den) with den floored, so a series that was
// perfectly flat turns its first change into a large but finite error.
func ratio(num, den, floor float64) float64 {
	if den < floor {
		den = floor
	}
	return math.Abs(num) / (mad2sd * den)
}

// update feeds one surprise and returns the view's calibrated score: the
// Gaussian upper tail of the short-window average against its long-run
// distribution as learned before this sample.
func (l *likelihood) update(r float64, o Options) float64 {
	l.short += 2 / float64(o.Short+1) * (r - l.short)
	s := l.score(o.Tuning)
	l.n++
	// A running mean until History samples, then an exponential window of
	// about History samples (Welford-style update of the weighted variance).
	a := math.Max(1/float64(l.n), 1/float64(o.History))
	delta := l.short - l.mean
	l.mean += a * delta
	l.vari = (1 - a) * (l.vari + a*delta*delta)
	return s
}

// score is the calibrated score of the current short average.
func (l *likelihood) score(tn *Tuning) float64 {
	if l.n < uint32(tn.LikMin) {
		return 0
	}
	sigma := math.Max(math.Sqrt(l.vari), tn.SigmaFloor)
	z := (l.short - l.mean) / sigma
	if z <= 0 {
		return 0
	}
	// log10 of the upper Gaussian tail, through Erfc so that it stays
	// accurate far beyond the 1e-16 where 1-CDF would round to 0.
	tail := 0.5 * math.Erfc(z/math.Sqrt2)
	if tail <= 0 {
		return 1
	}
	return math.Min(1, -math.Log10(tail)/logTailScale)
}
