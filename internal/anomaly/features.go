package anomaly

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/smartcloudops/smartcloudops/internal/anomaly/stream"
	"github.com/smartcloudops/smartcloudops/internal/domain"
)

// The well-known metric names. Samples may use them or the aliases that
// CanonicalMetric accepts; any other numeric metric is kept under its own name.
const (
	MetricCPU          = "cpu_usage"        // percent
	MetricMemory       = "memory_usage"     // percent
	MetricDisk         = "disk_usage"       // percent
	MetricNetworkIn    = "network_in"       // bytes/s
	MetricNetworkOut   = "network_out"      // bytes/s
	MetricLoad         = "load_average"     // 1-minute load
	MetricResponseTime = "response_time_ms" // milliseconds
	MetricErrorRate    = "error_rate"       // percent of requests
	MetricRequestRate  = "request_rate"     // requests/s
)

// WellKnownMetrics returns the well-known metric names in the store's column order.
func WellKnownMetrics() []string {
	return []string{MetricCPU, MetricMemory, MetricDisk, MetricNetworkIn, MetricNetworkOut, MetricLoad, MetricResponseTime, MetricErrorRate, MetricRequestRate}
}

// CanonicalMetric maps the common spellings agents use to the well-known
// names ("cpu", "mem", "latency_ms", …) and lower-cases everything else, so a
// series keeps one name whichever agent reports it.
func CanonicalMetric(name string) string {
	n := strings.ToLower(strings.TrimSpace(name))
	switch n {
	case "cpu", "cpu_percent", "cpu_pct", "cpu_utilization":
		return MetricCPU
	case "memory", "mem", "memory_percent", "mem_usage", "memory_utilization":
		return MetricMemory
	case "disk", "disk_percent", "disk_utilization":
		return MetricDisk
	case "net_in", "network_in_bytes", "rx_bytes":
		return MetricNetworkIn
	case "net_out", "network_out_bytes", "tx_bytes":
		return MetricNetworkOut
	case "load", "load_avg", "load1":
		return MetricLoad
	case "response_time", "latency_ms", "latency":
		return MetricResponseTime
	case "errors", "error_percent", "error_pct":
		return MetricErrorRate
	case "requests", "rps", "requests_per_second":
		return MetricRequestRate
	}
	return n
}

// Limits on one sample, so a client cannot create unbounded series or rows.
const (
	MaxHostLen          = 255
	MaxMetricNameLen    = 64
	MaxMetricsPerSample = 64
)

// MaxMetricMagnitude is the largest absolute metric value accepted: the
// streaming detector's bound (stream.MaxAbsValue), within which every score,
// feature and model stays finite. Larger values are refused, not clipped, so
// a client hears about a unit mistake instead of getting a wrong verdict.
const MaxMetricMagnitude = stream.MaxAbsValue

// Sample is one host's metrics at one instant.
type Sample struct {
	Host      string
	Timestamp time.Time
	// Metrics maps metric names (canonical after Normalize) to finite values.
	Metrics map[string]float64
}

// FieldError is a validation failure of one field of a sample, named the way
// the API's JSON names it ("host", "metrics.cpu_usage").
type FieldError struct {
	Field  string
	Detail string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Detail }

// ErrInvalidSample is wrapped by every sample validation error.
var ErrInvalidSample = errors.New("anomaly: invalid sample")

// Normalize validates s and returns it with canonical metric names. Every
// problem is a *FieldError (wrapping nothing); callers prefix the field with
// the sample's position in a batch.
func Normalize(s Sample) (Sample, error) {
	switch {
	case strings.TrimSpace(s.Host) == "":
		return s, &FieldError{"host", "is required"}
	case len(s.Host) > MaxHostLen:
		return s, &FieldError{"host", fmt.Sprintf("is longer than %d bytes", MaxHostLen)}
	}
	if !utf8.ValidString(s.Host) {
		// Decoders turn invalid bytes into U+FFFD, which would merge distinct
		// hosts into one series; refuse them instead.
		return s, &FieldError{"host", "must be valid UTF-8"}
	}
	for _, c := range s.Host {
		if c <= ' ' || c == 0x7f || c == utf8.RuneError {
			return s, &FieldError{"host", "must not contain spaces, control characters or U+FFFD"}
		}
	}
	if s.Timestamp.IsZero() {
		return s, &FieldError{"timestamp", "is required"}
	}
	if len(s.Metrics) == 0 {
		return s, &FieldError{"metrics", "must hold at least one numeric metric"}
	}
	if len(s.Metrics) > MaxMetricsPerSample {
		return s, &FieldError{"metrics", fmt.Sprintf("holds %d metrics; at most %d are accepted", len(s.Metrics), MaxMetricsPerSample)}
	}
	out := Sample{Host: s.Host, Timestamp: s.Timestamp.UTC(), Metrics: make(map[string]float64, len(s.Metrics))}
	for _, name := range sortedKeys(s.Metrics) {
		v := s.Metrics[name]
		if err := validMetricName(name); err != nil {
			return s, &FieldError{"metrics." + name, err.Error()}
		}
		if !(math.Abs(v) <= MaxMetricMagnitude) {
			return s, &FieldError{"metrics." + name, fmt.Sprintf("must be a finite number between %g and %g", -MaxMetricMagnitude, MaxMetricMagnitude)}
		}
		c := CanonicalMetric(name)
		if _, dup := out.Metrics[c]; dup {
			return s, &FieldError{"metrics." + name, fmt.Sprintf("names the same metric as another key (%s)", c)}
		}
		out.Metrics[c] = v
	}
	return out, nil
}

