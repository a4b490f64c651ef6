package stream

import "math"

// The score's own tail, per series.
//
// A score is -log10 of a tail probability over logTailScale, so if it were
// exact the rate of chance alerts would fall tenfold for every 0.1 the
// threshold rises, and Threshold could trade a series' extra points a day
// for rarity at that fixed rate. It is not exact: each view's probability
// is the Gaussian tail of a short average of surprises, and that average is
// skewed, so on incident-free noise the score's upper tail falls far more
// slowly (on Gaussian noise at 10 s a score of 0.648, nominally one point in
// 3·10^6, is exceeded by one in 10^4). The views' ranking is what NAB scores,
// so it is kept; what is corrected is the one place that reads the score as
// a probability, the raise of the threshold for fast series.
//
// The correction measures the tail on the series itself, as peaks over a
// threshold (extreme-value theory): every excursion of the score above the
// base level tailBase·Options.Threshold is one cluster (declustered by runs:
// it ends when the score falls back below the base), and its peak's excess
// over the base is recorded. Excesses over a high level follow a generalised
// Pareto law; with its shape set to 0 (exponential, the case of a light or
// exponential tail, and the one a handful of peaks can estimate) its scale β
// is the mean excess, the method-of-moments estimate. The rate of clusters
// then falls by e for every β the level rises, so a series with F times the
// points a day of a five-minute one keeps the same chance alerts per day at
// Options.Threshold + β·ln F. The nominal β (the score taken at its word,
// 1/(logTailScale·ln 10), which gives today's log10(F)/logTailScale) is the
// prior, worth one peak, and the floor: the measured tail can say the score
// was optimistic, never that it was modest.
const (
	// tailBase places the peaks' base level at half the threshold: the level
	// the detector already treats as notable (reasons, the hold's release,
	// the recurrence gate), low enough that noise crosses it dozens of times
	// a day at 10 s, so the slope is measured within hours.
	tailBase = 0.5
	// tailPeaks is the memory of the mean excess, in clusters: the standard
	// error of an exponential's mean from n peaks is 1/√n of it, so 100
	// peaks hold it within about 10%, and older peaks fade so that the
	// estimate follows a series whose character changes.
	tailPeaks = 100
)

// nominalBeta is the mean excess of an exact score: a decade of rarity per
// 1/logTailScale, in natural-log units.
var nominalBeta = 1 / (logTailScale * math.Ln10)

// tail is the running peaks-over-threshold estimate of one series' score.
type tail struct {
	// peak is the highest score of the current excursion above the base, 0
	// outside one.
	peak float64
	// beta is the mean excess of finished excursions' peaks over the base
	// (nominalBeta before the first).
	beta float64
	// n counts finished excursions, saturating at tailPeaks.
	n uint32
}

// observe feeds one undamped score (the incident-free estimate must not see
// the refractory damping, which is the detector's own doing).
func (t *tail) observe(score, base float64) {
	if score >= base {
		t.peak = math.Max(t.peak, score)
		return
	}
	if t.peak == 0 {
		return
	}
	if t.n < tailPeaks {
		t.n++
	}
	// The prior counts as one peak: the k-th peak has weight 1/(k+1) until
	// tailPeaks, then an exponential memory of tailPeaks peaks.
	t.beta += (t.peak - base - t.beta) / float64(t.n+1)
	t.peak = 0
}

// slope is the β in force: the measured mean excess, never below the
// nominal one.
func (t *tail) slope() float64 {
	if t.n == 0 {
		return nominalBeta
	}
	return math.Max(nominalBeta, t.beta)
}
