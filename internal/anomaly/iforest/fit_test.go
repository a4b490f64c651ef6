package iforest

import "fmt"

// Fit trains a forest on rows, which must all have the same length and hold
// only finite values. At least two rows are required.
func Fit(rows [][]float64, opts Options) (*Forest, error) {
	if len(rows) < 2 {
		return nil, fmt.Errorf("iforest: fit: %d rows: %w", len(rows), ErrTooFewRows)
	}
	cols := len(rows[0])
	data := make([]float64, 0, len(rows)*cols)
	for i, r := range rows {
		if len(r) != cols {
			return nil, fmt.Errorf("iforest: fit: row %d has %d values, row 0 has %d: %w", i, len(r), cols, ErrRagged)
		}
		data = append(data, r...)
	}
	f, err := fitMatrix(data, cols, opts)
	if err != nil {
		return nil, fmt.Errorf("iforest: fit: %w", err)
	}
	return f, nil
}
