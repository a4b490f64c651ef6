package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

func TestInsertAnomaliesSkipsResent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := migrated(t, url)
		at := time.Date(2026, 11, 28, 12, 0, 0, 123456000, time.UTC)
		rows := []store.Anomaly{
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
		if _, err := s.InsertAnomalies(ctx, []store.Anomaly{{Host: "h", Score: 2, ModelVersion: "v"}}); err == nil {
			t.Fatal("score 2 accepted")
		}
	})
}

func TestModelSaveLoadActivate(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := migrated(t, url)
		if _, err := s.ActiveModel(ctx, "iforest"); !errors.Is(err, store.ErrModelNotFound) {
			t.Fatalf("ActiveModel on empty table: %v", err)
		}
		base := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
		art := bytes.Repeat([]byte{0, 1, 2, 0xff}, 1000)
		for i, v := range []string{"iforest-a", "iforest-b"} {
			m := store.Model{Version: v, Kind: "iforest", Parameters: json.RawMessage(`{"trees":100}`), Validation: json.RawMessage(`{"auc":0.9}`),
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
		if err := s.ActivateModel(ctx, "nope"); !errors.Is(err, store.ErrModelNotFound) {
			t.Fatalf("ActivateModel(nope) = %v", err)
		}
		if _, err := s.Model(ctx, "nope"); !errors.Is(err, store.ErrModelNotFound) {
			t.Fatalf("Model(nope) = %v", err)
		}
		if err := s.SaveModel(ctx, store.Model{Version: "iforest-a", Kind: "iforest", TrainedAt: base}); err == nil {
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
		var batch []store.MetricSample
		for i := range 30 {
			for _, h := range []string{"b", "a"} {
				batch = append(batch, store.MetricSample{Host: h, Timestamp: base.Add(time.Duration(i) * time.Minute), CPUUsage: f(float64(i)),
					Extra: map[string]float64{"gc_ms": float64(i)}})
			}
		}
		if _, err := s.InsertMetrics(ctx, batch); err != nil {
			t.Fatal(err)
		}
		got, err := s.MetricHistory(ctx, store.HistoryQuery{From: base.Add(5 * time.Minute), To: base.Add(25 * time.Minute), Limit: 10})
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
		one, err := s.MetricHistory(ctx, store.HistoryQuery{Host: "a"})
		if err != nil || len(one) != 30 || one[0].Host != "a" {
			t.Fatalf("host history = %d, %v", len(one), err)
		}
	})
}
