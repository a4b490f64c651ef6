package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/dburl"
)

// Rollups: system_metrics keeps every raw sample, which at fleet rates
// (Prometheus remote_write) cannot be kept for long. RollupMetrics folds the
// raw rows into metric_rollups, one row per (host, metric, minute) with the
// count, sum, minimum and maximum of the minute's values — the well-known
// columns and every numeric key of extra — and DeleteExpired (retention.go)
// then removes raw rows whose minute is rolled up and older than the raw
// window. Reads of older ranges (MetricSeries, MetricHistory) take 1-minute
// means from the rollups.
//
// Progress is one global watermark in metric_rollup_state: every minute
// before it is rolled up. A run rolls the minutes from the watermark up to
// now − Lag, a chunk of minutes per transaction that also advances the
// watermark, so a crash leaves either the whole chunk or none of it. Rolling
// a minute computes its aggregates from the raw rows and replaces whatever
// was stored for it, so doing a minute again never counts a sample twice.
//
// Late samples. The lag (default 2m) is the time a minute stays open: it
// covers agents' batching and clock skew and a raw row being completed by a
// later partial sample of the same (host, ts), which rewrites the row in
// place and is not seen by the late-sample scan. A sample inserted after its
// minute was rolled is found by its id (ids grow with every insert): each
// run reads the hosts and minutes of the rows inserted since the previous
// runs that lie before the watermark, and rolls those (host, minute)s again
// from the raw rows, which are all still there while the minute is inside
// the raw window. Each id range is scanned on two consecutive runs, so a row
// whose transaction commits after a later one's (PostgreSQL takes ids at
// insert, not at commit) is still seen, unless its transaction lasted longer
// than a whole run interval. A late sample for a minute older than the raw
// window (raw_from) cannot be rolled exactly — the minute's other raw rows
// are gone — so it is counted as expired and left to retention, which
// deletes it.

// rollupMetrics are the well-known columns a rollup aggregates, in the
// order of seriesColumns; their names are the metric names in metric_rollups.
var rollupMetrics = []string{"cpu_usage", "memory_usage", "disk_usage", "network_in", "network_out",
	"load_average", "response_time_ms", "error_rate", "request_rate"}

// RollupOptions tune RollupMetrics.
type RollupOptions struct {
	// Now is the time the run counts from. Default: the store's clock.
	Now time.Time
	// Lag is how long a minute stays open after it ends before it is rolled
	// up. Default 2m.
	Lag time.Duration
	// ChunkMinutes is the most minutes rolled in one transaction. On SQLite
	// the transaction holds the single writer, which ingest waits for, so the
	// default there is 1; PostgreSQL's inserts do not wait for it, and its
	// default is 10.
	ChunkMinutes int
}

// RollupResult is what one RollupMetrics run did.
type RollupResult struct {
	// Watermark is the end of the rolled-up time: every minute before it is in metric_rollups.
	Watermark time.Time
	// Minutes is how far the watermark moved, in minutes.
	Minutes int64
	// Rows is the rollup rows written, new or replaced.
	Rows int64
	// LateMinutes counts (host, minute)s rolled again because samples for
	// them arrived after they were rolled up.
	LateMinutes int64
	// ExpiredMinutes counts (host, minute)s that received late samples
	// but lie before the raw window, so the late samples are not rolled up.
	ExpiredMinutes int64
}

// rollupState is the row of metric_rollup_state.
type rollupState struct {
	exists                 bool
	watermark, rawFrom     time.Time
	scanFrom, nextScanFrom int64
}

// loadRollupState reads the job's progress; exists is false before the first run.
func (s *Store) loadRollupState(ctx context.Context) (rollupState, error) {
	var (
		st      rollupState
		wm, raw flexTime
	)
	err := s.QueryRow(ctx, "SELECT watermark, raw_from, scan_from, next_scan_from FROM metric_rollup_state WHERE id = 1").
		Scan(&wm, &raw, &st.scanFrom, &st.nextScanFrom)
	if errors.Is(err, sql.ErrNoRows) {
		return rollupState{}, nil
	}
	if err != nil {
		return rollupState{}, fmt.Errorf("store: rollup state: %w", err)
	}
	st.exists, st.watermark, st.rawFrom = true, wm.t, raw.t
	return st, nil
}

