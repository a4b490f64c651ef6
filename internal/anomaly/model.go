package anomaly

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/anomaly/iforest"
	"github.com/smartcloudops/smartcloudops/internal/anomaly/pca"
	"github.com/smartcloudops/smartcloudops/internal/domain"
)

// ModelKind is the models.kind slot of the host model: at most one version
// of it is active. It kept the name of its first type when the PCA model
// joined, so versions stored before then stay in the same slot; the type a
// version actually holds is ModelInfo.ModelType.
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

// activeModel is a loaded model version with what scoring needs around it:
// the fleet model and the per-host models. It is immutable: swapping
// versions replaces the pointer, so a request keeps the model it started
// with and never sees a half-swapped one.
type activeModel struct {
	info    ModelInfo
	columns []string // metric names, in row order
	fleet   *hostModel
	hosts   map[string]*hostModel // per-host models; nil when none
}

// modelFor is the model that scores host: its own, else the fleet's.
func (m *activeModel) modelFor(host string) *hostModel {
	if h, ok := m.hosts[host]; ok {
		return h
	}
	return m.fleet
}

// row is the sample's feature vector for the model that scores its host, or
// nil when the sample has none of the model's metrics (nothing to compare).
func (m *activeModel) row(s Sample) (*hostModel, []float64) {
	h := m.modelFor(s.Host)
	row := make([]float64, len(m.columns))
	found := false
	for i, c := range m.columns {
		if v, ok := s.Metrics[c]; ok {
			row[i] = v
			found = true
		} else {
			row[i] = h.impute[i]
		}
	}
	if !found {
		return h, nil
	}
	return h, row
}

// ModelInfo describes one stored model version.
type ModelInfo struct {
	Version string `json:"version"`
	// Kind is the store's slot for the host model (always ModelKind); the
	// type that won the selection is ModelType.
	Kind string `json:"kind"`
	// ModelType is the fleet model's type (TypeIForest or TypePCA): the
	// candidate that won on the validation split (Validation.selection says
	// why). Versions stored before the selection existed are forests.
	ModelType string `json:"model_type"`
	// HostModels is the number of hosts with a model of their own.
	HostModels   int             `json:"host_models"`
	Active       bool            `json:"active"`
	TrainedAt    time.Time       `json:"trained_at"`
	TrainingFrom time.Time       `json:"training_from"`
	TrainingTo   time.Time       `json:"training_to"`
	TrainingRows int64           `json:"training_rows"`
	Parameters   json.RawMessage `json:"parameters"`
	Validation   json.RawMessage `json:"validation"`
}

func infoFromStore(m domain.Model) ModelInfo {
	info := ModelInfo{Version: m.Version, Kind: m.Kind, ModelType: TypeIForest, Active: m.Active, TrainedAt: m.TrainedAt, TrainingFrom: m.TrainingFrom,
		TrainingTo: m.TrainingTo, TrainingRows: m.TrainingRows, Parameters: m.Parameters, Validation: m.Validation}
	var v struct {
		Selection *Selection  `json:"selection"`
		Hosts     *HostReport `json:"hosts"`
	}
	if json.Unmarshal(m.Validation, &v) == nil {
		if v.Selection != nil && v.Selection.Winner != "" {
			info.ModelType = v.Selection.Winner
		}
		if v.Hosts != nil {
			info.HostModels = len(v.Hosts.Models)
		}
	}
	return info
}

// Parameters is how a model version was trained; stored as the model's
// parameters.
type Parameters struct {
	// Trees, SampleSize and Seed are the fleet Isolation Forest candidate's
	// (the seed is derived from the training rows).
	Trees         int      `json:"trees"`
	SampleSize    int      `json:"sample_size"`
	Seed          uint64   `json:"seed"`
	Contamination float64  `json:"contamination"`
	Columns       []string `json:"columns"`
	Window        string   `json:"window"`
	HoldoutShare  float64  `json:"holdout_share"`
	// Candidates are the model types fitted and compared.
	Candidates []string `json:"candidates"`
	// MaxHostModels caps the per-host models.
	MaxHostModels int `json:"max_host_models"`
}

// Validation is how the fleet model did; stored as the model's validation
// figures. The flag rates and the mean score are the winner's; the score
// median and threshold are the fleet forest candidate's raw calibration.
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
	// Selection is the fleet model's choice: each candidate's figures and
	// why the winner won. Absent on versions stored before it existed.
	Selection *Selection `json:"selection,omitempty"`
	// Hosts reports the per-host models.
	Hosts *HostReport `json:"hosts,omitempty"`

	forest *iforest.Forest // the fleet forest candidate, for Parameters
}

// Artifact layouts. Version 1 (magic SCOANOM1): uint32 header length, JSON
// header (columns, imputation medians, calibration), one forest. Version 2
// (SCOANOM2): uint32 header length, JSON header (columns, then per model its
// host, "" for the fleet model first, type, imputation medians, calibration
// for a forest, and byte length), then the models' bytes in header order.
// Both load; only version 2 is written.
var (
	artifactMagic   = []byte("SCOANOM1")
	artifactMagicV2 = []byte("SCOANOM2")
)

