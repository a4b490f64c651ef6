package anomaly

import (
	"context"
	"testing"
	"time"
)

func TestRuntimeThresholdsAndBatching(t *testing.T) {
	ctx := context.Background()
	s, err := New(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	sample := []Sample{{Host: "web-1", Timestamp: time.Now(), Metrics: map[string]float64{MetricCPU: 85}}}
	res, err := s.Detect(ctx, sample, DetectOptions{})
	if err != nil || res[0].IsAnomaly {
		t.Fatalf("cpu 85 under the default limit of 90: %+v %v", res, err)
	}
	if err := s.SetThresholds(Thresholds{MetricCPU: -1}); err == nil {
		t.Fatal("a negative limit was accepted")
	}
	if err := s.SetThresholds(Thresholds{MetricCPU: 80, MetricMemory: 90}); err != nil {
		t.Fatal(err)
	}
	sample[0].Timestamp = sample[0].Timestamp.Add(time.Minute)
	res, err = s.Detect(ctx, sample, DetectOptions{})
	if err != nil || !res[0].IsAnomaly || res[0].ModelVersion != "threshold-v1" {
		t.Fatalf("cpu 85 over the new limit of 80: %+v %v", res, err)
	}
	if got := s.Thresholds()[MetricCPU]; got != 80 {
		t.Fatalf("Thresholds()[cpu] = %v", got)
	}
	if err := s.SetBatching(0, time.Second); err == nil {
		t.Fatal("batch size 0 accepted")
	}
	if err := s.SetBatching(10, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if size, timeout, ok := s.Batching(); !ok || size != 10 || timeout != 50*time.Millisecond {
		t.Fatalf("Batching() = %d %s %v", size, timeout, ok)
	}
}
