package anomaly

import (
	"bytes"
	"encoding"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/anomaly/iforest"
	"github.com/smartcloudops/smartcloudops/internal/store"
)

// ModelKind is the models.kind of the host Isolation Forest.
const ModelKind = "iforest"

// ErrNotEnoughData means the training window holds too few samples.
var ErrNotEnoughData = errors.New("anomaly: not enough training data")

// ErrModelNotFound means no stored model has the requested version.
var ErrModelNotFound = errors.New("anomaly: model not found")

// ErrBusy means a training or activation is already running.
var ErrBusy = errors.New("anomaly: a training or activation is already running")

// ErrNoStore means the service runs without a store, so it cannot ingest or
// keep model versions.
var ErrNoStore = errors.New("anomaly: no store configured")

// calibration maps a raw forest score to the service's scale through the
// training-score quantiles.
type calibration struct {
	Median    float64 `json:"median"`
	Threshold float64 `json:"threshold"`
	// Extreme is the score of a row beyond the training range on every
	// metric: the most isolated a row gets in this forest. Isolation
	// saturates (a value 10σ out is isolated as fast as one 4σ out), so the
	// top of the scale is set by the forest itself rather than by 1.
	Extreme float64 `json:"extreme"`
}

func (c calibration) apply(raw float64) float64 {
	switch {
	case math.IsNaN(raw):
		return 0
	case raw <= c.Median:
		return 0.2 * max(raw, 0) / c.Median
	case raw <= c.Threshold:
		return 0.2 + 0.3*(raw-c.Median)/(c.Threshold-c.Median)
	default:
		return min(1, 0.5+0.5*(raw-c.Threshold)/(c.Extreme-c.Threshold))
	}
}

func (c calibration) valid() bool {
	return c.Median > 0 && c.Median < c.Threshold && c.Threshold < c.Extreme && c.Extreme <= 1
}

// activeModel is a loaded forest with what scoring needs around it. It is
// immutable: swapping versions replaces the pointer, so a request keeps the
// model it started with and never sees a half-swapped one.
type activeModel struct {
	info    ModelInfo
	forest  *iforest.Forest
	columns []string  // metric names, in row order
	impute  []float64 // training median per column, for a metric a sample lacks
	calib   calibration
}

// row is the sample's feature vector for the forest, or nil when the sample
// has none of the model's metrics (nothing to compare).
func (m *activeModel) row(s Sample) []float64 {
	row := make([]float64, len(m.columns))
	found := false
	for i, c := range m.columns {
		if v, ok := s.Metrics[c]; ok {
			row[i] = v
			found = true
		} else {
			row[i] = m.impute[i]
		}
	}
	if !found {
		return nil
	}
	return row
}

// ModelInfo describes one stored model version.
type ModelInfo struct {
	Version      string          `json:"version"`
	Kind         string          `json:"kind"`
	Active       bool            `json:"active"`
	TrainedAt    time.Time       `json:"trained_at"`
	TrainingFrom time.Time       `json:"training_from"`
	TrainingTo   time.Time       `json:"training_to"`
	TrainingRows int64           `json:"training_rows"`
	Parameters   json.RawMessage `json:"parameters"`
	Validation   json.RawMessage `json:"validation"`
}

func infoFromStore(m store.Model) ModelInfo {
	return ModelInfo{Version: m.Version, Kind: m.Kind, Active: m.Active, TrainedAt: m.TrainedAt, TrainingFrom: m.TrainingFrom,
		TrainingTo: m.TrainingTo, TrainingRows: m.TrainingRows, Parameters: m.Parameters, Validation: m.Validation}
}

// Parameters is how a forest was trained; stored as the model's parameters.
type Parameters struct {
	Trees         int      `json:"trees"`
	SampleSize    int      `json:"sample_size"`
	Seed          uint64   `json:"seed"`
	Contamination float64  `json:"contamination"`
	Columns       []string `json:"columns"`
	Window        string   `json:"window"`
	HoldoutShare  float64  `json:"holdout_share"`
}

// Validation is how a forest did; stored as the model's validation figures.
type Validation struct {
	TrainRows        int     `json:"train_rows"`
	HoldoutRows      int     `json:"holdout_rows"`
	ScoreMedian      float64 `json:"score_median"`
	ScoreThreshold   float64 `json:"score_threshold"`
	TrainFlagRate    float64 `json:"train_flag_rate"`
	HoldoutFlagRate  float64 `json:"holdout_flag_rate"`
	HoldoutMeanScore float64 `json:"holdout_mean_score"`
	TrainSeconds     float64 `json:"train_seconds"`
	ScoreRowsPerSec  float64 `json:"score_rows_per_second"`
}

// artifact layout: magic, uint32 header length, JSON header, forest bytes.
// The header carries what the forest alone does not: the column names, the
// imputation medians and the calibration.
var artifactMagic = []byte("SCOANOM1")

type artifactHeader struct {
	Columns []string    `json:"columns"`
	Impute  []float64   `json:"impute"`
	Calib   calibration `json:"calibration"`
}

