// Package dburl reads a DATABASE_URL: which database it names (SQLite or
// PostgreSQL) and the address its driver takes, and hides the password in
// a URL before it reaches a log, an error or an API answer. It is a leaf:
// the configuration validates DATABASE_URL with it and the store opens the
// database with it, so neither has to import the other.
package dburl
