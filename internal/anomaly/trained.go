package anomaly

import (
	"errors"
	"fmt"
	"slices"

	"github.com/smartcloudops/smartcloudops/internal/domain"
)

// TrainedModel is a host model fitted outside the service, exactly as Train
// fits one: the detect CLI's --train-rows and --train use it, so a file
// scored by the CLI gets the model component the service would give the
// same rows. It is immutable and safe for concurrent use.
type TrainedModel struct {
	am  *activeModel
	val Validation
}

// FitSamples fits the host models on samples (each passed through
// Normalize), taken as normal, the way Train fits them on the store's
// history: the same columns, holdout, candidates, selection and per-host
// models. Options supply Trees, SampleSize, Contamination, Threshold and
// MinTrainingRows (their defaults when zero); every sample is used (the
// service caps the history it reads at MaxTrainingRows).
func FitSamples(samples []Sample, o Options) (*TrainedModel, error) {
	o.defaults()
	if len(samples) < 2 {
		return nil, fmt.Errorf("anomaly: fit: %d samples: %w", len(samples), ErrNotEnoughData)
	}
	hist := make([]domain.MetricSample, len(samples))
	for i, s := range samples {
		hist[i] = ToStore(s)
	}
	ts := buildTrainingSet(hist, holdoutShare)
	cols := len(ts.columns)
	if cols == 0 || len(ts.train)/cols < 2 {
		return nil, fmt.Errorf("anomaly: fit: no metric is reported by half the samples, or too few samples before the holdout: %w", ErrNotEnoughData)
	}
	fo := fitOptions{trees: o.Trees, sampleSize: o.SampleSize, contamination: o.Contamination}
	am, val, err := trainModel(ts, fo, o.Threshold, o.MinTrainingRows)
	if err != nil {
		return nil, fmt.Errorf("anomaly: fit: %w", err)
	}
	return &TrainedModel{am: am, val: val}, nil
}

// Columns are the metric names of a row, in the order ScoreRow takes them.
func (t *TrainedModel) Columns() []string { return slices.Clone(t.am.columns) }

// ScoreRow is the fleet model's calibrated score of row (Columns order; 0.5
// at the model's limit): the service's model component for a sample of
// those values.
func (t *TrainedModel) ScoreRow(row []float64) (float64, error) {
	if len(row) != len(t.am.columns) {
		return 0, errors.New("anomaly: row length differs from the model's columns")
	}
	out := []float64{0}
	if err := t.am.fleet.scoreRows([][]float64{row}, out); err != nil {
		return 0, fmt.Errorf("anomaly: score: %w", err)
	}
	return out[0], nil
}

// Explain returns the index (in Columns) of the metric with the largest
// share of what set row apart, and a tag naming the statistic: "pca:T2" or
// "pca:Q" for PCA, "iforest" for the forest.
func (t *TrainedModel) Explain(row []float64) (int, string) {
	h := t.am.fleet
	shares := h.shares(row)
	top := 0
	for i, v := range shares {
		if v > shares[top] {
			top = i
		}
	}
	if h.typ != TypePCA {
		return top, h.typ
	}
	t2, q := h.pca.Stats(row)
	lt, lq := h.pca.Limits()
	if q/lq >= t2/lt {
		return top, "pca:Q"
	}
	return top, "pca:T2"
}