// RawFrom is where the raw rows start being complete: rows older may have
// been deleted by retention, so reads take that part from the rollups. It is
// the zero time while retention has deleted nothing.
func (s *Store) RawFrom(ctx context.Context) (time.Time, error) {
	st, err := s.loadRollupState(ctx)
	if err != nil {
		return time.Time{}, markUnavailable(err)
	}
	return st.rawFrom, nil
}

// bucketExpr is the SQL for the start of the minute of the timestamp column
// col. SQLite holds timestamps as the driver's UTC text
// ("2006-01-02 15:04:05.999999999+00:00"), so the minute is a prefix of it;
// date functions would round fractions of a second into the next minute.
// PostgreSQL's is computed on the epoch, so the session's time zone plays no part.
func bucketExpr(kind dburl.Kind, col string) string {
	if kind == dburl.Postgres {
		return "to_timestamp(floor(extract(epoch FROM " + col + ") / 60) * 60)"
	}
	return "substr(replace(" + col + ", 'T', ' '), 1, 16) || ':00+00:00'"
}

// rollupSQL is the statement that (re)computes the rollups of the raw rows
// in [?, ?), of one host when byHost, replacing the stored ones.
func rollupSQL(kind dburl.Kind, byHost bool) string {
	hostCond := ""
	if byHost {
		hostCond = " AND m.host = ?"
	}
	const upsert = ` ON CONFLICT (host, bucket, metric) DO UPDATE SET sample_count = excluded.sample_count,
	value_sum = excluded.value_sum, value_min = excluded.value_min, value_max = excluded.value_max`
	var b strings.Builder
	b.WriteString("INSERT INTO metric_rollups (host, metric, bucket, sample_count, value_sum, value_min, value_max)\n")
	if kind == dburl.Postgres {
		b.WriteString("SELECT m.host, v.metric, " + bucketExpr(kind, "m.ts") + ", count(*), sum(v.val), min(v.val), max(v.val)\n")
		b.WriteString("FROM system_metrics m CROSS JOIN LATERAL (VALUES ")
		for i, c := range rollupMetrics {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("('" + c + "', m." + c + ")")
		}
		b.WriteString(`
	UNION ALL SELECT e.key, (e.value #>> '{}')::float8 FROM jsonb_each(m.extra) e WHERE jsonb_typeof(e.value) = 'number'
) AS v(metric, val)
WHERE m.ts >= ? AND m.ts < ?` + hostCond + ` AND v.val IS NOT NULL
GROUP BY 1, 2, 3` + upsert)
		return b.String()
	}
	bucket := bucketExpr(kind, "m.ts")
	b.WriteString("SELECT host, metric, bucket, count(*), sum(val), min(val), max(val) FROM (\n")
	b.WriteString("\tSELECT m.host AS host, w.column1 AS metric, " + bucket + " AS bucket, CASE w.column1")
	for _, c := range rollupMetrics {
		b.WriteString(" WHEN '" + c + "' THEN m." + c)
	}
	b.WriteString(" END AS val\n\tFROM system_metrics m CROSS JOIN (VALUES ")
	for i, c := range rollupMetrics {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("('" + c + "')")
	}
	b.WriteString(") w\n\tWHERE m.ts >= ? AND m.ts < ?" + hostCond + "\n\tUNION ALL\n")
	b.WriteString("\tSELECT m.host, j.key, " + bucket + ", j.value FROM system_metrics m, json_each(m.extra) j\n")
	b.WriteString("\tWHERE m.ts >= ? AND m.ts < ?" + hostCond + " AND j.type IN ('integer', 'real')\n")
	b.WriteString(") WHERE val IS NOT NULL GROUP BY host, metric, bucket" + upsert)
	return b.String()
}

// rollupArgs are rollupSQL's arguments: SQLite's statement names the range
// once per arm of its UNION.
func rollupArgs(kind dburl.Kind, lo, hi time.Time, host string) []any {
	args := []any{lo.UTC(), hi.UTC()}
	if host != "" {
		args = append(args, host)
	}
	if kind == dburl.SQLite {
		args = append(args, args...)
	}
	return args
}

