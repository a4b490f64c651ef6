package storetest

import "testing"

// PostgresDatabaseURL creates a database of its own on the test server and
// drops it when t ends. Use it instead of PostgresURL when the test's
// effects are database-wide — LISTEN/NOTIFY channels, advisory locks — so
// that concurrent runs on the shared database never hear each other.
func PostgresDatabaseURL(t testing.TB) string {
	t.Helper()
	// FORCE ends sessions a test left open rather than leaking the database.
	u, name := scratch(t, "sco_test_db_", "CREATE DATABASE %s", "DROP DATABASE %s WITH (FORCE)")
	u.Path = "/" + name
	q := u.Query()
	q.Del("search_path")
	u.RawQuery = q.Encode()
	return u.String()
}
