package cache

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartcloudops/smartcloudops/internal/latency"
)

// Tier tells which tier answered a read; the HTTP layer sends it as X-Cache.
type Tier string

// The tiers.
const (
	// TierL1 is the in-process tier while Redis is healthy (or the only
	// tier in memory-only mode).
	TierL1 Tier = "L1"
	// TierL2 is Redis.
	TierL2 Tier = "L2"
	// TierFallback is the in-process tier answering alone because Redis is
	// unreachable or slow.
	TierFallback Tier = "FALLBACK"
)

type tierIdx int

const (
	tL1 tierIdx = iota
	tL2
	tFallback
	numTiers
)

var tierLabel = [numTiers]string{"l1", "l2", "fallback"}

func (t tierIdx) tier() Tier { return [numTiers]Tier{TierL1, TierL2, TierFallback}[t] }

type result int

const (
	rHit result = iota
	rMiss
	rSet
	rDelete
	rError
	numResults
)

var resultLabel = [numResults]string{"hit", "miss", "set", "delete", "error"}

type op int

const (
	opGet op = iota
	opSet
	opDelete
	opExists
	opTTL
	opGetOrLoad
	opClear
	numOps
)

var opLabel = [numOps]string{"get", "set", "delete", "exists", "ttl", "get_or_load", "clear"}

// summary is an operation's latency quantiles, in seconds.
func summary(w *latency.Window) LatencyStats {
	s := w.Summary()
	return LatencyStats{Samples: s.N, P50: s.P50.Seconds(), P90: s.P90.Seconds(), P99: s.P99.Seconds(), Max: s.Max.Seconds()}
}

// counters are the package's own statistics: Stats reads them and the
// Prometheus collector exports them, so nothing is counted twice.
type counters struct {
	req          [numTiers][numResults]atomic.Uint64
	compIn       atomic.Uint64
	compOut      atomic.Uint64
	compKept     atomic.Uint64
	decodeErrors atomic.Uint64
	loads        atomic.Uint64
	loadErrors   atomic.Uint64
	latency      [numOps]latency.Window
}

func (s *counters) inc(t tierIdx, r result) { s.req[t][r].Add(1) }

// Stats is a snapshot for /performance/cache/stats. It holds counts only:
// no URL, address or credential ever appears in it.
type Stats struct {
	// Mode is "redis" or "memory".
	Mode     string       `json:"mode"`
	L1       TierStats    `json:"l1"`
	L2       TierStats    `json:"l2"`
	Fallback TierStats    `json:"fallback"`
	Breaker  BreakerStats `json:"breaker"`
	// Journal is the replay journal of writes taken during a Redis outage;
	// absent in memory-only mode.
	Journal  *JournalStats    `json:"journal,omitempty"`
	Compress CompressionStats `json:"compression"`
	// DecodeErrors counts stored values that were corrupt, foreign, or did
	// not fit the caller's type; each was answered as a miss.
	DecodeErrors uint64 `json:"decode_errors"`
	Loads        uint64 `json:"loads"`
	LoadErrors   uint64 `json:"load_errors"`
	// Latency has one entry per operation: get, set, delete, exists, ttl,
	// get_or_load, clear.
	Latency map[string]LatencyStats `json:"latency"`
}

// TierStats counts one tier's traffic. For L2, Entries, Bytes and
// Evictions are Redis's own figures for the whole server (DBSIZE of the
// selected database, used_memory, evicted_keys), summed over the masters of
// a cluster, and are zero while Redis is unreachable.
type TierStats struct {
	Hits      uint64  `json:"hits"`
	Misses    uint64  `json:"misses"`
	HitRate   float64 `json:"hit_rate"`
	Sets      uint64  `json:"sets"`
	Deletes   uint64  `json:"deletes"`
	Errors    uint64  `json:"errors"`
	Evictions uint64  `json:"evictions"`
	Entries   int64   `json:"entries"`
	Bytes     int64   `json:"bytes"`
}

// BreakerStats describes the circuit breaker around Redis.
type BreakerStats struct {
	// State is "closed", "half-open", "open", or "disconnected" while no
	// connection to Redis was ever made; "none" in memory-only mode.
	State           string  `json:"state"`
	FallbackActive  bool    `json:"fallback_active"`
	FallbackSeconds float64 `json:"fallback_seconds"`
}

// CompressionStats covers values written to Redis: BytesIn is their encoded
// size, BytesOut their stored size, Ratio = BytesOut/BytesIn.
type CompressionStats struct {
	BytesIn    uint64  `json:"bytes_in"`
	BytesOut   uint64  `json:"bytes_out"`
	Ratio      float64 `json:"ratio"`
	Compressed uint64  `json:"compressed_values"`
}

// LatencyStats are quantiles, in seconds, over the most recent samples.
type LatencyStats struct {
	Samples int     `json:"samples"`
	P50     float64 `json:"p50_seconds"`
	P90     float64 `json:"p90_seconds"`
	P99     float64 `json:"p99_seconds"`
	Max     float64 `json:"max_seconds"`
}

func (s *counters) tierStats(t tierIdx) TierStats {
	r := &s.req[t]
	ts := TierStats{
		Hits: r[rHit].Load(), Misses: r[rMiss].Load(), Sets: r[rSet].Load(),
		Deletes: r[rDelete].Load(), Errors: r[rError].Load(),
	}
	if total := ts.Hits + ts.Misses; total > 0 {
		ts.HitRate = float64(ts.Hits) / float64(total)
	}
	return ts
}

// metrics are the Prometheus instruments that are not derived from
// counters: the duration histograms.
type metrics struct {
	durations [numOps]prometheus.Observer
}

