package httpapi

import (
	"context"
	"net/http"
	"sort"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/smartcloudops/smartcloudops/internal/health"
	"github.com/smartcloudops/smartcloudops/internal/latency"
	"github.com/smartcloudops/smartcloudops/internal/leader"
)

// Summary is the body of GET /performance/summary: every part's status and
// headline figures, the measured savings, and an overall score. Every number
// is read from the parts' live counters or the Prometheus registry; nothing
// is estimated.
type Summary struct {
	Status        health.Status               `json:"status"`
	Score         int                         `json:"score"`
	ScoreDeducted []ScoreDeduction            `json:"score_deductions"`
	Timestamp     time.Time                   `json:"timestamp"`
	UptimeSeconds float64                     `json:"uptime_seconds"`
	Replica       string                      `json:"replica,omitempty"`
	Components    map[string]health.Component `json:"components"`
	HTTP          HTTPSummary                 `json:"http"`
	Cache         *CacheSummary               `json:"cache,omitempty"`
	Anomaly       *AnomalySummary             `json:"anomaly,omitempty"`
	Logs          *LogSummary                 `json:"logs,omitempty"`
	Database      *DatabaseSummary            `json:"database,omitempty"`
	Cost          []Saving                    `json:"cost"`
}

// ScoreDeduction is one documented reason the score is below 100.
type ScoreDeduction struct {
	Points int    `json:"points"`
	Reason string `json:"reason"`
}

// Quantiles are latency quantiles in seconds, estimated from a Prometheus
// histogram's buckets by linear interpolation (as histogram_quantile does).
type Quantiles struct {
	P50 float64 `json:"p50_seconds"`
	P90 float64 `json:"p90_seconds"`
	P99 float64 `json:"p99_seconds"`
}

// HTTPSummary covers the API's own traffic since start.
type HTTPSummary struct {
	Requests       uint64    `json:"requests"`
	RatePerSecond  float64   `json:"rate_per_second"`
	ServerErrors   uint64    `json:"server_errors"`
	ServerErrorPct float64   `json:"server_error_ratio"`
	Latency        Quantiles `json:"latency"`
}

// CacheSummary is the cache part's headline.
type CacheSummary struct {
	Mode           string             `json:"mode"`
	HitRate        map[string]float64 `json:"hit_rate"`
	FallbackActive bool               `json:"fallback_active"`
	CompressionIn  uint64             `json:"compression_bytes_in"`
	CompressionOut uint64             `json:"compression_bytes_out"`
}

// AnomalySummary is the anomaly part's headline.
type AnomalySummary struct {
	Mode                string            `json:"mode"`
	ActiveModel         string            `json:"active_model,omitempty"`
	SamplesScored       uint64            `json:"samples_scored"`
	AnomaliesBySeverity map[string]uint64 `json:"anomalies_by_severity"`
	FallbackCount       uint64            `json:"fallback_count"`
}

// LogSummary is the log pipeline's headline.
type LogSummary struct {
	Written        int64 `json:"records_written"`
	Dropped        int64 `json:"records_dropped"`
	BytesSavedGzip int64 `json:"bytes_saved_by_gzip"`
}

// DatabaseSummary is the database layer's headline.
type DatabaseSummary struct {
	Driver             string    `json:"driver"`
	Queries            uint64    `json:"queries"`
	MeanSeconds        float64   `json:"mean_seconds"`
	Latency            Quantiles `json:"latency"`
	QueryCacheHitRate  float64   `json:"query_cache_hit_rate"`
	QueryCacheSavedSec float64   `json:"query_cache_saved_seconds"`
	// Leader says which replica runs the periodic jobs (retraining, index
	// advisor, rollup and retention); absent when no election is wired.
	Leader *leader.Status `json:"leader,omitempty"`
}

// Saving is one measured saving, with how it was computed.
type Saving struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Method string  `json:"method"`
}

