package anomaly

// The host models: for the fleet, and for each host with enough history, an
// Isolation Forest and a PCA model are fitted on the training rows and one is
// kept, chosen on the holdout by selectModel (see docs/anomaly-models.md).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/anomaly/iforest"
	"github.com/smartcloudops/smartcloudops/internal/anomaly/pca"
)

// The model types a host model can be.
const (
	TypeIForest = "iforest"
	TypePCA     = "pca"
)

// Rules of the model selection and of the per-host models. None was chosen by
// looking at evaluation scores.
const (
	// shiftSigmas is the synthetic level fault of the selection: one column
	// moved by this many robust standard deviations of its training values,
	// past the two-sided 1-in-15,000 Gaussian tail: a departure a model
	// should catch, yet near enough to the bulk that not every model does.
	shiftSigmas = 4.0
	// maxHostModels bounds the per-host models one active model holds
	// (an Isolation Forest of the default size is about 1 MB; a PCA model a
	// few KB); past it the hosts with the most history win and the rest are
	// counted as skipped and scored by the fleet model.
	maxHostModels = 32
)

// hostModel is one fitted model over its activeModel's columns.
type hostModel struct {
	typ    string
	forest *iforest.Forest // when typ is TypeIForest
	calib  calibration     // when typ is TypeIForest
	pca    *pca.Model      // when typ is TypePCA
	impute []float64       // per column, the training median, for a metric a sample lacks
	// scope tells this model's cached predictions from its siblings': the
	// version, plus "@host" for a per-host model.
	scope string
}

// scoreRows writes each row's calibrated score (0.5 at the model's limit)
// into out.
func (h *hostModel) scoreRows(rows [][]float64, out []float64) error {
	if h.typ == TypePCA {
		for i, r := range rows {
			out[i] = pca.ScoreOf(h.pca.Ratio(r))
		}
		return nil
	}
	if err := h.forest.ScoreBatch(rows, out); err != nil {
		return err
	}
	for i, v := range out {
		out[i] = h.calib.apply(v)
	}
	return nil
}

// matrixRows views a row-major matrix of cols columns as rows.
func matrixRows(data []float64, cols int) [][]float64 {
	rows := make([][]float64, len(data)/cols)
	for i := range rows {
		rows[i] = data[i*cols : (i+1)*cols : (i+1)*cols]
	}
	return rows
}

// scoreMatrix scores a row-major matrix of len(h.impute) columns.
func (h *hostModel) scoreMatrix(data []float64, out []float64) error {
	return h.scoreRows(matrixRows(data, len(h.impute)), out)
}

// shares attributes the row's score to its columns (shares summing to 1):
// the forest's isolation bits, or PCA's contributions to the statistic past
// its limit (see pca.Model.Explain).
func (h *hostModel) shares(row []float64) []float64 {
	out := make([]float64, len(row))
	ok := false
	switch h.typ {
	case TypePCA:
		ok = h.pca.Explain(row, out) == nil
	default:
		ok = h.forest.Explain(row, out) == nil
	}
	total := 0.0
	for _, v := range out {
		total += v
	}
	if !ok || !(total > 0) {
		// Nothing separated the row: rank by distance from the median.
		total = 0
		for i, v := range row {
			out[i] = math.Abs(v-h.impute[i]) / (math.Abs(h.impute[i]) + 1)
			total += out[i]
		}
	}
	for i := range out {
		if total > 0 {
			out[i] /= total
		}
	}
	return out
}

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

// HostReport says which hosts got a model of their own.
type HostReport struct {
	// Models is the per-host models kept, by host: what won on that host's
	// holdout (the fleet model may win, and then the host keeps none).
	Models map[string]Selection `json:"models"`
	// FleetWon counts hosts with enough history on whose holdout the fleet
	// model won; they use the fleet model.
	FleetWon int `json:"fleet_won"`
	// TooFewRows counts hosts with less history than a model needs.
	TooFewRows int `json:"too_few_rows"`
	// OverCap counts hosts with enough history left to the fleet model
	// because MaxHostModels per-host models were already kept.
	OverCap int `json:"over_cap"`
	// Failed counts hosts whose fitting failed; they use the fleet model.
	Failed int `json:"failed"`
}

