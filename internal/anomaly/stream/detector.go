// Package stream is SmartCloudOps' online anomaly detector for one metric
// series: causal (a score uses only the current and earlier points),
// constant memory (about 1.9 KB per series with the daily profile), deterministic, and calibrated (a
// score means the same thing on every series, so one threshold serves all).
//
// # Views
//
// Each point is looked at through several views. Four are small predictive
// models whose error z is measured in units of that model's own recent typical
// error:
//
//   - level: the value against an exponentially weighted mean of the recent
//     past (spikes, dips, level shifts);
//   - change: the step from the previous value against the typical step
//     (sudden moves, even while the level drifts);
//   - spread: the recent typical step against the long-run typical step
//     (a series that turns noisy, or goes flat);
//   - seasonal: the value against a daily (or weekly) profile, used only once
//     the profile explains the series clearly better than its mean does.
//
// Their error becomes a surprise in decades, s = (ν/2)·log10(1+z²/ν) with ν=3:
// -log10 of a heavy-tailed (Student-like) two-sided tail. The heavy tail
// matters: metrics are spiky, and a Gaussian tail would call every spike a
// miracle.
//
// The fifth view, novelty, is a pattern memory: the value is quantised into
// 16 levels of the envelope the series has kept (plus "below" and "above"),
// and the short patterns ending at it (pairs with each of the 4 previous
// levels, and the last three levels) are looked up in a 4096-bit set of the
// patterns seen in the last two generations of 4000 points. Its surprise is
// the share of patterns never seen: it tells a recurring shape (a nightly
// job) from a new one, which a distance-to-the-mean cannot.
//
// # Calibration
//
// A view's surprise is averaged over a short window (Options.Short) and the
// average is compared with its own long-run mean and variance on this series
// (Options.History): the Gaussian upper tail of that comparison is the
// view's "anomaly likelihood", the post-processing of Numenta's HTM detector.
// A series whose surprises are always high needs a larger change to alert
// than a quiet one, and a sustained change scores higher than a lone blip.
// A view's score is -log10(tail)/10 clipped to [0,1]: 0.5 is a one-in-10^5
// state. The result's score is the most unusual view's score plus 0.3 of the
// runner-up's, so a point that two independent views find odd outranks one
// that only one view finds odd by the same margin.
//
// # Recurrence
//
// A scheduled job (a nightly backup, an hourly batch) is a real departure
// from the recent past, so the views find it surprising every time; what
// makes it normal is that it comes back at the same time of day. The
// detector keeps, for each half-hour of the last three days, the highest
// score that reached at least half the threshold there (one byte per slot).
// A score is then lowered by the score such an event reached within an hour
// of the same time on each of the previous two days (the smaller of the two
// peaks). Scores are scaled logarithms of tail probabilities, so the
// subtraction divides this point's tail probability by the recurring
// event's: what remains is how much rarer this point is than what this time
// of day has lately brought. Requiring both days keeps one past incident
// from masking the next day's; requiring a notable score keeps ordinary
// noise from blunting every point. The same event at another time of day
// still scores in full, an event at the usual time keeps whatever score it
// has beyond the usual one's, and an event that stops recurring is
// forgotten after two days.
//
// # Restraint
//
// After a flag the detector holds back for Options.Refractory points: no new
// flag, and the score is scaled by the fraction of the period elapsed, so it
// climbs back linearly. One incident pages once; NAB, like an on-call
// engineer, charges for every repeat.
//
// # Alert and state
//
// Result.IsAnomaly is the alert: the onset of something unusual, once per
// incident. Result.State is the anomaly state a dashboard shows: it stays
// high for as long as a fault persists, although the views adapt to it (see
// hold.go), until the series comes back or an operator calls Rebaseline.
//
// The alert threshold is a per-point rarity, so a series sampled every 10
// seconds, with 30 times the points of a 5-minute one, would page 30 times
// as often on noise alone. Detector.Threshold raises it for series sampled
// faster than every five minutes by as much as this series' own score needs
// to become that factor rarer (its upper tail measured as peaks over a
// threshold, tail.go; log10 of the factor if the score were exact), keeping
// the rate of chance alerts per day, which is what an on-call rota pays for.
package stream

import (
	"math"
	"time"
	"unsafe"
)

