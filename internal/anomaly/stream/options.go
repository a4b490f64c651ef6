package stream

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ErrInvalidOptions is wrapped by New's error when an Options field is out of range.
var ErrInvalidOptions = errors.New("stream: invalid options")

// Options configures a Detector. The zero value of every field means "use the
// default", so Options{} is a sensible detector for 1- to 60-minute metrics.
type Options struct {
	// WarmUp is the number of points a series is learned on before the detector
	// reports a score or decides anything (default 150). During it Result.Warming
	// is true and Score is 0, so a caller can fall back to static thresholds.
	WarmUp int

	// Threshold is the score at or above which Update reports IsAnomaly
	// (default 0.5). Score is -log10(tail probability)/10, so 0.5 means "a
	// state this unusual happens about once in 10^5 points".
	Threshold float64

	// Refractory is the number of points after a flag during which no new flag
	// is raised and the score is damped (default 50). A change is one incident:
	// NAB, and an on-call engineer, count every repeated alert as a false one.
	Refractory int

	// History is the effective length, in points, of the memory over which the
	// distribution of each view's surprise is learned (default 2000). Longer
	// means steadier calibration but slower acceptance of a new normal.
	History int

	// Short is the effective length, in points, of the recent-surprise average
	// that is compared with that distribution (default 20). It turns one odd
	// point into a small rise and a sustained change into a large one.
	Short int

	// Period is the longest seasonal period that is modelled (default 24h;
	// 7*24h adds a day-of-week profile). Zero seasonality can be asked for with
	// NoSeasonality.
	Period time.Duration

	// NoSeasonality turns the same-time-of-day view off.
	NoSeasonality bool

	// Tuning holds the model's remaining shape constants; nil means
	// DefaultTuning. Like WarmUp, Threshold, Refractory, History and Short,
	// they were set while NAB scores were being read (see Tuning).
	Tuning *Tuning
}

// Tuning is every constant of the model that was chosen by looking at
// detection scores (the 39 NAB development files): time scales in points and
// shapes of the maths. They stand here, rather than as constants, so that an
// evaluation can choose them honestly (bench/detecteval's -grid picks them on
// the other folds) and so that their number is plain: 15 here plus 5 in
// Options. A zero field means its default. The constants that remain in the
// source are definitions (the score scale, √(π/2)), input bounds, or the
// shape of fixed-size state (pattern memory, recurrence ring).
type Tuning struct {
	// LevelAlpha (0.05, ~20 points): long enough that a spike does not drag
	// the level, short enough that a shift is absorbed within a refractory
	// period; chosen on NAB scores.
	LevelAlpha float64
	// ScaleAlpha (0.01, ~100 points) is the memory of every error scale;
	// chosen on NAB scores.
	ScaleAlpha float64
	// SpreadAlpha (0.1, ~10 points) is the memory of the recent typical step;
	// chosen on NAB scores.
	SpreadAlpha float64
	// BaseAlpha (0.005, ~200 points) is the slow level the seasonal profile is
	// measured from; chosen on NAB scores.
	BaseAlpha float64
	// SeasonalBeta (0.05, ~20 visits) is the slowest learning rate of a
	// profile bin; chosen on NAB scores.
	SeasonalBeta float64
	// SeasonalGain (0.7): the seasonal view counts once its error is this
	// share of the error against the slow level; chosen on NAB scores.
	SeasonalGain float64
	// TailNu (3) is the Student-like tail that turns an error into decades of
	// surprise: heavy, because metrics are spiky; chosen on NAB scores.
	TailNu float64
	// EnvelopeForget (0.1 of History's rate) is how fast the envelope shrinks
	// back towards the level; chosen on NAB scores.
	EnvelopeForget float64
	// LikStart (20) is the points the views settle for before their surprises
	// feed the likelihood, LikMin (50) the samples it needs before a view
	// scores; chosen on NAB scores.
	LikStart, LikMin int
	// SigmaFloor (0.02 decades) bounds the spread of a short-average surprise
	// from below, so a perfectly regular series does not turn rounding noise
	// into certainty; chosen on NAB scores.
	SigmaFloor float64
	// Corroboration (0.3) is the weight of the runner-up view in the score;
	// chosen on NAB scores (0 scores 63.6 cross-validated, 0.15 scores 73.4).
	Corroboration float64
	// MemGen (4000 points) is the length of one generation of the pattern
	// memory: a pattern unseen for two generations is novel again; chosen on
	// NAB scores.
	MemGen int
	// RecurSpan (2 half-hour slots) is how far from the same time of day an
	// earlier event still counts as recurring; chosen on NAB scores.
	RecurSpan int
	// RecurGate (0.5 of the threshold) is the score an event needs to be
	// remembered as recurring; chosen on NAB scores.
	RecurGate float64
}

// DefaultTuning returns the defaults of every Tuning field.
func DefaultTuning() Tuning {
	return Tuning{
		LevelAlpha: 0.05, ScaleAlpha: 0.01, SpreadAlpha: 0.1, BaseAlpha: 0.005,
		SeasonalBeta: 0.05, SeasonalGain: 0.7, TailNu: 3, EnvelopeForget: 0.1,
		LikStart: 20, LikMin: 50, SigmaFloor: 0.02, Corroboration: 0.3,
		MemGen: 4000, RecurSpan: 2, RecurGate: 0.5,
	}
}

// floats and ints list the fields in their fixed order (the state codec's
// and the defaults' order).
func (t *Tuning) floats() []*float64 {
	return []*float64{&t.LevelAlpha, &t.ScaleAlpha, &t.SpreadAlpha, &t.BaseAlpha, &t.SeasonalBeta,
		&t.SeasonalGain, &t.TailNu, &t.EnvelopeForget, &t.SigmaFloor, &t.Corroboration, &t.RecurGate}
}