func (s *Server) summary(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*s.deps.CheckTimeout)
	defer cancel()
	now := s.now()
	sum := Summary{Timestamp: now.UTC(), UptimeSeconds: now.Sub(s.started).Seconds(), Replica: s.deps.Replica,
		Components: s.checkAll(ctx), Cost: []Saving{}}
	sum.Status = health.Overall(sum.Components)

	families := map[string]*dto.MetricFamily{}
	if mfs, err := s.deps.Registry.Gather(); err == nil {
		for _, mf := range mfs {
			families[mf.GetName()] = mf
		}
	}
	sum.HTTP = httpSummary(families, sum.UptimeSeconds)

	if c := s.deps.Cache; c != nil {
		st := c.Stats(ctx)
		sum.Cache = &CacheSummary{
			Mode:           st.Mode,
			HitRate:        map[string]float64{"l1": st.L1.HitRate, "l2": st.L2.HitRate, "fallback": st.Fallback.HitRate},
			FallbackActive: st.Breaker.FallbackActive,
			CompressionIn:  st.Compress.BytesIn,
			CompressionOut: st.Compress.BytesOut,
		}
		sum.Cost = append(sum.Cost, Saving{
			Name: "redis_bytes_saved_by_compression", Unit: "bytes",
			Value:  float64(st.Compress.BytesIn) - float64(st.Compress.BytesOut),
			Method: "sum over values written to Redis of encoded size minus stored size (compression is kept only when smaller)",
		})
		if st.Mode == "redis" {
			sum.Cost = append(sum.Cost, Saving{
				Name: "redis_round_trips_avoided", Unit: "requests", Value: float64(st.L1.Hits),
				Method: "reads answered by the in-process tier while Redis was serving: each is a GET that did not cross the network",
			})
		}
	}
	if a := s.deps.Anomaly; a != nil {
		st := a.Stats()
		as := &AnomalySummary{Mode: st.Mode, SamplesScored: st.SamplesScored, AnomaliesBySeverity: st.AnomaliesBySeverity, FallbackCount: st.FallbackCount}
		if st.ActiveModel != nil {
			as.ActiveModel = st.ActiveModel.Version
		}
		sum.Anomaly = as
	}
	if l := s.deps.Logs; l != nil {
		st := l.Stats()
		sum.Logs = &LogSummary{Written: st.RecordsWritten, Dropped: st.RecordsDroppedTotal, BytesSavedGzip: st.CompressionBytesIn - st.CompressionBytesOut}
		sum.Cost = append(sum.Cost, Saving{
			Name: "log_bytes_not_kept_on_disk", Unit: "bytes", Value: float64(st.CompressionBytesIn - st.CompressionBytesOut),
			Method: "sum over rotated log files of size before gzip minus size after",
		})
	}
	if d := s.deps.Database; d != nil {
		if h, err := d.Headline(ctx); err == nil {
			st := h.Statements
			sum.Database = &DatabaseSummary{
				Driver: h.Driver, Queries: st.Count, MeanSeconds: st.Mean(), Latency: Quantiles{P50: st.P50, P90: st.P90, P99: st.P99},
				QueryCacheHitRate: h.Cache.HitRate, QueryCacheSavedSec: h.Cache.SavedMS / 1000, Leader: h.Leader,
			}
			sum.Cost = append(sum.Cost, Saving{
				Name: "database_seconds_saved_by_query_cache", Unit: "seconds", Value: h.Cache.SavedMS / 1000,
				Method: "for each query-cache hit, the statement's mean uncached execution time minus the time the hit took",
			})
		}
	}
	sum.Score, sum.ScoreDeducted = score(sum)
	writeJSON(w, r, http.StatusOK, sum)
	return nil
}

func httpSummary(families map[string]*dto.MetricFamily, uptime float64) HTTPSummary {
	var h HTTPSummary
	if mf := families["smartcloudops_http_requests_total"]; mf != nil {
		for _, m := range mf.GetMetric() {
			n := uint64(m.GetCounter().GetValue())
			h.Requests += n
			for _, l := range m.GetLabel() {
				if l.GetName() == "code" && len(l.GetValue()) == 3 && l.GetValue()[0] == '5' {
					h.ServerErrors += n
				}
			}
		}
	}
	if uptime > 0 {
		h.RatePerSecond = float64(h.Requests) / uptime
	}
	if h.Requests > 0 {
		h.ServerErrorPct = float64(h.ServerErrors) / float64(h.Requests)
	}
	h.Latency = histogramQuantiles(families["smartcloudops_http_request_duration_seconds"])
	return h
}

// histogramQuantiles merges every series of a histogram family (all routes)
// and estimates quantiles from the merged buckets, as histogram_quantile does.
func histogramQuantiles(mf *dto.MetricFamily) Quantiles {
	hs := make([]*dto.Histogram, 0, len(mf.GetMetric()))
	for _, m := range mf.GetMetric() {
		hs = append(hs, m.GetHistogram())
	}
	s := latency.FromHistograms(hs...)
	return Quantiles{P50: s.P50, P90: s.P90, P99: s.P99}
}

// score starts at 100 and deducts documented points (README "Summary score"):
// the service DOWN is 0; each DEGRADED component 15; server errors over 1% of
// requests 10, over 5% 25; HTTP p99 over 1s 10; any dropped log line 10; a
// cache hit rate (best tier) under 50% after 100 reads 5.
func score(s Summary) (int, []ScoreDeduction) {
	if s.Status == health.StatusDown {
		return 0, []ScoreDeduction{{Points: 100, Reason: "the service is DOWN"}}
	}
	ds := []ScoreDeduction{}
	names := make([]string, 0, len(s.Components))
	for n := range s.Components {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if s.Components[n].Status == health.StatusDegraded {
			ds = append(ds, ScoreDeduction{Points: 15, Reason: "component " + n + " is DEGRADED"})
		}
	}
	switch {
	case s.HTTP.ServerErrorPct > 0.05:
		ds = append(ds, ScoreDeduction{Points: 25, Reason: "more than 5% of requests ended in a server error"})
	case s.HTTP.ServerErrorPct > 0.01:
		ds = append(ds, ScoreDeduction{Points: 10, Reason: "more than 1% of requests ended in a server error"})
	}
	if s.HTTP.Latency.P99 > 1 {
		ds = append(ds, ScoreDeduction{Points: 10, Reason: "HTTP p99 latency is over 1s"})
	}
	if s.Logs != nil && s.Logs.Dropped > 0 {
		ds = append(ds, ScoreDeduction{Points: 10, Reason: "log lines were dropped"})
	}
	if s.Cache != nil {
		best := max(s.Cache.HitRate["l1"], s.Cache.HitRate["l2"], s.Cache.HitRate["fallback"])
		if best < 0.5 && s.HTTP.Requests >= 100 && best > 0 {
			ds = append(ds, ScoreDeduction{Points: 5, Reason: "cache hit rate is under 50%"})
		}
	}
	total := 100
	for _, d := range ds {
		total -= d.Points
	}
	return max(total, 0), ds
}
