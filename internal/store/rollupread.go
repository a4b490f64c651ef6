package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/domain"
)

// Reads across the raw window. Raw rows before raw_from may be gone
// (retention, retention.go), so MetricSeries and MetricHistory read that
// part of a window from metric_rollups: one sample per (host, minute),
// stamped at the minute's start, whose metrics are the minute's means. The
// part from raw_from on is read from the raw rows as before, so a window
// inside the raw window reads exactly what it always did.

// rollupMeans is the pivot of a host's rollups into the series columns:
// one row per minute, each well-known metric's mean or NULL.
func rollupMeans() string {
	var b strings.Builder
	b.WriteString("SELECT bucket AS ts")
	for _, c := range rollupMetrics {
		b.WriteString(", max(CASE WHEN metric = '" + c + "' THEN value_sum / sample_count END) AS " + c)
	}
	b.WriteString(" FROM metric_rollups")
	return b.String()
}

// seriesAcross is MetricSeries for a window that reaches before split
// (raw_from): the raw rows from split on and the rollup means before it, in
// one statement, so the limit keeps the most recent samples of both.
func (s *Store) seriesAcross(ctx context.Context, q SeriesQuery, split time.Time, limit int) (Series, error) {
	rawConds, args := []string{"host = ?", "ts >= ?"}, []any{q.Host, split.UTC()}
	rawConds, args = timeWindow("ts", time.Time{}, q.To, rawConds, args)
	rollConds := []string{"host = ?", "bucket < ?"}
	args = append(args, q.Host, split.UTC())
	rollConds, args = timeWindow("bucket", q.From, q.To, rollConds, args)
	union := "SELECT " + seriesColumns + " FROM system_metrics WHERE " + strings.Join(rawConds, " AND ") +
		" UNION ALL " + rollupMeans() + " WHERE " + strings.Join(rollConds, " AND ") + " GROUP BY bucket"
	inner := "SELECT " + seriesColumns + " FROM (" + union + ") u ORDER BY ts DESC LIMIT ?"
	args = append(args, limit+1)
	return s.readSeries(ctx, q.Host, inner, args, split, limit)
}

// metricFields are m's well-known metrics in the order of rollupMetrics.
func metricFields(m *domain.MetricSample) [9]**float64 {
	return [9]**float64{&m.CPUUsage, &m.MemoryUsage, &m.DiskUsage, &m.NetworkIn, &m.NetworkOut, &m.LoadAverage, &m.ResponseTimeMS, &m.ErrorRate, &m.RequestRate}
}

// historyFromRollups reads up to limit samples of 1-minute means before
// upper (and from from, when set), the most recent first as they are read;
// the caller orders them.
func (s *Store) historyFromRollups(ctx context.Context, host string, from, upper time.Time, limit int) ([]domain.MetricSample, error) {
	conds, args := []string{"bucket < ?"}, []any{upper.UTC()}
	if !from.IsZero() {
		conds, args = append(conds, "bucket >= ?"), append(args, from.UTC())
	}
	if host != "" {
		conds, args = append(conds, "host = ?"), append(args, host)
	}
	// By bucket only: the bucket index serves it without a sort, and every
	// row of one minute comes together, which is all the grouping needs.
	rows, err := s.Query(ctx, "SELECT host, bucket, metric, value_sum / sample_count FROM metric_rollups WHERE "+
		strings.Join(conds, " AND ")+" ORDER BY bucket DESC", args...)
	if err != nil {
		return nil, fmt.Errorf("store: metric history from rollups: %w", err)
	}
	defer rows.Close()
	index := make(map[string]int, len(rollupMetrics))
	for i, c := range rollupMetrics {
		index[c] = i
	}
	var (
		out     []domain.MetricSample
		current = map[string]*domain.MetricSample{}
		bucket  time.Time
	)
	// flush moves the finished minute's samples to out, in host order, up to limit.
	flush := func() {
		minute := make([]domain.MetricSample, 0, len(current))
		for _, m := range current {
			minute = append(minute, *m)
		}
		slices.SortFunc(minute, func(a, b domain.MetricSample) int { return strings.Compare(a.Host, b.Host) })
		out = append(out, minute[:min(len(minute), limit-len(out))]...)
		clear(current)
	}
	for rows.Next() {
		var (
			h, metric string
			b         flexTime
			mean      float64
		)
		if err := rows.Scan(&h, &b, &metric, &mean); err != nil {
			return nil, fmt.Errorf("store: metric history from rollups: %w", err)
		}
		if !b.t.Equal(bucket) {
			flush()
			if len(out) >= limit {
				break
			}
			bucket = b.t
		}
		m := current[h]
		if m == nil {
			m = &domain.MetricSample{Host: h, Timestamp: b.t}
			current[h] = m
		}
		if i, ok := index[metric]; ok {
			v := mean
			*metricFields(m)[i] = &v
			continue
		}
		if m.Extra == nil {
			m.Extra = map[string]float64{}
		}
		m.Extra[metric] = mean
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: metric history from rollups: %w", err)
	}
	if len(out) < limit {
		flush()
	}
	return out, nil
}

// sortHistory orders samples by host, then time, as MetricHistory returns them.
func sortHistory(samples []domain.MetricSample) {
	slices.SortStableFunc(samples, func(a, b domain.MetricSample) int {
		return cmp.Or(strings.Compare(a.Host, b.Host), a.Timestamp.Compare(b.Timestamp))
	})
}