// View names one way of looking at a series; Result.Reasons say which fired.
type View uint8

// The views, in the order they are evaluated.
const (
	// ViewLevel compares the value with the recent level.
	ViewLevel View = iota
	// ViewChange compares the step from the previous value with the typical step.
	ViewChange
	// ViewSpread compares the recent typical step with the long-run one.
	ViewSpread
	// ViewSeasonal compares the value with the same time of day (or week).
	ViewSeasonal
	// ViewNovelty reports short value patterns never seen before.
	ViewNovelty
	// NumViews is the number of views.
	NumViews
)

var viewNames = [NumViews]string{"level", "change", "spread", "seasonal", "novelty"}

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
	// Observed and Expected are what the view compared: the value and its
	// prediction for level and seasonal, the value and the previous value for
	// change, the recent and the long-run typical step for spread, and the
	// value and the nearest edge of the envelope seen so far for novelty.
	Observed, Expected float64
}

// Result is the outcome of one Update.
type Result struct {
	// Score is the calibrated anomaly score in [0,1] (see the package doc);
	// 0 while warming and right after a flag.
	Score float64
	// IsAnomaly is the detector's own decision, the alert: Score ≥
	// Threshold, outside the warm-up and the refractory period after an
	// earlier flag.
	IsAnomaly bool
	// State is the anomaly state on Score's scale: the views' score without
	// the restraint after an alert, or, during a hold (Holding), how far the
	// series still is from the normal it had before the alert if that is
	// larger. It stays at or above Options.Threshold while a fault persists,
	// where Score and IsAnomaly fire once per incident. See hold.go.
	State float64
	// Anomalous is true when State is at or above the alert threshold in
	// force (Threshold): the series is in an anomalous state, alerted or not.
	Anomalous bool
	// Threshold is the alert threshold in force for this series:
	// Options.Threshold, raised for series sampled faster than every five
	// minutes so that the rate of chance alerts per day stays the same
	// (see Detector.Threshold).
	Threshold float64
	// Holding is true while the series is in a sustained-anomaly hold: it
	// alerted and has neither come back nor been re-baselined.
	Holding bool
	// Warming is true while the series is still being learned (the first
	// Options.WarmUp points); callers should use a fallback then.
	Warming bool
	// Views holds every view's own score, indexed by View; 0 for a view not in
	// use (seasonal before its profile is trusted).
	Views [NumViews]float64
	// Reasons lists the views whose score is at least half of Score, most
	// unusual first, when Score ≥ Threshold/2; otherwise it is nil and
	// Update does not allocate.
	Reasons []Reason
}

// MaxAbsValue is the largest magnitude Update learns from. Every quantity the
// detector derives from values (differences, squared errors, the float32
// seasonal profile) then stays far inside float64 and float32 range, so no
// finite input can turn the state into Inf or NaN. 1e30 is beyond any metric
// a machine reports (a zettabyte is 1e21), so callers can refuse larger values
// as errors rather than lose information.
const MaxAbsValue = 1e30

// Model constants that are definitions rather than choices; the choices are
// in Tuning.
const (
	// mad2sd converts a mean absolute deviation to a standard deviation
	// (√(π/2), exact for Gaussian errors).
	mad2sd = 1.2533
	// logTailScale maps -log10(tail) to the score: 10 decades span [0,1].
	logTailScale = 10
	// refStepSec is the sampling interval at which Options.Threshold holds
	// as it is: five minutes, the step of most of NAB, where the default
	// was chosen. A series sampled faster has more points a day, so its
	// threshold rises until its chance excursions are refStepSec/step times
	// rarer (Threshold), to keep the same rate of chance alerts per day (an
	// on-call budget is per day, not per point); a slower one keeps
	// Options.Threshold, the per-point rarity below which nothing alerts.
	refStepSec = 300
	// maxThreshold caps the raised threshold below 1, so that a score can
	// still exceed it on a series sampled every millisecond.
	maxThreshold = 0.95
)

