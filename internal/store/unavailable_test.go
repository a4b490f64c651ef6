package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/domain"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

// TestIngestMethodsUnavailableWhilePostgresIsDown stops a private PostgreSQL
// cluster under an open store: every method ingest, training and model
// management call returns an error wrapping ErrUnavailable (so the HTTP
// layer answers 503 with Retry-After, not 500), and each works again once
// the server is back, without reopening the store.
func TestIngestMethodsUnavailableWhilePostgresIsDown(t *testing.T) {
	pg := storetest.StartPrivatePostgres(t)
	ctx := context.Background()
	s, err := store.Open(ctx, store.Options{URL: pg.URL, PoolSize: 4, HealthCheckPeriod: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	cpu := 50.0
	if err := s.SaveModel(ctx, domain.Model{Version: "m1", Kind: "iforest", TrainedAt: at, Parameters: json.RawMessage(`{}`), Active: true}); err != nil {
		t.Fatal(err)
	}
	n := 0
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"InsertMetrics", func(ctx context.Context) error {
			n++
			_, err := s.InsertMetrics(ctx, []domain.MetricSample{{Host: "web-1", Timestamp: at.Add(time.Duration(n) * time.Second), CPUUsage: &cpu}})
			return err
		}},
		{"InsertAnomalies", func(ctx context.Context) error {
			n++
			_, err := s.InsertAnomalies(ctx, []domain.Anomaly{{Host: "web-1", DetectedAt: at.Add(time.Duration(n) * time.Second), Score: 0.9, Confidence: 0.9,
				Severity: "high", ModelVersion: "m1"}})
			return err
		}},
		{"MetricHistory", func(ctx context.Context) error {
			_, err := s.MetricHistory(ctx, domain.HistoryQuery{Host: "web-1"})
			return err
		}},
		{"SaveModel", func(ctx context.Context) error {
			n++
			return s.SaveModel(ctx, domain.Model{Version: "m-" + time.Duration(n).String(), Kind: "iforest", TrainedAt: at})
		}},
		{"Models", func(ctx context.Context) error { _, err := s.Models(ctx, "iforest"); return err }},
		{"Model", func(ctx context.Context) error { _, err := s.Model(ctx, "m1"); return err }},
		{"ActiveModel", func(ctx context.Context) error { _, err := s.ActiveModel(ctx, "iforest"); return err }},
		{"ActivateModel", func(ctx context.Context) error { return s.ActivateModel(ctx, "m1") }},
	}
	// Each call runs twice while the server is down: the first meets the
	// pool's connections that the shutdown ended (57P01, broken
	// connections), the second a refused connect.
	pg.Stop()
	for _, c := range calls {
		for attempt := range 2 {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := c.call(cctx)
			cancel()
			if err == nil {
				t.Fatalf("%s (attempt %d) succeeded while PostgreSQL was down", c.name, attempt+1)
			}
			if !errors.Is(err, store.ErrUnavailable) || !store.Unavailable(err) {
				t.Errorf("%s (attempt %d): %v; want an error wrapping store.ErrUnavailable", c.name, attempt+1, err)
			}
		}
	}
	pg.Start()
	for _, c := range calls {
		var err error
		// The pool may still hand out one connection the shutdown broke;
		// database/sql retries those, pgx's own calls may not, once.
		for range 3 {
			if err = c.call(ctx); err == nil {
				break
			}
		}
		if err != nil {
			t.Errorf("%s after the restart: %v", c.name, err)
		}
	}
}
