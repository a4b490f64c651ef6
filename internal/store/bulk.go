package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// MetricSample is one host's metrics at one instant, as stored in system_metrics.
// The well-known metrics are pointers because a host may not report them all;
// anything else numeric goes to Extra.
type MetricSample struct {
	Host           string
	Timestamp      time.Time
	CPUUsage       *float64
	MemoryUsage    *float64
	DiskUsage      *float64
	NetworkIn      *float64
	NetworkOut     *float64
	LoadAverage    *float64
	ResponseTimeMS *float64
	ErrorRate      *float64
	RequestRate    *float64
	Extra          map[string]float64
}

const metricColumns = "host, ts, cpu_usage, memory_usage, disk_usage, network_in, network_out, load_average, response_time_ms, error_rate, request_rate, extra"

// sqliteBatchRows is the rows per INSERT on SQLite: 12 bind parameters a row
// stays far below SQLite's limit of 32766, and past a few hundred rows a
// longer statement no longer pays for itself.
const sqliteBatchRows = 256

// InsertMetrics stores samples and returns how many rows were new. A sample
// whose (host, timestamp) is already stored is skipped, not an error: agents
// re-send after timeouts, and the first copy of a sample wins. It is the bulk
// path: on PostgreSQL the rows are streamed with COPY into a temporary table
// and moved with one INSERT … ON CONFLICT DO NOTHING; on SQLite one prepared
// multi-row INSERT is reused for every batch, all in one transaction.
func (s *Store) InsertMetrics(ctx context.Context, samples []MetricSample) (int64, error) {
	if len(samples) == 0 {
		return 0, nil
	}
	qi := s.info(insertMetricsFingerprint)
	start := s.now()
	var (
		n   int64
		err error
	)
	if s.pg != nil {
		n, err = s.copyMetrics(ctx, samples)
	} else {
		n, err = s.insertMetricsSQLite(ctx, samples)
	}
	s.observe(ctx, qi, start, n, err, nil)
	if err != nil {
		return 0, err
	}
	s.metrics.bulkInsert.Add(float64(len(samples)))
	s.invalidate(ctx, "system_metrics")
	return n, nil
}

// insertMetricsFingerprint is the statement the bulk insert is recorded under.
const insertMetricsFingerprint = "INSERT INTO system_metrics (" + metricColumns + ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (host, ts) DO NOTHING"

func extraJSON(m *MetricSample) ([]byte, error) {
	if len(m.Extra) == 0 {
		return []byte("{}"), nil
	}
	raw, err := json.Marshal(m.Extra)
	if err != nil {
		return nil, fmt.Errorf("store: insert metrics: extra of %s: %w", m.Host, err)
	}
	return raw, nil
}

func (s *Store) insertMetricsSQLite(ctx context.Context, samples []MetricSample) (int64, error) {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("store: insert metrics: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	stmts := map[int]*sql.Stmt{}
	defer func() {
		for _, st := range stmts {
			st.Close()
		}
	}()
	prepared := func(rows int) (*sql.Stmt, error) {
		if st := stmts[rows]; st != nil {
			return st, nil
		}
		var b strings.Builder
		b.WriteString("INSERT INTO system_metrics (" + metricColumns + ") VALUES ")
		for i := range rows {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?,?,?,?,?,?,?,?,?,?,?,?)")
		}
		b.WriteString(" ON CONFLICT (host, ts) DO NOTHING")
		st, err := tx.PrepareContext(ctx, b.String())
		if err != nil {
			return nil, fmt.Errorf("store: insert metrics: prepare: %w", err)
		}
		stmts[rows] = st
		return st, nil
	}
	args := make([]any, 0, sqliteBatchRows*12)
	var inserted int64
	for lo := 0; lo < len(samples); lo += sqliteBatchRows {
		batch := samples[lo:min(lo+sqliteBatchRows, len(samples))]
		args = args[:0]
		for i := range batch {
			m := &batch[i]
			extra, err := extraJSON(m)
			if err != nil {
				return 0, err
			}
			args = append(args, m.Host, m.Timestamp.UTC(), m.CPUUsage, m.MemoryUsage, m.DiskUsage, m.NetworkIn, m.NetworkOut,
				m.LoadAverage, m.ResponseTimeMS, m.ErrorRate, m.RequestRate, string(extra))
		}
		st, err := prepared(len(batch))
		if err != nil {
			return 0, err
		}
		res, err := st.ExecContext(ctx, args...)
		if err != nil {
			return 0, fmt.Errorf("store: insert metrics: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("store: insert metrics: rows affected: %w", err)
		}
		inserted += n
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("store: insert metrics: commit: %w", err)
	}
	return inserted, nil
}

var metricColumnList = []string{"host", "ts", "cpu_usage", "memory_usage", "disk_usage", "network_in", "network_out",
	"load_average", "response_time_ms", "error_rate", "request_rate", "extra"}

func (s *Store) copyMetrics(ctx context.Context, samples []MetricSample) (int64, error) {
	tx, err := s.pg.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("store: insert metrics: begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	// The temporary table has no unique index, so COPY never stops at a
	// duplicate; the INSERT … SELECT then skips them as the row path does.
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE sco_metrics_load (
		host text, ts timestamptz, cpu_usage float8, memory_usage float8, disk_usage float8, network_in float8,
		network_out float8, load_average float8, response_time_ms float8, error_rate float8, request_rate float8, extra jsonb
	) ON COMMIT DROP`); err != nil {
		return 0, fmt.Errorf("store: insert metrics: temp table: %w", err)
	}
	var encErr error
	src := pgx.CopyFromSlice(len(samples), func(i int) ([]any, error) {
		m := &samples[i]
		extra, err := extraJSON(m)
		if err != nil {
			encErr = err
			return nil, err
		}
		return []any{m.Host, m.Timestamp.UTC(), m.CPUUsage, m.MemoryUsage, m.DiskUsage, m.NetworkIn, m.NetworkOut,
			m.LoadAverage, m.ResponseTimeMS, m.ErrorRate, m.RequestRate, extra}, nil
	})
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"sco_metrics_load"}, metricColumnList, src); err != nil {
		if encErr != nil {
			return 0, encErr
		}
		return 0, fmt.Errorf("store: insert metrics: copy: %w", err)
	}
	tag, err := tx.Exec(ctx, "INSERT INTO system_metrics ("+metricColumns+") SELECT "+metricColumns+" FROM sco_metrics_load ON CONFLICT (host, ts) DO NOTHING")
	if err != nil {
		return 0, fmt.Errorf("store: insert metrics: move rows: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("store: insert metrics: commit: %w", err)
	}
	return tag.RowsAffected(), nil
}
