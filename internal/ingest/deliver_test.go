package ingest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/anomaly"
)

// recordingSink is a unit-test stand-in for the anomaly service; the real
// path is tested with the receivers against a real store.
type recordingSink struct {
	max     int
	batches [][]anomaly.Sample
	failAt  int
}

func (s *recordingSink) MaxBatch() int { return s.max }

func (s *recordingSink) Ingest(_ context.Context, samples []anomaly.Sample) (anomaly.IngestReport, error) {
	if s.failAt > 0 && len(s.batches)+1 == s.failAt {
		return anomaly.IngestReport{}, errors.New("database gone")
	}
	s.batches = append(s.batches, samples)
	return anomaly.IngestReport{Accepted: len(samples), Stored: int64(len(samples))}, nil
}

func TestRowsGroupsByHostAndTime(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	rows := Rows([]Point{
		{"b", "cpu_usage", t0, 1},
		{"a", "cpu_usage", t0.Add(time.Second), 2},
		{"a", "memory_usage", t0, 3},
		{"a", "cpu_usage", t0, 4},
		{"b", "memory_usage", t0, 5},
	})
	want := []struct {
		host string
		t    time.Time
		m    map[string]float64
	}{
		{"a", t0, map[string]float64{"memory_usage": 3, "cpu_usage": 4}},
		{"b", t0, map[string]float64{"cpu_usage": 1, "memory_usage": 5}},
		{"a", t0.Add(time.Second), map[string]float64{"cpu_usage": 2}},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d: %+v", len(rows), len(want), rows)
	}
	for i, w := range want {
		r := rows[i]
		if r.Host != w.host || !r.Timestamp.Equal(w.t) || len(r.Metrics) != len(w.m) {
			t.Fatalf("row %d = %+v, want %+v", i, r, w)
		}
		for k, v := range w.m {
			if r.Metrics[k] != v {
				t.Fatalf("row %d %s = %v, want %v", i, k, r.Metrics[k], v)
			}
		}
	}
}

func TestDeliver(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	var pts []Point
	for i := range 5 {
		pts = append(pts, Point{"web-1", "cpu_usage", t0.Add(time.Duration(i) * 15 * time.Second), float64(i)})
	}
	pts = append(pts, Point{strings.Repeat("h", anomaly.MaxHostLen+1), "cpu_usage", t0, 1})

	t.Run("batches in time order, invalid rows counted", func(t *testing.T) {
		sink := &recordingSink{max: 2}
		rep, err := Deliver(context.Background(), sink, pts)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Rows != 6 || rep.Invalid != 1 || rep.InvalidErr == nil || rep.Stored != 5 {
			t.Fatalf("report %+v", rep)
		}
		if len(sink.batches) != 3 || len(sink.batches[2]) != 1 {
			t.Fatalf("batches of %d", len(sink.batches))
		}
		if !sink.batches[0][0].Timestamp.Before(sink.batches[1][0].Timestamp) {
			t.Fatal("batches not in time order")
		}
	})
	t.Run("a failure stops and is returned", func(t *testing.T) {
		sink := &recordingSink{max: 2, failAt: 2}
		rep, err := Deliver(context.Background(), sink, pts)
		if err == nil || rep.Stored != 2 {
			t.Fatalf("err %v, report %+v", err, rep)
		}
	})
}
