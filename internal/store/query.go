package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/smartcloudops/smartcloudops/internal/dburl"
	"github.com/smartcloudops/smartcloudops/internal/store/fingerprint"
)

// queryInfo is everything the store derives from a statement's text once:
// the text to send (placeholders rebound), its fingerprint, whether it writes,
// and which tables it writes (their cached results must be invalidated).
type queryInfo struct {
	text   string
	fp     fingerprint.Fingerprint
	write  bool
	writes []string
}

// maxMemo bounds the statement memo. Statements that inline their values
// (which the store's own callers never do) would otherwise grow it forever;
// past the bound they are analysed on every call, which is only slower.
const maxMemo = 4096

// memo keeps what info derived from each statement text, so the lexing is
// paid once per statement rather than once per call.
type memo struct {
	kind dburl.Kind // for rebinding placeholders
	m    sync.Map   // string → *queryInfo
	n    atomic.Int64
}

func (m *memo) info(q string) *queryInfo {
	if v, ok := m.m.Load(q); ok {
		return v.(*queryInfo)
	}
	toks := fingerprint.Lex(q)
	fp := fingerprint.FromTokens(toks)
	qi := &queryInfo{text: rebind(m.kind, q), fp: fp}
	qi.write, qi.writes = classify(toks)
	if m.n.Load() < maxMemo {
		if _, loaded := m.m.LoadOrStore(q, qi); !loaded {
			m.n.Add(1)
		}
	}
	return qi
}

// classify says whether a statement changes anything and which tables it
// writes, from its normalised tokens.
func classify(toks []string) (bool, []string) {
	if len(toks) == 0 {
		return false, nil
	}
	write := false
	switch toks[0] {
	case "select", "values", "explain", "show", "table":
	case "with":
		for _, t := range toks {
			if t == "insert" || t == "update" || t == "delete" {
				write = true
			}
		}
	case "pragma":
		// PRAGMA x = y changes settings; PRAGMA x reads them.
		for _, t := range toks {
			if t == "=" {
				write = true
			}
		}
	default:
		write = true
	}
	if !write {
		return false, nil
	}
	var tables []string
	add := func(i int) {
		if i < len(toks) {
			if name := fingerprint.TableName(toks, i); name != "" {
				tables = append(tables, name)
			}
		}
	}
	for i, t := range toks {
		switch t {
		case "into":
			if i > 0 && toks[0] != "select" { // SELECT … INTO is PL/pgSQL, not a table write
				add(i + 1)
			}
		case "update":
			if i+1 < len(toks) && toks[i+1] != "set" && (i == 0 || toks[i-1] != "do" && toks[i-1] != "for") {
				j := i + 1
				for j < len(toks) && (toks[j] == "or" || toks[j] == "only" || toks[j] == "rollback" || toks[j] == "abort" || toks[j] == "replace" || toks[j] == "fail" || toks[j] == "ignore") {
					j++
				}
				add(j)
			}
		case "from":
			if i > 0 && toks[i-1] == "delete" {
				add(i + 1)
			}
		case "truncate", "table":
			if t == "table" && (i == 0 || toks[i-1] != "alter" && toks[i-1] != "drop" && toks[i-1] != "truncate") {
				continue
			}
			j := i + 1
			for j < len(toks) && (toks[j] == "table" || toks[j] == "if" || toks[j] == "exists" || toks[j] == "only") {
				j++
			}
			add(j)
		}
	}
	return true, tables
}

// handle is the pool a statement runs on: the single writer or the read pool.
func handle(s *Store, qi *queryInfo) *sql.DB {
	if qi.write {
		return s.write
	}
	return s.read
}

// Exec runs a statement that changes data on the writer, records it, and on
// success invalidates cached results of every table it wrote. Statements use
// ? placeholders on both databases.
func (s *Store) Exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	qi := s.memo.info(q)
	start := s.now()
	res, err := handle(s, qi).ExecContext(ctx, qi.text, args...)
	var n int64
	if err == nil {
		n, _ = res.RowsAffected()
	}
	s.diag.observe(ctx, qi, start, n, err, args)
	if err != nil {
		return nil, wrapQueryErr("exec", err)
	}
	s.qc.Invalidate(ctx, qi.writes...)
	return res, nil
}

