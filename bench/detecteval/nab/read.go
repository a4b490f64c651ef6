package nab

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
)

// ReadResult reads a detector's output CSV (a header with timestamp and
// column, one row per data row) and returns the timestamps and that column.
func ReadResult(r io.Reader, column string) ([]string, []float64, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return nil, nil, fmt.Errorf("nab: result header: %w", err)
	}
	tsCol, valCol := -1, -1
	for i, h := range head {
		switch h {
		case "timestamp":
			tsCol = i
		case column:
			valCol = i
		}
	}
	if tsCol < 0 || valCol < 0 {
		return nil, nil, fmt.Errorf("nab: result header %q lacks timestamp or %s", head, column)
	}
	var ts []string
	var vals []float64
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return ts, vals, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("nab: result: %w", err)
		}
		v, err := strconv.ParseFloat(rec[valCol], 64)
		if err != nil {
			line, _ := cr.FieldPos(valCol)
			return nil, nil, fmt.Errorf("nab: result line %d, %s: %w", line, column, err)
		}
		ts = append(ts, rec[tsCol])
		vals = append(vals, v)
	}
}
