package stream

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
