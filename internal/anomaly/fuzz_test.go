package anomaly

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"testing"
	"time"
)

// FuzzScoringStaysFinite reads the input as a stream of float64 values for
// two metrics of one host. Values the API would refuse must be refused by
// Normalize with a FieldError; every accepted sample, learned (ingest) and
// read (detect), against a forest and the streaming detectors, must score
// finitely and encode as JSON. The service lives across inputs, so the
// fuzzer also builds up hostile history.
func FuzzScoringStaysFinite(f *testing.F) {
	seed := func(vals ...float64) []byte {
		b := make([]byte, 0, 8*len(vals))
		for _, v := range vals {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
		return b
	}
	f.Add(seed(30, 31, 29, 30, 95, 30))
	f.Add(seed(1e30, -1e30, 1e30, -1e30, 0, 5e-324))
	f.Add(seed(math.MaxFloat64, -math.MaxFloat64, math.NaN(), math.Inf(1)))
	f.Add(seed(1.23e38, 50, 1.23e38, 50, -1.23e38))
	s, _ := newService(f, func(o *Options) { o.Stream.WarmUp = 5 })
	s.model.Store(fitModel(f, "iforest-fuzz", 5))
	ctx := context.Background()
	step := 0
	f.Fuzz(func(t *testing.T, data []byte) {
		for len(data) >= 16 {
			a := math.Float64frombits(binary.LittleEndian.Uint64(data))
			b := math.Float64frombits(binary.LittleEndian.Uint64(data[8:]))
			data = data[16:]
			step++
			smp := Sample{Host: "fuzz-1", Timestamp: t0.Add(time.Duration(step) * time.Minute), Metrics: map[string]float64{MetricCPU: a, "custom": b}}
			n, err := Normalize(smp)
			accept := math.Abs(a) <= MaxMetricMagnitude && math.Abs(b) <= MaxMetricMagnitude
			if !accept {
				var fe *FieldError
				if !errors.As(err, &fe) {
					t.Fatalf("values %v, %v: Normalize = %v; want a FieldError", a, b, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("values %v, %v refused: %v", a, b, err)
			}
			learned, err := s.learn(ctx, []Sample{n})
			if err != nil {
				t.Fatal(err)
			}
			read, err := s.Detect(ctx, []Sample{n}, DetectOptions{NoCache: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range append(learned, read...) {
				if err := finiteResult(r); err != nil {
					t.Fatalf("values %v, %v: %v", a, b, err)
				}
			}
		}
	})
}
