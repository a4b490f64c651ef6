package main

import (
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartcloudops/smartcloudops/internal/leader"
	"github.com/smartcloudops/smartcloudops/internal/store"
)

// leaderDuty is the one lock that covers every periodic job (scheduled
// retraining, the automatic index advisor, the rollup and retention job):
// one connection per replica instead of one per job, and one replica to look
// at when a job misbehaves. The jobs are light enough that spreading them
// over replicas would not pay for the extra moving parts.
const leaderDuty = "periodic"

// newLeader starts the election of the replica that runs the periodic jobs:
// on PostgreSQL a session advisory lock on a connection taken from the
// store's pool, on SQLite always this process; the replica id is
// SMARTCLOUDOPS_REPLICA_ID (read through getenv) or hostname-pid. Close it after the jobs it
// gates have stopped and before the store closes, so the lock is released
// only when this replica runs none of them.
func newLeader(st *store.Store, replica string, reg prometheus.Registerer, log *slog.Logger) (*leader.Elector, error) {
	el, err := leader.New(st.Pool(), leader.Options{Duty: leaderDuty, ReplicaID: replica, Registerer: reg,
		Logger: log.With(slog.String("part", "leader"))})
	if err != nil {
		return nil, fmt.Errorf("leader: %w", err)
	}
	log.Info("leader election", slog.String("duty", leaderDuty), slog.String("replica", el.ReplicaID()),
		slog.Bool("single_process", st.Pool() == nil))
	return el, nil
}