func (o *RollupOptions) defaults(kind dburl.Kind, now func() time.Time) {
	if o.Now.IsZero() {
		o.Now = now()
	}
	if o.Lag == 0 {
		o.Lag = 2 * time.Minute
	}
	if o.ChunkMinutes <= 0 {
		o.ChunkMinutes = 10
		if kind == dburl.SQLite {
			o.ChunkMinutes = 1
		}
	}
}

// RollupMetrics rolls the raw samples of every minute older than now − Lag
// into metric_rollups and rolls again the minutes that late samples reached;
// see the comment at the top of rollup.go. It is safe to run concurrently
// (replicas): chunks are serialised on the state row.
func (s *Store) RollupMetrics(ctx context.Context, o RollupOptions) (RollupResult, error) {
	o.defaults(s.kind, s.now)
	if o.Lag < 0 {
		return RollupResult{}, fmt.Errorf("store: rollup: %w: negative lag", ErrInvalid)
	}
	target := o.Now.UTC().Add(-o.Lag).Truncate(time.Minute)
	st, err := s.initRollupState(ctx, target)
	if err != nil {
		return RollupResult{}, markUnavailable(err)
	}
	var res RollupResult
	if err := s.rollLate(ctx, st, &res); err != nil {
		return res, markUnavailable(err)
	}
	if err := s.rollForward(ctx, target, o.ChunkMinutes, &res); err != nil {
		return res, markUnavailable(err)
	}
	return res, nil
}

// initRollupState reads the state row, creating it on the first run with the
// watermark at the oldest stored sample's minute (target when there is none).
func (s *Store) initRollupState(ctx context.Context, target time.Time) (rollupState, error) {
	st, err := s.loadRollupState(ctx)
	if err != nil || st.exists {
		return st, err
	}
	var first flexTime
	if err := s.QueryRow(ctx, "SELECT min(ts) FROM system_metrics").Scan(&first); err != nil {
		return st, fmt.Errorf("store: rollup: first sample: %w", err)
	}
	maxID, err := s.newestID(ctx)
	if err != nil {
		return st, err
	}
	wm := target
	if !first.t.IsZero() && first.t.Before(target) {
		wm = first.t.Truncate(time.Minute)
	}
	// Rows stored before the first run are all at or after the watermark, so
	// none of them is late: the scan starts after them.
	if _, err := s.Exec(ctx, "INSERT INTO metric_rollup_state (id, watermark, scan_from, next_scan_from) VALUES (1, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
		wm.UTC(), maxID, maxID); err != nil {
		return st, fmt.Errorf("store: rollup: create state: %w", err)
	}
	return s.loadRollupState(ctx)
}

// lockState is the statement that reads the state row at the start of a
// chunk's transaction; on PostgreSQL it locks it, so replicas' chunks take
// turns (SQLite's transaction holds the only write lock already).
func (s *Store) lockState() string {
	q := "SELECT watermark FROM metric_rollup_state WHERE id = 1"
	if s.kind == dburl.Postgres {
		q += " FOR UPDATE"
	}
	return q
}

// rollForward advances the watermark to target, a chunk per transaction,
// skipping stretches without samples in one step.
func (s *Store) rollForward(ctx context.Context, target time.Time, chunk int, res *RollupResult) error {
	ins := rollupSQL(s.kind, false)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		st, err := s.loadRollupState(ctx)
		if err != nil {
			return err
		}
		res.Watermark = st.watermark
		if !st.watermark.Before(target) {
			return nil
		}
		var next flexTime
		if err := s.QueryRow(ctx, "SELECT min(ts) FROM system_metrics WHERE ts >= ?", st.watermark.UTC()).Scan(&next); err != nil {
			return fmt.Errorf("store: rollup: next sample: %w", err)
		}
		lo, hi := st.watermark, target
		if !next.t.IsZero() && next.t.Before(target) {
			lo = later(lo, next.t.Truncate(time.Minute))
			hi = earlier(lo.Add(time.Duration(chunk)*time.Minute), target)
		} else {
			lo = target // nothing to roll before target
		}
		var written int64
		err = s.InTx(ctx, func(tx *Tx) error {
			var wm flexTime
			if err := tx.QueryRow(ctx, s.lockState()).Scan(&wm); err != nil {
				return fmt.Errorf("lock state: %w", err)
			}
			if !wm.t.Equal(st.watermark) {
				return errMoved // another runner got here first; read again
			}
			if lo.Before(hi) {
				r, err := tx.Exec(ctx, ins, rollupArgs(s.kind, lo, hi, "")...)
				if err != nil {
					return fmt.Errorf("roll %s–%s: %w", lo.Format(time.RFC3339), hi.Format(time.RFC3339), err)
				}
				written, _ = r.RowsAffected()
			}
			if _, err := tx.Exec(ctx, "UPDATE metric_rollup_state SET watermark = ? WHERE id = 1", hi.UTC()); err != nil {
				return fmt.Errorf("advance watermark: %w", err)
			}
			return nil
		})
		switch {
		case errors.Is(err, errMoved):
			continue
		case err != nil:
			return fmt.Errorf("store: rollup: %w", err)
		}
		res.Rows += written
		res.Minutes += int64(hi.Sub(st.watermark) / time.Minute)
		res.Watermark = hi
	}
}

