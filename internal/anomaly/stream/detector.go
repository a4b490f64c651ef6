// Package stream is SmartCloudOps' online anomaly detector for one metric
// series: causal (a score uses only the current and earlier points),
// constant memory (a few hundred bytes plus one seasonal profile), and
// calibrated (a score means the same thing on every series).
//
// # Model
//
// Each point is looked at through several views, each a small predictive model
// whose error is measured in units of that model's own recent error:
//
//   - level: the value against an exponentially weighted mean of the recent past
//     (catches spikes and level shifts);
//   - change: the step from the previous value against the typical step
//     (catches sudden moves even while the level is drifting);
//   - spread: the recent typical step against the long-run typical step
//     (catches a series that becomes noisy, or goes flat);
//   - seasonal: the value against the same time of day (or of the week),
//     used only once the profile explains the series better than its mean does;
//   - range: the value beyond the envelope the series has kept so far.
//
// A view's error z is turned into a surprise in [0,1) (the two-sided Gaussian
// probability mass inside ±z). The surprise is averaged over a short window and
// that average is compared with its own long-run distribution, learned on this
// series: the Gaussian tail probability of the short average is the view's
// "anomaly likelihood" (the post-processing Numenta's HTM detector uses). A
// series whose surprises are always high (noisy, heavy-tailed) thus needs a
// much larger change to alert than a quiet one, and a tail probability means
// the same on both. The score is -log10(tail)/10 of the most surprising view,
// clipped to [0,1]: 0.5 is a one-in-10^5 state, 1 a one-in-10^10 state.
//
// After a flag the detector holds back for Options.Refractory points: it raises
// no new flag and damps the score linearly back to its full value, because one
// incident should page once.
package stream

import (
	"math"
	"time"
)

// View names one way of looking at a series; Result.Reasons say which fired.
type View uint8

// The views, in the order they are evaluated.
const (
	ViewLevel View = iota
	ViewChange
	ViewSpread
	ViewSeasonal
	ViewRange
	// NumViews is the number of views.
	NumViews
)

var viewNames = [NumViews]string{"level", "change", "spread", "seasonal", "range"}

// String returns the view's name as shown to an operator ("level", "seasonal", …).
func (v View) String() string {
	if v < NumViews {
		return viewNames[v]
	}
	return "unknown"
}

// Reason explains one view's contribution to a Result.
type Reason struct {
	// View is the view that found the point unusual.
	View View
	// Score is the view's own calibrated score, on the same scale as Result.Score.
	Score float64
	// Expected is what the view predicted for the measured quantity: the value for
	// level, seasonal and range, the previous value for change, and the typical
	// absolute step for spread.
	Expected float64
	// Observed is the measured quantity that Expected is compared with.
	Observed float64
}

// Result is the outcome of one Update.
type Result struct {
	// Score is the calibrated anomaly score in [0,1]: -log10 of the tail
	// probability of the most unusual view, divided by 10. It is 0 while warming.
	Score float64
	// IsAnomaly is the detector's own decision: Score ≥ Options.Threshold,
	// outside the warm-up and the refractory period after an earlier flag.
	IsAnomaly bool
	// Warming is true while the series is still being learned (the first
	// Options.WarmUp points); callers should use a fallback then.
	Warming bool
	// Views holds every view's own score, indexed by View, for callers that
	// chart or combine them; 0 for a view that is not in use.
	Views [NumViews]float64
	// Reasons lists the views whose score is at least half of Score, most
	// unusual first; it is empty when Score is below Threshold/2.
	Reasons []Reason
}

