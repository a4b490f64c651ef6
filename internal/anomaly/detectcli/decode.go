package detectcli

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/anomaly/stream"
	"github.com/smartcloudops/smartcloudops/internal/domain"
)

// ErrUsage is matched (errors.Is) by every error caused by the caller rather
// than by the machine: bad flags, and bad input (an *InputError). The command
// maps it to exit status 2; anything else is 1.
var ErrUsage = errors.New("detect: usage")

// InputError names the place in the input CSV that could not be used.
type InputError struct {
	// Line is the 1-based line of the input (the header is line 1).
	Line int
	// Column is the header name of the offending column, empty when the
	// problem is the row or the header as a whole.
	Column string
	// Err is the problem.
	Err error
}

// Error reads like "line 12, column "value": parse "abc": not a number".
func (e *InputError) Error() string {
	if e.Column == "" {
		return fmt.Sprintf("detect: input line %d: %v", e.Line, e.Err)
	}
	return fmt.Sprintf("detect: input line %d, column %q: %v", e.Line, e.Column, e.Err)
}

// Unwrap returns the underlying problem.
func (e *InputError) Unwrap() error { return e.Err }

// Is makes every InputError match ErrUsage: it is the caller's data at fault.
func (e *InputError) Is(target error) bool { return target == ErrUsage }

// row is one decoded input row. Raw strings are kept so the output echoes the
// input's own spelling of the timestamp and value.
type row struct {
	line   int
	rawTS  string
	ts     time.Time
	rawVal []string
	vals   []float64
}

// decoder streams rows of a CSV that has a timestamp column and one or more
// numeric columns. It holds one record at a time.
type decoder struct {
	r       *csv.Reader
	tsCol   int
	valCols []int    // input column of each metric
	names   []string // metric names, in valCols order
	row     row
}

// newDecoder reads and checks the header. Every column other than timestamp
// is a metric; a header that is only "timestamp,value" is NAB's format.
func newDecoder(in io.Reader) (*decoder, error) {
	r := csv.NewReader(in)
	r.ReuseRecord = true
	r.TrimLeadingSpace = true
	header, err := r.Read()
	if err == io.EOF {
		return nil, &InputError{Line: 1, Err: errors.New("empty input: want a header with a timestamp column")}
	}
	if err != nil {
		return nil, csvError(err)
	}
	d := &decoder{r: r, tsCol: -1}
	seen := make(map[string]bool, len(header))
	for i, h := range header {
		name := strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		key := strings.ToLower(name)
		if name == "" {
			return nil, &InputError{Line: 1, Err: fmt.Errorf("header column %d has no name", i+1)}
		}
		if seen[key] {
			return nil, &InputError{Line: 1, Column: name, Err: errors.New("duplicate column")}
		}
		seen[key] = true
		if key == "timestamp" {
			d.tsCol = i
			continue
		}
		d.valCols = append(d.valCols, i)
		d.names = append(d.names, name)
	}
	if d.tsCol < 0 {
		return nil, &InputError{Line: 1, Column: "timestamp", Err: errors.New("missing column")}
	}
	if len(d.valCols) == 0 {
		return nil, &InputError{Line: 1, Column: "value", Err: errors.New("missing column: want value or one or more metric columns")}
	}
	d.row.rawVal = make([]string, len(d.valCols))
	d.row.vals = make([]float64, len(d.valCols))
	return d, nil
}

// csvError turns encoding/csv's positioned errors into InputErrors.
func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &InputError{Line: pe.Line, Err: pe.Err}
	}
	return fmt.Errorf("detect: read input: %w", err)
}

// next decodes the next row into d.row, which is valid until the next call.
// It returns io.EOF at the end of the input.
func (d *decoder) next() (*row, error) {
	rec, err := d.r.Read()
	if err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, csvError(err)
	}
	line, _ := d.r.FieldPos(0)
	d.row.line = line
	raw := rec[d.tsCol]
	ts, err := domain.ParseTimestamp(raw)
	if err != nil {
		return nil, &InputError{Line: line, Column: "timestamp", Err: err}
	}
	d.row.rawTS, d.row.ts = raw, ts
	for j, c := range d.valCols {
		s := strings.TrimSpace(rec[c])
		v, err := parseValue(s)
		if err != nil {
			return nil, &InputError{Line: line, Column: d.names[j], Err: err}
		}
		d.row.rawVal[j], d.row.vals[j] = s, v
	}
	return &d.row, nil
}

// parseValue accepts a finite decimal number.
func parseValue(s string) (float64, error) {
	if s == "" {
		return 0, errors.New("empty value")
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && ne.Err == strconv.ErrRange {
			return 0, fmt.Errorf("%q is out of range", s)
		}
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not finite", s)
	}
	if math.Abs(v) > stream.MaxAbsValue {
		// The detector ignores such values; say so rather than skip them.
		return 0, fmt.Errorf("%q is beyond ±%g", s, stream.MaxAbsValue)
	}
	return v, nil
}
