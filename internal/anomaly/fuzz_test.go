package anomaly

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/anomaly/iforest"
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
			learned, err := s.learn(ctx, []Sample{n}, 0)
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

// FuzzDecodeArtifact: a model artifact is read back from the database, so
// it is outside input too. Garbage is refused with an error, never a panic;
// an artifact that decodes scores ordinary and extreme samples finitely.
func FuzzDecodeArtifact(f *testing.F) {
	// A small forest keeps inputs small enough for the fuzzer to mutate
	// quickly; the codec is the same for every size.
	good, err := encodeArtifact(fitModelWith(f, "iforest-art", iforest.Options{Trees: 2, SampleSize: 8, Seed: 9}))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(append([]byte(nil), good[:len(artifactMagic)+4]...))
	f.Add([]byte("not a model"))
	// A version-2 artifact with a fleet model and per-host models (PCA and
	// tiny forests), and the version-1 layout of the forest above.
	am, _, err := trainModel(buildTrainingSet(roleHistory(3, 300, func(h int) bool { return h == 0 }), holdoutShare),
		fitOptions{trees: 2, sampleSize: 8, contamination: 0.005}, 0.5, 256)
	if err != nil {
		f.Fatal(err)
	}
	hosts, err := encodeArtifact(am)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(hosts)
	old := fitModelWith(f, "iforest-v1", iforest.Options{Trees: 2, SampleSize: 8, Seed: 9})
	fb, _ := old.fleet.forest.MarshalBinary()
	hdr, _ := json.Marshal(artifactHeader{Columns: old.columns, Impute: old.fleet.impute, Calib: old.fleet.calib})
	v1 := append(append(append([]byte("SCOANOM1"), binary.LittleEndian.AppendUint32(nil, uint32(len(hdr)))...), hdr...), fb...)
	f.Add(v1)
	s, _ := newService(f, nil)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, b []byte) {
		am, err := decodeArtifact(ModelInfo{Version: "iforest-fuzz", Kind: ModelKind}, b)
		if err != nil {
			return
		}
		s.model.Store(am)
		defer s.model.Store(nil)
		for i, cpu := range []float64{50, MaxMetricMagnitude, -MaxMetricMagnitude} {
			host := []string{"art-1", "h00", "h01"}[i]
			smp, err := Normalize(Sample{Host: host, Timestamp: t0, Metrics: map[string]float64{MetricCPU: cpu, MetricMemory: 57, MetricRequestRate: 270}})
			if err != nil {
				t.Fatal(err)
			}
			res, err := s.Detect(ctx, []Sample{smp}, DetectOptions{NoCache: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := finiteResult(res[0]); err != nil {
				t.Fatalf("cpu %v with a decoded model: %v", cpu, err)
			}
		}
	})
}