// Query runs a statement that returns rows: reads on the read pool, writes
// (INSERT … RETURNING) on the writer. The execution is recorded when the rows
// are exhausted or closed, so the time includes fetching, as in pg_stat_statements.
func (s *Store) Query(ctx context.Context, q string, args ...any) (*Rows, error) {
	qi := s.memo.info(q)
	start := s.now()
	rows, err := handle(s, qi).QueryContext(ctx, qi.text, args...)
	if err != nil {
		s.diag.observe(ctx, qi, start, 0, err, args)
		return nil, wrapQueryErr("query", err)
	}
	return &Rows{Rows: rows, s: s, ctx: ctx, qi: qi, start: start, args: args}, nil
}

// QueryRow runs a query expected to return at most one row.
func (s *Store) QueryRow(ctx context.Context, q string, args ...any) *Row {
	rows, err := s.Query(ctx, q, args...)
	return &Row{rows: rows, err: err}
}

// Rows is *sql.Rows that records its statement's statistics when done.
type Rows struct {
	*sql.Rows
	s     *Store
	ctx   context.Context
	qi    *queryInfo
	start time.Time
	args  []any
	n     int64
	done  bool
}

// Next advances to the next row, counting it.
func (r *Rows) Next() bool {
	if r.Rows.Next() {
		r.n++
		return true
	}
	r.finish()
	return false
}

// Close releases the rows and records the execution.
func (r *Rows) Close() error {
	err := r.Rows.Close()
	r.finish()
	return err
}

func (r *Rows) finish() {
	if r.done {
		return
	}
	r.done = true
	r.s.diag.observe(r.ctx, r.qi, r.start, r.n, r.Rows.Err(), r.args)
	if r.qi.write && r.Rows.Err() == nil {
		r.s.qc.Invalidate(r.ctx, r.qi.writes...)
	}
}

// Row is the result of QueryRow.
type Row struct {
	rows *Rows
	err  error
}

// Scan copies the row's columns into dest; sql.ErrNoRows when there is none.
func (r *Row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return wrapQueryErr("query", err)
		}
		return sql.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return wrapQueryErr("scan", err)
	}
	return r.rows.Close()
}

// Tx is a transaction on the writer whose statements are recorded like the
// Store's; the tables it writes are invalidated when it commits.
type Tx struct {
	s       *Store
	tx      *sql.Tx
	written []string
}

// InTx runs fn in a transaction on the writer and commits when fn returns
// nil; any error rolls it back. Use it to make several writes atomic.
func (s *Store) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	sqlTx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return wrapQueryErr("begin", err)
	}
	tx := &Tx{s: s, tx: sqlTx}
	if err := fn(tx); err != nil {
		_ = sqlTx.Rollback()
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return wrapQueryErr("commit", err)
	}
	s.qc.Invalidate(ctx, tx.written...)
	return nil
}

// Exec runs a statement in the transaction.
func (t *Tx) Exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	qi := t.s.memo.info(q)
	start := t.s.now()
	res, err := t.tx.ExecContext(ctx, qi.text, args...)
	var n int64
	if err == nil {
		n, _ = res.RowsAffected()
	}
	t.s.diag.observe(ctx, qi, start, n, err, nil)
	if err != nil {
		return nil, wrapQueryErr("exec", err)
	}
	t.written = append(t.written, qi.writes...)
	return res, nil
}

