package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/domain"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

func TestInsertAnomaliesSkipsResent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := migrated(t, url)
		at := time.Date(2026, 11, 28, 12, 0, 0, 123456000, time.UTC)
		rows := []domain.Anomaly{
			{Host: "web-1", Metric: "cpu_usage", DetectedAt: at, Score: 0.85, Confidence: 0.9, Severity: "critical", ModelVersion: "threshold-v1",
				Features: map[string]float64{"cpu_usage": 99.5}, Explanation: "cpu_usage 99.5 > 90"},
			{Host: "web-1", DetectedAt: at.Add(time.Minute), Score: 0.45, Confidence: 0.5, Severity: "medium", ModelVersion: "iforest-x"},
		}
		n, err := s.InsertAnomalies(ctx, rows)
		if err != nil || n != 2 {
			t.Fatalf("InsertAnomalies = %d, %v; want 2", n, err)
		}
		n, err = s.InsertAnomalies(ctx, rows)
		if err != nil || n != 0 {
			t.Fatalf("re-sent anomalies = %d, %v; want 0 new", n, err)
		}
		list, err := s.AnomalyRange(ctx, store.AnomalyRangeQuery{Filter: store.HostFilter{Host: "web-1"}})
		got := list.Anomalies
		if err != nil || len(got) != 2 {
			t.Fatalf("Anomalies = %d rows, %v", len(got), err)
		}
		if g := got[1]; g.Metric != "cpu_usage" || !g.DetectedAt.Equal(at) || g.Severity != "critical" || g.Status != "open" ||
			g.Features["cpu_usage"] != 99.5 || g.Explanation == "" {
			t.Fatalf("round trip = %+v", g)
		}
		if got[0].Metric != "" {
			t.Fatalf("host-wide anomaly metric = %q", got[0].Metric)
		}
		if _, err := s.InsertAnomalies(ctx, []domain.Anomaly{{Host: "h", Score: 2, ModelVersion: "v"}}); err == nil {
			t.Fatal("score 2 accepted")
		}
	})
}

func TestModelSaveLoadActivate(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := migrated(t, url)
		if _, err := s.ActiveModel(ctx, "iforest"); !errors.Is(err, domain.ErrModelNotFound) {
			t.Fatalf("ActiveModel on empty table: %v", err)
		}
		base := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
		art := bytes.Repeat([]byte{0, 1, 2, 0xff}, 1000)
		for i, v := range []string{"iforest-a", "iforest-b"} {
			m := domain.Model{Version: v, Kind: "iforest", Parameters: json.RawMessage(`{"trees":100}`), Validation: json.RawMessage(`{"auc":0.9}`),
				TrainedAt: base.Add(time.Duration(i) * time.Hour), TrainingFrom: base.Add(-time.Hour), TrainingTo: base, TrainingRows: 500,
				Artifact: art, Active: true}
			if err := s.SaveModel(ctx, m); err != nil {
				t.Fatalf("SaveModel %s: %v", v, err)
			}
		}
		act, err := s.ActiveModel(ctx, "iforest")
		if err != nil || act.Version != "iforest-b" || !bytes.Equal(act.Artifact, art) || act.TrainingRows != 500 ||
			!act.TrainingFrom.Equal(base.Add(-time.Hour)) || !act.TrainedAt.Equal(base.Add(time.Hour)) {
			t.Fatalf("ActiveModel = %+v, %v", act.Version, err)
		}
		var params map[string]int
		if err := json.Unmarshal(act.Parameters, &params); err != nil || params["trees"] != 100 {
			t.Fatalf("parameters = %s, %v", act.Parameters, err)
		}
		if err := s.ActivateModel(ctx, "iforest-a"); err != nil { // rollback
			t.Fatal(err)
		}
		list, err := s.Models(ctx, "iforest")
		if err != nil || len(list) != 2 {
			t.Fatalf("Models = %v, %v", list, err)
		}
		if list[0].Version != "iforest-b" || list[0].Active || !list[1].Active || list[1].Artifact != nil {
			t.Fatalf("after rollback: %+v", list)
		}
		if err := s.ActivateModel(ctx, "nope"); !errors.Is(err, domain.ErrModelNotFound) {
			t.Fatalf("ActivateModel(nope) = %v", err)
		}
		if _, err := s.Model(ctx, "nope"); !errors.Is(err, domain.ErrModelNotFound) {
			t.Fatalf("Model(nope) = %v", err)
		}
		if err := s.SaveModel(ctx, domain.Model{Version: "iforest-a", Kind: "iforest", TrainedAt: base}); err == nil {
			t.Fatal("duplicate version saved")
		}
	})
}

