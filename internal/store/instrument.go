package store

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartcloudops/smartcloudops/internal/dburl"
)

// storeMetrics are the store's Prometheus series. Per-statement detail is
// deliberately absent: fingerprints are unbounded, so they live in the JSON
// statistics, and the labels here take a handful of fixed values.
type storeMetrics struct {
	// readDur and writeDur are kept as histograms, not mere observers, so
	// the store can report its own statement latency (StatementLatency).
	readDur, writeDur   prometheus.Histogram
	readErrs, writeErrs prometheus.Counter
	slow                prometheus.Counter
	bulkInsert          prometheus.Counter
	bulkUpdate          prometheus.Counter
}

// newStoreMetrics makes the statement, bulk and pool metrics; the query
// cache (querycache) and the index advisor (dbadmin) register their own.
func newStoreMetrics(reg prometheus.Registerer, d *Diagnostics) (*storeMetrics, error) {
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "smartcloudops_db_query_duration_seconds",
		Help:    "Time of statements run through the store, from send to the last row.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"statement"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "smartcloudops_db_query_errors_total",
		Help: "Statements run through the store that failed.",
	}, []string{"statement"})
	bulk := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "smartcloudops_db_bulk_rows_total",
		Help: "Rows sent through the bulk insert and update paths.",
	}, []string{"operation"})
	m := &storeMetrics{
		// A HistogramVec's children are Histograms typed as Observers.
		readDur: dur.WithLabelValues("read").(prometheus.Histogram), writeDur: dur.WithLabelValues("write").(prometheus.Histogram),
		readErrs: errs.WithLabelValues("read"), writeErrs: errs.WithLabelValues("write"),
		slow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smartcloudops_db_slow_queries_total",
			Help: "Statements slower than SLOW_QUERY_THRESHOLD.",
		}),
		bulkInsert: bulk.WithLabelValues("insert"), bulkUpdate: bulk.WithLabelValues("update"),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{dur, errs, bulk, m.slow, &poolCollector{d: d}} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("store: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *storeMetrics) observe(write bool, d time.Duration, failed bool) {
	if write {
		m.writeDur.Observe(d.Seconds())
		if failed {
			m.writeErrs.Inc()
		}
		return
	}
	m.readDur.Observe(d.Seconds())
	if failed {
		m.readErrs.Inc()
	}
}

var (
	poolConnsDesc = prometheus.NewDesc("smartcloudops_db_pool_connections",
		"Open database connections by pool and state (idle, in_use).", []string{"pool", "state"}, nil)
	poolMaxDesc = prometheus.NewDesc("smartcloudops_db_pool_max_connections",
		"Connection limit of each pool.", []string{"pool"}, nil)
	poolAcquireDesc = prometheus.NewDesc("smartcloudops_db_pool_acquires_total",
		"Connections taken from each pool (statements run on SQLite's pools, pgx pool acquires on PostgreSQL).", []string{"pool"}, nil)
	poolWaitsDesc = prometheus.NewDesc("smartcloudops_db_pool_waits_total",
		"Acquires that had to wait for a connection.", []string{"pool"}, nil)
	poolWaitDesc = prometheus.NewDesc("smartcloudops_db_pool_acquire_wait_seconds_total",
		"Time spent waiting for a connection.", []string{"pool"}, nil)
	trackedDesc = prometheus.NewDesc("smartcloudops_db_statements_tracked",
		"Fingerprints currently kept in the query statistics.", nil, nil)
	evictedDesc = prometheus.NewDesc("smartcloudops_db_statements_evicted_total",
		"Fingerprints evicted from the bounded query statistics.", nil, nil)
)

// poolCollector reads the pools' own counters at scrape time, so the hot
// path does not pay for them.
type poolCollector struct{ d *Diagnostics }

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolConnsDesc, poolMaxDesc, poolAcquireDesc, poolWaitsDesc, poolWaitDesc, trackedDesc, evictedDesc} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.d.PoolStats() {
		ch <- prometheus.MustNewConstMetric(poolConnsDesc, prometheus.GaugeValue, float64(p.Idle), p.Name, "idle")
		ch <- prometheus.MustNewConstMetric(poolConnsDesc, prometheus.GaugeValue, float64(p.InUse), p.Name, "in_use")
		ch <- prometheus.MustNewConstMetric(poolMaxDesc, prometheus.GaugeValue, float64(p.Max), p.Name)
		ch <- prometheus.MustNewConstMetric(poolAcquireDesc, prometheus.CounterValue, float64(p.Acquires), p.Name)
		ch <- prometheus.MustNewConstMetric(poolWaitsDesc, prometheus.CounterValue, float64(p.Waits), p.Name)
		ch <- prometheus.MustNewConstMetric(poolWaitDesc, prometheus.CounterValue, p.WaitMS/1000, p.Name)
	}
	_, tracked, evicted := c.d.stats.top(SortTotalTime, 0)
	ch <- prometheus.MustNewConstMetric(trackedDesc, prometheus.GaugeValue, float64(tracked))
	ch <- prometheus.MustNewConstMetric(evictedDesc, prometheus.CounterValue, float64(evicted))
}

