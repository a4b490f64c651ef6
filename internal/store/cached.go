package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/store/querycache"
)

// QueryCached runs a read through the query cache. tables names every table
// the query reads: the key includes their current versions, so any write to
// one of them through the store makes the next call miss. Without a cache it
// runs the query. Statements use ? placeholders.
func (s *Store) QueryCached(ctx context.Context, tables []string, q string, args ...any) (*querycache.Result, error) {
	qi := s.memo.info(q)
	if qi.write {
		return nil, fmt.Errorf("store: query cache: %w: only reads can be cached", ErrInvalid)
	}
	if !s.qc.Enabled() {
		return queryResult(ctx, s, q, args)
	}
	if len(tables) == 0 {
		return nil, fmt.Errorf("store: query cache: %w: the tables the query reads are required", ErrInvalid)
	}
	res, err := s.qc.Query(ctx, querycache.Statement{ID: qi.fp.ID, Normalized: qi.fp.Normalized, Text: qi.text, Query: q}, tables, args)
	if err != nil && errors.Is(err, querycache.ErrInvalid) {
		return nil, &invalidError{err: err}
	}
	return res, err
}

// cacheSource is the store as the query cache's Source: misses run through
// the instrumented path, and hits and misses count in the statement
// statistics next to the executions they replace.
type cacheSource struct{ s *Store }

func (c cacheSource) Load(ctx context.Context, q string, args []any) (*querycache.Result, error) {
	return queryResult(ctx, c.s, q, args)
}

func (c cacheSource) CacheHit(st querycache.Statement) time.Duration {
	return c.s.diag.stats.cacheHit(st.ID, st.Normalized)
}

func (c cacheSource) CacheMiss(st querycache.Statement) {
	c.s.diag.stats.cacheMiss(st.ID, st.Normalized)
}

// queryResult runs a read and collects its whole result.
func queryResult(ctx context.Context, s *Store, q string, args []any) (*querycache.Result, error) {
	rows, err := s.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, fmt.Errorf("store: query columns: %w", err)
	}
	res := &querycache.Result{Columns: cols}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("store: query scan: %w", err)
		}
		res.Rows = append(res.Rows, vals)
	}
	if err := rows.Err(); err != nil {
		return nil, wrapQueryErr("query", err)
	}
	return res, nil
}
