// Package anomaly is SmartCloudOps' anomaly detection service: it turns a
// host's metric samples into features, scores them with a streaming detector
// per (host, metric) series and a multivariate Isolation Forest over the
// host's metric vector, falls back to static thresholds while neither can
// speak, micro-batches the forest work over a bounded worker pool, caches
// forest predictions, and keeps trained forests as versions in the store.
//
// # Score combination
//
// Every component reports a calibrated score in [0,1] on which 0.5 is its own
// decision threshold (Options.Threshold):
//
//   - stream (version "stream-v1"): one package stream detector per metric
//     series; its score is -log10 of the tail probability of the series' most
//     unusual view, divided by 10, so 0.5 is a one-in-10^5 state on that
//     series. The component's score is the largest over the sample's metrics,
//     and it decides "anomaly" when any series' detector does (a detector
//     holds back for a refractory period after a flag, so one incident pages
//     once).
//   - iforest or pca (version "iforest-…" or "pca-…"): the active host
//     model's score of the host's metric vector (the host's own model where
//     one won its selection, else the fleet's), mapped piecewise-linearly
//     through its training-score quantiles: the median training score maps
//     to 0.2, the 1-Contamination quantile to 0.5, and 1 to 1. It decides
//     "anomaly" at 0.5. See multivar.go for how the type is chosen.
//   - threshold ("threshold-v1"): for a metric whose series is still warming
//     up (or for a late point the stream cannot take), the static thresholds
//     (cpu > 90, memory > 90, disk > 95, error rate > 5 by default). A value v
//     above its threshold T scores 0.5 + 0.5·min(1, (v-T)/h) with headroom
//     h = min(T, 100-T) (h = T when T ≥ 100), so cpu 95 scores 0.75 and an
//     error rate of 10% scores 1; below T it scores 0.5·(v/T)². Once the
//     stream scores a series the thresholds are a floor: a value above its
//     limit still scores and flags as above (the version then names both
//     components), a value below it is left to the stream.
//
// The final anomaly_score is the largest component score: the components look
// at different things (a series' own past, the host's metric mix, fixed
// limits), and an operator wants to hear from whichever is most surprised,
// with the score still meaning "how unusual" on the same scale. is_anomaly is
// true when any component decides so. model_version names the components
// that scored, joined by "+", sorted (for example "iforest-…+stream-v1");
// it is exactly "threshold-v1" while no model can speak. confidence is
// 0.5·margin + 0.5·agreement, where margin is the score's distance from the
// threshold as a share of the room on that side and agreement is the share of
// components that decided the same way; a result from the thresholds alone
// gets 0.25 + 0.5·margin, since a fixed limit knows nothing of the host.
// Severity follows the score: critical ≥ 0.8, high ≥ 0.6, medium ≥ 0.4,
// low otherwise.
//
// # Ordering, duplicates and the prediction cache
//
// Only Ingest teaches the series. Detect is read-only: it scores each series
// against a private copy of what ingest learned (snapshot in series.go), so
// no caller of the read route can poison, blind or evict a series, and the
// same request gets the same answer twice.
//
// A series learns from a point only when its timestamp is newer than the
// newest point the series has seen, which keeps the streaming detector causal
// whatever order samples arrive in. A late (out-of-order) or re-sent point is
// still scored, by the forest and the thresholds, but teaches nothing, so a
// retry after a timeout changes no state; at ingest the store skips a sample
// whose (host, timestamp) is already stored and an anomaly already recorded.
// The stateful, cheap streaming step runs in the caller in arrival order; only
// the stateless forest step is queued and batched, and only it is cached: its
// prediction is a pure function of (model version, feature vector), which is
// the cache key.
package anomaly
