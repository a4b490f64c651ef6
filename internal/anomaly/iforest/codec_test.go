package iforest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	probe := gaussian(rng, 300, 4)
	probe = append(probe, []float64{-50, 0, 1e9, 52})
	for _, opts := range []Options{
		{},
		{Trees: 7, SampleSize: 50, MaxFeatures: 2, Seed: 9},
		{Trees: 1, SampleSize: 2},
	} {
		f := mustFit(t, gaussian(rng, 1000, 4), opts)
		blob, err := f.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var g Forest
		if err := g.UnmarshalBinary(blob); err != nil {
			t.Fatal(err)
		}
		again, err := g.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(blob, again) {
			t.Errorf("%+v: re-marshalled blob differs", opts)
		}
		if g.NumTrees() != f.NumTrees() || g.SampleSize() != f.SampleSize() || g.Seed() != f.Seed() || g.TrainingRows() != f.TrainingRows() || g.NumFeatures() != f.NumFeatures() {
			t.Errorf("%+v: parameters differ after load", opts)
		}
		want, got := make([]float64, len(probe)), make([]float64, len(probe))
		if err := f.ScoreBatch(probe, want); err != nil {
			t.Fatal(err)
		}
		if err := g.ScoreBatch(probe, got); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(want, got) {
			t.Errorf("%+v: scores differ after load", opts)
		}
		we, ge := make([]float64, 4), make([]float64, 4)
		for _, r := range probe[:20] {
			if f.Explain(r, we) != nil || g.Explain(r, ge) != nil || !slices.Equal(we, ge) {
				t.Fatalf("%+v: explanations differ after load", opts)
			}
		}
	}
}

// smallBlob is a forest small enough to fuzz quickly: 2 trees of depth 2.
func smallBlob(t testing.TB) []byte {
	t.Helper()
	f := mustFit(t, gaussian(rand.New(rand.NewPCG(23, 24)), 40, 3), Options{Trees: 2, SampleSize: 4, Seed: 1})
	blob, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return blob
}

// resum recomputes the checksum, so that a test reaches the validation
// behind it.
func resum(b []byte) []byte {
	body := b[:len(b)-4]
	binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(body, castagnoli))
	return b
}

func TestCorruptBlob(t *testing.T) {
	blob := smallBlob(t)
	// Offsets in smallBlob: header 44 bytes, then per tree (depth 2) three
	// features (6 bytes), three thresholds (24), four leaf counts (16).
	const tree0 = headerSize
	edit := func(fn func(b []byte) []byte) []byte { return fn(slices.Clone(blob)) }
	for _, tc := range []struct {
		name string
		blob []byte
		want error
	}{
		{"empty", nil, ErrCorrupt},
		{"header only", blob[:headerSize], ErrCorrupt},
		{"truncated", blob[:len(blob)-1], ErrCorrupt},
		{"appended byte", append(slices.Clone(blob), 0), ErrCorrupt},
		{"bad magic", edit(func(b []byte) []byte { b[0] = 'X'; return b }), ErrCorrupt},
		{"newer version", edit(func(b []byte) []byte { b[4] = 2; return b }), ErrVersion},
		{"flipped bit", edit(func(b []byte) []byte { b[len(b)/2] ^= 4; return b }), ErrCorrupt},
		{"reserved set", edit(func(b []byte) []byte { b[6] = 1; return resum(b) }), ErrCorrupt},
		{"zero features", edit(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[8:], 0); return resum(b) }), ErrCorrupt},
		{"huge tree count", edit(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[12:], 1<<30); return resum(b) }), ErrCorrupt},
		{"more trees than bytes", edit(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[12:], 3); return resum(b) }), ErrCorrupt},
		{"sample size 1", edit(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[16:], 1); return resum(b) }), ErrCorrupt},
		{"depth mismatch", edit(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[20:], 3); return resum(b) }), ErrCorrupt},
		{"max features above width", edit(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[24:], 4); return resum(b) }), ErrCorrupt},
		{"fewer training rows than samples", edit(func(b []byte) []byte { binary.LittleEndian.PutUint64(b[36:], 3); return resum(b) }), ErrCorrupt},
		{"feature out of range", edit(func(b []byte) []byte { binary.LittleEndian.PutUint16(b[tree0:], 3); return resum(b) }), ErrCorrupt},
		{"NaN threshold", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[tree0+6:], math.Float64bits(math.NaN()))
			return resum(b)
		}), ErrCorrupt},
		{"-Inf threshold", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[tree0+6:], math.Float64bits(math.Inf(-1)))
			return resum(b)
		}), ErrCorrupt},
		{"leaf count above sample", edit(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[tree0+30:], 5); return resum(b) }), ErrCorrupt},
		{"leaf counts overflow", edit(func(b []byte) []byte {
			for i := range 4 {
				binary.LittleEndian.PutUint32(b[tree0+30+4*i:], math.MaxUint32)
			}
			return resum(b)
		}), ErrCorrupt},
		{"counts do not add to the sample", edit(func(b []byte) []byte {
			for i := range 4 {
				binary.LittleEndian.PutUint32(b[tree0+30+4*i:], 0)
			}
			return resum(b)
		}), ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := mustFit(t, gaussian(rand.New(rand.NewPCG(1, 1)), 10, 2), Options{Trees: 1})
			before, _ := f.MarshalBinary()
			err := f.UnmarshalBinary(tc.blob)
			if !errors.Is(err, tc.want) {
				t.Fatalf("UnmarshalBinary: %v, want %v", err, tc.want)
			}
			if after, _ := f.MarshalBinary(); !bytes.Equal(before, after) {
				t.Error("a failed UnmarshalBinary changed the forest")
			}
		})
	}
}

func FuzzUnmarshalBinary(f *testing.F) {
	blob := smallBlob(f)
	f.Add(blob)
	f.Add(blob[:headerSize+4])
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Most mutations only break the checksum; repairing it sends the
		// fuzzer's bytes through the structural checks too.
		for _, b := range [][]byte{data, resumIfLong(data)} {
			var g Forest
			if err := g.UnmarshalBinary(b); err != nil {
				if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
					t.Fatalf("error %v wraps neither ErrCorrupt nor ErrVersion", err)
				}
				continue
			}
			again, err := g.MarshalBinary()
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("accepted blob does not re-marshal to itself: %v", err)
			}
			row := make([]float64, g.NumFeatures())
			for i := range row {
				row[i] = float64(i) - 1.5
			}
			if s := g.Score(row); !(s > 0 && s <= 1) {
				t.Fatalf("accepted blob scores %v", s)
			}
			out := make([]float64, g.NumFeatures())
			if err := g.Explain(row, out); err != nil {
				t.Fatal(err)
			}
			for _, v := range out {
				if math.IsNaN(v) || v < 0 || v > 1 {
					t.Fatalf("accepted blob explains %v", out)
				}
			}
		}
	})
}

func resumIfLong(data []byte) []byte {
	if len(data) < 4 {
		return data
	}
	return resum(slices.Clone(data))
}
