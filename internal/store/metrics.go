package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
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

// metricBatchRows keeps one INSERT's bind parameters (12 per row) under
// SQLite's default limit of 32766 and PostgreSQL's 65535.
const metricBatchRows = 1000

// InsertMetrics stores samples in one transaction with multi-row INSERTs and
// returns how many rows were new. A sample whose (host, timestamp) is already
// stored is skipped, not an error: agents re-send after timeouts, and the first
// copy of a sample wins.
func (s *Store) InsertMetrics(ctx context.Context, samples []MetricSample) (int64, error) {
	if len(samples) == 0 {
		return 0, nil
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("store: insert metrics: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	var inserted int64
	for start := 0; start < len(samples); start += metricBatchRows {
		batch := samples[start:min(start+metricBatchRows, len(samples))]
		var b strings.Builder
		b.WriteString("INSERT INTO system_metrics (" + metricColumns + ") VALUES ")
		args := make([]any, 0, len(batch)*12)
		for i, m := range batch {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?,?,?,?,?,?,?,?,?,?,?,?)")
			extra := "{}"
			if len(m.Extra) > 0 {
				raw, err := json.Marshal(m.Extra)
				if err != nil {
					return 0, fmt.Errorf("store: insert metrics: extra of %s: %w", m.Host, err)
				}
				extra = string(raw)
			}
			args = append(args, m.Host, m.Timestamp.UTC(), m.CPUUsage, m.MemoryUsage, m.DiskUsage, m.NetworkIn, m.NetworkOut,
				m.LoadAverage, m.ResponseTimeMS, m.ErrorRate, m.RequestRate, extra)
		}
		b.WriteString(" ON CONFLICT (host, ts) DO NOTHING")
		res, err := tx.ExecContext(ctx, s.Rebind(b.String()), args...)
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