// Model constants. Each is a time scale in points, chosen once for all series.
const (
	// levelAlpha gives the level a memory of about 20 points: long enough that a
	// spike does not drag the baseline, short enough that a level shift is
	// absorbed within one refractory period.
	levelAlpha = 0.05
	// scaleAlpha gives error scales a memory of about 100 points.
	scaleAlpha = 0.01
	// spreadAlpha is the memory (about 10 points) of the recent typical step.
	spreadAlpha = 0.1
	// baseAlpha is the slow level (about 200 points) that the seasonal profile
	// is measured from, so the profile holds the shape and not the level.
	baseAlpha = 0.005
	// seasonalBeta is the slowest per-bin learning rate of the profile: about
	// 20 visits, a few days at 5-minute steps.
	seasonalBeta = 0.05
	// seasonalGain is how much smaller the seasonal error must be than the error
	// against the slow level before the seasonal view is trusted.
	seasonalGain = 0.7
	// likStart is the number of points the views settle for before their
	// surprises feed the likelihood; likMin the likelihood samples needed
	// before a view scores.
	likStart = 20
	likMin   = 50
	// sigmaFloor bounds the spread of a short-average surprise from below, so a
	// perfectly regular series does not turn rounding noise into certainty.
	sigmaFloor = 0.02
	// logTailScale maps -log10(tail) to the score: 10 decades span [0,1].
	logTailScale = 10
)

// likelihood is the calibration of one view's surprise.
type likelihood struct {
	short float64 // short-window average surprise
	mean  float64 // long-run mean of short
	vari  float64 // long-run variance of short
	n     uint32  // samples in mean/vari
}

// Detector is the streaming model of one series. It is not safe for
// concurrent use; keep one per series and serialise its Updates.
type Detector struct {
	opt Options

	n       uint64 // points seen
	sinceFl uint32 // points since the last flag (saturating)
	prev    float64

	level    float64 // EWMA of values
	levelDev float64 // EWMA |value - level|
	stepDev  float64 // long-run EWMA |step|
	stepFast float64 // recent EWMA |step|
	sprMean  float64 // EWMA of log spread ratio
	sprDev   float64 // EWMA |log spread ratio - sprMean|
	lo, hi   float64 // envelope

	base    float64 // slow level under the seasonal profile
	baseDev float64 // EWMA |value - base|
	seasDev float64 // EWMA |value - seasonal prediction|
	seasN   uint32  // seasonal errors seen
	prof    []float32
	profN   []uint16

	lik [NumViews]likelihood
}

// New returns a detector for one series, or an error wrapping
// ErrInvalidOptions.
func New(opt Options) (*Detector, error) {
	o, err := opt.withDefaults()
	if err != nil {
		return nil, err
	}
	d := &Detector{opt: o, sinceFl: math.MaxUint32}
	if !o.NoSeasonality {
		bins := profileBins(o.Period)
		d.prof = make([]float32, bins)
		d.profN = make([]uint16, bins)
	}
	return d, nil
}

// profileBins is the profile resolution: half-hour bins over a day, hourly
// over a week, interpolated linearly so a smooth daily shape is followed
// within a bin.
func profileBins(p time.Duration) int {
	if p == 24*time.Hour {
		return 48
	}
	return 168
}

// Options returns the options in force, defaults filled in.
func (d *Detector) Options() Options { return d.opt }

// Warming reports whether the detector is still in its warm-up.
func (d *Detector) Warming() bool { return d.n < uint64(d.opt.WarmUp) }

// ewma moves m towards x with weight a, but no slower than a running mean of
// the k samples seen so far, so early estimates are unbiased.
func ewma(m, x, a float64, k uint64) float64 {
	if k > 0 && 1/float64(k) > a {
		a = 1 / float64(k)
	}
	return m + a*(x-m)
}

// surprise maps an error of z scales to the Gaussian mass inside ±z: 0 for a
// perfect prediction, tending to 1 for an impossible one.
func surprise(z float64) float64 {
	if math.IsNaN(z) {
		return 0
	}
	switch kRaw {
	case 1:
		return math.Min(30, -math.Log10(math.Erfc(math.Min(z, 30)/math.Sqrt2)))
	case 2:
		return kNu / 2 * math.Log10(1+z*z/kNu)
	}
	return math.Erf(z / math.Sqrt2)
}

// ratio is |num|/den with den floored, so a series that was perfectly flat
// turns its first change into a large but finite error.
func ratio(num, den, floor float64) float64 {
	if den < floor {
		den = floor
	}
	return math.Abs(num) / den
}