func encodeArtifact(m *activeModel) ([]byte, error) {
	bm, ok := any(m.forest).(encoding.BinaryMarshaler)
	if !ok {
		return nil, errors.New("anomaly: this build's iforest cannot serialize a forest")
	}
	fb, err := bm.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("anomaly: serialize forest: %w", err)
	}
	hdr, err := json.Marshal(artifactHeader{Columns: m.columns, Impute: m.impute, Calib: m.calib})
	if err != nil {
		return nil, fmt.Errorf("anomaly: serialize model header: %w", err)
	}
	out := make([]byte, 0, len(artifactMagic)+4+len(hdr)+len(fb))
	out = append(out, artifactMagic...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(hdr)))
	out = append(out, hdr...)
	return append(out, fb...), nil
}

func decodeArtifact(info ModelInfo, b []byte) (*activeModel, error) {
	if !bytes.HasPrefix(b, artifactMagic) || len(b) < len(artifactMagic)+4 {
		return nil, fmt.Errorf("anomaly: model %s: artifact is not a SmartCloudOps forest", info.Version)
	}
	b = b[len(artifactMagic):]
	n := int(binary.LittleEndian.Uint32(b))
	b = b[4:]
	if n > len(b) {
		return nil, fmt.Errorf("anomaly: model %s: truncated artifact header", info.Version)
	}
	var hdr artifactHeader
	if err := json.Unmarshal(b[:n], &hdr); err != nil {
		return nil, fmt.Errorf("anomaly: model %s: artifact header: %w", info.Version, err)
	}
	f := new(iforest.Forest)
	um, ok := any(f).(encoding.BinaryUnmarshaler)
	if !ok {
		return nil, errors.New("anomaly: this build's iforest cannot load a forest")
	}
	if err := um.UnmarshalBinary(b[n:]); err != nil {
		return nil, fmt.Errorf("anomaly: model %s: %w", info.Version, err)
	}
	if len(hdr.Columns) == 0 || len(hdr.Columns) != f.NumFeatures() || len(hdr.Impute) != len(hdr.Columns) ||
		!hdr.Calib.valid() {
		return nil, fmt.Errorf("anomaly: model %s: artifact header does not match its forest", info.Version)
	}
	return &activeModel{info: info, forest: f, columns: hdr.Columns, impute: hdr.Impute, calib: hdr.Calib}, nil
}

// trainingSet is the history turned into a matrix.
type trainingSet struct {
	columns  []string
	impute   []float64
	train    []float64 // row-major, len(columns) wide
	holdout  []float64
	from, to time.Time
}

// maxColumns bounds the forest's width; past it the most frequently reported
// metrics win.
const maxColumns = 32

// buildTrainingSet picks the columns (metrics present in at least half the
// samples, well-known ones first, at most maxColumns), imputes missing
// values with the column median, and holds out the most recent share of the
// window for validation.
func buildTrainingSet(history []store.MetricSample, holdoutShare float64) trainingSet {
	var ts trainingSet
	samples := make([]Sample, len(history))
	counts := map[string]int{}
	for i, h := range history {
		samples[i] = FromStore(h)
		for k := range samples[i].Metrics {
			counts[k]++
		}
		if ts.from.IsZero() || h.Timestamp.Before(ts.from) {
			ts.from = h.Timestamp
		}
		if h.Timestamp.After(ts.to) {
			ts.to = h.Timestamp
		}
	}
	rank := map[string]int{}
	for i, n := range WellKnownMetrics() {
		rank[n] = i
	}
	for k, n := range counts {
		if 2*n >= len(samples) {
			ts.columns = append(ts.columns, k)
		}
	}
	sort.Slice(ts.columns, func(i, j int) bool {
		a, b := ts.columns[i], ts.columns[j]
		ra, oka := rank[a]
		rb, okb := rank[b]
		switch {
		case oka && okb:
			return ra < rb
		case oka != okb:
			return oka
		case counts[a] != counts[b]:
			return counts[a] > counts[b]
		}
		return a < b
	})
	if len(ts.columns) > maxColumns {
		ts.columns = ts.columns[:maxColumns]
	}
	ts.impute = make([]float64, len(ts.columns))
	for i, c := range ts.columns {
		var vals []float64
		for _, s := range samples {
			if v, ok := s.Metrics[c]; ok {
				vals = append(vals, v)
			}
		}
		ts.impute[i] = quantile(vals, 0.5)
	}
	cut := ts.to
	if holdoutShare > 0 {
		cut = ts.from.Add(time.Duration(float64(ts.to.Sub(ts.from)) * (1 - holdoutShare)))
	}
	for _, s := range samples {
		dst := &ts.train
		if holdoutShare > 0 && s.Timestamp.After(cut) {
			dst = &ts.holdout
		}
		for i, c := range ts.columns {
			v, ok := s.Metrics[c]
			if !ok {
				v = ts.impute[i]
			}
			*dst = append(*dst, v)
		}
	}
	return ts
}

// quantile returns the q-quantile of vals (sorting a copy), 0 for none.
func quantile(vals []float64, q float64) float64 {
	if len(vals) == 0 {
		return 0
	}
	s := append([]float64(nil), vals...)
	sort.Float64s(s)
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(s)-1)
	return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
}
