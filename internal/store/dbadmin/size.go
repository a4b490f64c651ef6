package dbadmin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/smartcloudops/smartcloudops/internal/dburl"
)

// DatabaseSize is how much room the database takes, so an operator can see
// retention keep it bounded.
type DatabaseSize struct {
	// TotalBytes is the database on disk: pg_database_size on PostgreSQL; the
	// file and its write-ahead log on SQLite.
	TotalBytes int64 `json:"total_bytes"`
	// SQLite only: the file's pages, and the free ones that deletes left
	// behind, which new rows reuse (the file shrinks only on VACUUM, see
	// POST /performance/database/optimize).
	PageSize      *int64 `json:"page_size,omitempty"`
	PageCount     *int64 `json:"page_count,omitempty"`
	FreelistPages *int64 `json:"freelist_pages,omitempty"`
	FreeBytes     *int64 `json:"free_bytes,omitempty"`
	FileBytes     *int64 `json:"file_bytes,omitempty"`
	WALBytes      *int64 `json:"wal_bytes,omitempty"`
}

// Size measures the database. Its statements run on the raw read handle,
// so they do not show in the statistics they accompany.
func (ad *Admin) Size(ctx context.Context) (DatabaseSize, error) {
	var ds DatabaseSize
	if ad.kind == dburl.Postgres {
		if err := ad.read.QueryRowContext(ctx, "SELECT pg_database_size(current_database())").Scan(&ds.TotalBytes); err != nil {
			return ds, fmt.Errorf("store: database size: %w", err)
		}
		return ds, nil
	}
	var size, count, free int64
	for _, p := range []struct {
		pragma string
		dst    *int64
	}{{"page_size", &size}, {"page_count", &count}, {"freelist_count", &free}} {
		if err := ad.read.QueryRowContext(ctx, "PRAGMA "+p.pragma).Scan(p.dst); err != nil {
			return ds, fmt.Errorf("store: database size: %s: %w", p.pragma, err)
		}
	}
	freeBytes := free * size
	ds.PageSize, ds.PageCount, ds.FreelistPages, ds.FreeBytes = &size, &count, &free, &freeBytes
	ds.TotalBytes = size * count
	if path := ad.st.File(); path != "" {
		file, err := fileSize(path)
		if err != nil {
			return ds, err
		}
		wal, err := fileSize(path + "-wal")
		if err != nil {
			return ds, err
		}
		ds.FileBytes, ds.WALBytes = &file, &wal
		ds.TotalBytes = max(file, ds.TotalBytes) + wal
	}
	return ds, nil
}

// fileSize is a file's size, 0 when it does not exist (no WAL yet).
func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: database size: %w", err)
	}
	return fi.Size(), nil
}
