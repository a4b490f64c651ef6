// Package ingest is what every wire-format receiver (Prometheus
// remote_write in promwrite, OTLP metrics in otlp) shares between decoding
// its format and handing rows to the anomaly service: the per-series state
// that turns cumulative counters into per-second rates and caps how many
// series a tenant may send, the grouping of single points into a host's
// rows, and the delivery of those rows in batches the service accepts.
//
// A receiver decodes its request, maps each series to a host and a feature
// name, asks a Tracker for the value to keep (a gauge as is, a counter as
// its rate), collects Points and calls Deliver. Deliver is synchronous: a
// request is acknowledged only after its rows are stored, so a sender that
// retries on failure loses nothing. A retried request finds its samples
// already seen; the Tracker answers such an exact repeat with the rate it
// gave the first time, so the retry rebuilds the same rows, and the store
// keeps one copy.
package ingest
