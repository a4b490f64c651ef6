package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/domain"
)

// InsertAnomalies stores anomalies and returns how many rows were new. The
// anomalies table holds one row per sample, keyed (host, detected_at): an
// anomaly whose sample already has one is skipped, whichever model scored
// it, so an agent re-sending after a timeout, concurrent re-sends, or a
// re-send after a new model was activated never open the same incident
// twice. The database's unique index decides (INSERT … ON CONFLICT DO
// NOTHING), not a lookup first, so concurrent callers cannot both insert.
// Within rows the first anomaly of a sample wins.
func (s *Store) InsertAnomalies(ctx context.Context, rows []domain.Anomaly) (int64, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	for _, a := range rows {
		if err := validAnomaly(a); err != nil {
			return 0, fmt.Errorf("store: insert anomalies: %w", err)
		}
	}
	// Callers inserting overlapping batches take the index's key locks in
	// the same order, so two of them wait for each other instead of
	// deadlocking on PostgreSQL. The sort is stable: the first copy of a
	// sample still goes first.
	rows = slices.Clone(rows)
	slices.SortStableFunc(rows, func(a, b domain.Anomaly) int {
		return cmp.Or(strings.Compare(a.Host, b.Host), a.DetectedAt.Compare(b.DetectedAt))
	})
	var (
		n   int64
		err error
	)
	if s.pg != nil {
		n, err = s.insertAnomaliesPostgres(ctx, rows)
	} else {
		n, err = s.insertAnomaliesSQLite(ctx, rows)
	}
	if err != nil {
		return 0, markUnavailable(fmt.Errorf("store: insert anomalies: %w", err))
	}
	return n, nil
}

const anomalyColumns = "host, metric, detected_at, score, confidence, severity, status, model_version, features, explanation"

// insertAnomaliesPostgresSQL moves a whole batch in one statement whose text
// is the same whatever the batch size, so each connection prepares it once:
// each column travels as one array parameter. COPY cannot skip conflicting
// keys, and the staging table it would need is not worth it for anomalies,
// a handful per ingest batch. A multi-row VALUES measured the same on
// 100-row batches (BenchmarkInsertAnomalies, about 10k rows/s, dominated by
// the commit) but prepares one statement per batch size.
const insertAnomaliesPostgresSQL = `INSERT INTO anomalies (` + anomalyColumns + `)
SELECT h, NULLIF(m, ''), d, sc, co, sv, st, mv, f::jsonb, e
FROM unnest(?::text[], ?::text[], ?::timestamptz[], ?::float8[], ?::float8[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[])
	AS b(h, m, d, sc, co, sv, st, mv, f, e)
ON CONFLICT (host, detected_at) DO NOTHING`

func (s *Store) insertAnomaliesPostgres(ctx context.Context, rows []domain.Anomaly) (int64, error) {
	n := len(rows)
	hosts, metrics, times := make([]string, n), make([]string, n), make([]time.Time, n)
	scores, confs := make([]float64, n), make([]float64, n)
	sevs, stats, versions := make([]string, n), make([]string, n), make([]string, n)
	feats, expls := make([]string, n), make([]string, n)
	for i, a := range rows {
		f, err := featuresJSON(a)
		if err != nil {
			return 0, err
		}
		hosts[i], metrics[i], times[i], scores[i], confs[i] = a.Host, a.Metric, a.DetectedAt.UTC(), a.Score, a.Confidence
		sevs[i], stats[i], versions[i], feats[i], expls[i] = string(a.Severity), anomalyStatus(a), a.ModelVersion, f, a.Explanation
	}
	res, err := s.Exec(ctx, insertAnomaliesPostgresSQL, hosts, metrics, times, scores, confs, sevs, stats, versions, feats, expls)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// sqliteAnomalyRows is the rows per INSERT on SQLite: 10 bind parameters a
// row, far below SQLite's limit, and as long a statement as pays for itself.
const sqliteAnomalyRows = 256

func (s *Store) insertAnomaliesSQLite(ctx context.Context, rows []domain.Anomaly) (int64, error) {
	var inserted int64
	err := s.InTx(ctx, func(tx *Tx) error {
		args := make([]any, 0, min(len(rows), sqliteAnomalyRows)*10)
		for lo := 0; lo < len(rows); lo += sqliteAnomalyRows {
			batch := rows[lo:min(lo+sqliteAnomalyRows, len(rows))]
			var b strings.Builder
			b.WriteString("INSERT INTO anomalies (" + anomalyColumns + ") VALUES ")
			args = args[:0]
			for i, a := range batch {
				f, err := featuresJSON(a)
				if err != nil {
					return err
				}
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString("(?, NULLIF(?, ''), ?, ?, ?, ?, ?, ?, ?, ?)")
				args = append(args, a.Host, a.Metric, a.DetectedAt.UTC(), a.Score, a.Confidence, string(a.Severity), anomalyStatus(a), a.ModelVersion, f, a.Explanation)
			}
			b.WriteString(" ON CONFLICT (host, detected_at) DO NOTHING")
			res, err := tx.Exec(ctx, b.String(), args...)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("rows affected: %w", err)
			}
			inserted += n
		}
		return nil
	})
	return inserted, err
}

