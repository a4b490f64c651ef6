package anomaly

// Model selection: both candidate types are fitted on the training rows,
// judged on the holdout and on synthetic faults made from it, and the better
// one is kept (selectModel; docs/anomaly-models.md, "Model selection").

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/anomaly/iforest"
	"github.com/smartcloudops/smartcloudops/internal/anomaly/pca"
)

// CandidateReport is how one candidate model did on the validation rows.
type CandidateReport struct {
	Type string `json:"type"`
	// HoldoutFlagRate is the share of held-out normal rows at or above the
	// decision threshold: the false-alarm rate.
	HoldoutFlagRate float64 `json:"holdout_flag_rate"`
	// ShiftDetection is the share of held-out rows flagged once one column
	// is moved by ShiftSigmas robust standard deviations.
	ShiftDetection float64 `json:"shift_detection"`
	// CorrelationDetection is the share flagged once one column is replaced
	// by the same column of another held-out row (each value stays in its
	// range; its relation to the others breaks).
	CorrelationDetection float64 `json:"correlation_detection"`
	// Youden is mean(ShiftDetection, CorrelationDetection) - HoldoutFlagRate.
	Youden       float64 `json:"youden_j"`
	TrainSeconds float64 `json:"train_seconds"`
	// Error says why the candidate could not be fitted; the rest is then zero.
	Error string `json:"error,omitempty"`
}

// Selection is the record of one model choice.
type Selection struct {
	Winner string `json:"winner"`
	Reason string `json:"reason"`
	// ValidationRows is the number of rows the candidates were compared on
	// ("holdout" when the training window had a holdout, else the training
	// rows themselves, as ValidatedOn says).
	ValidationRows int               `json:"validation_rows"`
	ValidatedOn    string            `json:"validated_on"`
	ShiftSigmas    float64           `json:"shift_sigmas"`
	Candidates     []CandidateReport `json:"candidates"`
}

// fitOptions are what fitting a host model needs from the service options.
type fitOptions struct {
	trees, sampleSize int
	contamination     float64
}

// matrixSeed derives the forest's seed from the training rows, so the same
// rows give the same model in the service and in the detect CLI, and a
// retraining on unchanged history reproduces its predecessor.
func matrixSeed(data []float64) uint64 {
	h := fnv.New64a()
	var b [8]byte
	for _, v := range data {
		binary.LittleEndian.PutUint64(b[:], math.Float64bits(v))
		h.Write(b[:])
	}
	return h.Sum64()
}

// fitCandidates fits every model type (or only the types named) on train
// (row-major, len(impute) columns). reps is aligned with models; a type that
// cannot be fitted is in failed with its error.
func fitCandidates(train []float64, impute []float64, o fitOptions, only ...string) (models []*hostModel, reps, failed []CandidateReport) {
	cols := len(impute)
	want := func(typ string) bool { return len(only) == 0 || slices.Contains(only, typ) }
	start := time.Now()
	var forest *iforest.Forest
	var err error
	if want(TypeIForest) {
		forest, err = iforest.FitMatrix(train, cols, iforest.Options{Trees: o.trees, SampleSize: o.sampleSize, Seed: matrixSeed(train)})
		if err == nil {
			scores := make([]float64, len(train)/cols)
			if err = forest.ScoreMatrix(train, scores); err == nil {
				models = append(models, &hostModel{typ: TypeIForest, forest: forest, calib: calibrate(forest, train, cols, scores, o.contamination), impute: impute})
				reps = append(reps, CandidateReport{Type: TypeIForest, TrainSeconds: time.Since(start).Seconds()})
			}
		}
		if err != nil {
			failed = append(failed, CandidateReport{Type: TypeIForest, Error: err.Error()})
		}
	}
	if !want(TypePCA) {
		return models, reps, failed
	}
	start = time.Now()
	pm, err := pca.FitQuantile(matrixRows(train, cols), 1-o.contamination)
	if err != nil {
		failed = append(failed, CandidateReport{Type: TypePCA, Error: err.Error()})
	} else {
		models = append(models, &hostModel{typ: TypePCA, pca: pm, impute: impute})
		reps = append(reps, CandidateReport{Type: TypePCA, TrainSeconds: time.Since(start).Seconds()})
	}
	return models, reps, failed
}