// Novelty memory shape.
const (
	numFacts    = 5    // patterns looked up per point
	memBits     = 4096 // bits per generation (512 bytes)
	memWords    = memBits / 64
	quantLevels = 16 // levels across the envelope
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

	qh     [numFacts - 1]uint8 // last quantised levels, newest first
	memAge uint32              // points into the current generation
	mem    [2][memWords]uint64 // current and previous generation

	recSlot int64             // newest time-of-day slot written (absolute slot number)
	recur   [recurSlots]uint8 // notable scores per slot, ring over the last days

	hold hold // sustained-anomaly hold (hold.go)
	tail tail // the score's measured upper tail (tail.go)

	lastT   float64 // latest timestamp seen, in Unix seconds
	stepSec float64 // typical sampling interval in seconds (0 until known)
}

// New returns a detector for one series, or an error wrapping
// ErrInvalidOptions.
func New(opt Options) (*Detector, error) {
	o, err := opt.withDefaults()
	if err != nil {
		return nil, err
	}
	d := &Detector{opt: o, sinceFl: math.MaxUint32, tail: tail{beta: nominalBeta}}
	if !o.NoSeasonality {
		bins := profileBins(o.Period)
		d.prof = make([]float32, bins)
		d.profN = make([]uint16, bins)
	}
	return d, nil
}

// Clone returns an independent copy of d: updating the copy leaves d as it
// was.
func (d *Detector) Clone() *Detector {
	c := &Detector{}
	d.CopyTo(c)
	return c
}