// PoolStat is one connection pool's figures.
type PoolStat struct {
	// Name is "writer" and "reader" on SQLite, "pgx" on PostgreSQL.
	Name  string `json:"name"`
	Max   int    `json:"max_connections"`
	Open  int    `json:"open"`
	InUse int    `json:"in_use"`
	Idle  int    `json:"idle"`
	// Acquires counts connections taken: pgx's acquire count on PostgreSQL;
	// on SQLite database/sql does not count them, so it is the statements run.
	Acquires int64   `json:"acquires"`
	Waits    int64   `json:"waits"`
	WaitMS   float64 `json:"wait_ms"`
	// Canceled counts acquires abandoned because their context ended (pgx only).
	Canceled int64 `json:"canceled_acquires,omitempty"`
}

// PoolStats reports every pool the store holds.
func (d *Diagnostics) PoolStats() []PoolStat {
	if d.pg != nil {
		ps := d.pg.Stat()
		return []PoolStat{{
			Name: "pgx", Max: int(ps.MaxConns()), Open: int(ps.TotalConns()), InUse: int(ps.AcquiredConns()), Idle: int(ps.IdleConns()),
			Acquires: ps.AcquireCount(), Waits: ps.EmptyAcquireCount(), WaitMS: ms(ps.EmptyAcquireWaitTime()), Canceled: ps.CanceledAcquireCount(),
		}}
	}
	one := func(name string, db *sql.DB) PoolStat {
		st := db.Stats()
		return PoolStat{Name: name, Max: st.MaxOpenConnections, Open: st.OpenConnections, InUse: st.InUse, Idle: st.Idle,
			Waits: st.WaitCount, WaitMS: ms(st.WaitDuration)}
	}
	w, r := one("writer", d.write), one("reader", d.read)
	rs, wsum := d.stats.acquires()
	w.Acquires, r.Acquires = wsum, rs
	return []PoolStat{w, r}
}

// acquires sums statements run, by pool, for SQLite's pool figures.
func (b *statsBook) acquires() (read, write int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.entries {
		if e.read {
			read += e.Calls
		} else {
			write += e.Calls
		}
	}
	return read, write
}

// SlowQuery is one statement slower than the threshold.
type SlowQuery struct {
	QueryID    string    `json:"query_id"`
	Query      string    `json:"query"`
	DurationMS float64   `json:"duration_ms"`
	Rows       int64     `json:"rows"`
	Error      string    `json:"error,omitempty"`
	At         time.Time `json:"at"`
	// Plan is the planner's view of the statement, when it was cheap to get
	// (reads only, EXPLAIN without ANALYZE, within a short timeout).
	Plan string `json:"plan,omitempty"`
	// Params are the bound values, only with LogParams.
	Params []string `json:"params,omitempty"`
}

// slowLog sends slow statements to the log pipeline and keeps the most recent
// ones for the statistics endpoint. Getting a plan needs another round trip,
// so it happens off the caller's path, at most planWorkers at a time; when
// they are busy the entry is logged without a plan rather than queued.
type slowLog struct {
	// threshold may change while statements run (SetSlowQueryThreshold);
	// 0 means off.
	threshold atomic.Int64
	params    bool
	log       *slog.Logger
	sem       chan struct{}
	wg        sync.WaitGroup

	mu     sync.Mutex
	recent []SlowQuery
	next   int
	keep   int
}

const planWorkers = 2

func newSlowLog(threshold time.Duration, params bool, log *slog.Logger, keep int) *slowLog {
	l := &slowLog{params: params, log: log, sem: make(chan struct{}, planWorkers), keep: keep}
	l.threshold.Store(int64(threshold))
	return l
}

// limit is the threshold in force; 0 means the slow log is off.
func (l *slowLog) limit() time.Duration { return time.Duration(l.threshold.Load()) }

// SlowQueryThreshold is the duration from which statements are logged as
// slow; zero or negative means the slow log is off.
func (d *Diagnostics) SlowQueryThreshold() time.Duration { return d.slow.limit() }

// SetSlowQueryThreshold changes the slow-query threshold while the store
// serves; t <= 0 turns the slow log off.
func (d *Diagnostics) SetSlowQueryThreshold(t time.Duration) { d.slow.threshold.Store(int64(t)) }

func (l *slowLog) report(ctx context.Context, dg *Diagnostics, qi *queryInfo, d time.Duration, rows int64, err error, args []any) {
	dg.metrics.slow.Inc()
	sq := SlowQuery{QueryID: qi.fp.ID, Query: qi.fp.Normalized, DurationMS: ms(d), Rows: rows, At: dg.now().UTC()}
	if err != nil {
		sq.Error = Describe(err)
	}
	if l.params {
		for _, a := range args {
			v := fmt.Sprint(a)
			if len(v) > 64 {
				v = v[:64] + "…"
			}
			sq.Params = append(sq.Params, v)
		}
	}
	if qi.write || err != nil {
		l.emit(ctx, sq)
		return
	}
	select {
	case l.sem <- struct{}{}:
	default:
		l.emit(ctx, sq)
		return
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer func() { <-l.sem }()
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 500*time.Millisecond)
		defer cancel()
		if plan, err := dg.Explain(pctx, qi.text, args); err == nil {
			sq.Plan = plan
		}
		l.emit(pctx, sq)
	}()
}

