package dbadmin

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/dburl"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/querycache"
)

// TableStat is one table's size and upkeep.
type TableStat struct {
	Name string `json:"name"`
	Rows int64  `json:"rows"`
	// RowsExact is false when counting took too long and Rows is the planner's estimate.
	RowsExact  bool   `json:"rows_exact"`
	TableBytes *int64 `json:"table_bytes,omitempty"`
	IndexBytes *int64 `json:"index_bytes,omitempty"`
	// TotalBytes is the table with its indexes (and TOAST on PostgreSQL:
	// pg_total_relation_size).
	TotalBytes *int64 `json:"total_bytes,omitempty"`
	// PostgreSQL only.
	DeadTuples     *int64     `json:"dead_tuples,omitempty"`
	LastVacuum     *time.Time `json:"last_vacuum,omitempty"`
	LastAutovacuum *time.Time `json:"last_autovacuum,omitempty"`
	LastAnalyze    *time.Time `json:"last_analyze,omitempty"`
}

// countTimeout bounds one table's exact count; past it the estimate is shown.
const countTimeout = 2 * time.Second

// TableStats reports every application table. Its own statements run on the
// raw handles, so looking at the statistics does not change them.
func (ad *Admin) TableStats(ctx context.Context) ([]TableStat, error) {
	if ad.kind == dburl.Postgres {
		return ad.pgTableStats(ctx)
	}
	return ad.sqliteTableStats(ctx)
}

func (ad *Admin) sqliteTableStats(ctx context.Context) ([]TableStat, error) {
	names, err := ad.tables(ctx)
	if err != nil {
		return nil, err
	}
	// dbstat is compiled into the driver's SQLite; if it ever is not, sizes
	// are left out rather than guessed.
	sizes := map[string]int64{}
	if rows, err := ad.read.QueryContext(ctx, "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"); err == nil {
		for rows.Next() {
			var (
				n  string
				sz int64
			)
			if rows.Scan(&n, &sz) == nil {
				sizes[n] = sz
			}
		}
		rows.Close()
	}
	out := make([]TableStat, 0, len(names))
	for _, n := range names {
		ts := TableStat{Name: n, RowsExact: true}
		cctx, cancel := context.WithTimeout(ctx, countTimeout)
		err := ad.read.QueryRowContext(cctx, "SELECT count(*) FROM "+store.QuoteIdent(n)).Scan(&ts.Rows)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("store: count %s: %w", n, err)
		}
		if len(sizes) > 0 {
			tb := sizes[n]
			ts.TableBytes = &tb
			idx, err := ad.tableIndexes(ctx, n)
			if err != nil {
				return nil, err
			}
			var ib int64
			for _, ix := range idx {
				ib += sizes[ix.Name]
			}
			ts.IndexBytes = &ib
			total := tb + ib
			ts.TotalBytes = &total
		}
		out = append(out, ts)
	}
	return out, nil
}

func (ad *Admin) pgTableStats(ctx context.Context) ([]TableStat, error) {
	rows, err := ad.read.QueryContext(ctx, `SELECT s.relname, GREATEST(c.reltuples, 0)::bigint, s.n_dead_tup,
		pg_table_size(c.oid), pg_indexes_size(c.oid), pg_total_relation_size(c.oid), s.last_vacuum, s.last_autovacuum, GREATEST(s.last_analyze, s.last_autoanalyze)
		FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
		WHERE s.schemaname = current_schema() ORDER BY s.relname`)
	if err != nil {
		return nil, fmt.Errorf("store: table stats: %w", err)
	}
	defer rows.Close()
	var out []TableStat
	for rows.Next() {
		var (
			ts                  TableStat
			dead, tb, ib, total int64
			lv, lav, lastAnalyz sql.NullTime
		)
		if err := rows.Scan(&ts.Name, &ts.Rows, &dead, &tb, &ib, &total, &lv, &lav, &lastAnalyz); err != nil {
			return nil, fmt.Errorf("store: table stats: %w", err)
		}
		ts.DeadTuples, ts.TableBytes, ts.IndexBytes, ts.TotalBytes = &dead, &tb, &ib, &total
		ts.LastVacuum, ts.LastAutovacuum, ts.LastAnalyze = nullTimePtr(lv), nullTimePtr(lav), nullTimePtr(lastAnalyz)
		out = append(out, ts)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: table stats: %w", err)
	}
	rows.Close()
	for i := range out {
		cctx, cancel := context.WithTimeout(ctx, countTimeout)
		var n int64
		err := ad.read.QueryRowContext(cctx, "SELECT count(*) FROM "+store.QuoteIdent(out[i].Name)).Scan(&n)
		cancel()
		switch {
		case err == nil:
			out[i].Rows, out[i].RowsExact = n, true
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			// Keep the estimate; RowsExact stays false.
		default:
			return nil, fmt.Errorf("store: count %s: %w", out[i].Name, err)
		}
	}
	return out, nil
}

func nullTimePtr(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}

// tables lists the application's tables (not the database's own).
func (ad *Admin) tables(ctx context.Context) ([]string, error) {
	q := "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
	if ad.kind == dburl.Postgres {
		q = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name"
	}
	rows, err := ad.read.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("store: list tables: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("store: list tables: %w", err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list tables: %w", err)
	}
	return out, nil
}

// IndexInfo is an existing index.
type IndexInfo struct {
	Name    string   `json:"name"`
	Table   string   `json:"table"`
	Columns []string `json:"columns"`
	Unique  bool     `json:"unique"`
	// Partial indexes cover only rows matching their WHERE, so the advisor
	// does not count them as covering a query.
	Partial bool `json:"partial"`
	// Valid is false for a PostgreSQL index a failed CONCURRENTLY build left behind.
	Valid bool `json:"valid"`
}

