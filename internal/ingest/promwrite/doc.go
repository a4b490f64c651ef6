// Package promwrite is the Prometheus remote-write receiver behind
// POST /api/v1/write: it decodes remote write 1.0 and 2.0 requests
// (snappy block-compressed protobuf, decoded by Prometheus's own generated
// code in prompb), maps the series a user selected to hosts and features,
// and hands them to the anomaly service through internal/ingest.
//
// Limits, checked before anything is allocated for what they bound: the
// compressed body (Content-Length, then while reading), the decompressed
// size (snappy's length header), and the series and samples of the request
// (counted on the wire). A request over any of them is refused with 413,
// malformed ones with 400, another protocol with 415: Prometheus drops such
// a batch instead of retrying it forever. Nothing of a refused request is
// stored. A sink failure (queue full, database down) is returned to the
// caller, which answers 503 so the sender retries; the retry rebuilds the
// same rows (ingest.Tracker's repeats, the assembler's remembered values)
// and the store merges them into what the first try stored.
//
// Per sample, counted in smartcloudops_ingest_samples_total{source=
// "remote_write",outcome}: a stale marker forgets the series (its counter
// restarts, it leaves the tenant's cap) - "stale"; other NaN and ±Inf
// values are skipped - "non_finite" (node_exporter exposes NaN for some
// sensors, so they are no reason to refuse a request); a timestamp more
// than MaxFuture ahead of the server's clock or older than MaxAge is
// skipped - "out_of_bounds"; a new series over the tenant's cap is skipped
// - "series_limit"; a series no selector takes - "not_selected"; one
// without a host label - "no_host"; native histograms - "histogram".
// Repeats and out-of-order samples are the Tracker's outcomes. Skipped
// samples do not fail the request (one bad series must not make Prometheus
// drop a batch of good ones, nor retry it forever), except when every
// sample of a request was refused by the cap or the time bounds: then the
// answer is 400, so the operator sees the refusal in Prometheus's own log,
// and nothing was stored. Refusals are also logged, at most once a minute.
package promwrite