// Update feeds the next point of the series (t must not decrease for the
// seasonal view to be meaningful; it is not checked) and returns its result.
// v must be finite; a non-finite v is ignored and yields a zero Result with
// Warming set as it stands.
func (d *Detector) Update(t time.Time, v float64) Result {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return Result{Warming: d.Warming()}
	}
	d.n++
	k := d.n
	var raw [NumViews]float64
	var obs, exp [NumViews]float64
	active := [NumViews]bool{true, true, true, false, true}

	if k == 1 {
		d.prev, d.level, d.lo, d.hi, d.base = v, v, v, v, v
	}
	// A floor for every scale, relative to the series' own range, so units do
	// not matter and a constant series stays calm.
	floor := 1e-3*(d.hi-d.lo) + 1e-9*math.Abs(d.level) + 1e-12

	// level
	e := v - d.level
	raw[ViewLevel] = surprise(ratio(e, 1.2533*d.levelDev, floor))
	obs[ViewLevel], exp[ViewLevel] = v, d.level
	// change
	step := v - d.prev
	raw[ViewChange] = surprise(ratio(step, 1.2533*d.stepDev, floor))
	obs[ViewChange], exp[ViewChange] = v, d.prev
	// spread: log of recent over long-run typical step, against its own history.
	stepFast := ewma(d.stepFast, math.Abs(step), spreadAlpha, k-1)
	sr := math.Log((stepFast + floor) / (d.stepDev + floor))
	if k > 2 {
		raw[ViewSpread] = surprise(ratio(sr-d.sprMean, 1.2533*d.sprDev, 1e-3))
	}
	obs[ViewSpread], exp[ViewSpread] = stepFast, d.stepDev
	// range
	if span := d.hi - d.lo; k > 1 {
		over := math.Max(v-d.hi, d.lo-v)
		if over > 0 {
			raw[ViewRange] = math.Min(1, over/math.Max(kRangeTol*span, floor))
			if kRaw != 0 {
				raw[ViewRange] = surprise(over / math.Max(kRangeTol*span, floor))
			}
		}
	}
	obs[ViewRange] = v
	if v > d.hi {
		exp[ViewRange] = d.hi
	} else {
		exp[ViewRange] = d.lo
	}
	// seasonal
	var i0, i1 int
	var f, seasScore float64
	if d.prof != nil {
		i0, i1, f = d.phase(t)
		if d.profN[i0] > 0 && d.profN[i1] > 0 {
			pred := d.base + (1-f)*float64(d.prof[i0]) + f*float64(d.prof[i1])
			es := v - pred
			raw[ViewSeasonal] = surprise(ratio(es, 1.2533*d.seasDev, floor))
			obs[ViewSeasonal], exp[ViewSeasonal] = v, pred
			active[ViewSeasonal] = d.seasN >= likMin && d.seasDev < seasonalGain*d.baseDev
			d.seasN++
			d.seasDev = ewma(d.seasDev, math.Abs(es), scaleAlpha, uint64(d.seasN))
			if d.seasN > likStart {
				seasScore = d.lik[ViewSeasonal].update(raw[ViewSeasonal], d.opt)
			}
		}
	}

	// Calibrate every view and take the most unusual.
	var score [NumViews]float64
	best := 0.0
	for w := View(0); w < NumViews; w++ {
		if w == ViewSeasonal {
			score[w] = seasScore
		} else if k > likStart {
			score[w] = d.lik[w].update(raw[w], d.opt)
		}
		if !active[w] || float64(w) == kNoView {
			score[w] = 0
		}
		best = math.Max(best, score[w])
	}

	// Learn from the point, after scoring it (causality: the score above used
	// only earlier points' state).
	d.levelDev = ewma(d.levelDev, math.Abs(e), scaleAlpha, k-1)
	d.level = ewma(d.level, v, levelAlpha, k)
	if k > 1 {
		d.stepDev = ewma(d.stepDev, math.Abs(step), scaleAlpha, k-1)
		d.stepFast = stepFast
		if k > 2 {
			d.sprDev = ewma(d.sprDev, math.Abs(sr-d.sprMean), scaleAlpha, k-2)
			d.sprMean = ewma(d.sprMean, sr, scaleAlpha, k-2)
		}
	}
	d.baseDev = ewma(d.baseDev, math.Abs(v-d.base), scaleAlpha, k-1)
	d.base = ewma(d.base, v, baseAlpha, k)
	if d.prof != nil {
		d.learnProfile(i0, i1, f, v-d.base)
	}
	forget := 1.0 / float64(d.opt.History) / kRangeF
	d.hi = math.Max(v, d.hi-forget*(d.hi-d.base))
	d.lo = math.Min(v, d.lo+forget*(d.base-d.lo))
	d.prev = v

	res := Result{Warming: d.Warming()}
	if res.Warming {
		return res
	}
	// Restraint: after a flag the score climbs back linearly over the
	// refractory period, and no new flag is raised within it.
	if d.sinceFl < uint32(d.opt.Refractory) {
		if kDamp == 1 {
			best *= float64(d.sinceFl) / float64(d.opt.Refractory)
		}
	}
	if d.sinceFl < math.MaxUint32 {
		d.sinceFl++
	}
	res.Score = best
	res.Views = score
	if best >= d.opt.Threshold {
		res.IsAnomaly = true
		d.sinceFl = 0
	}
	if best >= d.opt.Threshold/2 {
		for w := View(0); w < NumViews; w++ {
			if score[w] > 0 && score[w] >= best/2 {
				res.Reasons = append(res.Reasons, Reason{View: w, Score: score[w], Expected: exp[w], Observed: obs[w]})
			}
		}
		sortReasons(res.Reasons)
	}
	return res
}

