package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/smartcloudops/smartcloudops/internal/dburl"
	"github.com/smartcloudops/smartcloudops/internal/store/querycache"
)

// Diagnostics is what the store knows about the statements it ran and the
// database it runs them on: per-fingerprint statistics, the slow-query log,
// pool figures, plans and columns. Every statement the Store runs is
// recorded here (observe); the statistics endpoint, the index advisor and
// the runtime settings read it. It is safe for concurrent use.
type Diagnostics struct {
	kind        dburl.Kind
	read, write *sql.DB
	pg          *pgxpool.Pool // nil on SQLite
	now         func() time.Time
	stats       *statsBook
	slow        *slowLog
	metrics     *storeMetrics
	tracing     *storeTracer // nil when tracing is off
	qc          *querycache.Cache
}

// Diagnostics returns the store's statement statistics and introspection.
func (s *Store) Diagnostics() *Diagnostics { return s.diag }

// observe records one execution: statistics, metrics, the slow log and,
// when tracing, the statement's span.
func (d *Diagnostics) observe(ctx context.Context, qi *queryInfo, start time.Time, rows int64, err error, args []any) {
	end := d.now()
	dur := end.Sub(start)
	failed := err != nil && !errors.Is(err, sql.ErrNoRows)
	d.stats.record(qi, dur, end, rows, failed, args)
	d.metrics.observe(qi.write, dur, failed)
	if t := d.slow.limit(); t > 0 && dur >= t {
		d.slow.report(ctx, d, qi, dur, rows, err, args)
	}
	if d.tracing != nil {
		d.tracing.statement(ctx, qi, start, end, rows, failed, err)
	}
}

// Statements returns copies of up to limit fingerprints' statistics in the
// order by (one of SortKeys; limit <= 0 means all), the number of
// fingerprints tracked and the number evicted to keep the bound.
func (d *Diagnostics) Statements(by string, limit int) (stats []QueryStat, tracked int, evicted int64) {
	return d.stats.top(by, limit)
}

// Capacity is the most fingerprints the statistics keep (StatsCapacity).
func (d *Diagnostics) Capacity() int { return d.stats.capacity }

// Candidates returns reads seen at least minCalls times or slower than slow
// on average, most total time first, at most limit of them, each with its
// last execution to explain.
func (d *Diagnostics) Candidates(minCalls int64, slow time.Duration, limit int) []Candidate {
	return d.stats.candidates(minCalls, slow, limit)
}

// ResetStatements forgets the statement statistics, to start a measurement afresh.
func (d *Diagnostics) ResetStatements() { d.stats.reset() }

// SlowQueries returns the kept slow statements, newest first.
func (d *Diagnostics) SlowQueries() []SlowQuery { return d.slow.list() }

// CacheStats totals the query cache's hits, misses and saved time over
// the tracked fingerprints.
func (d *Diagnostics) CacheStats() querycache.Stats {
	cs := querycache.Stats{Enabled: d.qc.Enabled()}
	if cs.Enabled {
		cs.TTL = d.qc.TTL().String()
	}
	d.stats.mu.Lock()
	for _, e := range d.stats.entries {
		cs.Hits += e.CacheHits
		cs.Misses += e.CacheMisses
		cs.SavedMS += e.CacheSavedMS
	}
	d.stats.mu.Unlock()
	if n := cs.Hits + cs.Misses; n > 0 {
		cs.HitRate = float64(cs.Hits) / float64(n)
	}
	return cs
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
