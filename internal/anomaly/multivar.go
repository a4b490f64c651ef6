package anomaly

// The host models: for the fleet, and for each host with enough history, an
// Isolation Forest and a PCA model are fitted on the training rows and one is
// kept, chosen on the holdout by selectModel (see docs/anomaly-models.md).

import (
	"fmt"
	"math"
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
