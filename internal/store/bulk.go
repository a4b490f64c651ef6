package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/smartcloudops/smartcloudops/internal/domain"
)

const metricColumns = "host, ts, cpu_usage, memory_usage, disk_usage, network_in, network_out, load_average, response_time_ms, error_rate, request_rate, extra"

// sqliteBatchRows is the rows per INSERT on SQLite: 12 bind parameters a row
// stays far below SQLite's limit of 32766, and past a few hundred rows a
// longer statement no longer pays for itself.
const sqliteBatchRows = 256

// InsertMetrics stores samples and returns how many of them stored
// something: a new row, or a metric a stored row of the same (host,
// timestamp) did not have yet. A sample whose (host, timestamp) is already
// stored is merged into that row, not an error: the row keeps every value
// it has (the first copy of a metric wins) and gains the sample's metrics
// it lacks — the columns still NULL and the extra keys it does not hold.
// So an agent's re-send after a timeout adds nothing (a duplicate), while
// the parts of one scrape that Prometheus's remote write sends in separate
// requests make one row. Samples of one batch are applied in order, as one
// by one. It is the bulk path: on PostgreSQL the rows are streamed with
// binary COPY, straight into the table when the batch cannot conflict (see
// copyMetrics); on SQLite one prepared multi-row upsert is reused for every
// batch, all in one transaction.
func (s *Store) InsertMetrics(ctx context.Context, samples []domain.MetricSample) (int64, error) {
	if len(samples) == 0 {
		return 0, nil
	}
	qi := s.memo.info(insertMetricsFingerprint)
	start := s.now()
	var (
		n   int64
		err error
	)
	if s.pg != nil {
		n, err = copyMetrics(ctx, s.pg, samples)
	} else {
		n, err = insertMetricsSQLite(ctx, s.write, samples)
	}
	s.diag.observe(ctx, qi, start, n, err, nil)
	if err != nil {
		return 0, markUnavailable(err)
	}
	s.metrics.bulkInsert.Add(float64(len(samples)))
	s.qc.Invalidate(ctx, "system_metrics")
	return n, nil
}

// insertMetricsFingerprint is the statement the bulk insert is recorded under.
const insertMetricsFingerprint = "INSERT INTO system_metrics (" + metricColumns + ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (host, ts) DO UPDATE SET …"

// mergeColumns are the nullable metric columns a merge fills.
var mergeColumns = []string{"cpu_usage", "memory_usage", "disk_usage", "network_in", "network_out",
	"load_average", "response_time_ms", "error_rate", "request_rate"}

// mergeClause is the ON CONFLICT action that merges a sample into the stored
// row of its key: each column keeps its stored value and takes the new one
// only where it is NULL, extra keeps its keys and gains the new ones
// (mergedExtra), and the row is updated, and counted, only when that
// changes something, so a plain re-send stays a no-op. table names the
// stored row (SQLite has no alias in the upsert target; PostgreSQL's is m).
func mergeClause(table, mergedExtra, extraGrew string) string {
	var b strings.Builder
	b.WriteString(" ON CONFLICT (host, ts) DO UPDATE SET ")
	for _, c := range mergeColumns {
		fmt.Fprintf(&b, "%s = COALESCE(%s.%s, excluded.%s), ", c, table, c, c)
	}
	b.WriteString("extra = " + mergedExtra + " WHERE ")
	for _, c := range mergeColumns {
		fmt.Fprintf(&b, "(%s.%s IS NULL AND excluded.%s IS NOT NULL) OR ", table, c, c)
	}
	b.WriteString(extraGrew)
	return b.String()
}

// sqliteMerge: json_patch(a, b) is a with b's keys laid over, so the stored
// keys win; the extra grew when the merged object has more keys.
var sqliteMerge = mergeClause("system_metrics", "json_patch(excluded.extra, system_metrics.extra)",
	"(SELECT count(*) FROM json_each(json_patch(excluded.extra, system_metrics.extra))) > (SELECT count(*) FROM json_each(system_metrics.extra))")

// pgMerge: jsonb || keeps the right operand's keys, so the stored ones
// win; jsonb equality ignores key order.
var pgMerge = mergeClause("m", "excluded.extra || m.extra", "(excluded.extra || m.extra) <> m.extra")

