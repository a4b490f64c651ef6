package stream

import (
	"math"
	"time"
	"unsafe"
)

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

// Options returns the options in force, defaults filled in.
func (d *Detector) Options() Options { return d.opt }

// Warming reports whether the detector is still in its warm-up.
func (d *Detector) Warming() bool { return d.n < uint64(d.opt.WarmUp) }

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

// MemBytes is the detector's heap footprint: the struct and its profile.
func (d *Detector) MemBytes() int {
	return int(unsafe.Sizeof(*d)) + len(d.prof)*4 + len(d.profN)*2
}
