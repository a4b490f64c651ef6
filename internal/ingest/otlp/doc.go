// Package otlp is the OTLP/HTTP metrics receiver (POST /v1/metrics): it
// decodes an ExportMetricsServiceRequest (binary protobuf or OTLP/JSON,
// plain, gzip or zstd, within a decoded-size and a data-point limit), maps
// its data points onto hosts' feature rows and hands them to the anomaly
// service through ingest.Deliver, answering as OTLP/HTTP says.
//
// Mapping, in the order a data point meets it:
//
//   - Host: the first of Options.HostAttributes (host.name, then
//     service.instance.id) among the resource's attributes, qualified by
//     the caller's tenant. A resource without one: its points are counted
//     (no_host) and rejected.
//   - Series: resource attributes, scope name, metric name and point
//     attributes, sorted; hashed into the Tracker's id.
//   - Value: a gauge as is; a cumulative monotonic sum as its per-second
//     rate (Tracker.ObserveSince: a changed start time is a reset); a
//     cumulative non-monotonic sum as its level; a delta sum as value per
//     second over (time − start), a delta without a usable start being
//     rejected (bad_interval); a histogram, exponential histogram or
//     summary as <name>_rate (observations per second, from its count as
//     above) and <name>_avg (Δsum/Δcount over the interval).
//   - Feature: the hostmetrics receiver's well-known metrics become the
//     well-known features (hostRules); any other metric its name in lower
//     case with every other character than [a-z0-9_] as '_'. Points of
//     one metric that differ by attributes fold into the one feature:
//     sums and rates add, gauges average, so a row stays bounded whatever
//     the attributes' cardinality.
//   - Time: a host's points within Options.AlignWindow of each other get
//     the earliest one's time, so one collection is one row.
//
// NaN and ±Inf, points over MaxFutureSkew ahead, points without a time and
// the Tracker's refusals (out of order, over the tenant's series cap) are
// counted and reported to the sender in partial_success; a point flagged
// no-recorded-value ends its series (the Tracker forgets it). Every data
// point is counted once in smartcloudops_ingest_samples_total{source="otlp"}
// by what became of it.
package otlp
