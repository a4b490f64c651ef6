package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartcloudops/smartcloudops/internal/anomaly"
	"github.com/smartcloudops/smartcloudops/internal/config"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/sharedstate"
	"github.com/smartcloudops/smartcloudops/internal/tuning"
)

// newSharedState keeps this replica's active model and runtime settings in
// step with the database shared by every replica: the settings are
// journaled there (and restored from it here, before serving), and on
// PostgreSQL a change made on any replica is applied here on its
// notification, or at the latest on the periodic re-read. The caller closes
// the hub before the anomaly service and the store.
func newSharedState(ctx context.Context, cfg *config.Config, replica string, st *store.Store, an *anomaly.Service,
	reg *tuning.Registry, prom prometheus.Registerer, log *slog.Logger) (*sharedstate.Hub, error) {
	resync := cfg.SharedStateResync
	if resync == 0 {
		resync = -1 // the hub's "off"; its zero is the default
	}
	hub, err := sharedstate.New(st, sharedstate.Options{Resync: resync, Replica: replica, Logger: log, Registerer: prom})
	if err != nil {
		return nil, err
	}
	sharedstate.NewConfig(st, hub, reg, replica)
	sharedstate.HandleModel(hub, st, anomaly.ModelKind, an)
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := hub.SyncAll(sctx); err != nil {
		// Serving with the configured values beats not serving; the re-read
		// (on PostgreSQL) tries again.
		log.Warn("shared state: restoring the runtime settings and the active model failed", slog.String("error", err.Error()))
	}
	hub.Start()
	return hub, nil
}
