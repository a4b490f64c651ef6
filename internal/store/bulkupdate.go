package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/smartcloudops/smartcloudops/internal/dburl"
)

// QuoteIdent quotes an identifier for both dialects.
func QuoteIdent(n string) string { return `"` + strings.ReplaceAll(n, `"`, `""`) + `"` }

// CheckColumns fails with ErrInvalid unless every column exists in table.
// It runs on the raw read pool, so it does not count in the statistics.
func (d *Diagnostics) CheckColumns(ctx context.Context, table string, cols []string) error {
	have, err := tableColumns(ctx, d.read, d.kind, table)
	if err != nil {
		return err
	}
	for _, c := range cols {
		if !slices.Contains(have, strings.ToLower(c)) {
			return fmt.Errorf("store: column %q of %s: %w: no such column", c, table, ErrInvalid)
		}
	}
	return nil
}

// BulkUpdate sets columns of many rows of table, each row identified by key:
// rows[i] is the key value followed by one value per column. On PostgreSQL
// the rows are COPYed into a temporary table and applied with one
// UPDATE … FROM; on SQLite one prepared UPDATE runs per row in a single
// transaction (cheap there: no round trips). It returns the rows updated.
func (s *Store) BulkUpdate(ctx context.Context, table, key string, columns []string, rows [][]any) (int64, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	if len(columns) == 0 {
		return 0, fmt.Errorf("store: bulk update %s: %w: no columns to set", table, ErrInvalid)
	}
	if err := s.diag.CheckColumns(ctx, table, append([]string{key}, columns...)); err != nil {
		return 0, err
	}
	for i, r := range rows {
		if len(r) != len(columns)+1 {
			return 0, fmt.Errorf("store: bulk update %s: %w: row %d has %d values, want %d", table, ErrInvalid, i, len(r), len(columns)+1)
		}
	}
	sets := make([]string, len(columns))
	for i, c := range columns {
		sets[i] = QuoteIdent(c) + " = ?"
	}
	qi := s.memo.info("UPDATE " + QuoteIdent(table) + " SET " + strings.Join(sets, ", ") + " WHERE " + QuoteIdent(key) + " = ?")
	start := s.now()
	var (
		n   int64
		err error
	)
	if s.pg != nil {
		n, err = pgBulkUpdate(ctx, s.pg, table, key, columns, rows)
	} else {
		n, err = sqliteBulkUpdate(ctx, s.write, qi.text, rows)
	}
	s.diag.observe(ctx, qi, start, n, err, nil)
	if err != nil {
		return 0, err
	}
	s.metrics.bulkUpdate.Add(float64(len(rows)))
	s.qc.Invalidate(ctx, table)
	return n, nil
}

func sqliteBulkUpdate(ctx context.Context, write *sql.DB, text string, rows [][]any) (int64, error) {
	tx, err := write.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("store: bulk update: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	st, err := tx.PrepareContext(ctx, text)
	if err != nil {
		return 0, fmt.Errorf("store: bulk update: prepare: %w", err)
	}
	defer st.Close()
	args := make([]any, 0, len(rows[0]))
	var total int64
	for _, r := range rows {
		args = append(append(args[:0], r[1:]...), r[0])
		res, err := st.ExecContext(ctx, args...)
		if err != nil {
			return 0, fmt.Errorf("store: bulk update: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("store: bulk update: commit: %w", err)
	}
	return total, nil
}

func pgBulkUpdate(ctx context.Context, pg *pgxpool.Pool, table, key string, columns []string, rows [][]any) (int64, error) {
	tx, err := pg.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("store: bulk update: begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	all := append([]string{key}, columns...)
	quoted := make([]string, len(all))
	for i, c := range all {
		quoted[i] = QuoteIdent(c)
	}
	// Copying the column types from the target lets COPY encode each value
	// as the column it will be assigned to.
	if _, err := tx.Exec(ctx, "CREATE TEMP TABLE sco_bulk_update ON COMMIT DROP AS SELECT "+strings.Join(quoted, ", ")+
		" FROM "+QuoteIdent(table)+" WITH NO DATA"); err != nil {
		return 0, fmt.Errorf("store: bulk update: temp table: %w", err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"sco_bulk_update"}, all, pgx.CopyFromRows(rows)); err != nil {
		return 0, fmt.Errorf("store: bulk update: copy: %w", err)
	}
	sets := make([]string, len(columns))
	for i, c := range columns {
		sets[i] = QuoteIdent(c) + " = u." + QuoteIdent(c)
	}
	tag, err := tx.Exec(ctx, "UPDATE "+QuoteIdent(table)+" t SET "+strings.Join(sets, ", ")+
		" FROM sco_bulk_update u WHERE t."+QuoteIdent(key)+" = u."+QuoteIdent(key))
	if err != nil {
		return 0, fmt.Errorf("store: bulk update: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("store: bulk update: commit: %w", err)
	}
	return tag.RowsAffected(), nil
}

// tableColumns lists a table's columns; ErrInvalid when it does not exist.
func tableColumns(ctx context.Context, read *sql.DB, kind dburl.Kind, table string) ([]string, error) {
	q := "SELECT name FROM pragma_table_info(?)"
	if kind == dburl.Postgres {
		q = "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position"
	}
	rows, err := read.QueryContext(ctx, q, table)
	if err != nil {
		return nil, fmt.Errorf("store: columns of %s: %w", table, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("store: columns of %s: %w", table, err)
		}
		out = append(out, strings.ToLower(n))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: columns of %s: %w", table, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("store: table %q: %w: no such table", table, ErrInvalid)
	}
	return out, nil
}
