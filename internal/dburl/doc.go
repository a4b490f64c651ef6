// Package dburl reads a DATABASE_URL: which database it names (SQLite or
// PostgreSQL) and the address its driver takes. It is a leaf owned by the
// store side: the store opens the database with it, and the command checks a
// configured DATABASE_URL with it before anything starts, so the
// configuration, which imports nothing of the project, holds the URL as text.
package dburl