func (t *Tuning) ints() []*int {
	return []*int{&t.LikStart, &t.LikMin, &t.MemGen, &t.RecurSpan}
}

// withDefaults fills zero fields and checks ranges.
func (t Tuning) withDefaults() (Tuning, error) {
	def := DefaultTuning()
	df, di := def.floats(), def.ints()
	for i, f := range t.floats() {
		if *f == 0 {
			*f = *df[i]
		}
	}
	for i, n := range t.ints() {
		if *n == 0 {
			*n = *di[i]
		}
	}
	in01 := func(x float64) bool { return x > 0 && x <= 1 }
	switch {
	case !in01(t.LevelAlpha) || !in01(t.ScaleAlpha) || !in01(t.SpreadAlpha) || !in01(t.BaseAlpha) || !in01(t.SeasonalBeta):
		return t, fmt.Errorf("%w: Tuning alphas and SeasonalBeta must be in (0, 1]", ErrInvalidOptions)
	case !in01(t.SeasonalGain) || !in01(t.EnvelopeForget) || !in01(t.Corroboration) || !in01(t.RecurGate):
		return t, fmt.Errorf("%w: Tuning SeasonalGain, EnvelopeForget, Corroboration and RecurGate must be in (0, 1]", ErrInvalidOptions)
	case !(t.TailNu >= 0.5 && t.TailNu <= 1e3):
		// Below about 0.5 degrees of freedom ν/2·log(1+z²/ν) turns 0·∞ for
		// large errors.
		return t, fmt.Errorf("%w: Tuning TailNu %v not in [0.5, 1000]", ErrInvalidOptions, t.TailNu)
	case !(t.SigmaFloor >= 1e-9 && t.SigmaFloor <= 10):
		return t, fmt.Errorf("%w: Tuning SigmaFloor %v not in [1e-9, 10]", ErrInvalidOptions, t.SigmaFloor)
	case t.LikStart < 1 || t.LikMin < 1 || t.LikStart > 1e6 || t.LikMin > 1e6:
		return t, fmt.Errorf("%w: Tuning LikStart %d, LikMin %d not in [1, 1e6]", ErrInvalidOptions, t.LikStart, t.LikMin)
	case t.MemGen < 1 || t.MemGen > 1e9:
		return t, fmt.Errorf("%w: Tuning MemGen %d not in [1, 1e9]", ErrInvalidOptions, t.MemGen)
	case t.RecurSpan < 0 || t.RecurSpan > recurDay/2:
		return t, fmt.Errorf("%w: Tuning RecurSpan %d not in [0, %d]", ErrInvalidOptions, t.RecurSpan, recurDay/2)
	}
	return t, nil
}

// interned holds one copy of each distinct filled-in Tuning, so that the
// detectors of a service (hundreds of thousands, all with the same options)
// share one instead of carrying 120 bytes each.
// At most maxInterned are kept: states decoded from storage may carry any
// tuning, and those beyond the cap simply are not shared.
var (
	interned    sync.Map // Tuning → *Tuning
	internedLen atomic.Int32
)

const maxInterned = 64

func intern(t Tuning) *Tuning {
	if p, ok := interned.Load(t); ok {
		return p.(*Tuning)
	}
	if internedLen.Load() >= maxInterned {
		return &t
	}
	p, loaded := interned.LoadOrStore(t, &t)
	if !loaded {
		internedLen.Add(1)
	}
	return p.(*Tuning)
}

const (
	defaultWarmUp     = 150
	defaultThreshold  = 0.5
	defaultRefractory = 50
	defaultHistory    = 2000
	defaultShort      = 20
	defaultPeriod     = 24 * time.Hour
)

// withDefaults returns o with zero fields replaced by defaults, or an error
// naming the first invalid field.
func (o Options) withDefaults() (Options, error) {
	if o.WarmUp == 0 {
		o.WarmUp = defaultWarmUp
	}
	if o.Threshold == 0 {
		o.Threshold = defaultThreshold
	}
	if o.Refractory == 0 {
		o.Refractory = defaultRefractory
	}
	if o.History == 0 {
		o.History = defaultHistory
	}
	if o.Short == 0 {
		o.Short = defaultShort
	}
	if o.Period == 0 {
		o.Period = defaultPeriod
	}
	switch {
	case o.WarmUp < 1:
		return o, fmt.Errorf("%w: WarmUp %d < 1", ErrInvalidOptions, o.WarmUp)
	case !(o.Threshold > 0 && o.Threshold <= 1):
		return o, fmt.Errorf("%w: Threshold %v not in (0, 1]", ErrInvalidOptions, o.Threshold)
	case o.Refractory < 1:
		return o, fmt.Errorf("%w: Refractory %d < 1", ErrInvalidOptions, o.Refractory)
	case o.History < 10:
		return o, fmt.Errorf("%w: History %d < 10", ErrInvalidOptions, o.History)
	case o.Short < 1 || o.Short >= o.History:
		return o, fmt.Errorf("%w: Short %d not in [1, History)", ErrInvalidOptions, o.Short)
	case o.Period != 24*time.Hour && o.Period != 7*24*time.Hour:
		return o, fmt.Errorf("%w: Period %v is neither 24h nor 168h", ErrInvalidOptions, o.Period)
	}
	var t Tuning
	if o.Tuning != nil {
		t = *o.Tuning
	}
	t, err := t.withDefaults()
	if err != nil {
		return o, err
	}
	o.Tuning = intern(t)
	return o, nil
}
