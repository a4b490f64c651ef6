package promwrite

import (
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/smartcloudops/smartcloudops/internal/anomaly"
	"github.com/smartcloudops/smartcloudops/internal/ingest"
)

// The receiver's own sample outcomes, next to the Tracker's.
type outcome uint8

const (
	outKept outcome = iota
	outFirst
	outRepeat
	outOutOfOrder
	outSeriesLimit
	outNotSelected
	outNoHost
	outStale
	outNonFinite
	outOutOfBounds
	outHistogram
	outInvalidRow
	numOutcomes
)

var outcomeNames = [numOutcomes]string{
	outKept: ingest.Kept.String(), outFirst: ingest.First.String(), outRepeat: ingest.Repeat.String(),
	outOutOfOrder: ingest.OutOfOrder.String(), outSeriesLimit: ingest.OverLimit.String(),
	outNotSelected: "not_selected", outNoHost: "no_host", outStale: "stale", outNonFinite: "non_finite",
	outOutOfBounds: "out_of_bounds", outHistogram: "histogram", outInvalidRow: "invalid_row",
}

func fromTracker(o ingest.Outcome) outcome {
	switch o {
	case ingest.Kept:
		return outKept
	case ingest.First:
		return outFirst
	case ingest.Repeat:
		return outRepeat
	case ingest.OutOfOrder:
		return outOutOfOrder
	}
	return outSeriesLimit
}

// staleNaN is the bit pattern of Prometheus's stale marker.
const staleNaN = 0x7ff0000000000002

// label is one label of the series being mapped.
type label struct{ name, value string }

// mapper maps one request's series to points and assembler inputs.
type mapper struct {
	r          *Receiver
	st         *state
	tenant     string
	nowNS      int64
	minMS      int64
	maxMS      int64
	counts     [numOutcomes]int
	histograms int
	exemplars  int
}

func (r *Receiver) mapper(tenant string, st *state) *mapper {
	now := r.opt.Now()
	m := &mapper{r: r, st: st, tenant: tenant, nowNS: now.UnixNano(), minMS: math.MinInt64, maxMS: math.MaxInt64}
	if r.opt.MaxFuture > 0 {
		m.maxMS = now.Add(r.opt.MaxFuture).UnixMilli()
	}
	if r.opt.MaxAge > 0 {
		m.minMS = now.Add(-r.opt.MaxAge).UnixMilli()
	}
	return m
}

// accepted is the samples not refused: everything but the cap and the
// time bounds (the mapping's own choices are not failures).
func (m *mapper) accepted() int {
	n := 0
	for o, c := range m.counts {
		if outcome(o) != outSeriesLimit && outcome(o) != outOutOfBounds && outcome(o) != outHistogram {
			n += c
		}
	}
	return n
}

// refusedAll: something was refused and nothing got through, which is
// when the request is answered 400 (see doc.go).
func (m *mapper) refusedAll() bool {
	refused := m.counts[outSeriesLimit] + m.counts[outOutOfBounds]
	in := m.counts[outKept] + m.counts[outFirst] + m.counts[outRepeat] + m.counts[outStale]
	return refused > 0 && in == 0
}

type sample struct {
	v float64
	t int64
}

func (m *mapper) mapV1(req *prompb.WriteRequest) error {
	for i := range req.Timeseries {
		ts := &req.Timeseries[i]
		m.st.lbls = m.st.lbls[:0]
		for _, l := range ts.Labels {
			m.st.lbls = append(m.st.lbls, label{l.Name, l.Value})
		}
		m.exemplars += len(ts.Exemplars)
		m.series(m.st.lbls, v1Samples(ts.Samples), len(ts.Histograms), false)
	}
	return nil
}

