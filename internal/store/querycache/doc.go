// Package querycache is the store's query-result cache: whole results of
// reads, kept in the service's cache (in-process, or shared through Redis)
// under keys that carry the current version of every table the read reads,
// so a write through the store makes every later lookup miss rather than
// serve a stale result. It also holds the compact, versioned encoding the
// results are kept in. It knows no SQL: the store hands it a fingerprinted
// statement and runs what it misses (see Source).
package querycache
