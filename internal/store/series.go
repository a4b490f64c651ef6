package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/smartcloudops/smartcloudops/internal/domain"
)

// Limits of the read queries behind the dashboard and the /api/v1 read
// endpoints: a limit of 0 means the default, and a larger one than the
// maximum is cut to it, so no request can load an unbounded table.
const (
	DefaultHostsLimit     = 100
	MaxHostsLimit         = 1000
	DefaultSeriesLimit    = 500
	MaxSeriesLimit        = 10000
	DefaultAnomaliesLimit = 100
	MaxAnomaliesLimit     = 1000
)

// boundLimit applies a default and a maximum to a requested row count.
func boundLimit(n, def, most int) int {
	switch {
	case n <= 0:
		return def
	case n > most:
		return most
	}
	return n
}

// HostFilter selects hosts by name. The zero value selects every host.
type HostFilter struct {
	// Host, when set, selects exactly that host.
	Host string
	// Prefix, when set, selects only hosts whose name starts with it and is
	// longer than it: a tenant "acme" sees the hosts "acme/…". The comparison
	// is exact (case-sensitive) on both databases.
	Prefix string
}

// where appends the filter's conditions on column col.
func (f HostFilter) where(col string, conds []string, args []any) ([]string, []any) {
	if f.Host != "" {
		conds = append(conds, col+" = ?")
		args = append(args, f.Host)
	}
	if f.Prefix != "" {
		// substr and length count characters on both databases; LIKE would be
		// case-insensitive on SQLite and treat _ and % as wildcards.
		n := utf8.RuneCountInString(f.Prefix)
		conds = append(conds, "substr("+col+", 1, ?) = ?", "length("+col+") > ?")
		args = append(args, n, f.Prefix, n)
	}
	return conds, args
}

// HostsQuery selects the hosts that have stored samples.
type HostsQuery struct {
	Filter HostFilter
	// Limit is the most hosts returned (default DefaultHostsLimit, at most MaxHostsLimit).
	Limit int
}

// HostInfo is one host with stored samples.
type HostInfo struct {
	Host string
	// LastSample is the time of the host's most recent stored sample.
	LastSample time.Time
}

// HostList is the answer to Hosts.
type HostList struct {
	Hosts []HostInfo
	// Truncated says more hosts matched than the limit allowed.
	Truncated bool
}

// hostsQuery walks the distinct hosts of the (host, ts) index one probe at a
// time (a "skip scan"), so listing a few hundred hosts costs a few hundred
// index lookups whatever the number of samples, where GROUP BY host would
// read every row. The prefix filter is applied to the walk's output rather
// than used as a range start: under PostgreSQL's locale collations the names
// sharing a prefix need not sort together.
const hostsQuery = `WITH RECURSIVE walk(host) AS (
  SELECT min(host) FROM system_metrics
  UNION ALL
  SELECT (SELECT min(m.host) FROM system_metrics m WHERE m.host > walk.host) FROM walk WHERE walk.host IS NOT NULL
)
SELECT host, (SELECT max(l.ts) FROM system_metrics l WHERE l.host = walk.host) FROM walk`

// Hosts lists the hosts that have stored samples, in name order, each with
// the time of its latest sample.
func (s *Store) Hosts(ctx context.Context, q HostsQuery) (HostList, error) {
	limit := boundLimit(q.Limit, DefaultHostsLimit, MaxHostsLimit)
	conds, args := q.Filter.where("host", []string{"host IS NOT NULL"}, nil)
	stmt := hostsQuery + " WHERE " + strings.Join(conds, " AND ") + " ORDER BY host LIMIT ?"
	args = append(args, limit+1)
	rows, err := s.Query(ctx, stmt, args...)
	if err != nil {
		return HostList{}, fmt.Errorf("store: list hosts: %w", err)
	}
	defer rows.Close()
	out := HostList{Hosts: []HostInfo{}}
	for rows.Next() {
		var (
			h    HostInfo
			last flexTime
		)
		if err := rows.Scan(&h.Host, &last); err != nil {
			return HostList{}, fmt.Errorf("store: scan host: %w", err)
		}
		h.LastSample = last.t
		out.Hosts = append(out.Hosts, h)
	}
	if err := rows.Err(); err != nil {
		return HostList{}, fmt.Errorf("store: list hosts: %w", err)
	}
	if len(out.Hosts) > limit {
		out.Hosts, out.Truncated = out.Hosts[:limit], true
	}
	return out, nil
}

// SeriesQuery selects one host's samples in a time window.
type SeriesQuery struct {
	Host string
	// From and To bound the window [From, To); zero for no bound.
	From, To time.Time
	// Limit keeps the most recent Limit samples of the window (default
	// DefaultSeriesLimit, at most MaxSeriesLimit).
	Limit int
}