func (ad *Admin) tableIndexes(ctx context.Context, table string) ([]IndexInfo, error) {
	if ad.kind == dburl.Postgres {
		return ad.pgIndexes(ctx, table)
	}
	rows, err := ad.read.QueryContext(ctx, `SELECT il.name, il."unique", il.partial, ii.name
		FROM pragma_index_list(?) il JOIN pragma_index_info(il.name) ii ORDER BY il.name, ii.seqno`, table)
	if err != nil {
		return nil, fmt.Errorf("store: indexes of %s: %w", table, err)
	}
	defer rows.Close()
	var out []IndexInfo
	for rows.Next() {
		var (
			name    string
			uniq    bool
			partial bool
			col     sql.NullString
		)
		if err := rows.Scan(&name, &uniq, &partial, &col); err != nil {
			return nil, fmt.Errorf("store: indexes of %s: %w", table, err)
		}
		if len(out) == 0 || out[len(out)-1].Name != name {
			out = append(out, IndexInfo{Name: name, Table: table, Unique: uniq, Partial: partial, Valid: true})
		}
		// An expression column has no name; it ends what a prefix can match.
		c := "(expression)"
		if col.Valid {
			c = strings.ToLower(col.String)
		}
		out[len(out)-1].Columns = append(out[len(out)-1].Columns, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: indexes of %s: %w", table, err)
	}
	return out, nil
}

func (ad *Admin) pgIndexes(ctx context.Context, table string) ([]IndexInfo, error) {
	rows, err := ad.read.QueryContext(ctx, `SELECT i.relname, x.indisunique, x.indpred IS NOT NULL, x.indisvalid,
		array_to_string(ARRAY(SELECT COALESCE(a.attname, '(expression)') FROM unnest(x.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
		      LEFT JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum AND k.attnum > 0 ORDER BY k.ord), E'\x1f')
		FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
		JOIN pg_namespace n ON n.oid = t.relnamespace
		WHERE n.nspname = current_schema() AND t.relname = $1 ORDER BY i.relname`, table)
	if err != nil {
		return nil, fmt.Errorf("store: indexes of %s: %w", table, err)
	}
	defer rows.Close()
	var out []IndexInfo
	for rows.Next() {
		ix := IndexInfo{Table: table}
		var cols string
		if err := rows.Scan(&ix.Name, &ix.Unique, &ix.Partial, &ix.Valid, &cols); err != nil {
			return nil, fmt.Errorf("store: indexes of %s: %w", table, err)
		}
		ix.Columns = strings.Split(strings.ToLower(cols), "\x1f")
		out = append(out, ix)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: indexes of %s: %w", table, err)
	}
	return out, nil
}

// DatabaseStats is the body of GET /performance/database/stats.
type DatabaseStats struct {
	Driver      string            `json:"driver"`
	CollectedAt time.Time         `json:"collected_at"`
	Pools       []store.PoolStat  `json:"pools"`
	Sort        string            `json:"sort"`
	Queries     []store.QueryStat `json:"queries"`
	// Tracked fingerprints now, and how many were evicted to keep the bound.
	Tracked          int               `json:"tracked_statements"`
	Evicted          int64             `json:"evicted_statements"`
	Capacity         int               `json:"capacity"`
	SlowThresholdMS  float64           `json:"slow_query_threshold_ms"`
	SlowQueries      []store.SlowQuery `json:"slow_queries"`
	Cache            querycache.Stats  `json:"query_cache"`
	Tables           []TableStat       `json:"tables"`
	StatisticsSource string            `json:"statistics_source"`
	// Size is the database's room on disk.
	Size DatabaseSize `json:"size"`
}

// StatsOptions choose the statement list of Stats.
type StatsOptions struct {
	// Sort is one of store.SortKeys; default total_time.
	Sort string
	// Limit is the number of statements; default 20.
	Limit int
}

// Stats gathers everything GET /performance/database/stats shows. The
// statement statistics come from the store's own instrumentation, so they
// work the same on both databases and need no server extension.
func (ad *Admin) Stats(ctx context.Context, o StatsOptions) (DatabaseStats, error) {
	if o.Sort == "" {
		o.Sort = store.SortTotalTime
	}
	if !slices.Contains(store.SortKeys, o.Sort) {
		return DatabaseStats{}, fmt.Errorf("store: stats: %w: unknown sort %q", store.ErrInvalid, o.Sort)
	}
	if o.Limit <= 0 {
		o.Limit = 20
	}
	ds := DatabaseStats{Driver: string(ad.kind), CollectedAt: ad.now().UTC(), Pools: ad.diag.PoolStats(), Sort: o.Sort,
		Capacity: ad.diag.Capacity(), SlowQueries: ad.diag.SlowQueries(), Cache: ad.diag.CacheStats(), StatisticsSource: "store instrumentation"}
	if t := ad.diag.SlowQueryThreshold(); t > 0 {
		ds.SlowThresholdMS = ms(t)
	}
	ds.Queries, ds.Tracked, ds.Evicted = ad.diag.Statements(o.Sort, o.Limit)
	tables, err := ad.TableStats(ctx)
	if err != nil {
		return ds, err
	}
	ds.Tables = tables
	if ds.Size, err = ad.Size(ctx); err != nil {
		return ds, err
	}
	return ds, nil
}
