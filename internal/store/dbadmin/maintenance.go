package dbadmin

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/dburl"
	"github.com/smartcloudops/smartcloudops/internal/store"
)

// OptimizeOptions choose what Optimize does beyond the cheap steps.
type OptimizeOptions struct {
	// Vacuum rewrites the SQLite file to reclaim space. It holds the write lock
	// for the whole rewrite, so it runs only when asked for.
	Vacuum bool
}

// StepResult is one maintenance step's outcome, reported as it happened.
type StepResult struct {
	Step       string  `json:"step"`
	OK         bool    `json:"ok"`
	DurationMS float64 `json:"duration_ms"`
	Detail     string  `json:"detail,omitempty"`
	Error      string  `json:"error,omitempty"`
}

// OptimizeReport is the outcome of Optimize: every step attempted, and OK only
// when all of them succeeded.
type OptimizeReport struct {
	Driver     string       `json:"driver"`
	OK         bool         `json:"ok"`
	Steps      []StepResult `json:"steps"`
	StartedAt  time.Time    `json:"started_at"`
	DurationMS float64      `json:"duration_ms"`
}

type step struct {
	name string
	sql  string
	// scan reads a result row into a human detail; nil for statements without one.
	scan func(ctx context.Context, db *sql.DB, q string) (string, error)
}

// Optimize runs the database's routine maintenance: on SQLite PRAGMA optimize,
// ANALYZE and a WAL checkpoint (and VACUUM when asked); on PostgreSQL
// VACUUM (ANALYZE), which must run outside a transaction. A failed step is
// recorded and the remaining steps still run; the error joins every failure.
func (ad *Admin) Optimize(ctx context.Context, o OptimizeOptions) (OptimizeReport, error) {
	var steps []step
	switch ad.kind {
	case dburl.SQLite:
		steps = []step{{name: "pragma_optimize", sql: "PRAGMA optimize"}, {name: "analyze", sql: "ANALYZE"}}
		if o.Vacuum {
			steps = append(steps, step{name: "vacuum", sql: "VACUUM"})
		}
		steps = append(steps, step{name: "wal_checkpoint", sql: "PRAGMA wal_checkpoint(TRUNCATE)", scan: scanCheckpoint})
	case dburl.Postgres:
		steps = []step{{name: "vacuum_analyze", sql: "VACUUM (ANALYZE)"}}
	}
	rep := OptimizeReport{Driver: string(ad.kind), OK: true, StartedAt: time.Now().UTC()}
	var errs []error
	for _, st := range steps {
		start := time.Now()
		var (
			detail string
			err    error
		)
		if st.scan != nil {
			detail, err = st.scan(ctx, ad.write, st.sql)
		} else {
			_, err = ad.write.ExecContext(ctx, st.sql)
		}
		res := StepResult{Step: st.name, OK: err == nil, DurationMS: ms(time.Since(start)), Detail: detail}
		if err != nil {
			res.Error = store.Describe(err)
			rep.OK = false
			errs = append(errs, fmt.Errorf("store: optimize %s: %w", st.name, err))
		}
		rep.Steps = append(rep.Steps, res)
	}
	rep.DurationMS = ms(time.Since(rep.StartedAt))
	return rep, errors.Join(errs...)
}

func scanCheckpoint(ctx context.Context, db *sql.DB, q string) (string, error) {
	// wal_checkpoint returns (busy, log frames, checkpointed frames); busy=1
	// means a reader kept the checkpoint from finishing, which is not an error
	// but is worth telling the operator.
	var busy, logFrames, done int64
	if err := db.QueryRowContext(ctx, q).Scan(&busy, &logFrames, &done); err != nil {
		return "", err
	}
	return fmt.Sprintf("busy=%d wal_frames=%d checkpointed=%d", busy, logFrames, done), nil
}