type artifactHeader struct {
	Columns []string    `json:"columns"`
	Impute  []float64   `json:"impute"`
	Calib   calibration `json:"calibration"`
}

type artifactModel struct {
	Host   string       `json:"host,omitempty"`
	Type   string       `json:"type"`
	Impute []float64    `json:"impute"`
	Calib  *calibration `json:"calibration,omitempty"`
	Bytes  int          `json:"bytes"`
}

type artifactHeaderV2 struct {
	Columns []string        `json:"columns"`
	Models  []artifactModel `json:"models"`
}

func encodeArtifact(m *activeModel) ([]byte, error) {
	hdr := artifactHeaderV2{Columns: m.columns}
	var blobs [][]byte
	add := func(host string, h *hostModel) error {
		var b []byte
		var err error
		am := artifactModel{Host: host, Type: h.typ, Impute: h.impute}
		switch h.typ {
		case TypeIForest:
			b, err = h.forest.MarshalBinary()
			c := h.calib
			am.Calib = &c
		case TypePCA:
			b, err = h.pca.MarshalBinary()
		default:
			err = fmt.Errorf("unknown model type %q", h.typ)
		}
		if err != nil {
			return fmt.Errorf("anomaly: serialize model %q: %w", host, err)
		}
		am.Bytes = len(b)
		hdr.Models = append(hdr.Models, am)
		blobs = append(blobs, b)
		return nil
	}
	if err := add("", m.fleet); err != nil {
		return nil, err
	}
	for _, host := range sortedKeys(m.hosts) {
		if err := add(host, m.hosts[host]); err != nil {
			return nil, err
		}
	}
	hj, err := json.Marshal(hdr)
	if err != nil {
		return nil, fmt.Errorf("anomaly: serialize model header: %w", err)
	}
	out := append(slices.Clone(artifactMagicV2), binary.LittleEndian.AppendUint32(nil, uint32(len(hj)))...)
	out = append(out, hj...)
	for _, b := range blobs {
		out = append(out, b...)
	}
	return out, nil
}

// header splits b past its magic into the JSON header and the rest.
func splitArtifact(version string, b []byte) (hdr, rest []byte, err error) {
	if len(b) < 4 {
		return nil, nil, fmt.Errorf("anomaly: model %s: truncated artifact header", version)
	}
	n := int(binary.LittleEndian.Uint32(b))
	b = b[4:]
	if n > len(b) {
		return nil, nil, fmt.Errorf("anomaly: model %s: truncated artifact header", version)
	}
	return b[:n], b[n:], nil
}

func decodeArtifact(info ModelInfo, b []byte) (*activeModel, error) {
	switch {
	case bytes.HasPrefix(b, artifactMagicV2):
		return decodeArtifactV2(info, b[len(artifactMagicV2):])
	case !bytes.HasPrefix(b, artifactMagic):
		return nil, fmt.Errorf("anomaly: model %s: artifact is not a SmartCloudOps model", info.Version)
	}
	hb, rest, err := splitArtifact(info.Version, b[len(artifactMagic):])
	if err != nil {
		return nil, err
	}
	var hdr artifactHeader
	if err := json.Unmarshal(hb, &hdr); err != nil {
		return nil, fmt.Errorf("anomaly: model %s: artifact header: %w", info.Version, err)
	}
	f := new(iforest.Forest)
	if err := f.UnmarshalBinary(rest); err != nil {
		return nil, fmt.Errorf("anomaly: model %s: %w", info.Version, err)
	}
	if len(hdr.Columns) == 0 || len(hdr.Columns) != f.NumFeatures() || len(hdr.Impute) != len(hdr.Columns) ||
		!hdr.Calib.valid() {
		return nil, fmt.Errorf("anomaly: model %s: artifact header does not match its forest", info.Version)
	}
	info.ModelType = TypeIForest
	return &activeModel{info: info, columns: hdr.Columns,
		fleet: &hostModel{typ: TypeIForest, forest: f, calib: hdr.Calib, impute: hdr.Impute, scope: info.Version}}, nil
}

