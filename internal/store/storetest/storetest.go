// Package storetest gives tests real databases to run against: a fresh SQLite
// file, and a fresh schema on the PostgreSQL server named by TEST_DATABASE_URL.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultPostgresURL is where tests look for PostgreSQL when TEST_DATABASE_URL is unset.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// SQLiteURL returns a DATABASE_URL for a new SQLite file in t's temporary directory.
func SQLiteURL(t testing.TB) string {
	t.Helper()
	// sqlite:/// + an absolute path gives the four-slash form; with three
	// slashes the path would be relative, and the file would land in the
	// package's source directory.
	return "sqlite:///" + filepath.Join(t.TempDir(), "test.db")
}

// PostgresURL creates a schema of its own on the test server, returns a
// DATABASE_URL whose search_path points at it, and drops it when t ends, so
// packages testing in parallel never see each other's tables. It fails the
// test when the server cannot be reached: these are integration tests, and a
// silent skip would hide that they did not run.
func PostgresURL(t testing.TB) string {
	t.Helper()
	u, schema := scratch(t, "sco_test_", "CREATE SCHEMA %s", "DROP SCHEMA %s CASCADE")
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// scratch creates an object named prefix plus a random suffix on the server
// at TEST_DATABASE_URL with the statement create (a format taking the
// name), drops it with drop when t ends, and returns the server's URL and
// the name.
func scratch(t testing.TB, prefix, create, drop string) (*url.URL, string) {
	t.Helper()
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		base = DefaultPostgresURL
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("TEST_DATABASE_URL: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("PostgreSQL is not reachable at TEST_DATABASE_URL (%s): %v; start it (see README) or point TEST_DATABASE_URL at one", base, err)
	}
	defer conn.Close(ctx)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := prefix + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, fmt.Sprintf(create, name)); err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, fmt.Sprintf(drop, name)); err != nil {
			t.Logf("drop %s: %v", name, err)
		}
	})
	return u, name
}

// Each runs f once per supported database as a subtest named after it.
func Each(t *testing.T, f func(t *testing.T, databaseURL string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { f(t, SQLiteURL(t)) })
	t.Run("postgres", func(t *testing.T) { f(t, PostgresURL(t)) })
}