func featuresJSON(a domain.Anomaly) (string, error) {
	if len(a.Features) == 0 {
		return "{}", nil
	}
	raw, err := json.Marshal(a.Features)
	if err != nil {
		return "", fmt.Errorf("features of %s: %w", a.Host, err)
	}
	return string(raw), nil
}

func anomalyStatus(a domain.Anomaly) string {
	if a.Status == "" {
		return "open"
	}
	return a.Status
}

func validAnomaly(a domain.Anomaly) error {
	switch {
	case a.Host == "":
		return errors.New("anomaly without host")
	case a.ModelVersion == "":
		return fmt.Errorf("anomaly for %s without model version", a.Host)
	case !(a.Score >= 0 && a.Score <= 1) || !(a.Confidence >= 0 && a.Confidence <= 1):
		return fmt.Errorf("anomaly for %s: score %v and confidence %v must be in [0,1]", a.Host, a.Score, a.Confidence)
	}
	return nil
}

// SaveModel stores a new model version, inactive unless m.Active; an active
// new model replaces the kind's active one in the same transaction.
func (s *Store) SaveModel(ctx context.Context, m domain.Model) error {
	if m.Version == "" || m.Kind == "" {
		return errors.New("store: save model: version and kind are required")
	}
	params, valid := jsonObject(m.Parameters), jsonObject(m.Validation)
	err := s.InTx(ctx, func(tx *Tx) error {
		if m.Active {
			if _, err := tx.Exec(ctx, "UPDATE models SET active = ? WHERE kind = ? AND active = ?", false, m.Kind, true); err != nil {
				return fmt.Errorf("deactivate previous: %w", err)
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO models (version, kind, parameters, trained_at, training_from, training_to, training_rows, validation, artifact, active)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			m.Version, m.Kind, params, m.TrainedAt.UTC(), nullTime(m.TrainingFrom), nullTime(m.TrainingTo), m.TrainingRows, valid, m.Artifact, m.Active)
		return err
	})
	if err != nil {
		return markUnavailable(fmt.Errorf("store: save model %s: %w", m.Version, err))
	}
	return nil
}

func jsonObject(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "{}"
	}
	return string(raw)
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

const modelColumns = "version, kind, parameters, validation, trained_at, training_from, training_to, training_rows, active"

// Models lists the versions of kind ("" for every kind), newest first,
// without their artifacts.
func (s *Store) Models(ctx context.Context, kind string) ([]domain.Model, error) {
	q := "SELECT " + modelColumns + " FROM models"
	var args []any
	if kind != "" {
		q += " WHERE kind = ?"
		args = append(args, kind)
	}
	q += " ORDER BY trained_at DESC, id DESC"
	rows, err := s.Reader().QueryContext(ctx, s.Rebind(q), args...)
	if err != nil {
		return nil, markUnavailable(fmt.Errorf("store: list models: %w", err))
	}
	defer rows.Close()
	var out []domain.Model
	for rows.Next() {
		m, err := scanModel(rows, false)
		if err != nil {
			return nil, markUnavailable(err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, markUnavailable(fmt.Errorf("store: list models: %w", err))
	}
	return out, nil
}

// Model returns one version with its artifact, or an error wrapping domain.ErrModelNotFound.
func (s *Store) Model(ctx context.Context, version string) (domain.Model, error) {
	row := s.Reader().QueryRowContext(ctx, s.Rebind("SELECT "+modelColumns+", artifact FROM models WHERE version = ?"), version)
	m, err := scanModel(row, true)
	if errors.Is(err, sql.ErrNoRows) {
		return domain.Model{}, fmt.Errorf("store: model %q: %w", version, domain.ErrModelNotFound)
	}
	return m, markUnavailable(err)
}

// ActiveModel returns the active version of kind with its artifact, or an
// error wrapping domain.ErrModelNotFound when none is active.
func (s *Store) ActiveModel(ctx context.Context, kind string) (domain.Model, error) {
	row := s.Reader().QueryRowContext(ctx, s.Rebind("SELECT "+modelColumns+", artifact FROM models WHERE kind = ? AND active = ?"), kind, true)
	m, err := scanModel(row, true)
	if errors.Is(err, sql.ErrNoRows) {
		return domain.Model{}, fmt.Errorf("store: active %s model: %w", kind, domain.ErrModelNotFound)
	}
	return m, markUnavailable(err)
}

// ActivateModel makes version the active model of its kind and deactivates
// the previous one in one transaction, so readers see exactly one active
// model before and after. Activating an older version is a rollback.
func (s *Store) ActivateModel(ctx context.Context, version string) error {
	err := s.InTx(ctx, func(tx *Tx) error {
		var kind string
		if err := tx.QueryRow(ctx, "SELECT kind FROM models WHERE version = ?", version).Scan(&kind); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return domain.ErrModelNotFound
			}
			return err
		}
		// Deactivate first: the partial unique index allows one active row per
		// kind at every statement boundary.
		if _, err := tx.Exec(ctx, "UPDATE models SET active = ? WHERE kind = ? AND active = ? AND version <> ?", false, kind, true, version); err != nil {
			return fmt.Errorf("deactivate previous: %w", err)
		}
		_, err := tx.Exec(ctx, "UPDATE models SET active = ? WHERE version = ?", true, version)
		return err
	})
	if err != nil {
		return markUnavailable(fmt.Errorf("store: activate model %q: %w", version, err))
	}
	return nil
}

type rowScanner interface {
	Scan(dest ...any) error
}

func scanModel(r rowScanner, withArtifact bool) (domain.Model, error) {
	var (
		m             domain.Model
		params, valid string
		from, to      sql.NullTime
	)
	dest := []any{&m.Version, &m.Kind, &params, &valid, &m.TrainedAt, &from, &to, &m.TrainingRows, &m.Active}
	if withArtifact {
		dest = append(dest, &m.Artifact)
	}
	if err := r.Scan(dest...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return domain.Model{}, err
		}
		return domain.Model{}, fmt.Errorf("store: scan model: %w", err)
	}
	m.Parameters, m.Validation = json.RawMessage(params), json.RawMessage(valid)
	m.TrainedAt = m.TrainedAt.UTC()
	if from.Valid {
		m.TrainingFrom = from.Time.UTC()
	}
	if to.Valid {
		m.TrainingTo = to.Time.UTC()
	}
	return m, nil
}

