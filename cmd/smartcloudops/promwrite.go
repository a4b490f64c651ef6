package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartcloudops/smartcloudops/internal/config"
	"github.com/smartcloudops/smartcloudops/internal/ingest"
	"github.com/smartcloudops/smartcloudops/internal/ingest/promwrite"
)

// newRemoteWrite builds the Prometheus remote-write receiver of
// POST /api/v1/write on the anomaly service's ingest path, with its own
// series tracker (counter rates, order, the per-tenant cap).
func newRemoteWrite(cfg *config.Config, sink ingest.Sink, reg prometheus.Registerer, log *slog.Logger) (*promwrite.Receiver, error) {
	pw := cfg.PromWrite
	o := promwrite.Options{
		Sink:            sink,
		Tracker:         ingest.NewTracker(ingest.TrackerOptions{MaxSeriesPerTenant: pw.MaxSeriesPerTenant}),
		Registerer:      reg,
		Logger:          log,
		HostLabels:      pw.HostLabels,
		RootMountpoint:  pw.RootMountpoint,
		MaxBodyBytes:    pw.MaxBodyBytes,
		MaxDecodedBytes: pw.MaxDecodedBytes,
		MaxSeries:       pw.MaxSeriesPerRequest,
		MaxSamples:      pw.MaxSamplesPerRequest,
		MaxFuture:       pw.MaxFuture,
		MaxAge:          pw.MaxAge,
	}
	sel, err := remoteWriteSelect(cfg)
	if err != nil {
		return nil, fmt.Errorf("PROMWRITE_SELECT: %w", err)
	}
	o.Select = sel
	return promwrite.New(o)
}

// remoteWriteSelect parses PROMWRITE_SELECT; nil (the receiver's default
// selection) when it is empty.
func remoteWriteSelect(cfg *config.Config) ([]promwrite.Selector, error) {
	if strings.TrimSpace(cfg.PromWrite.Select) == "" {
		return nil, nil
	}
	sel, err := promwrite.ParseSelectors(cfg.PromWrite.Select)
	if err != nil {
		return nil, err
	}
	if len(sel) == 0 {
		return nil, errors.New("holds no selector")
	}
	return sel, nil
}
