// Package cache is SmartCloudOps's two-tier cache: an in-process tier
// (otter, bounded by bytes) in front of Redis (rueidis), used by the query
// layer and the anomaly detector in Go and, through internal/httpapi, by
// tenants over HTTP.
//
// Reads go L1 → Redis; writes go to both. Redis's broadcast client tracking
// (CLIENT TRACKING BCAST on the key prefix) keeps replicas' in-process tiers
// coherent: any change under the prefix, by a replica, an expiry or anyone
// else, invalidates the local copies. A circuit breaker (gobreaker) wraps
// Redis: while Redis is down or slower than its timeouts, the in-process tier
// answers alone and callers see no errors; a background probe closes the
// breaker when Redis is back, and the in-process tier is flushed then, since
// it holds writes Redis never saw and missed invalidations.
//
// Keys are <KeyPrefix><len(namespace)>:<namespace>:<key>; the length prefix
// makes namespaces unambiguous whatever characters they contain, so one
// tenant can neither read nor clear another's keys.
//
// Values carry a 12-byte header (codec, compression, absolute expiry) so any
// replica decodes them regardless of its own settings; a value that does not
// parse is a counted miss, never an error or a panic.
package cache
