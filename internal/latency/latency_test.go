package latency

import (
	"sync"
	"testing"
	"time"
)

func TestRank(t *testing.T) {
	for _, tc := range []struct {
		n    uint64
		q    float64
		want uint64
	}{
		{0, 0.5, 0},
		{1, 0, 1},
		{1, 0.99, 1},
		{10, 0.5, 5},
		{10, 0.9, 9},
		{10, 0.99, 10},
		{100, 0.99, 99},
		{101, 0.99, 100},
		{2048, 0.5, 1024},
		{5, 1, 5},
		{5, 1.5, 5},
		{5, -1, 1},
	} {
		if got := Rank(tc.n, tc.q); got != tc.want {
			t.Errorf("Rank(%d, %v) = %d, want %d", tc.n, tc.q, got, tc.want)
		}
	}
}

func TestNearestRank(t *testing.T) {
	s := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for q, want := range map[float64]float64{0: 1, 0.1: 1, 0.11: 2, 0.5: 5, 0.9: 9, 0.99: 10, 1: 10} {
		if got := NearestRank(s, q); got != want {
			t.Errorf("NearestRank(1..10, %v) = %v, want %v", q, got, want)
		}
	}
	if got := NearestRank([]int64(nil), 0.5); got != 0 {
		t.Errorf("empty = %v", got)
	}
}

func TestWindow(t *testing.T) {
	var w Window
	if s := w.Summary(); s != (Summary{}) {
		t.Fatalf("empty window = %+v", s)
	}
	for i := 1; i <= 100; i++ {
		w.Record(time.Duration(i) * time.Millisecond)
	}
	s := w.Summary()
	if s.N != 100 || s.P50 != 50*time.Millisecond || s.P90 != 90*time.Millisecond || s.P99 != 99*time.Millisecond || s.Max != 100*time.Millisecond {
		t.Fatalf("1..100 ms = %+v", s)
	}
	// Only the most recent WindowSize observations count.
	for range 2 * WindowSize {
		w.Record(time.Second)
	}
	if s := w.Summary(); s.N != WindowSize || s.P50 != time.Second || s.Max != time.Second {
		t.Fatalf("after the window turned over = %+v", s)
	}
}

func TestWindowConcurrent(t *testing.T) {
	var w Window
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 1000 {
				w.Record(time.Duration(g*1000 + i))
				if i%100 == 0 {
					_ = w.Summary()
				}
			}
		})
	}
	wg.Wait()
	if s := w.Summary(); s.N != WindowSize {
		t.Fatalf("N = %d after 4000 observations", s.N)
	}
}

func BenchmarkRecord(b *testing.B) {
	var w Window
	for i := 0; b.Loop(); i++ {
		w.Record(time.Duration(i))
	}
}
