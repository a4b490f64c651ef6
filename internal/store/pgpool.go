package store

import "github.com/jackc/pgx/v5/pgxpool"

// PgPool is the PostgreSQL connection pool under the store (nil on SQLite),
// for work database/sql cannot do, such as LISTEN on a dedicated connection
// (package sharedstate). Statements that database/sql can run go through
// Exec, Query and InTx, which record them.
func (s *Store) PgPool() *pgxpool.Pool { return s.pg }