func (m *mapper) mapV2(req *writev2.Request) error {
	syms := req.Symbols
	for i := range req.Timeseries {
		ts := &req.Timeseries[i]
		m.st.lbls = m.st.lbls[:0]
		refs := ts.LabelsRefs
		if len(refs)%2 != 0 {
			return refuse(400, nil, "series %d has an odd number of label references", i)
		}
		for j := 0; j < len(refs); j += 2 {
			if int(refs[j]) >= len(syms) || int(refs[j+1]) >= len(syms) {
				return refuse(400, nil, "series %d refers to symbol %d of %d", i, max(refs[j], refs[j+1]), len(syms))
			}
			m.st.lbls = append(m.st.lbls, label{syms[refs[j]], syms[refs[j+1]]})
		}
		m.exemplars += len(ts.Exemplars)
		counter := ts.Metadata.Type == writev2.Metadata_METRIC_TYPE_COUNTER
		m.series(m.st.lbls, v2Samples(ts.Samples), len(ts.Histograms), counter)
	}
	return nil
}

// samples is the two versions' sample slices behind one face.
type samples interface {
	len() int
	at(i int) sample
}

type v1Samples []prompb.Sample

func (s v1Samples) len() int        { return len(s) }
func (s v1Samples) at(i int) sample { return sample{s[i].Value, s[i].Timestamp} }

type v2Samples []writev2.Sample

func (s v2Samples) len() int        { return len(s) }
func (s v2Samples) at(i int) sample { return sample{s[i].Value, s[i].Timestamp} }

func get(lbls []label, name string) string {
	for _, l := range lbls {
		if l.name == name {
			return l.value
		}
	}
	return ""
}

// series maps one series' samples.
func (m *mapper) series(lbls []label, ss samples, histograms int, counterMeta bool) {
	m.histograms += histograms
	m.counts[outHistogram] += histograms
	n := ss.len()
	if n == 0 {
		return
	}
	name := get(lbls, "__name__")
	if !m.r.selected(lbls) {
		m.counts[outNotSelected] += n
		return
	}
	hostLabel, host := "", ""
	for _, hl := range m.r.opt.HostLabels {
		if v := get(lbls, hl); v != "" {
			hostLabel, host = hl, v
			break
		}
	}
	if host == "" {
		m.counts[outNoHost] += n
		return
	}
	host = ingest.QualifiedHost(m.tenant, stripPort(host))
	cls := m.r.classify(name, lbls, hostLabel, counterMeta)
	if cls.skip {
		m.counts[outNotSelected] += n
		return
	}
	id := seriesID(lbls)
	kind := ingest.Gauge
	if cls.counter {
		kind = ingest.Counter
	}
	for i := range n {
		s := ss.at(i)
		switch {
		case math.Float64bits(s.v) == staleNaN:
			m.r.opt.Tracker.Forget(m.tenant, id)
			m.counts[outStale]++
			continue
		case math.IsNaN(s.v) || math.IsInf(s.v, 0):
			m.counts[outNonFinite]++
			continue
		case s.t > m.maxMS || s.t < m.minMS:
			m.counts[outOutOfBounds]++
			continue
		}
		t := time.UnixMilli(s.t)
		v, o, ok := m.r.opt.Tracker.Observe(m.tenant, id, kind, t, s.v)
		m.counts[fromTracker(o)]++
		if o == ingest.OutOfOrder || o == ingest.OverLimit {
			continue
		}
		if cls.feature != nil {
			m.st.inputs = append(m.st.inputs, input{key: groupKey{m.tenant, host, *cls.feature}, id: id, t: s.t, v: v, roles: cls.roles, ok: ok,
				repeat: o == ingest.Repeat})
			continue
		}
		if ok {
			m.st.points = append(m.st.points, ingest.Point{Host: host, Metric: cls.metric, Time: t, Value: v})
		}
	}
}

// stripPort turns an instance "10.0.0.1:9100" or "[::1]:9100" into the
// host it names, so one machine's exporters on different ports are one
// host on the dashboard; a value without a port is kept as it is.
func stripPort(v string) string {
	if h, p, err := net.SplitHostPort(v); err == nil && h != "" {
		if _, err := strconv.ParseUint(p, 10, 16); err == nil {
			return h
		}
	}
	return v
}

// labelSep separates names and values in seriesID's hash.
var labelSep = []byte{0xff}