// MetricHistory returns stored samples in (host, time) order: the most recent
// q.Limit samples of the window, each host's samples oldest first, so a
// caller can replay every host's series causally. Where retention has
// deleted the raw rows (before RawFrom), the window is read from the
// rollups, one sample per host and minute whose metrics are the minute's
// means; so training reaches back as far as the rollups are kept, while the
// recent part it is validated on stays at the resolution it scores.
func (s *Store) MetricHistory(ctx context.Context, q domain.HistoryQuery) ([]domain.MetricSample, error) {
	if q.Limit <= 0 {
		q.Limit = 10000
	}
	split, err := s.RawFrom(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: metric history: %w", err)
	}
	from := q.From
	if !split.IsZero() && (from.IsZero() || from.Before(split)) {
		from = split
	}
	where, args := HostFilter{Host: q.Host}.where("host", nil, nil)
	where, args = timeWindow("ts", from, q.To, where, args)
	inner := "SELECT " + metricColumns + " FROM system_metrics"
	if len(where) > 0 {
		inner += " WHERE " + strings.Join(where, " AND ")
	}
	inner += " ORDER BY ts DESC LIMIT ?"
	args = append(args, q.Limit)
	stmt := "SELECT " + metricColumns + " FROM (" + inner + ") recent ORDER BY host, ts"
	rows, err := s.Query(ctx, stmt, args...)
	if err != nil {
		return nil, markUnavailable(fmt.Errorf("store: metric history: %w", err))
	}
	defer rows.Close()
	var out []domain.MetricSample
	for rows.Next() {
		var (
			m     domain.MetricSample
			extra string
			vals  [9]sql.NullFloat64
		)
		if err := rows.Scan(&m.Host, &m.Timestamp, &vals[0], &vals[1], &vals[2], &vals[3], &vals[4], &vals[5], &vals[6], &vals[7], &vals[8], &extra); err != nil {
			return nil, markUnavailable(fmt.Errorf("store: scan metric sample: %w", err))
		}
		ptrs := []**float64{&m.CPUUsage, &m.MemoryUsage, &m.DiskUsage, &m.NetworkIn, &m.NetworkOut, &m.LoadAverage, &m.ResponseTimeMS, &m.ErrorRate, &m.RequestRate}
		for i, v := range vals {
			if v.Valid {
				f := v.Float64
				*ptrs[i] = &f
			}
		}
		if extra != "" && extra != "{}" {
			if err := json.Unmarshal([]byte(extra), &m.Extra); err != nil {
				return nil, fmt.Errorf("store: sample of %s extra: %w", m.Host, err)
			}
		}
		m.Timestamp = m.Timestamp.UTC()
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, markUnavailable(fmt.Errorf("store: metric history: %w", err))
	}
	rows.Close()
	if len(out) >= q.Limit || split.IsZero() || !from.Equal(split) {
		return out, nil
	}
	upper := split
	if !q.To.IsZero() && q.To.Before(upper) {
		upper = q.To
	}
	older, err := s.historyFromRollups(ctx, q.Host, q.From, upper, q.Limit-len(out))
	if err != nil {
		return nil, markUnavailable(err)
	}
	if len(older) == 0 {
		return out, nil
	}
	out = append(older, out...)
	sortHistory(out)
	return out, nil
}