func validMetricName(n string) error {
	if n == "" || len(n) > MaxMetricNameLen {
		return fmt.Errorf("metric name must be 1 to %d bytes", MaxMetricNameLen)
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-') {
			return errors.New("metric name may hold only letters, digits and _ . : -")
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ToStore converts a normalized sample to the store's row: well-known
// metrics to their columns, the rest to Extra.
func ToStore(s Sample) domain.MetricSample {
	out := domain.MetricSample{Host: s.Host, Timestamp: s.Timestamp}
	for name, v := range s.Metrics {
		v := v
		switch name {
		case MetricCPU:
			out.CPUUsage = &v
		case MetricMemory:
			out.MemoryUsage = &v
		case MetricDisk:
			out.DiskUsage = &v
		case MetricNetworkIn:
			out.NetworkIn = &v
		case MetricNetworkOut:
			out.NetworkOut = &v
		case MetricLoad:
			out.LoadAverage = &v
		case MetricResponseTime:
			out.ResponseTimeMS = &v
		case MetricErrorRate:
			out.ErrorRate = &v
		case MetricRequestRate:
			out.RequestRate = &v
		default:
			if out.Extra == nil {
				out.Extra = map[string]float64{}
			}
			out.Extra[name] = v
		}
	}
	return out
}

// FromStore is ToStore's inverse, used to replay stored history.
func FromStore(m domain.MetricSample) Sample {
	s := Sample{Host: m.Host, Timestamp: m.Timestamp.UTC(), Metrics: make(map[string]float64, 9+len(m.Extra))}
	for i, p := range []*float64{m.CPUUsage, m.MemoryUsage, m.DiskUsage, m.NetworkIn, m.NetworkOut, m.LoadAverage, m.ResponseTimeMS, m.ErrorRate, m.RequestRate} {
		// Rows stored before the magnitude bound may hold values that would
		// overflow training; they are skipped like missing ones.
		if p != nil && math.Abs(*p) <= MaxMetricMagnitude {
			s.Metrics[WellKnownMetrics()[i]] = *p
		}
	}
	for k, v := range m.Extra {
		if math.Abs(v) <= MaxMetricMagnitude {
			s.Metrics[k] = v
		}
	}
	return s
}

// context is the per-series context a point is read against: the previous
// value and an exponentially weighted level and spread of the recent past.
// It is what the "_delta", "_mean" and "_std" features report.
type seriesContext struct {
	n          uint64
	prev       float64
	mean, mdev float64
}

// contextAlpha gives the rolling level and spread a memory of about ten
// points: long enough to smooth scrape jitter, short enough to show an
// operator what "recently" means.
const contextAlpha = 0.1

// features writes the point's context features into out, computed from the
// context before the point (so they never include the point itself).
func (c *seriesContext) features(metric string, v float64, out map[string]float64) {
	out[metric] = v
	if c.n == 0 {
		out[metric+"_delta"] = 0
		out[metric+"_mean"] = v
		out[metric+"_std"] = 0
		return
	}
	out[metric+"_delta"] = v - c.prev
	out[metric+"_mean"] = c.mean
	// 1.2533 = sqrt(pi/2) turns a mean absolute deviation into a standard
	// deviation for Gaussian data.
	out[metric+"_std"] = 1.2533 * c.mdev
}

// update advances the context past v.
func (c *seriesContext) update(v float64) {
	if c.n == 0 {
		c.mean = v
	} else {
		c.mdev += contextAlpha * (math.Abs(v-c.mean) - c.mdev)
		c.mean += contextAlpha * (v - c.mean)
	}
	c.prev = v
	c.n++
}
