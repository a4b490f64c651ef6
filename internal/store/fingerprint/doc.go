// Package fingerprint turns SQL statements into the identity the store keeps
// its statistics by, as pg_stat_statements does: literals and placeholders
// normalised away, so "the same statement with other values" has one id. It
// is a lexer, not a parser, and is shared by the store (statistics, slow log,
// tracing, which tables a write changes), the query cache's keys and the
// index advisor, which reads a statement's tables and columns from its tokens.
package fingerprint
