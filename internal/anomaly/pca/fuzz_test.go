package pca

import (
	"math"
	"testing"
)

// FuzzUnmarshal feeds arbitrary bytes to UnmarshalBinary: it must never panic,
// and a model it accepts must score any row finitely, within [0,1], and
// encode back to the same bytes.
func FuzzUnmarshal(f *testing.F) {
	for _, rows := range [][][]float64{correlated(100, 4), {{1, 2}, {1, 2}, {1, 3}}, {{0}, {1}}} {
		m, err := Fit(rows)
		if err != nil {
			f.Fatal(err)
		}
		b, _ := m.MarshalBinary()
		f.Add(b)
	}
	rows := [][]float64{{0, 0, 0}, {MaxAbsValue, -MaxAbsValue, 1}, {math.NaN(), math.Inf(1), -1e-300}}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Model
		if err := m.UnmarshalBinary(b); err != nil {
			return
		}
		again, _ := m.MarshalBinary()
		if string(again) != string(b) {
			t.Fatal("re-encoding differs")
		}
		s := NewScorer(&m, 2)
		for _, r := range rows {
			if res := s.Score(r); !finite(res) {
				t.Fatalf("row %v: %+v", r, res)
			}
			for _, c := range m.Contributions(r, nil) {
				if math.IsNaN(c) || math.IsInf(c, 0) {
					t.Fatalf("row %v: contribution %g", r, c)
				}
			}
		}
	})
}
