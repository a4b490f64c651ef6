package store

import "github.com/jackc/pgx/v5/pgxpool"

// Pool is the PostgreSQL connection pool, nil on SQLite. The leader election
// (internal/leader) takes its lock connection from it, so it reaches the
// same database with the same settings as every statement.
func (s *Store) Pool() *pgxpool.Pool { return s.pg }
