package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrModelNotFound is wrapped by the model lookups when no row matches.
var ErrModelNotFound = errors.New("store: model not found")

// Anomaly is one detected anomaly as stored in the anomalies table.
type Anomaly struct {
	ID         int64
	Host       string
	Metric     string // the metric that contributed most; "" for a host-wide finding
	DetectedAt time.Time
	Score      float64
	Confidence float64
	// Severity is one of low, medium, high, critical (the table checks it).
	Severity     string
	Status       string // open, acknowledged, resolved; "" stores "open"
	ModelVersion string
	Features     map[string]float64
	Explanation  string
}

// InsertAnomalies stores anomalies in one transaction and returns how many
// rows were new. An anomaly whose (host, metric, detected_at, model_version)
// is already stored is skipped: ingest re-sent by an agent after a timeout
// must not open the same incident twice. The check uses the
// anomalies_host_detected index, so it stays cheap on a large table.
func (s *Store) InsertAnomalies(ctx context.Context, rows []Anomaly) (int64, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	for _, a := range rows {
		if err := validAnomaly(a); err != nil {
			return 0, fmt.Errorf("store: insert anomalies: %w", err)
		}
	}
	// A lookup and an INSERT per row, through the instrumented transaction
	// (statistics, slow log, query-cache invalidation): INSERT … SELECT …
	// WHERE NOT EXISTS would need casts that differ between the two
	// databases, and anomalies are rare next to samples (a handful per ingest
	// batch at most). On PostgreSQL two concurrent re-sends can still both
	// insert; the cost is a duplicate row, not a lost one.
	var inserted int64
	err := s.InTx(ctx, func(tx *Tx) error {
		for _, a := range rows {
			feats := "{}"
			if len(a.Features) > 0 {
				raw, err := json.Marshal(a.Features)
				if err != nil {
					return fmt.Errorf("features of %s: %w", a.Host, err)
				}
				feats = string(raw)
			}
			status := a.Status
			if status == "" {
				status = "open"
			}
			var metric any
			if a.Metric != "" {
				metric = a.Metric
			}
			ts := a.DetectedAt.UTC()
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM anomalies WHERE host = ? AND detected_at = ? AND COALESCE(metric, '') = ? AND model_version = ?`,
				a.Host, ts, a.Metric, a.ModelVersion).Scan(&n); err != nil {
				return fmt.Errorf("look up %s: %w", a.Host, err)
			}
			if n > 0 {
				continue
			}
			if _, err := tx.Exec(ctx, `INSERT INTO anomalies (host, metric, detected_at, score, confidence, severity, status, model_version, features, explanation)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, a.Host, metric, ts, a.Score, a.Confidence, a.Severity, status, a.ModelVersion, feats, a.Explanation); err != nil {
				return fmt.Errorf("insert for %s: %w", a.Host, err)
			}
			inserted++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: insert anomalies: %w", err)
	}
	return inserted, nil
}

func validAnomaly(a Anomaly) error {
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

// Model is one trained model version as stored in the models table.
type Model struct {
	Version string
	// Kind groups versions of which at most one is active (for example "iforest").
	Kind string
	// Parameters and Validation are JSON objects: how the model was trained
	// and how it did on held-out data.
	Parameters   json.RawMessage
	Validation   json.RawMessage
	TrainedAt    time.Time
	TrainingFrom time.Time // zero when unknown
	TrainingTo   time.Time // zero when unknown
	TrainingRows int64
	// Artifact is the serialized model. Models leaves it nil; Model and
	// ActiveModel fill it.
	Artifact []byte
	Active   bool
}

// SaveModel stores a new model version, inactive unless m.Active; an active
// new model replaces the kind's active one in the same transaction.
func (s *Store) SaveModel(ctx context.Context, m Model) error {
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
		return fmt.Errorf("store: save model %s: %w", m.Version, err)
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
func (s *Store) Models(ctx context.Context, kind string) ([]Model, error) {
	q := "SELECT " + modelColumns + " FROM models"
	var args []any
	if kind != "" {
		q += " WHERE kind = ?"
		args = append(args, kind)
	}
	q += " ORDER BY trained_at DESC, id DESC"
	rows, err := s.Reader().QueryContext(ctx, s.Rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("store: list models: %w", err)
	}
	defer rows.Close()
	var out []Model
	for rows.Next() {
		m, err := scanModel(rows, false)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list models: %w", err)
	}
	return out, nil
}

// Model returns one version with its artifact, or an error wrapping ErrModelNotFound.
func (s *Store) Model(ctx context.Context, version string) (Model, error) {
	row := s.Reader().QueryRowContext(ctx, s.Rebind("SELECT "+modelColumns+", artifact FROM models WHERE version = ?"), version)
	m, err := scanModel(row, true)
	if errors.Is(err, sql.ErrNoRows) {
		return Model{}, fmt.Errorf("store: model %q: %w", version, ErrModelNotFound)
	}
	return m, err
}

// ActiveModel returns the active version of kind with its artifact, or an
// error wrapping ErrModelNotFound when none is active.
func (s *Store) ActiveModel(ctx context.Context, kind string) (Model, error) {
	row := s.Reader().QueryRowContext(ctx, s.Rebind("SELECT "+modelColumns+", artifact FROM models WHERE kind = ? AND active = ?"), kind, true)
	m, err := scanModel(row, true)
	if errors.Is(err, sql.ErrNoRows) {
		return Model{}, fmt.Errorf("store: active %s model: %w", kind, ErrModelNotFound)
	}
	return m, err
}

// ActivateModel makes version the active model of its kind and deactivates
// the previous one in one transaction, so readers see exactly one active
// model before and after. Activating an older version is a rollback.
func (s *Store) ActivateModel(ctx context.Context, version string) error {
	err := s.InTx(ctx, func(tx *Tx) error {
		var kind string
		if err := tx.QueryRow(ctx, "SELECT kind FROM models WHERE version = ?", version).Scan(&kind); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrModelNotFound
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
		return fmt.Errorf("store: activate model %q: %w", version, err)
	}
	return nil
}

type rowScanner interface {
	Scan(dest ...any) error
}

func scanModel(r rowScanner, withArtifact bool) (Model, error) {
	var (
		m             Model
		params, valid string
		from, to      sql.NullTime
	)
	dest := []any{&m.Version, &m.Kind, &params, &valid, &m.TrainedAt, &from, &to, &m.TrainingRows, &m.Active}
	if withArtifact {
		dest = append(dest, &m.Artifact)
	}
	if err := r.Scan(dest...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Model{}, err
		}
		return Model{}, fmt.Errorf("store: scan model: %w", err)
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

// HistoryQuery selects stored samples for training.
type HistoryQuery struct {
	Host     string    // "" for every host
	From, To time.Time // [From, To); zero for no bound
	// Limit keeps the most recent Limit samples (default 10000), so a long
	// window cannot load an unbounded table into memory.
	Limit int
}

// MetricHistory returns stored samples in (host, time) order: the most recent
// q.Limit samples of the window, each host's samples oldest first, so a
// caller can replay every host's series causally.
func (s *Store) MetricHistory(ctx context.Context, q HistoryQuery) ([]MetricSample, error) {
	if q.Limit <= 0 {
		q.Limit = 10000
	}
	where, args := HostFilter{Host: q.Host}.where("host", nil, nil)
	where, args = timeWindow("ts", q.From, q.To, where, args)
	inner := "SELECT " + metricColumns + " FROM system_metrics"
	if len(where) > 0 {
		inner += " WHERE " + strings.Join(where, " AND ")
	}
	inner += " ORDER BY ts DESC LIMIT ?"
	args = append(args, q.Limit)
	stmt := "SELECT " + metricColumns + " FROM (" + inner + ") recent ORDER BY host, ts"
	rows, err := s.Query(ctx, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("store: metric history: %w", err)
	}
	defer rows.Close()
	var out []MetricSample
	for rows.Next() {
		var (
			m     MetricSample
			extra string
			vals  [9]sql.NullFloat64
		)
		if err := rows.Scan(&m.Host, &m.Timestamp, &vals[0], &vals[1], &vals[2], &vals[3], &vals[4], &vals[5], &vals[6], &vals[7], &vals[8], &extra); err != nil {
			return nil, fmt.Errorf("store: scan metric sample: %w", err)
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
		return nil, fmt.Errorf("store: metric history: %w", err)
	}
	return out, nil
}