// hostsByHistory orders hosts by row count, most first, then by name.
func hostsByHistory(counts map[string]int) []string {
	hosts := make([]string, 0, len(counts))
	for h := range counts {
		hosts = append(hosts, h)
	}
	sort.Slice(hosts, func(i, j int) bool {
		a, b := hosts[i], hosts[j]
		if counts[a] != counts[b] {
			return counts[a] > counts[b]
		}
		return a < b
	})
	return hosts
}

// trainModel fits the fleet model on ts and, when the window holds more than
// one host, a model for each host with at least minRows rows (at most
// maxHostModels, the most history first) where a host's own model beats the
// fleet model on that host's holdout. The returned model has no info yet.
func trainModel(ts trainingSet, o fitOptions, thr float64, minRows int) (*activeModel, Validation, error) {
	cols := len(ts.columns)
	val := Validation{TrainRows: len(ts.train) / cols, HoldoutRows: len(ts.holdout) / cols}
	start := time.Now()
	fleet, cands, sel, err := fitHostModel(ts.train, ts.holdout, ts.impute, o, thr, nil, "")
	if err != nil {
		return nil, val, fmt.Errorf("fleet model: %w", err)
	}
	val.TrainSeconds = time.Since(start).Seconds()
	val.Selection = &sel
	for _, c := range cands {
		if c.typ == TypeIForest {
			val.ScoreMedian, val.ScoreThreshold = c.calib.Median, c.calib.Threshold
			val.forest = c.forest
		}
	}
	trainScores := make([]float64, val.TrainRows)
	start = time.Now()
	if err := fleet.scoreMatrix(ts.train, trainScores); err != nil {
		return nil, val, fmt.Errorf("score training rows: %w", err)
	}
	if secs := time.Since(start).Seconds(); secs > 0 {
		val.ScoreRowsPerSec = math.Round(float64(val.TrainRows) / secs)
	}
	val.TrainFlagRate = flagRate(trainScores, thr)
	if val.HoldoutRows > 0 {
		hs := make([]float64, val.HoldoutRows)
		if err := fleet.scoreMatrix(ts.holdout, hs); err != nil {
			return nil, val, fmt.Errorf("score holdout rows: %w", err)
		}
		val.HoldoutFlagRate = flagRate(hs, thr)
		sum := 0.0
		for _, v := range hs {
			sum += v
		}
		val.HoldoutMeanScore = sum / float64(len(hs))
	}
	am := &activeModel{columns: ts.columns, fleet: fleet}
	counts := ts.hostRows()
	if len(counts) < 2 {
		// One host: the fleet model is its model.
		return am, val, nil
	}
	rep := &HostReport{Models: map[string]Selection{}}
	val.Hosts = rep
	for _, host := range hostsByHistory(counts) {
		switch {
		case counts[host] < minRows:
			rep.TooFewRows++
			continue
		case len(am.hosts) >= maxHostModels:
			rep.OverCap++
			continue
		}
		train, holdout, impute := ts.forHost(host)
		if len(train)/cols < minRows/2 {
			rep.TooFewRows++
			continue
		}
		hm, _, hsel, err := fitHostModel(train, holdout, impute, o, thr, fleet, "fleet")
		switch {
		case err != nil:
			rep.Failed++
		case hm == nil:
			rep.FleetWon++
		default:
			if am.hosts == nil {
				am.hosts = map[string]*hostModel{}
			}
			am.hosts[host] = hm
			rep.Models[host] = hsel
		}
	}
	return am, val, nil
}

// modelContributors names the metrics that set the row apart, only for rows
// the model scores at least 0.8 of the threshold (medium severity at the
// default): attribution of a normal row means nothing, and for a forest it
// walks every tree again.
func modelContributors(m *activeModel, h *hostModel, row []float64, score, thr float64) []Contributor {
	if row == nil || score < 0.8*thr {
		return nil
	}
	shares := h.shares(row)
	idx := make([]int, len(row))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return shares[idx[a]] > shares[idx[b]] })
	whose := "fleet"
	if h != m.fleet {
		whose = "host's"
	}
	var out []Contributor
	for _, i := range idx[:min(2, len(idx))] {
		if shares[i] < 0.15 {
			break
		}
		med := h.impute[i]
		out = append(out, Contributor{Metric: m.columns[i], Value: row[i], Score: score * min(1, 0.5+shares[i]), Source: h.typ, Expected: &med,
			Reason: fmt.Sprintf("%s is %.4g against a %s median of %.4g (%.0f%% of what set this sample apart)", m.columns[i], row[i], whose, med, 100*shares[i])})
	}
	return out
}
