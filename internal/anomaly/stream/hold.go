package stream

import "math"

// Sustained faults: alert and state.
//
// The views adapt: that is what keeps them calibrated on a series whose
// normal drifts, and what lets a new change stand out against the recent
// past. It also means a fault that persists (a disk that stays full, a
// sensor stuck at the wrong level) is absorbed into "normal" within a few
// dozen points, and its score falls although nothing was fixed.
//
// So an alert starts a hold. The hold freezes a reference, the normal the
// series had just before the alert: its level (or, on a seasonal series,
// its slow level under the daily profile) and the typical deviation around
// it. While the hold lasts, a short average of the values is compared with
// that frozen reference, and Result.State reports the larger of that
// comparison's score and the views' score. The views themselves go on
// adapting, so Score and IsAnomaly keep their meaning (one alert per
// incident, restraint after it), while State stays high as long as the
// series stays away from where it was. The hold ends when the short average
// comes back within reach of the reference (its score falls below half the
// threshold), or when an operator accepts the new level with Rebaseline.

// hold is the frozen reference of a sustained-anomaly hold.
type hold struct {
	on bool
	// seasonal: the reference follows the daily (or weekly) profile.
	seasonal bool
	// ref is the level (or slow level under the profile) at the alert.
	ref float64
	// dev is the typical absolute deviation around ref at the alert.
	dev float64
	// mean is the short average of the values since the hold began, and
	// pred the reference's prediction for the latest of them.
	mean, pred float64
}

// holdRef is the reference a hold would freeze at this point: the seasonal
// view's slow level and error when that view is in use, the level view's
// otherwise. It is read before the point is learned.
func (d *Detector) holdRef(seasActive bool, floor float64) hold {
	if seasActive {
		return hold{seasonal: true, ref: d.base, dev: math.Max(d.seasDev, floor)}
	}
	return hold{ref: d.level, dev: math.Max(d.levelDev, floor)}
}

// holdPred is the reference's prediction for the phase (i0, i1, f).
func (d *Detector) holdPred(i0, i1 int, f float64) float64 {
	if !d.hold.seasonal || d.prof == nil {
		return d.hold.ref
	}
	return d.hold.ref + (1-f)*float64(d.prof[i0]) + f*float64(d.prof[i1])
}

// holdScore moves the hold's short average to v and scores its distance
// from the reference: the Gaussian tail of that distance in units of the
// standard deviation a short average of normal points would have, on the
// views' scale (-log10(tail)/10).
func (d *Detector) holdScore(v, pred float64) float64 {
	a := 2 / float64(d.opt.Short+1)
	d.hold.mean += a * (v - d.hold.mean)
	d.hold.pred = pred
	// An exponential average with weight a of independent points with
	// standard deviation σ has standard deviation σ·√(a/(2-a)).
	sd := mad2sd * d.hold.dev * math.Sqrt(a/(2-a))
	z := math.Abs(d.hold.mean-pred) / sd
	return tailScore(z)
}

// tailScore is -log10 of the upper Gaussian tail at z over logTailScale,
// clipped to [0,1]; Erfc keeps it accurate far beyond where 1-CDF rounds to 0.
func tailScore(z float64) float64 {
	if !(z > 0) {
		return 0
	}
	tail := 0.5 * math.Erfc(z/math.Sqrt2)
	if tail <= 0 {
		return 1
	}
	return math.Min(1, -math.Log10(tail)/logTailScale)
}

// Holding reports whether the series is in a sustained-anomaly hold: it
// alerted and has not come back to the level it had before, nor been
// re-baselined.
func (d *Detector) Holding() bool { return d.hold.on }

// Rebaseline accepts the series' current behaviour as its new normal, as an
// operator does after a deliberate change (a migration, a resized
// instance): the hold ends, the level restarts at the latest value, the
// recent surprises are forgotten so the views start calm, and the restraint
// after the last alert is lifted. What the views learned over the long run
// (spreads, the daily profile, the pattern memory) is kept.
func (d *Detector) Rebaseline() {
	if d.hold.on {
		// The new normal is the reference moved by the shift the hold has
		// measured; on a seasonal series that keeps the daily shape.
		shift := d.hold.mean - d.hold.pred
		d.base = d.hold.ref + shift
		if !d.hold.seasonal {
			d.base = d.hold.mean
		}
		d.level = d.hold.mean
	} else if d.n > 0 {
		d.level = d.prev
	}
	d.hold = hold{}
	for i := range d.lik {
		d.lik[i].short = d.lik[i].mean
	}
	d.sinceFl = math.MaxUint32
}