// Series is the answer to MetricSeries.
type Series struct {
	// Samples are oldest first, with the typed metric columns only (Extra is nil).
	Samples []domain.MetricSample
	// Truncated says the window held more samples than the limit: the
	// oldest ones were left out.
	Truncated bool
	// RolledUpBefore, when set, is where the raw samples start: the samples
	// before it are 1-minute means from the rollups, stamped at the minute's
	// start, because retention has deleted the raw rows there.
	RolledUpBefore time.Time
}

// seriesColumns are the columns a series reads: the typed metrics, not extra.
const seriesColumns = "ts, cpu_usage, memory_usage, disk_usage, network_in, network_out, load_average, response_time_ms, error_rate, request_rate"

// MetricSeries returns the most recent samples of one host in a window,
// oldest first, read through the (host, ts) index. The part of the window
// before the raw rows start (RawFrom) is read from the 1-minute rollups.
func (s *Store) MetricSeries(ctx context.Context, q SeriesQuery) (Series, error) {
	if q.Host == "" {
		return Series{}, fmt.Errorf("store: metric series: %w: a host is required", ErrInvalid)
	}
	limit := boundLimit(q.Limit, DefaultSeriesLimit, MaxSeriesLimit)
	split, err := s.RawFrom(ctx)
	if err != nil {
		return Series{}, fmt.Errorf("store: metric series of %s: %w", q.Host, err)
	}
	if !split.IsZero() && (q.From.IsZero() || q.From.Before(split)) {
		return s.seriesAcross(ctx, q, split, limit)
	}
	conds, args := []string{"host = ?"}, []any{q.Host}
	conds, args = timeWindow("ts", q.From, q.To, conds, args)
	inner := "SELECT " + seriesColumns + " FROM system_metrics WHERE " + strings.Join(conds, " AND ") + " ORDER BY ts DESC LIMIT ?"
	args = append(args, limit+1)
	return s.readSeries(ctx, q.Host, inner, args, time.Time{}, limit)
}

// readSeries runs inner — a statement giving seriesColumns of host's newest
// limit+1 samples, newest first — and returns them oldest first; samples
// before split came from the rollups (Series.RolledUpBefore). The extra row
// fetched to detect truncation is the oldest one.
func (s *Store) readSeries(ctx context.Context, host, inner string, args []any, split time.Time, limit int) (Series, error) {
	rows, err := s.Query(ctx, "SELECT "+seriesColumns+" FROM ("+inner+") recent ORDER BY ts", args...)
	if err != nil {
		return Series{}, fmt.Errorf("store: metric series of %s: %w", host, err)
	}
	defer rows.Close()
	out := Series{Samples: []domain.MetricSample{}}
	for rows.Next() {
		var (
			ts   flexTime
			vals [9]sql.NullFloat64
		)
		if err := rows.Scan(&ts, &vals[0], &vals[1], &vals[2], &vals[3], &vals[4], &vals[5], &vals[6], &vals[7], &vals[8]); err != nil {
			return Series{}, fmt.Errorf("store: scan sample of %s: %w", host, err)
		}
		m := domain.MetricSample{Host: host, Timestamp: ts.t}
		for i, p := range metricFields(&m) {
			if vals[i].Valid {
				f := vals[i].Float64
				*p = &f
			}
		}
		if ts.t.Before(split) {
			out.RolledUpBefore = split
		}
		out.Samples = append(out.Samples, m)
	}
	if err := rows.Err(); err != nil {
		return Series{}, fmt.Errorf("store: metric series of %s: %w", host, err)
	}
	if len(out.Samples) > limit {
		out.Samples, out.Truncated = out.Samples[1:], true
	}
	return out, nil
}

// AnomalyRangeQuery selects stored anomalies by host and time.
type AnomalyRangeQuery struct {
	Filter HostFilter
	// From and To bound detected_at to [From, To); zero for no bound.
	From, To time.Time
	// Limit keeps the most recent Limit anomalies (default
	// DefaultAnomaliesLimit, at most MaxAnomaliesLimit).
	Limit int
}

// AnomalyList is the answer to AnomalyRange.
type AnomalyList struct {
	// Anomalies are newest first.
	Anomalies []domain.Anomaly
	// Truncated says more anomalies matched than the limit allowed: the
	// oldest ones were left out.
	Truncated bool
}

