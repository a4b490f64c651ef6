package main

import (
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
	if strings.TrimSpace(pw.Select) != "" {
		sel, err := promwrite.ParseSelectors(pw.Select)
		if err != nil {
			return nil, fmt.Errorf("PROMWRITE_SELECT: %w", err)
		}
		if len(sel) == 0 {
			return nil, fmt.Errorf("PROMWRITE_SELECT: %q holds no selector", pw.Select)
		}
		o.Select = sel
	}
	return promwrite.New(o)
}