func decodeArtifactV2(info ModelInfo, b []byte) (*activeModel, error) {
	hb, rest, err := splitArtifact(info.Version, b)
	if err != nil {
		return nil, err
	}
	var hdr artifactHeaderV2
	if err := json.Unmarshal(hb, &hdr); err != nil {
		return nil, fmt.Errorf("anomaly: model %s: artifact header: %w", info.Version, err)
	}
	cols := len(hdr.Columns)
	bad := func(format string, args ...any) error {
		return fmt.Errorf("anomaly: model %s: artifact: %s", info.Version, fmt.Sprintf(format, args...))
	}
	if cols == 0 || len(hdr.Models) == 0 || hdr.Models[0].Host != "" || len(hdr.Models) > maxHostModels+1 {
		return nil, bad("no columns, no fleet model first, or more than %d host models", maxHostModels)
	}
	am := &activeModel{info: info, columns: hdr.Columns}
	for i, mh := range hdr.Models {
		if mh.Bytes < 0 || mh.Bytes > len(rest) {
			return nil, bad("model %d claims %d bytes, %d left", i, mh.Bytes, len(rest))
		}
		blob := rest[:mh.Bytes]
		rest = rest[mh.Bytes:]
		if len(mh.Impute) != cols {
			return nil, bad("model %d has %d imputation values for %d columns", i, len(mh.Impute), cols)
		}
		for _, v := range mh.Impute {
			if !(math.Abs(v) <= MaxMetricMagnitude) {
				return nil, bad("model %d has an imputation value out of range", i)
			}
		}
		h := &hostModel{typ: mh.Type, impute: mh.Impute, scope: info.Version}
		switch mh.Type {
		case TypeIForest:
			h.forest = new(iforest.Forest)
			if err := h.forest.UnmarshalBinary(blob); err != nil {
				return nil, fmt.Errorf("anomaly: model %s: host %q: %w", info.Version, mh.Host, err)
			}
			if h.forest.NumFeatures() != cols || mh.Calib == nil || !mh.Calib.valid() {
				return nil, bad("forest %d does not match the header", i)
			}
			h.calib = *mh.Calib
		case TypePCA:
			h.pca = new(pca.Model)
			if err := h.pca.UnmarshalBinary(blob); err != nil {
				return nil, fmt.Errorf("anomaly: model %s: host %q: %w", info.Version, mh.Host, err)
			}
			if h.pca.Columns() != cols {
				return nil, bad("PCA model %d does not match the header", i)
			}
		default:
			return nil, bad("model %d has unknown type %q", i, mh.Type)
		}
		if i == 0 {
			am.fleet = h
			info.ModelType = h.typ
			continue
		}
		if _, dup := am.hosts[mh.Host]; dup || mh.Host == "" {
			return nil, bad("host %q named twice or empty", mh.Host)
		}
		if am.hosts == nil {
			am.hosts = map[string]*hostModel{}
		}
		h.scope = info.Version + "@" + mh.Host
		am.hosts[mh.Host] = h
	}
	if len(rest) != 0 {
		return nil, bad("%d trailing bytes", len(rest))
	}
	info.HostModels = len(am.hosts)
	am.info = info
	return am, nil
}

// trainingSet is the history turned into a matrix.
type trainingSet struct {
	columns  []string
	impute   []float64
	train    []float64 // row-major, len(columns) wide
	holdout  []float64
	from, to time.Time
	// samples, split and cut are kept for the per-host sets (forHost).
	samples []Sample
	split   bool
	cut     time.Time
}

// maxColumns bounds the forest's width; past it the most frequently reported
// metrics win.
const maxColumns = 32

// buildTrainingSet picks the columns (metrics present in at least half the
// samples, well-known ones first, at most maxColumns), imputes missing
// values with the column median, and holds out the most recent share of the
// window for validation.
func buildTrainingSet(history []domain.MetricSample, holdoutShare float64) trainingSet {
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
	ts.samples, ts.split, ts.cut = samples, holdoutShare > 0, ts.to
	if ts.split {
		ts.cut = ts.from.Add(time.Duration(float64(ts.to.Sub(ts.from)) * (1 - holdoutShare)))
	}
	ts.train, ts.holdout = ts.matrix(samples, ts.impute)
	return ts
}

// matrix turns samples into the training and holdout matrices on the set's
// columns and cut, imputing a missing metric from impute.
func (ts *trainingSet) matrix(samples []Sample, impute []float64) (train, holdout []float64) {
	for _, s := range samples {
		dst := &train
		if ts.split && s.Timestamp.After(ts.cut) {
			dst = &holdout
		}
		for i, c := range ts.columns {
			v, ok := s.Metrics[c]
			if !ok {
				v = impute[i]
			}
			*dst = append(*dst, v)
		}
	}
	return train, holdout
}

// hostRows counts the training samples per host.
func (ts *trainingSet) hostRows() map[string]int {
	counts := map[string]int{}
	for _, s := range ts.samples {
		counts[s.Host]++
	}
	return counts
}

// forHost is the host's own training set on the fleet's columns and cut:
// its matrices and its medians (the fleet's where the host never reports a
// metric).
func (ts *trainingSet) forHost(host string) (train, holdout, impute []float64) {
	var mine []Sample
	for _, s := range ts.samples {
		if s.Host == host {
			mine = append(mine, s)
		}
	}
	impute = make([]float64, len(ts.columns))
	for i, c := range ts.columns {
		var vals []float64
		for _, s := range mine {
			if v, ok := s.Metrics[c]; ok {
				vals = append(vals, v)
			}
		}
		impute[i] = ts.impute[i]
		if len(vals) > 0 {
			impute[i] = quantile(vals, 0.5)
		}
	}
	train, holdout = ts.matrix(mine, impute)
	return train, holdout, impute
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