// sortReasons orders reasons by descending score (insertion sort: at most
// NumViews elements, no allocation).
func sortReasons(r []Reason) {
	for i := 1; i < len(r); i++ {
		for j := i; j > 0 && r[j].Score > r[j-1].Score; j-- {
			r[j], r[j-1] = r[j-1], r[j]
		}
	}
}

// phase locates t in the profile: the two bins around it and the weight of
// the second.
func (d *Detector) phase(t time.Time) (int, int, float64) {
	period := int64(d.opt.Period / time.Second)
	s := t.Unix() % period
	if s < 0 {
		s += period
	}
	bins := len(d.prof)
	x := float64(s)*float64(bins)/float64(period) - 0.5 // bin centres at i+0.5
	if x < 0 {
		x += float64(bins)
	}
	i0 := int(x)
	f := x - float64(i0)
	i0 %= bins
	return i0, (i0 + 1) % bins, f
}

// learnProfile moves the two bins around the point's phase towards its
// deviation from the slow level, each in proportion to its interpolation
// weight.
func (d *Detector) learnProfile(i0, i1 int, f, dev float64) {
	for _, b := range [2]struct {
		i int
		w float64
	}{{i0, 1 - f}, {i1, f}} {
		if b.w < 0.25 && d.profN[b.i] > 0 {
			continue
		}
		if d.profN[b.i] < math.MaxUint16 {
			d.profN[b.i]++
		}
		a := math.Max(1/float64(d.profN[b.i]), seasonalBeta) * math.Max(b.w, 0.25)
		d.prof[b.i] += float32(a * (dev - float64(d.prof[b.i])))
	}
}

// update feeds one surprise and returns the view's calibrated score: the
// Gaussian upper tail of the short-window average against its long-run
// distribution, learned before this sample.
func (l *likelihood) update(r float64, o Options) float64 {
	l.short += 2 / float64(o.Short+1) * (r - l.short)
	s := l.score()
	l.n++
	a := math.Max(1/float64(l.n), 1/float64(o.History))
	delta := l.short - l.mean
	l.mean += a * delta
	l.vari = (1 - a) * (l.vari + a*delta*delta)
	return s
}

// score is the calibrated score of the current short average.
func (l *likelihood) score() float64 {
	if l.n < likMin {
		return 0
	}
	sigma := math.Max(math.Sqrt(l.vari), kSigma)
	z := (l.short - l.mean) / sigma
	if z <= 0 {
		return 0
	}
	// log10 of the upper Gaussian tail, computed through Erfc so that it stays
	// accurate far beyond the 1e-16 where 1-CDF would round to 0.
	tail := 0.5 * math.Erfc(z/math.Sqrt2)
	if tail <= 0 {
		return 1
	}
	return math.Min(1, -math.Log10(tail)/logTailScale)
}
