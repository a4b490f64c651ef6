package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/smartcloudops/smartcloudops/internal/dburl"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrations embed.FS

// MigrationResult is one applied migration.
type MigrationResult struct {
	Version  int64  `json:"version"`
	Source   string `json:"source"`
	Duration string `json:"duration"`
}

// provider makes goose's migration runner for the database's dialect.
func provider(kind dburl.Kind, write *sql.DB, logger *slog.Logger) (*goose.Provider, error) {
	// The two dialects keep separate files with the same version numbers:
	// their DDL differs (identity columns, JSONB, booleans) but the schema they
	// describe is the same, and the store's queries rely on that.
	var (
		dialect goose.Dialect
		dir     string
		opts    = []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	)
	switch kind {
	case dburl.SQLite:
		dialect, dir = goose.DialectSQLite3, "migrations/sqlite"
	case dburl.Postgres:
		dialect, dir = goose.DialectPostgres, "migrations/postgres"
		// Replicas starting together must not run the same migration twice.
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, fmt.Errorf("store: migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	if logger != nil {
		opts = append(opts, goose.WithSlog(logger))
	}
	sub, err := fs.Sub(migrations, dir)
	if err != nil {
		return nil, fmt.Errorf("store: migrations %s: %w", dir, err)
	}
	p, err := goose.NewProvider(dialect, write, sub, opts...)
	if err != nil {
		return nil, fmt.Errorf("store: migrations: %w", err)
	}
	return p, nil
}

// Migrate applies every pending migration and returns those it applied.
func (s *Store) Migrate(ctx context.Context, logger *slog.Logger) ([]MigrationResult, error) {
	p, err := provider(s.kind, s.write, logger)
	if err != nil {
		return nil, err
	}
	res, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: migrate %s: %w", s.kind, err)
	}
	out := make([]MigrationResult, 0, len(res))
	for _, r := range res {
		out = append(out, MigrationResult{Version: r.Source.Version, Source: r.Source.Path, Duration: r.Duration.String()})
	}
	return out, nil
}

// SchemaVersion is the newest applied migration (0 before any).
func (s *Store) SchemaVersion(ctx context.Context) (int64, error) {
	p, err := provider(s.kind, s.write, nil)
	if err != nil {
		return 0, err
	}
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("store: schema version: %w", err)
	}
	return v, nil
}