// errMoved says the watermark moved under a chunk: another runner rolled it.
var errMoved = errors.New("watermark moved")

// hostRangeT is one host's run of consecutive late minutes, [lo, hi).
type hostRangeT struct {
	host   string
	lo, hi time.Time
}

// newestID is the highest id in system_metrics (0 when empty). The bare
// max() is what both databases answer from the primary key's end; SQLite
// would scan the table for max() inside an expression.
func (s *Store) newestID(ctx context.Context) (int64, error) {
	var id sql.NullInt64
	if err := s.QueryRow(ctx, "SELECT max(id) FROM system_metrics").Scan(&id); err != nil {
		return 0, fmt.Errorf("store: rollup: newest row: %w", err)
	}
	return id.Int64, nil
}

// rollLate rolls again the (host, minute)s before the watermark that
// received rows since the previous runs, then moves the scanned id range on.
func (s *Store) rollLate(ctx context.Context, st rollupState, res *RollupResult) error {
	maxID, err := s.newestID(ctx)
	if err != nil {
		return err
	}
	rows, err := s.Query(ctx, "SELECT host, "+bucketExpr(s.kind, "ts")+" AS b FROM system_metrics WHERE id > ? AND id <= ? AND ts < ? GROUP BY host, b ORDER BY host, b",
		st.scanFrom, maxID, st.watermark.UTC())
	if err != nil {
		return fmt.Errorf("store: rollup: late samples: %w", err)
	}
	var ranges []hostRangeT
	for rows.Next() {
		var (
			host string
			b    flexTime
		)
		if err := rows.Scan(&host, &b); err != nil {
			rows.Close()
			return fmt.Errorf("store: rollup: late samples: %w", err)
		}
		if n := len(ranges); n > 0 && ranges[n-1].host == host && ranges[n-1].hi.Equal(b.t) {
			ranges[n-1].hi = b.t.Add(time.Minute)
			continue
		}
		ranges = append(ranges, hostRangeT{host: host, lo: b.t, hi: b.t.Add(time.Minute)})
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return fmt.Errorf("store: rollup: late samples: %w", err)
	}
	rows.Close()
	ins := rollupSQL(s.kind, true)
	for _, r := range ranges {
		if !st.rawFrom.IsZero() && r.lo.Before(st.rawFrom) {
			cut := earlier(r.hi, st.rawFrom)
			res.ExpiredMinutes += int64(cut.Sub(r.lo) / time.Minute)
			r.lo = cut
		}
		if !r.lo.Before(r.hi) {
			continue
		}
		out, err := s.Exec(ctx, ins, rollupArgs(s.kind, r.lo, r.hi, r.host)...)
		if err != nil {
			return fmt.Errorf("store: rollup: late minutes of %s: %w", r.host, err)
		}
		n, _ := out.RowsAffected()
		res.Rows += n
		res.LateMinutes += int64(r.hi.Sub(r.lo) / time.Minute)
	}
	if _, err := s.Exec(ctx, "UPDATE metric_rollup_state SET scan_from = next_scan_from, next_scan_from = ? WHERE id = 1", maxID); err != nil {
		return fmt.Errorf("store: rollup: move scan: %w", err)
	}
	return nil
}