func (l *slowLog) emit(ctx context.Context, sq SlowQuery) {
	attrs := []slog.Attr{
		slog.String("query_id", sq.QueryID), slog.String("query", sq.Query),
		slog.Float64("duration_seconds", sq.DurationMS/1000), slog.Int64("rows", sq.Rows),
	}
	if sq.Error != "" {
		attrs = append(attrs, slog.String("error", sq.Error))
	}
	if sq.Plan != "" {
		attrs = append(attrs, slog.String("plan", sq.Plan))
	}
	if sq.Params != nil {
		attrs = append(attrs, slog.Any("params", sq.Params))
	}
	l.log.LogAttrs(ctx, slog.LevelWarn, "slow query", attrs...)
	l.mu.Lock()
	if len(l.recent) < l.keep {
		l.recent = append(l.recent, sq)
	} else {
		l.recent[l.next] = sq
	}
	l.next = (l.next + 1) % l.keep
	l.mu.Unlock()
}

// list returns the kept slow queries, newest first.
func (l *slowLog) list() []SlowQuery {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]SlowQuery, 0, len(l.recent))
	for i := range len(l.recent) {
		idx := (l.next - 1 - i + 2*l.keep) % l.keep
		if idx < len(l.recent) {
			out = append(out, l.recent[idx])
		}
	}
	return out
}

// Explain asks the planner for a statement's plan without running it, on
// the raw handles so the lookup does not count in the statistics. text is
// the statement as sent (a Candidate's Text); on PostgreSQL the plan is the
// generic one, as JSON, so the bound values never reach it; on SQLite it is
// EXPLAIN QUERY PLAN's lines, indented by depth.
func (d *Diagnostics) Explain(ctx context.Context, text string, args []any) (string, error) {
	if d.kind == dburl.Postgres {
		return pgGenericPlan(ctx, d.read, text, len(args))
	}
	lines, err := sqlitePlan(ctx, d.read, text, args)
	if err != nil {
		return "", err
	}
	return strings.Join(lines, "\n"), nil
}

// sqlitePlan returns EXPLAIN QUERY PLAN's detail lines, indented by depth.
func sqlitePlan(ctx context.Context, read *sql.DB, text string, args []any) ([]string, error) {
	// EXPLAIN does not verify the schema cookie, so a pooled connection would
	// explain with the schema it cached (missing a new index); a real read of
	// sqlite_schema on the same connection makes it reload first.
	conn, err := read.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: explain: %w", err)
	}
	defer conn.Close()
	var n int
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
		return nil, fmt.Errorf("store: explain: %w", err)
	}
	rows, err := conn.QueryContext(ctx, "EXPLAIN QUERY PLAN "+text, args...)
	if err != nil {
		return nil, fmt.Errorf("store: explain: %w", err)
	}
	defer rows.Close()
	depth := map[int64]int{}
	var out []string
	for rows.Next() {
		var (
			id, parent, unused int64
			detail             string
		)
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			return nil, fmt.Errorf("store: explain: %w", err)
		}
		d := depth[parent] + 1
		if parent == 0 {
			d = 0
		}
		depth[id] = d
		out = append(out, strings.Repeat("  ", d)+detail)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: explain: %w", err)
	}
	return out, nil
}

// pgGenericPlan explains a statement's generic plan: the one with $n in its
// conditions instead of the bound values, which may be personal data and must
// not reach the log or the API. PostgreSQL 15 has no EXPLAIN (GENERIC_PLAN),
// so the statement is prepared on one connection with plan_cache_mode forced
// to generic and explained as EXECUTE with NULLs.
func pgGenericPlan(ctx context.Context, read *sql.DB, text string, nargs int) (string, error) {
	conn, err := read.Conn(ctx)
	if err != nil {
		return "", fmt.Errorf("store: explain: %w", err)
	}
	defer conn.Close()
	cleanup := context.WithoutCancel(ctx)
	if _, err := conn.ExecContext(ctx, "SET plan_cache_mode = force_generic_plan"); err != nil {
		return "", fmt.Errorf("store: explain: %w", err)
	}
	defer conn.ExecContext(cleanup, "RESET plan_cache_mode") //nolint:errcheck // the connection is reset or discarded either way
	if _, err := conn.ExecContext(ctx, "PREPARE sco_explain AS "+text); err != nil {
		return "", fmt.Errorf("store: explain: prepare: %w", err)
	}
	defer conn.ExecContext(cleanup, "DEALLOCATE sco_explain") //nolint:errcheck // as above
	q := "EXPLAIN (FORMAT JSON) EXECUTE sco_explain"
	if nargs > 0 {
		q += "(" + strings.TrimSuffix(strings.Repeat("NULL,", nargs), ",") + ")"
	}
	var plan string
	if err := conn.QueryRowContext(ctx, q).Scan(&plan); err != nil {
		return "", fmt.Errorf("store: explain: %w", err)
	}
	return plan, nil
}