func TestMetricHistoryOrderAndLimit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := migrated(t, url)
		f := func(v float64) *float64 { return &v }
		base := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
		var batch []domain.MetricSample
		for i := range 30 {
			for _, h := range []string{"b", "a"} {
				batch = append(batch, domain.MetricSample{Host: h, Timestamp: base.Add(time.Duration(i) * time.Minute), CPUUsage: f(float64(i)),
					Extra: map[string]float64{"gc_ms": float64(i)}})
			}
		}
		if _, err := s.InsertMetrics(ctx, batch); err != nil {
			t.Fatal(err)
		}
		got, err := s.MetricHistory(ctx, domain.HistoryQuery{From: base.Add(5 * time.Minute), To: base.Add(25 * time.Minute), Limit: 10})
		if err != nil || len(got) != 10 {
			t.Fatalf("MetricHistory = %d, %v", len(got), err)
		}
		// The 10 most recent samples of the window: minutes 20..24 of both hosts, host then time.
		for i, m := range got {
			wantHost, wantMin := "a", 20+i
			if i >= 5 {
				wantHost, wantMin = "b", 20+i-5
			}
			if m.Host != wantHost || !m.Timestamp.Equal(base.Add(time.Duration(wantMin)*time.Minute)) || m.CPUUsage == nil ||
				*m.CPUUsage != float64(wantMin) || m.MemoryUsage != nil || m.Extra["gc_ms"] != float64(wantMin) {
				t.Fatalf("row %d = %+v", i, m)
			}
		}
		one, err := s.MetricHistory(ctx, domain.HistoryQuery{Host: "a"})
		if err != nil || len(one) != 30 || one[0].Host != "a" {
			t.Fatalf("host history = %d, %v", len(one), err)
		}
	})
}

// TestInsertAnomaliesOnePerSample checks the unique (host, detected_at) key
// holds under the ways ingest re-sends: identical concurrent batches, a
// re-send scored by another model, and a sample twice in one batch.
func TestInsertAnomaliesOnePerSample(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := migrated(t, url)
		const keys, callers = 250, 8
		base := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
		batch := make([]domain.Anomaly, keys)
		for i := range batch {
			batch[i] = domain.Anomaly{Host: fmt.Sprintf("web-%d", i%5), Metric: "cpu_usage", DetectedAt: base.Add(time.Duration(i/5) * time.Second),
				Score: 0.9, Confidence: 0.8, Severity: "high", ModelVersion: "iforest-a", Features: map[string]float64{"cpu_usage": float64(i)}}
		}
		var (
			wg    sync.WaitGroup
			total atomic.Int64
			errs  = make(chan error, callers)
		)
		for range callers {
			wg.Go(func() {
				n, err := s.InsertAnomalies(ctx, batch)
				if err != nil {
					errs <- err
					return
				}
				total.Add(n)
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("concurrent InsertAnomalies: %v", err)
		}
		if total.Load() != keys {
			t.Fatalf("concurrent callers inserted %d rows together; want %d", total.Load(), keys)
		}
		perKey := anomalyKeys(t, s)
		if len(perKey) != keys {
			t.Fatalf("%d distinct samples stored; want %d", len(perKey), keys)
		}
		for k, n := range perKey {
			if n != 1 {
				t.Fatalf("sample %s has %d rows; want 1", k, n)
			}
		}

		cases := []struct {
			name string
			rows []domain.Anomaly
			want int64
		}{
			{"same samples, new model", withModel(batch[:10], "iforest-b"), 0},
			{"same samples, other metric", withMetric(batch[10:20], "memory_usage"), 0},
			{"one new sample twice in a batch", []domain.Anomaly{
				{Host: "db-1", DetectedAt: base, Score: 0.5, Confidence: 0.5, Severity: "medium", ModelVersion: "iforest-a"},
				{Host: "db-1", DetectedAt: base, Score: 0.7, Confidence: 0.5, Severity: "high", ModelVersion: "iforest-b"},
			}, 1},
		}
		for _, c := range cases {
			n, err := s.InsertAnomalies(ctx, c.rows)
			if err != nil || n != c.want {
				t.Fatalf("%s: InsertAnomalies = %d, %v; want %d", c.name, n, err, c.want)
			}
		}
		got, err := s.AnomalyRange(ctx, store.AnomalyRangeQuery{Filter: store.HostFilter{Host: "db-1"}})
		if err != nil || len(got.Anomalies) != 1 || got.Anomalies[0].ModelVersion != "iforest-a" {
			t.Fatalf("db-1 anomalies = %+v, %v; want the batch's first", got.Anomalies, err)
		}
		got, err = s.AnomalyRange(ctx, store.AnomalyRangeQuery{Filter: store.HostFilter{Host: "web-0"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range got.Anomalies {
			if a.ModelVersion != "iforest-a" || a.Metric != "cpu_usage" {
				t.Fatalf("a re-send replaced the stored anomaly: %+v", a)
			}
		}
	})
}

func withModel(rows []domain.Anomaly, version string) []domain.Anomaly {
	out := slices.Clone(rows)
	for i := range out {
		out[i].ModelVersion = version
	}
	return out
}

func withMetric(rows []domain.Anomaly, metric string) []domain.Anomaly {
	out := slices.Clone(rows)
	for i := range out {
		out[i].Metric = metric
	}
	return out
}

// anomalyKeys counts stored anomaly rows per sample.
func anomalyKeys(t *testing.T, s *store.Store) map[string]int {
	t.Helper()
	rows, err := s.Query(context.Background(), "SELECT host, detected_at FROM anomalies")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var (
			host string
			at   time.Time
		)
		if err := rows.Scan(&host, &at); err != nil {
			t.Fatal(err)
		}
		out[host+" "+at.UTC().Format(time.RFC3339Nano)]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
