// Package dbadmin is the database administration behind the
// /performance/database/* endpoints: the statistics report (statements,
// pools, slow queries, query cache, table sizes), the index advisor that
// proposes and builds indexes from the statements the store has seen, and
// routine maintenance (ANALYZE, VACUUM, WAL checkpoints). It works on an
// open store through its exported surface: the raw handles, which do not
// count in the statistics, and store.Diagnostics.
package dbadmin