func newMetrics(c *Cache, reg prometheus.Registerer) (*metrics, error) {
	hv := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "smartcloudops_cache_operation_duration_seconds",
		Help: "Duration of cache operations as seen by the caller.",
		// 1 µs (an in-process hit) to about 1 s (a Redis timeout).
		Buckets: prometheus.ExponentialBuckets(1e-6, 4, 11),
	}, []string{"op"})
	m := &metrics{}
	for o := range numOps {
		m.durations[o] = hv.WithLabelValues(opLabel[o])
	}
	if reg == nil {
		return m, nil
	}
	if err := reg.Register(hv); err != nil {
		return nil, err
	}
	col := &collector{c: c}
	if err := reg.Register(col); err != nil {
		reg.Unregister(hv)
		return nil, err
	}
	return m, nil
}

var (
	descRequests = prometheus.NewDesc("smartcloudops_cache_requests_total",
		"Cache requests by tier (l1, l2, fallback) and result (hit, miss, set, delete, error).",
		[]string{"tier", "result"}, nil)
	descFallbackActive = prometheus.NewDesc("smartcloudops_cache_fallback_active",
		"1 while Redis is configured but unreachable and the in-process tier serves alone.", nil, nil)
	descFallbackSeconds = prometheus.NewDesc("smartcloudops_cache_fallback_seconds_total",
		"Time spent in fallback.", nil, nil)
	descCompIn = prometheus.NewDesc("smartcloudops_cache_compression_input_bytes_total",
		"Encoded bytes of values written to Redis, before compression.", nil, nil)
	descCompOut = prometheus.NewDesc("smartcloudops_cache_compression_output_bytes_total",
		"Bytes of values written to Redis, after compression.", nil, nil)
	descLocalEntries = prometheus.NewDesc("smartcloudops_cache_local_entries",
		"Entries in the in-process tier.", nil, nil)
	descLocalBytes = prometheus.NewDesc("smartcloudops_cache_local_bytes",
		"Bytes held by the in-process tier.", nil, nil)
	descLocalEvictions = prometheus.NewDesc("smartcloudops_cache_local_evictions_total",
		"Entries evicted from the in-process tier to stay under its byte bound.", nil, nil)
	descDecodeErrors = prometheus.NewDesc("smartcloudops_cache_decode_errors_total",
		"Stored values that could not be decoded and were answered as misses.", nil, nil)
	descLoads = prometheus.NewDesc("smartcloudops_cache_loads_total",
		"GetOrLoad loader calls by result (ok, error).", []string{"result"}, nil)
	descJournalOps = prometheus.NewDesc("smartcloudops_cache_journal_operations_total",
		"Writes and deletes taken during a Redis outage, by outcome: journaled, replayed (to Redis after recovery), "+
			"expired, superseded (by another replica's newer write, or a clear of the namespace), dropped (journal full: served from memory only), error.",
		[]string{"result"}, nil)
	descJournalEntries = prometheus.NewDesc("smartcloudops_cache_journal_entries",
		"Writes and deletes waiting in the journal for Redis to return.", nil, nil)
	descJournalBytes = prometheus.NewDesc("smartcloudops_cache_journal_bytes",
		"Bytes held by the journal of writes waiting for Redis to return.", nil, nil)
)

// collector exports counters at scrape time.
type collector struct{ c *Cache }

// Describe implements prometheus.Collector.
func (col *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descFallbackActive, descFallbackSeconds, descCompIn,
		descCompOut, descLocalEntries, descLocalBytes, descLocalEvictions, descDecodeErrors, descLoads,
		descJournalOps, descJournalEntries, descJournalBytes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (col *collector) Collect(ch chan<- prometheus.Metric) {
	c := col.c
	s := &c.stats
	for t := range numTiers {
		for r := range numResults {
			ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue,
				float64(s.req[t][r].Load()), tierLabel[t], resultLabel[r])
		}
	}
	active := 0.0
	if c.fallbackActive() {
		active = 1
	}
	ch <- prometheus.MustNewConstMetric(descFallbackActive, prometheus.GaugeValue, active)
	ch <- prometheus.MustNewConstMetric(descFallbackSeconds, prometheus.CounterValue, c.fallbackDuration().Seconds())
	ch <- prometheus.MustNewConstMetric(descCompIn, prometheus.CounterValue, float64(s.compIn.Load()))
	ch <- prometheus.MustNewConstMetric(descCompOut, prometheus.CounterValue, float64(s.compOut.Load()))
	ch <- prometheus.MustNewConstMetric(descLocalEntries, prometheus.GaugeValue, float64(c.local.entries()))
	ch <- prometheus.MustNewConstMetric(descLocalBytes, prometheus.GaugeValue, float64(c.local.bytes()))
	ch <- prometheus.MustNewConstMetric(descLocalEvictions, prometheus.CounterValue, float64(c.local.evictions.Load()))
	ch <- prometheus.MustNewConstMetric(descDecodeErrors, prometheus.CounterValue, float64(s.decodeErrors.Load()))
	ch <- prometheus.MustNewConstMetric(descLoads, prometheus.CounterValue, float64(s.loads.Load()-s.loadErrors.Load()), "ok")
	ch <- prometheus.MustNewConstMetric(descLoads, prometheus.CounterValue, float64(s.loadErrors.Load()), "error")
	if j := c.journal; j != nil {
		for r := range numJournalResults {
			ch <- prometheus.MustNewConstMetric(descJournalOps, prometheus.CounterValue, float64(j.counts[r].Load()), journalResultLabel[r])
		}
		n, b := j.size()
		ch <- prometheus.MustNewConstMetric(descJournalEntries, prometheus.GaugeValue, float64(n))
		ch <- prometheus.MustNewConstMetric(descJournalBytes, prometheus.GaugeValue, float64(b))
	}
}