// seriesID hashes the label set, which identifies the series.
func seriesID(lbls []label) uint64 {
	var d xxhash.Digest
	d.Reset()
	sep := labelSep
	for _, l := range lbls {
		_, _ = d.WriteString(l.name)
		_, _ = d.Write(sep)
		_, _ = d.WriteString(l.value)
		_, _ = d.Write(sep)
	}
	return d.Sum64()
}

func (r *Receiver) selected(lbls []label) bool {
	for _, sel := range r.opt.Select {
		ok := true
		for _, mt := range sel {
			if !mt.Matches(get(lbls, mt.Name)) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// class is what a series becomes.
type class struct {
	skip    bool
	counter bool
	// feature is set for an input of a derived feature, with the
	// accumulators it adds to.
	feature *feature
	roles   uint8
	// metric is the feature name of a series kept on its own.
	metric string
}

var featurePtr = func() (p [numFeatures]*feature) {
	for i := range p {
		f := feature(i)
		p[i] = &f
	}
	return p
}()

// classify maps a series to a feature (see doc.go's table).
func (r *Receiver) classify(name string, lbls []label, hostLabel string, counterMeta bool) class {
	switch name {
	case "node_cpu_seconds_total":
		roles := uint8(2)
		if get(lbls, "mode") == "idle" {
			roles |= 1
		}
		return class{counter: true, feature: featurePtr[featCPU], roles: roles}
	case "node_memory_MemAvailable_bytes":
		return class{feature: featurePtr[featMemory], roles: 1}
	case "node_memory_MemTotal_bytes":
		return class{feature: featurePtr[featMemory], roles: 2}
	case "node_filesystem_avail_bytes", "node_filesystem_size_bytes":
		if get(lbls, "mountpoint") != r.opt.RootMountpoint {
			return class{skip: true}
		}
		roles := uint8(1)
		if name == "node_filesystem_size_bytes" {
			roles = 2
		}
		return class{feature: featurePtr[featDisk], roles: roles}
	case "node_network_receive_bytes_total", "node_network_transmit_bytes_total":
		if get(lbls, "device") == "lo" {
			return class{skip: true}
		}
		f := featurePtr[featNetIn]
		if name == "node_network_transmit_bytes_total" {
			f = featurePtr[featNetOut]
		}
		return class{counter: true, feature: f, roles: 1}
	case "node_load1":
		return class{metric: anomaly.MetricLoad}
	}
	counter := counterMeta || strings.HasSuffix(name, "_total") || r.counters.isCounter(name)
	return class{counter: counter, metric: extraName(name, lbls, hostLabel, counter)}
}

// ignoredLabels do not tell one series of a host's metric from another.
var ignoredLabels = map[string]bool{"__name__": true, "job": true, "instance": true, "host": true, "smartcloudops": true}

// extraName names a selected series kept on its own: the metric name in
// lower case (a counter's "_total" becomes "_rate": it is stored per
// second), then the values of its other labels, sorted by label name, each
// after a dot, with characters the anomaly service does not take replaced
// by "_"; a name over anomaly.MaxMetricNameLen keeps its start and ends in
// a hash of the whole.
func extraName(name string, lbls []label, hostLabel string, counter bool) string {
	var b strings.Builder
	base := strings.ToLower(name)
	if counter {
		base = strings.TrimSuffix(base, "_total") + "_rate"
	}
	b.WriteString(base)
	for _, l := range lbls {
		if ignoredLabels[l.name] || l.name == hostLabel {
			continue
		}
		b.WriteByte('.')
		b.WriteString(strings.ToLower(l.value))
	}
	out := []byte(b.String())
	for i, c := range out {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-') {
			out[i] = '_'
		}
	}
	if len(out) > anomaly.MaxMetricNameLen {
		sum := strconv.FormatUint(xxhash.Sum64(out), 16)
		out = append(out[:anomaly.MaxMetricNameLen-len(sum)-1], '.')
		out = append(out, sum...)
	}
	return string(out)
}