func extraJSON(m *domain.MetricSample) ([]byte, error) {
	if len(m.Extra) == 0 {
		return []byte("{}"), nil
	}
	raw, err := json.Marshal(m.Extra)
	if err != nil {
		return nil, fmt.Errorf("store: insert metrics: extra of %s: %w", m.Host, err)
	}
	return raw, nil
}

func insertMetricsSQLite(ctx context.Context, write *sql.DB, samples []domain.MetricSample) (int64, error) {
	tx, err := write.BeginTx(ctx, nil)
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
		b.WriteString(sqliteMerge)
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

// copyMetrics is the PostgreSQL bulk insert. The common case — fresh samples
// from agents, newer than anything stored for their host — cannot conflict,
// and then the rows go by binary COPY straight into system_metrics: one
// statement, no transaction, no staging table. Whether a batch can conflict
// is asked first with one query that probes the (host, ts) index once per
// host for the batch's time range on that host; if anything is stored in a
// range (a re-send, a backfill, the next part of a remote-write scrape), or
// the batch repeats a key, or another writer takes a key between the check
// and the COPY (a unique violation undoes the whole COPY), the batch goes
// the staged way, whose INSERT … ON CONFLICT DO UPDATE merges into stored
// rows, so both ways keep the same rows as merging one by one in order would.
func copyMetrics(ctx context.Context, pg *pgxpool.Pool, samples []domain.MetricSample) (int64, error) {
	ord, rounds, ranges := occurrences(samples)
	clash, err := metricsStored(ctx, pg, ranges)
	if err != nil {
		return 0, err
	}
	if !clash && rounds == 1 {
		src := &metricSource{samples: samples}
		n, err := pg.CopyFrom(ctx, pgx.Identifier{"system_metrics"}, metricColumnList, src)
		switch {
		case err == nil:
			return n, nil
		case src.err != nil:
			return 0, src.err
		case !isUniqueViolation(err):
			return 0, fmt.Errorf("store: insert metrics: copy: %w", err)
		}
	}
	// Concurrent merges of overlapping batches (one host's scrape split
	// over shards) take the rows' locks in (host, ts) order, but a batch
	// that repeats a key merges in rounds, and two such can still deadlock;
	// PostgreSQL then aborts one, which is safe to run again.
	for attempt := 1; ; attempt++ {
		n, err := copyMetricsStaged(ctx, pg, &metricSource{samples: samples, ord: ord}, rounds)
		if err == nil || attempt == mergeAttempts || !Contended(err) || ctx.Err() != nil {
			return n, err
		}
	}
}

// mergeAttempts is how often a staged merge runs when PostgreSQL aborts it
// for a concurrent one (Contended).
const mergeAttempts = 3

// pgKey is a sample's identity as PostgreSQL's unique index sees it:
// timestamptz keeps microseconds, and pgx truncates to them.
type pgKey struct {
	host string
	us   int64
}

// hostRange is the span of one host's timestamps in a batch, in microseconds.
type hostRange struct{ lo, hi int64 }

// occurrences numbers each sample's (host, ts) occurrence in the batch (1
// for the first; nil when every key occurs once), returns the most
// occurrences of one key, and each host's time range.
func occurrences(samples []domain.MetricSample) ([]int32, int, map[string]hostRange) {
	seen := make(map[pgKey]int32, len(samples))
	ranges := map[string]hostRange{}
	var ord []int32
	rounds := 1
	for i := range samples {
		m := &samples[i]
		k := pgKey{m.Host, m.Timestamp.UnixMicro()}
		n := seen[k] + 1
		seen[k] = n
		if n > 1 && ord == nil {
			ord = make([]int32, len(samples))
			for j := range i {
				ord[j] = 1
			}
		}
		if ord != nil {
			ord[i] = n
		}
		rounds = max(rounds, int(n))
		r, ok := ranges[m.Host]
		if !ok {
			r = hostRange{k.us, k.us}
		}
		ranges[m.Host] = hostRange{min(r.lo, k.us), max(r.hi, k.us)}
	}
	return ord, rounds, ranges
}

// metricsStoredSQL probes the (host, ts) index once per host; LATERAL … LIMIT
// 1 keeps the planner from turning the probes into a scan of the table.
const metricsStoredSQL = `SELECT EXISTS (
	SELECT 1 FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS b(host, lo, hi),
	LATERAL (SELECT 1 FROM system_metrics m WHERE m.host = b.host AND m.ts >= b.lo AND m.ts <= b.hi LIMIT 1) AS hit)`

// metricsStored reports whether anything is stored for any host within the
// batch's time range on that host, which is when a sample could conflict.
func metricsStored(ctx context.Context, pg *pgxpool.Pool, ranges map[string]hostRange) (bool, error) {
	hosts := make([]string, 0, len(ranges))
	los := make([]time.Time, 0, len(ranges))
	his := make([]time.Time, 0, len(ranges))
	for h, r := range ranges {
		hosts = append(hosts, h)
		los = append(los, time.UnixMicro(r.lo).UTC())
		his = append(his, time.UnixMicro(r.hi).UTC())
	}
	var stored bool
	if err := pg.QueryRow(ctx, metricsStoredSQL, hosts, los, his).Scan(&stored); err != nil {
		return false, fmt.Errorf("store: insert metrics: check stored rows: %w", err)
	}
	return stored, nil
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// metricSource feeds COPY the samples, with their occurrence number when
// staged. It reuses one row: pgx encodes a row's values before asking for
// the next.
type metricSource struct {
	samples []domain.MetricSample
	ord     []int32 // staged only; nil: every key occurs once
	i       int
	row     [13]any
	err     error
}

func (ms *metricSource) Next() bool {
	if ms.err != nil || ms.i >= len(ms.samples) {
		return false
	}
	ms.i++
	return true
}

func (ms *metricSource) Values() ([]any, error) {
	idx := ms.i - 1
	m := &ms.samples[idx]
	extra, err := extraJSON(m)
	if err != nil {
		ms.err = err
		return nil, err
	}
	ms.row = [13]any{m.Host, m.Timestamp.UTC(), m.CPUUsage, m.MemoryUsage, m.DiskUsage, m.NetworkIn, m.NetworkOut,
		m.LoadAverage, m.ResponseTimeMS, m.ErrorRate, m.RequestRate, extra, int32(1)}
	if ms.ord != nil {
		ms.row[12] = ms.ord[idx]
	}
	return ms.row[:12], nil
}

func (ms *metricSource) Err() error { return ms.err }

// stagedSource is metricSource with the occurrence column the staging
// table has.
type stagedSource struct{ *metricSource }

func (s stagedSource) Values() ([]any, error) {
	if _, err := s.metricSource.Values(); err != nil {
		return nil, err
	}
	return s.row[:], nil
}

// copyMetricsStaged streams the rows into a per-connection temporary table
// and merges them with INSERT … ON CONFLICT DO UPDATE, one round per
// occurrence of a key in the batch (one round unless the batch repeats a
// key), since one statement may not update a row twice. The table has no
// unique index, so COPY never stops at a stored key. It is created once per
// connection and emptied at each commit, rather than created and dropped
// per call, which cost catalog writes every time.
func copyMetricsStaged(ctx context.Context, pg *pgxpool.Pool, src *metricSource, rounds int) (int64, error) {
	tx, err := pg.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("store: insert metrics: begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS sco_metrics_merge (
		host text, ts timestamptz, cpu_usage float8, memory_usage float8, disk_usage float8, network_in float8,
		network_out float8, load_average float8, response_time_ms float8, error_rate float8, request_rate float8, extra jsonb,
		ord int4
	) ON COMMIT DELETE ROWS`); err != nil {
		return 0, fmt.Errorf("store: insert metrics: staging table: %w", err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"sco_metrics_merge"}, append(metricColumnList[:len(metricColumnList):len(metricColumnList)], "ord"), stagedSource{src}); err != nil {
		if src.err != nil {
			return 0, src.err
		}
		return 0, fmt.Errorf("store: insert metrics: copy: %w", err)
	}
	var n int64
	for round := 1; round <= rounds; round++ {
		tag, err := tx.Exec(ctx, "INSERT INTO system_metrics AS m ("+metricColumns+") SELECT "+metricColumns+" FROM sco_metrics_merge WHERE ord = $1 ORDER BY host, ts"+pgMerge, round)
		if err != nil {
			return 0, fmt.Errorf("store: insert metrics: merge rows: %w", err)
		}
		n += tag.RowsAffected()
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("store: insert metrics: commit: %w", err)
	}
	return n, nil
}
