package anomaly

import (
	"encoding/json"
	"errors"
	"math"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/anomaly/iforest"
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