// CopyTo makes dst an independent copy of d, reusing dst's profile storage
// when it is large enough, so read-only scoring (the service's detect, which
// must not change what ingest learned) can run on pooled copies without
// allocating.
func (d *Detector) CopyTo(dst *Detector) {
	prof, profN := dst.prof, dst.profN
	*dst = *d
	if d.prof == nil {
		return
	}
	dst.prof = append(prof[:0], d.prof...)
	dst.profN = append(profN[:0], d.profN...)
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

// Update feeds the next point of the series and returns its result. Points
// must come in arrival order; t is used only for the time of day (or week),
// so gaps and an occasional out-of-order timestamp are harmless. A v that is
// not finite or lies beyond ±MaxAbsValue is ignored: the state does not change
// and the Result is zero apart from Warming.
func (d *Detector) Update(t time.Time, v float64) Result {
	if !(math.Abs(v) <= MaxAbsValue) {
		return Result{Warming: d.Warming(), Threshold: d.Threshold()}
	}
	d.learnStep(t)
	thr := d.Threshold()
	tn := d.opt.Tuning
	d.n++
	k := d.n
	if k == 1 {
		d.prev, d.level, d.lo, d.hi, d.base = v, v, v, v, v
	}
	var raw, obs, exp [NumViews]float64
	// A floor for every scale, relative to the series' own range, so units do
	// not matter and a constant series stays calm.
	floor := 1e-3*(d.hi-d.lo) + 1e-9*math.Abs(d.level) + 1e-12

	e := v - d.level
	raw[ViewLevel] = surprise(ratio(e, d.levelDev, floor), tn.TailNu)
	obs[ViewLevel], exp[ViewLevel] = v, d.level

	step := v - d.prev
	raw[ViewChange] = surprise(ratio(step, d.stepDev, floor), tn.TailNu)
	obs[ViewChange], exp[ViewChange] = v, d.prev

	// Spread: the log ratio of the recent to the long-run typical step, against
	// its own history (log, so doubling and halving are equally far).
	stepFast := ewma(d.stepFast, math.Abs(step), tn.SpreadAlpha, k-1)
	sr := math.Log((stepFast + floor) / (d.stepDev + floor))
	if k > 2 {
		raw[ViewSpread] = surprise(ratio(sr-d.sprMean, d.sprDev, 1e-3), tn.TailNu)
	}
	obs[ViewSpread], exp[ViewSpread] = stepFast, d.stepDev

	var facts [numFacts]uint32
	raw[ViewNovelty] = d.novelty(v, &facts)
	obs[ViewNovelty], exp[ViewNovelty] = v, d.hi
	if v < d.lo || v-d.lo < d.hi-v {
		exp[ViewNovelty] = d.lo
	}

	// Seasonal: scored against the profile learned before this point; its
	// likelihood learns whenever the profile covers the phase, but it only
	// counts once the profile is clearly better than the slow level.
	var i0, i1 int
	var f, seasScore float64
	seasActive := false
	if d.prof != nil {
		i0, i1, f = d.phase(t)
		if d.profN[i0] > 0 && d.profN[i1] > 0 {
			pred := d.base + (1-f)*float64(d.prof[i0]) + f*float64(d.prof[i1])
			es := v - pred
			raw[ViewSeasonal] = surprise(ratio(es, d.seasDev, floor), tn.TailNu)
			obs[ViewSeasonal], exp[ViewSeasonal] = v, pred
			seasActive = d.seasN >= uint32(tn.LikMin) && d.seasDev < tn.SeasonalGain*d.baseDev
			d.seasN++
			d.seasDev = ewma(d.seasDev, math.Abs(es), tn.ScaleAlpha, uint64(d.seasN))
			if d.seasN > uint32(tn.LikStart) {
				seasScore = d.lik[ViewSeasonal].update(raw[ViewSeasonal], d.opt)
			}
		}
	}

	// Calibrate every view; combine the best with the runner-up.
	var score [NumViews]float64
	var first, second float64
	for w := View(0); w < NumViews; w++ {
		switch {
		case w == ViewSeasonal:
			if seasActive {
				score[w] = seasScore
			}
		case k > uint64(tn.LikStart):
			score[w] = d.lik[w].update(raw[w], d.opt)
		}
		if score[w] > first {
			first, second = score[w], first
		} else if score[w] > second {
			second = score[w]
		}
	}
	best := math.Min(1, first+tn.Corroboration*second)
	best = d.recurDiscount(t, best, thr)

	// The hold's reference and prediction come from the state before this
	// point is learned, like every view's.
	ref := d.holdRef(seasActive, floor)
	var held float64
	if d.hold.on {
		held = d.holdScore(v, d.holdPred(i0, i1, f))
		if held < thr/2 {
			d.hold.on = false
		}
	}

	d.learn(v, e, step, stepFast, sr, k)
	if d.prof != nil {
		d.learnProfile(i0, i1, f, v-d.base)
	}
	d.remember(&facts)

	res := Result{Warming: d.Warming(), Threshold: thr}
	if res.Warming {
		return res
	}
	d.tail.observe(best, tailBase*d.opt.Threshold)
	res.State = best
	if d.hold.on {
		res.State = math.Max(best, held)
	}
	if d.sinceFl < uint32(d.opt.Refractory) {
		best *= float64(d.sinceFl) / float64(d.opt.Refractory)
	}
	if d.sinceFl < math.MaxUint32 {
		d.sinceFl++
	}
	res.Score = best
	res.Views = score
	res.Anomalous = res.State >= thr
	if best >= thr {
		res.IsAnomaly = true
		d.sinceFl = 0
		if !d.hold.on {
			d.hold = ref
			d.hold.on = true
			d.hold.mean = v
			d.hold.pred = d.holdPred(i0, i1, f)
		}
	}
	res.Holding = d.hold.on
	if best >= thr/2 {
		for w := View(0); w < NumViews; w++ {
			if score[w] > 0 && score[w] >= best/2 {
				res.Reasons = append(res.Reasons, Reason{View: w, Score: score[w], Expected: exp[w], Observed: obs[w]})
			}
		}
		sortReasons(res.Reasons)
	}
	return res
}

// learnStep follows the sampling interval: an exponential average of the
// time between consecutive points (about 100 points of memory), where a gap
// counts as at most twice the current interval, so missing data does not
// pass for slow sampling while a real change of interval is still followed.
// Timestamps that do not advance are ignored.
func (d *Detector) learnStep(t time.Time) {
	now := float64(t.Unix()) + float64(t.Nanosecond())/1e9
	dt := now - d.lastT
	if d.n == 0 {
		d.lastT = now
		return
	}
	if !(dt > 0) {
		return
	}
	d.lastT = now
	if d.stepSec == 0 {
		d.stepSec = dt
		return
	}
	d.stepSec += d.opt.Tuning.ScaleAlpha * (math.Min(dt, 2*d.stepSec) - d.stepSec)
}

// Threshold is the alert threshold in force: Options.Threshold at a
// sampling interval of five minutes or more, plus β·ln(300 s / interval) for
// faster series, at most 0.95. A score is a per-point rarity; raising the bar
// by the factor by which a day has more points keeps the expected number of
// chance alerts per day the same at every interval. β is how fast chance
// excursions of this series' score thin out as the level rises (tail.go):
// 1/(10·ln 10) if the score were an exact probability (0.648 at 10 s), more
// where its measured tail is heavier.
func (d *Detector) Threshold() float64 {
	thr := d.opt.Threshold
	if d.stepSec > 0 && d.stepSec < refStepSec {
		thr += d.tail.slope() * math.Log(refStepSec/d.stepSec)
	}
	return math.Min(thr, math.Max(maxThreshold, d.opt.Threshold))
}

// learn moves the level, scale and envelope estimates after the point was
// scored (causality: the scores used only earlier points' state).
func (d *Detector) learn(v, e, step, stepFast, sr float64, k uint64) {
	tn := d.opt.Tuning
	scaleAlpha := tn.ScaleAlpha
	d.levelDev = ewma(d.levelDev, math.Abs(e), scaleAlpha, k-1)
	d.level = ewma(d.level, v, tn.LevelAlpha, k)
	if k > 1 {
		d.stepDev = ewma(d.stepDev, math.Abs(step), scaleAlpha, k-1)
		d.stepFast = stepFast
		if k > 2 {
			d.sprDev = ewma(d.sprDev, math.Abs(sr-d.sprMean), scaleAlpha, k-2)
			d.sprMean = ewma(d.sprMean, sr, scaleAlpha, k-2)
		}
	}
	d.baseDev = ewma(d.baseDev, math.Abs(v-d.base), scaleAlpha, k-1)
	d.base = ewma(d.base, v, tn.BaseAlpha, k)
	forget := tn.EnvelopeForget / float64(d.opt.History)
	d.hi = math.Max(v, d.hi-forget*(d.hi-d.base))
	d.lo = math.Min(v, d.lo+forget*(d.base-d.lo))
	d.prev = v
}

// sortReasons orders reasons by descending score (insertion sort: at most
// NumViews elements).
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
// weight (at least a quarter, so a bin that is only ever visited near its
// edge still learns).
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
		a := math.Max(1/float64(d.profN[b.i]), d.opt.Tuning.SeasonalBeta) * math.Max(b.w, 0.25)
		d.prof[b.i] += float32(a * (dev - float64(d.prof[b.i])))
	}
}

