package otlp

import (
	"errors"

	"google.golang.org/protobuf/encoding/protowire"
)

// errWire is a protobuf body that does not parse as far as wireCount
// reads it.
var errWire = errors.New("truncated or corrupt protobuf")

// The field numbers wireCount walks: ExportMetricsServiceRequest.
// resource_metrics → ResourceMetrics.scope_metrics → ScopeMetrics.metrics
// → Metric's data (gauge, sum, histogram, exponential_histogram, summary)
// → data_points.
const (
	fieldResourceMetrics = 1
	fieldScopeMetrics    = 2
	fieldMetrics         = 2
	fieldDataPoints      = 1
)

var metricDataFields = map[protowire.Number]bool{5: true, 7: true, 9: true, 10: true, 11: true}

// wireCount counts the data points of a binary ExportMetricsServiceRequest
// without decoding it, stopping past limit, so a request of a million
// points is refused before a million structs are made.
func wireCount(b []byte, limit int) (int, error) {
	n := 0
	err := eachField(b, fieldResourceMetrics, func(rm []byte) error {
		return eachField(rm, fieldScopeMetrics, func(sm []byte) error {
			return eachField(sm, fieldMetrics, func(m []byte) error {
				return eachData(m, func(data []byte) error {
					return eachField(data, fieldDataPoints, func([]byte) error {
						n++
						if n > limit {
							return errStop
						}
						return nil
					})
				})
			})
		})
	})
	if errors.Is(err, errStop) {
		return n, nil
	}
	return n, err
}

var errStop = errors.New("stop")

// eachField calls fn with the bytes of every length-delimited field num of
// message b, skipping the others.
func eachField(b []byte, num protowire.Number, fn func([]byte) error) error {
	return walk(b, func(n protowire.Number, v []byte) error {
		if n == num {
			return fn(v)
		}
		return nil
	})
}

// eachData calls fn with a Metric's data message, whichever type it is.
func eachData(b []byte, fn func([]byte) error) error {
	return walk(b, func(n protowire.Number, v []byte) error {
		if metricDataFields[n] {
			return fn(v)
		}
		return nil
	})
}

// walk calls fn with each length-delimited field of b (nil for other wire
// types, which it skips).
func walk(b []byte, fn func(protowire.Number, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errWire
		}
		b = b[n:]
		if typ != protowire.BytesType {
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return errWire
			}
			b = b[m:]
			continue
		}
		v, m := protowire.ConsumeBytes(b)
		if m < 0 {
			return errWire
		}
		b = b[m:]
		if err := fn(num, v); err != nil {
			return err
		}
	}
	return nil
}