// Query runs a query in the transaction.
func (t *Tx) Query(ctx context.Context, q string, args ...any) (*Rows, error) {
	qi := t.s.memo.info(q)
	start := t.s.now()
	rows, err := t.tx.QueryContext(ctx, qi.text, args...)
	if err != nil {
		t.s.diag.observe(ctx, qi, start, 0, err, nil)
		return nil, wrapQueryErr("query", err)
	}
	t.written = append(t.written, qi.writes...)
	// The versions are bumped at commit, not when these rows finish.
	return &Rows{Rows: rows, s: t.s, ctx: ctx, qi: &queryInfo{text: qi.text, fp: qi.fp, write: qi.write}, start: start}, nil
}

// QueryRow runs a query expected to return at most one row in the transaction.
func (t *Tx) QueryRow(ctx context.Context, q string, args ...any) *Row {
	rows, err := t.Query(ctx, q, args...)
	return &Row{rows: rows, err: err}
}

// Invalidate marks tables as changed, so no cached result that read them is
// served again. Call it after writing through Writer() directly; the Store's
// own Exec, Query, InTx and bulk methods do it themselves.
func (s *Store) Invalidate(tables ...string) { s.qc.Invalidate(context.Background(), tables...) }

// ErrInvalid marks a request the store refuses because of its input (an
// unknown table or column, a malformed index definition); the HTTP layer
// answers it with 400.
var ErrInvalid = errors.New("invalid request")

// ErrUnavailable is wrapped by the errors of the methods ingest, training
// and model management use (InsertMetrics, InsertAnomalies, MetricHistory,
// SaveModel, Models, Model, ActiveModel, ActivateModel) and of every
// statement run through the Store, when the database could not be reached or
// is shutting down or restarting: connection refused or reset, a broken
// connection, PostgreSQL's admin shutdown (57P01), cannot connect now
// (57P03), too many connections. Callers test it with errors.Is and answer
// 503 with Retry-After: the same request may succeed once the database is
// back, which a 500 would not say.
var ErrUnavailable = errors.New("store: database unavailable")

// invalidError adds ErrInvalid to the chain of an error another package
// raised for the same reason (the query cache's), keeping its message.
type invalidError struct{ err error }

func (e *invalidError) Error() string   { return e.err.Error() }
func (e *invalidError) Unwrap() []error { return []error{e.err, ErrInvalid} }

// unavailableError marks a driver error as ErrUnavailable while keeping its
// message and its chain (errors.As still finds the *pgconn.PgError).
type unavailableError struct{ err error }

func (e *unavailableError) Error() string   { return e.err.Error() }
func (e *unavailableError) Unwrap() []error { return []error{e.err, ErrUnavailable} }

// markUnavailable returns err wrapping ErrUnavailable when Unavailable says
// so, and err unchanged otherwise.
func markUnavailable(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) || !Unavailable(err) {
		return err
	}
	return &unavailableError{err: err}
}

// Contended reports whether err is PostgreSQL aborting a transaction for
// a concurrent one (deadlock_detected, serialization_failure,
// lock_not_available): nothing of it was written, and the same request run
// again may pass, so callers answer 503 with a short Retry-After.
func Contended(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001" || pe.Code == "55P03")
}

// Unavailable reports whether err means the database could not be reached or
// is shutting down, rather than that a statement was wrong: callers answer it
// with 503 and retry later. It is true for every error wrapping
// ErrUnavailable, and also classifies driver errors that do not yet.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrUnavailable) {
		return true
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Class 08 connection exceptions, 57P01-03 shutdown / cannot connect now,
		// 53300 too many connections.
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P") || pe.Code == "53300"
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "sql: database is closed") || strings.Contains(msg, "closed pool") ||
		strings.Contains(msg, "conn closed") || strings.Contains(msg, "unexpected EOF") || strings.Contains(msg, "connection reset")
}

func wrapQueryErr(op string, err error) error {
	return markUnavailable(&queryError{op: op, err: err})
}

// queryError prefixes the operation without repeating statement text, which
// may be long and is already in the statistics and the slow log.
type queryError struct {
	op  string
	err error
}

func (e *queryError) Error() string { return "store: " + e.op + ": " + e.err.Error() }
func (e *queryError) Unwrap() error { return e.err }
