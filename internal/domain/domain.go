// Package domain holds the types every part of SmartCloudOps speaks — a
// host's metric sample, a stored anomaly and its severity, a trained model
// version — and the one timestamp rule every input follows. It imports
// nothing of the project, so the HTTP API, the anomaly service, the detect
// CLI and the store can all depend on it without depending on each other.
package domain

import (
	"encoding/json"
	"errors"
	"time"
)

// MetricSample is one host's metrics at one instant, as stored in
// system_metrics. The well-known metrics are pointers because a host may not
// report them all; anything else numeric goes to Extra.
type MetricSample struct {
	Host           string
	Timestamp      time.Time
	CPUUsage       *float64
	MemoryUsage    *float64
	DiskUsage      *float64
	NetworkIn      *float64
	NetworkOut     *float64
	LoadAverage    *float64
	ResponseTimeMS *float64
	ErrorRate      *float64
	RequestRate    *float64
	Extra          map[string]float64
}

// Severity grades an anomaly score.
type Severity string

// The severities, by anomaly score.
const (
	SeverityLow      Severity = "low"      // < 0.4
	SeverityMedium   Severity = "medium"   // ≥ 0.4
	SeverityHigh     Severity = "high"     // ≥ 0.6
	SeverityCritical Severity = "critical" // ≥ 0.8
)

// SeverityOf returns the severity of score.
func SeverityOf(score float64) Severity {
	switch {
	case score >= 0.8:
		return SeverityCritical
	case score >= 0.6:
		return SeverityHigh
	case score >= 0.4:
		return SeverityMedium
	}
	return SeverityLow
}

// Anomaly is one detected anomaly as stored in the anomalies table.
type Anomaly struct {
	ID         int64
	Host       string
	Metric     string // the metric that contributed most; "" for a host-wide finding
	DetectedAt time.Time
	Score      float64
	Confidence float64
	// Severity is one of the four Severity values (the table checks it).
	Severity     Severity
	Status       string // open, acknowledged, resolved; "" stores "open"
	ModelVersion string
	Features     map[string]float64
	Explanation  string
}

// ErrModelNotFound is wrapped by the model lookups when no version matches.
var ErrModelNotFound = errors.New("model not found")

// Model is one trained model version as stored in the models table.
type Model struct {
	Version string
	// Kind groups versions of which at most one is active (for example "iforest").
	Kind string
	// Parameters and Validation are JSON objects: how the model was trained
	// and how it did on held-out data.
	Parameters   json.RawMessage
	Validation   json.RawMessage
	TrainedAt    time.Time
	TrainingFrom time.Time // zero when unknown
	TrainingTo   time.Time // zero when unknown
	TrainingRows int64
	// Artifact is the serialized model. A listing of versions leaves it nil;
	// a lookup of one version fills it.
	Artifact []byte
	Active   bool
}

// HistoryQuery selects stored samples for training.
type HistoryQuery struct {
	Host     string    // "" for every host
	From, To time.Time // [From, To); zero for no bound
	// Limit keeps the most recent Limit samples (default 10000), so a long
	// window cannot load an unbounded table into memory.
	Limit int
}