// mix is SplitMix64's finaliser: a fixed bijective scramble, so pattern keys
// spread evenly over the bitset (deterministic, no seed).
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// novelty quantises v against the envelope, forms the short patterns that
// end at it, and returns the share never seen in the last two generations.
// A false "seen" (two patterns on one bit) only makes the view quieter.
func (d *Detector) novelty(v float64, facts *[numFacts]uint32) float64 {
	q := 0
	if span := d.hi - d.lo; span > 0 {
		q = int(math.Floor(quantLevels*(v-d.lo)/span)) + 1
		q = max(0, min(q, quantLevels+1))
	}
	cur := uint64(q)
	for j := 0; j < numFacts-1; j++ {
		facts[j] = uint32(mix(uint64(j+1)<<32|uint64(d.qh[j])<<8|cur) % memBits)
	}
	facts[numFacts-1] = uint32(mix(uint64(numFacts)<<32|uint64(d.qh[1])<<16|uint64(d.qh[0])<<8|cur) % memBits)
	copy(d.qh[1:], d.qh[:len(d.qh)-1])
	d.qh[0] = uint8(q)
	if d.n <= numFacts {
		return 0
	}
	unseen := 0
	for _, f := range facts {
		w, b := f/64, uint64(1)<<(f%64)
		if d.mem[0][w]&b == 0 && d.mem[1][w]&b == 0 {
			unseen++
		}
	}
	return float64(unseen) / numFacts
}

// remember stores the point's patterns, starting a new generation every
// memGen points so that patterns not seen for two generations are forgotten
// (and the bitset never fills up).
func (d *Detector) remember(facts *[numFacts]uint32) {
	d.memAge++
	if d.memAge >= uint32(d.opt.Tuning.MemGen) {
		d.memAge = 0
		d.mem[1] = d.mem[0]
		d.mem[0] = [memWords]uint64{}
	}
	for _, f := range facts {
		d.mem[0][f/64] |= uint64(1) << (f % 64)
	}
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

// MemBytes is the detector's heap footprint: the struct and its profile.
func (d *Detector) MemBytes() int {
	return int(unsafe.Sizeof(*d)) + len(d.prof)*4 + len(d.profN)*2
}
