package ingest

import (
	"context"
	"errors"
	"fmt"

	"github.com/smartcloudops/smartcloudops/internal/anomaly"
)

// Sink is the anomaly service's ingest path (*anomaly.Service): queue
// admission, storage, scoring and alerting stay one path whatever the wire
// format.
type Sink interface {
	Ingest(ctx context.Context, samples []anomaly.Sample) (anomaly.IngestReport, error)
	// MaxBatch is the most samples one Ingest call takes.
	MaxBatch() int
}

// Report sums what Deliver sent.
type Report struct {
	// Rows is the number of host rows built from the points.
	Rows int `json:"rows"`
	// Invalid rows failed anomaly.Normalize (a host name too long, too many
	// metrics) and were not sent; InvalidErr is the first such failure.
	Invalid    int   `json:"invalid"`
	InvalidErr error `json:"-"`
	// Stored, Duplicates and Anomalies add up the service's reports.
	Stored     int64 `json:"stored"`
	Duplicates int64 `json:"duplicates"`
	Anomalies  int64 `json:"anomalies"`
}

// Deliver groups points into host rows (Rows), validates each, and hands
// the valid ones to sink in batches of at most sink.MaxBatch(), in time
// order. It returns when every batch is stored or at the first failure; the
// batches before a failure stay stored, which is safe because a sender
// retries the whole request and the store keeps one copy of a row.
func Deliver(ctx context.Context, sink Sink, points []Point) (Report, error) {
	var rep Report
	if len(points) == 0 {
		return rep, nil
	}
	rows := Rows(points)
	rep.Rows = len(rows)
	valid := rows[:0]
	for _, r := range rows {
		n, err := anomaly.Normalize(r)
		if err != nil {
			rep.Invalid++
			if rep.InvalidErr == nil {
				rep.InvalidErr = fmt.Errorf("ingest: host %q at %s: %w", r.Host, r.Timestamp.Format("2006-01-02T15:04:05.999Z07:00"), err)
			}
			continue
		}
		valid = append(valid, n)
	}
	size := sink.MaxBatch()
	if size <= 0 {
		size = len(valid)
	}
	for start := 0; start < len(valid); start += size {
		end := min(start+size, len(valid))
		r, err := sink.Ingest(ctx, valid[start:end])
		rep.Stored += r.Stored
		rep.Duplicates += r.Duplicates
		rep.Anomalies += r.Anomalies
		if err != nil {
			return rep, fmt.Errorf("ingest: deliver rows %d–%d of %d: %w", start, end, len(valid), err)
		}
	}
	return rep, nil
}

// ErrTooLarge is wrapped by a receiver's refusal of a request over its
// size or series limits.
var ErrTooLarge = errors.New("ingest: request too large")