// AnomalyRange returns stored anomalies matching q, newest first.
func (s *Store) AnomalyRange(ctx context.Context, q AnomalyRangeQuery) (AnomalyList, error) {
	limit := boundLimit(q.Limit, DefaultAnomaliesLimit, MaxAnomaliesLimit)
	conds, args := q.Filter.where("host", nil, nil)
	conds, args = timeWindow("detected_at", q.From, q.To, conds, args)
	stmt := "SELECT id, host, COALESCE(metric, ''), detected_at, score, confidence, severity, status, model_version, features, explanation FROM anomalies"
	if len(conds) > 0 {
		stmt += " WHERE " + strings.Join(conds, " AND ")
	}
	stmt += " ORDER BY detected_at DESC, id DESC LIMIT ?"
	args = append(args, limit+1)
	// Dashboards poll this read every few seconds while anomalies are rare, so
	// it goes through the query cache: every anomaly written bumps the
	// table's version, so a cached answer is never stale.
	res, err := s.QueryCached(ctx, []string{"anomalies"}, stmt, args...)
	if err != nil {
		return AnomalyList{}, fmt.Errorf("store: anomaly range: %w", err)
	}
	out := AnomalyList{Anomalies: make([]domain.Anomaly, 0, len(res.Rows))}
	for _, row := range res.Rows {
		var (
			a     domain.Anomaly
			at    flexTime
			sev   string
			feats string
		)
		if err := scanValues(row, &a.ID, &a.Host, &a.Metric, &at, &a.Score, &a.Confidence, &sev, &a.Status, &a.ModelVersion, &feats, &a.Explanation); err != nil {
			return AnomalyList{}, fmt.Errorf("store: scan anomaly: %w", err)
		}
		a.DetectedAt, a.Severity = at.t, domain.Severity(sev)
		if feats != "" && feats != "{}" {
			if err := json.Unmarshal([]byte(feats), &a.Features); err != nil {
				return AnomalyList{}, fmt.Errorf("store: anomaly %d features: %w", a.ID, err)
			}
		}
		out.Anomalies = append(out.Anomalies, a)
	}
	if len(out.Anomalies) > limit {
		out.Anomalies, out.Truncated = out.Anomalies[:limit], true
	}
	return out, nil
}

// timeWindow appends the conditions of [from, to) on col; zero bounds are open.
func timeWindow(col string, from, to time.Time, conds []string, args []any) ([]string, []any) {
	if !from.IsZero() {
		conds = append(conds, col+" >= ?")
		args = append(args, from.UTC())
	}
	if !to.IsZero() {
		conds = append(conds, col+" < ?")
		args = append(args, to.UTC())
	}
	return conds, args
}

// flexTime scans a timestamp whichever way the driver returns it: a
// time.Time for a typed column, or text where SQLite lost the column's type
// (an aggregate such as max(ts), or a subquery's column). The text forms
// SQLite holds — the driver's own "2006-01-02 15:04:05.999999999-07:00" and
// RFC 3339, with or without a zone — are all forms of domain.ParseTimestamp,
// the rule every input follows.
type flexTime struct{ t time.Time }

// Scan implements sql.Scanner.
func (f *flexTime) Scan(v any) error {
	var s string
	switch x := v.(type) {
	case time.Time:
		f.t = x.UTC()
		return nil
	case nil:
		f.t = time.Time{}
		return nil
	case string:
		s = x
	case []byte:
		s = string(x)
	default:
		return fmt.Errorf("store: cannot read %T as a time", v)
	}
	t, err := domain.ParseTimestamp(s)
	if err != nil {
		return fmt.Errorf("store: read a time: %w", err)
	}
	f.t = t
	return nil
}

// scanValues copies one cached result row (the driver values database/sql
// hands over) into dest, for the few destination types the store's cached
// reads use.
func scanValues(row []any, dest ...any) error {
	if len(row) != len(dest) {
		return fmt.Errorf("store: %d columns into %d destinations", len(row), len(dest))
	}
	for i, v := range row {
		var ok bool
		switch d := dest[i].(type) {
		case sql.Scanner:
			if err := d.Scan(v); err != nil {
				return fmt.Errorf("column %d: %w", i, err)
			}
			ok = true
		case *string:
			switch x := v.(type) {
			case string:
				*d, ok = x, true
			case []byte:
				*d, ok = string(x), true
			case nil:
				*d, ok = "", true
			}
		case *int64:
			if x, is := v.(int64); is {
				*d, ok = x, true
			}
		case *float64:
			switch x := v.(type) {
			case float64:
				*d, ok = x, true
			case int64:
				*d, ok = float64(x), true
			}
		}
		if !ok {
			return fmt.Errorf("store: column %d: cannot read %T into %T", i, v, dest[i])
		}
	}
	return nil
}
