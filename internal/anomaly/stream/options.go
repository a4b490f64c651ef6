package stream

import (
	"errors"
	"fmt"
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
	return o, nil
}
