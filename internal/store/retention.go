package store

import (
	"context"
	"fmt"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/dburl"
)

// RetentionOptions tune DeleteExpired. A zero retention keeps that table's
// rows forever, as every "0" limit in the configuration means off.
type RetentionOptions struct {
	// Now is the time the windows count back from. Default: the store's clock.
	Now time.Time
	// Raw is how long raw samples are kept (METRICS_RAW_RETENTION); a raw row
	// is deleted only once its minute is rolled up as well.
	Raw time.Duration
	// Rollup is how long 1-minute rollups are kept (METRICS_ROLLUP_RETENTION).
	Rollup time.Duration
	// BatchSize is the most rows one DELETE removes. Each batch is its own
	// short transaction, so ingest waits at most one batch for SQLite's
	// writer and never for a row lock on PostgreSQL. Default 1000.
	BatchSize int
	// Pause is the wait between batches, which leaves the writer (and the
	// disk) to ingest. Default 10ms; negative for none.
	Pause time.Duration
	// OnBatch, when set, is called after every batch with the table and the
	// rows it deleted (tests and benchmarks watch the batches through it).
	OnBatch func(table string, rows int64)
}

// RetentionResult is what one DeleteExpired run removed.
type RetentionResult struct {
	// RawFrom is where the raw rows now start (zero: raw rows are kept).
	RawFrom time.Time
	// RawDeleted and RollupsDeleted are the rows removed from system_metrics and metric_rollups.
	RawDeleted, RollupsDeleted int64
	// Batches is the number of DELETE statements run.
	Batches int
}

// Delete statements, one small batch each. SQLite's goes by rowid (id is
// system_metrics' rowid); PostgreSQL's by primary key, and by ctid on
// metric_rollups, whose key is wide. SKIP LOCKED lets replicas' jobs run side
// by side without waiting on each other's batches.
const (
	deleteRawSQLite     = "DELETE FROM system_metrics WHERE id IN (SELECT id FROM system_metrics WHERE ts < ? LIMIT ?)"
	deleteRawPostgres   = "DELETE FROM system_metrics WHERE id IN (SELECT id FROM system_metrics WHERE ts < ? LIMIT ? FOR UPDATE SKIP LOCKED)"
	deleteRollupSQLite  = "DELETE FROM metric_rollups WHERE rowid IN (SELECT rowid FROM metric_rollups WHERE bucket < ? LIMIT ?)"
	deleteRollupPostgre = "DELETE FROM metric_rollups WHERE ctid = ANY(ARRAY(SELECT ctid FROM metric_rollups WHERE bucket < ? LIMIT ? FOR UPDATE SKIP LOCKED))"
)

// DeleteExpired removes raw samples older than the raw window whose minute
// is rolled up, and rollups older than the rollup window, in batches of
// o.BatchSize with a pause between them. It first moves raw_from forward,
// so reads of the range being deleted already go to the rollups. It stops
// between batches when ctx ends.
func (s *Store) DeleteExpired(ctx context.Context, o RetentionOptions) (RetentionResult, error) {
	if o.Now.IsZero() {
		o.Now = s.now()
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 1000
	}
	if o.Pause == 0 {
		o.Pause = 10 * time.Millisecond
	}
	if o.Raw < 0 || o.Rollup < 0 {
		return RetentionResult{}, fmt.Errorf("store: retention: %w: negative window", ErrInvalid)
	}
	var res RetentionResult
	if o.Raw > 0 {
		st, err := s.loadRollupState(ctx)
		if err != nil {
			return res, markUnavailable(err)
		}
		res.RawFrom = st.rawFrom
		if st.exists {
			cut := earlier(st.watermark, o.Now.UTC().Add(-o.Raw).Truncate(time.Minute))
			if cut.After(st.rawFrom) {
				// Only forward: a replica with a slower clock must not move it back.
				if _, err := s.Exec(ctx, "UPDATE metric_rollup_state SET raw_from = ? WHERE id = 1 AND (raw_from IS NULL OR raw_from < ?)",
					cut.UTC(), cut.UTC()); err != nil {
					return res, markUnavailable(fmt.Errorf("store: retention: move raw_from: %w", err))
				}
				res.RawFrom = cut
			}
			stmt := deleteRawSQLite
			if s.kind == dburl.Postgres {
				stmt = deleteRawPostgres
			}
			if !res.RawFrom.IsZero() {
				n, err := s.deleteBatches(ctx, "system_metrics", stmt, res.RawFrom, o, &res.Batches)
				res.RawDeleted = n
				if err != nil {
					return res, err
				}
			}
		}
	}
	if o.Rollup > 0 {
		stmt := deleteRollupSQLite
		if s.kind == dburl.Postgres {
			stmt = deleteRollupPostgre
		}
		n, err := s.deleteBatches(ctx, "metric_rollups", stmt, o.Now.UTC().Add(-o.Rollup).Truncate(time.Minute), o, &res.Batches)
		res.RollupsDeleted = n
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// deleteBatches runs stmt (cutoff, batch size) until a batch deletes fewer
// rows than the batch size.
func (s *Store) deleteBatches(ctx context.Context, table, stmt string, cutoff time.Time, o RetentionOptions, batches *int) (int64, error) {
	var total int64
	for {
		r, err := s.Exec(ctx, stmt, cutoff.UTC(), o.BatchSize)
		if err != nil {
			return total, markUnavailable(fmt.Errorf("store: retention: delete from %s: %w", table, err))
		}
		n, err := r.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("store: retention: delete from %s: rows affected: %w", table, err)
		}
		*batches++
		total += n
		if o.OnBatch != nil {
			o.OnBatch(table, n)
		}
		if n < int64(o.BatchSize) {
			return total, nil
		}
		if o.Pause > 0 {
			t := time.NewTimer(o.Pause)
			select {
			case <-ctx.Done():
				t.Stop()
				return total, ctx.Err()
			case <-t.C:
			}
		}
	}
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