// robustSigmas is each column's robust standard deviation (1.4826·MAD, the
// standard deviation when more than half the values are equal), 0 for a
// constant column.
func robustSigmas(data []float64, cols int) []float64 {
	n := len(data) / cols
	out := make([]float64, cols)
	col := make([]float64, n)
	for j := range cols {
		for i := range n {
			col[i] = data[i*cols+j]
		}
		med := quantile(col, 0.5)
		dev := make([]float64, n)
		mean := 0.0
		for i, v := range col {
			dev[i] = math.Abs(v - med)
			mean += v / float64(n)
		}
		s := 1.4826 * quantile(dev, 0.5)
		if s == 0 {
			ss := 0.0
			for _, v := range col {
				ss += (v - mean) * (v - mean) / float64(n)
			}
			s = math.Sqrt(ss)
		}
		out[j] = s
	}
	return out
}

// perturbations builds the two synthetic fault sets from the validation rows
// val: row i with column i mod cols shifted by shiftSigmas·sigma, and row i
// with that column taken from the row half the set away. Constant columns
// (sigma 0) have no natural scale and are left out of both.
func perturbations(val []float64, cols int, sigma []float64) (shifted, broken []float64) {
	n := len(val) / cols
	var live []int
	for j, s := range sigma {
		if s > 0 {
			live = append(live, j)
		}
	}
	if len(live) == 0 || n == 0 {
		return nil, nil
	}
	for i := range n {
		j := live[i%len(live)]
		row := val[i*cols : (i+1)*cols]
		sign := 1.0
		if (i/len(live))%2 == 1 {
			sign = -1
		}
		s := slices.Clone(row)
		s[j] += sign * shiftSigmas * sigma[j]
		shifted = append(shifted, s...)
		b := slices.Clone(row)
		b[j] = val[((i+n/2)%n)*cols+j]
		broken = append(broken, b...)
	}
	return shifted, broken
}

// flagShare is the share of rows m scores at or above thr.
func flagShare(m *hostModel, data []float64, thr float64) (float64, error) {
	n := len(data) / len(m.impute)
	if n == 0 {
		return 0, nil
	}
	out := make([]float64, n)
	if err := m.scoreMatrix(data, out); err != nil {
		return 0, err
	}
	return flagRate(out, thr), nil
}

// selectModel chooses among cands (reps aligned with them, named by their
// Type) on the validation rows val (the holdout; the training rows when
// there is none), by Youden's J of a synthetic detection task: the mean
// share of perturbed rows flagged minus the share of unperturbed rows
// flagged. No label is needed, and neither a model that flags everything nor
// one that flags nothing scores well. Ties go to the lower false-alarm rate,
// then to the earlier candidate. failed candidates are reported as such.
func selectModel(cands []*hostModel, reps, failed []CandidateReport, val, train []float64, cols int, thr float64) (int, Selection, error) {
	sel := Selection{ValidatedOn: "holdout", ShiftSigmas: shiftSigmas}
	if len(val) == 0 {
		val, sel.ValidatedOn = train, "training rows (no holdout)"
	}
	sel.ValidationRows = len(val) / cols
	shifted, broken := perturbations(val, cols, robustSigmas(train, cols))
	best := -1
	for ci, m := range cands {
		r := &reps[ci]
		var err error
		if r.HoldoutFlagRate, err = flagShare(m, val, thr); err != nil {
			return 0, sel, fmt.Errorf("score validation rows with %s: %w", r.Type, err)
		}
		if r.ShiftDetection, err = flagShare(m, shifted, thr); err != nil {
			return 0, sel, fmt.Errorf("score shifted rows with %s: %w", r.Type, err)
		}
		if r.CorrelationDetection, err = flagShare(m, broken, thr); err != nil {
			return 0, sel, fmt.Errorf("score decorrelated rows with %s: %w", r.Type, err)
		}
		r.Youden = (r.ShiftDetection+r.CorrelationDetection)/2 - r.HoldoutFlagRate
		if best < 0 || r.Youden > reps[best].Youden || r.Youden == reps[best].Youden && r.HoldoutFlagRate < reps[best].HoldoutFlagRate {
			best = ci
		}
	}
	if best < 0 {
		return 0, sel, errors.New("no candidate model could be fitted")
	}
	w := reps[best]
	sel.Winner = w.Type
	sel.Candidates = append(slices.Clone(reps), failed...)
	sel.Reason = fmt.Sprintf("%s has the highest detection minus false alarms on %d %s rows (J %.3f: detects %.1f%% of %g-sigma shifts and %.1f%% of broken correlations, flags %.1f%% of normal rows)",
		w.Type, sel.ValidationRows, sel.ValidatedOn, w.Youden, 100*w.ShiftDetection, shiftSigmas, 100*w.CorrelationDetection, 100*w.HoldoutFlagRate)
	for i, r := range reps {
		if i != best {
			sel.Reason += fmt.Sprintf("; %s: J %.3f (%.1f%% shifts, %.1f%% correlations, %.1f%% normal flagged)",
				r.Type, r.Youden, 100*r.ShiftDetection, 100*r.CorrelationDetection, 100*r.HoldoutFlagRate)
		}
	}
	for _, r := range failed {
		sel.Reason += fmt.Sprintf("; %s could not be fitted: %s", r.Type, r.Error)
	}
	return best, sel, nil
}

// fitHostModel fits every candidate on train and keeps the one selectModel
// chooses on holdout. extra, when not nil, competes too under the name
// extraName (the fleet model, on a host's own rows); the returned model is
// then nil when extra wins.
func fitHostModel(train, holdout, impute []float64, o fitOptions, thr float64, extra *hostModel, extraName string) (*hostModel, []*hostModel, Selection, error) {
	cols := len(impute)
	cands, reps, failed := fitCandidates(train, impute, o)
	if len(cands) == 0 {
		errs := make([]error, len(failed))
		for i, r := range failed {
			errs[i] = fmt.Errorf("%s: %s", r.Type, r.Error)
		}
		return nil, nil, Selection{Candidates: failed}, fmt.Errorf("no model could be fitted: %w", errors.Join(errs...))
	}
	all := cands
	if extra != nil {
		all = append(slices.Clone(cands), extra)
		reps = append(reps, CandidateReport{Type: extraName})
	}
	i, sel, err := selectModel(all, reps, failed, holdout, train, cols, thr)
	if err != nil {
		return nil, cands, sel, err
	}
	if i == len(cands) {
		return nil, cands, sel, nil
	}
	if len(holdout) == 0 {
		return cands[i], cands, sel, nil
	}
	// The holdout has done its work; the kept model learns from it too, as
	// the most recent normal rows are the likeliest to resemble what comes.
	all, _, refitFailed := fitCandidates(append(slices.Clone(train), holdout...), impute, o, cands[i].typ)
	if len(all) == 0 {
		return nil, cands, sel, fmt.Errorf("refit %s on training and holdout rows: %s", cands[i].typ, refitFailed[0].Error)
	}
	kept := all[0]
	if kept.typ == TypePCA {
		// The limits were taken on the rows the model was fitted on. Rows
		// after them sit further out when the process drifts, or when the
		// training rows, alike from one to the next, showed less of its
		// range than they seem to; later rows are what it will score. The
		// holdout is such rows for the candidate fitted without it: the
		// kept model's limits are widened by how much further out the
		// holdout lies than the candidate's training rows (medians, so an
		// incident in the holdout does not blind the model).
		f := cands[i].pca.DriftFactor(matrixRows(holdout, cols), matrixRows(train, cols))
		if f > 1 {
			kept.pca = kept.pca.Widened(f)
			sel.Reason += fmt.Sprintf("; the kept model's limits are widened ×%.3g, as much as the holdout's median limit ratio exceeds the training rows' (drift)", f)
		}
	}
	return kept, cands, sel, nil
}
