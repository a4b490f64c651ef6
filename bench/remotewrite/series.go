package main

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/prompb"
)

// kind says how a simulated series moves from one scrape to the next.
type kind uint8

const (
	// gauge wanders around a level, mean-reverting, inside [lo, hi].
	gauge kind = iota
	// counter only grows: each scrape adds a per-second rate (which itself
	// wanders inside [lo, hi]) times the scrape interval.
	counter
	// constant never changes (MemTotal, a filesystem's size).
	constant
)

// template is one series of a simulated node_exporter, before the host's
// instance label is added.
type template struct {
	name   string
	labels [][2]string
	kind   kind
	// lo and hi bound a gauge's value or a counter's per-second rate.
	lo, hi float64
}

// nodeCPUs is the CPUs of every simulated host: 4 CPUs × 8 modes is the
// largest family of a small node_exporter, as on a real one.
const nodeCPUs = 4

// hostTemplates lists the series of one host: the node_exporter families the
// receiver maps into a host row first (CPU, memory, filesystem, network,
// load), a few application gauges such as a configured mapping would match,
// and then interrupt counters, the long tail a real node_exporter exposes
// and a receiver must read past, until perHost series are listed.
func hostTemplates(perHost int) []template {
	var ts []template
	for cpu := range nodeCPUs {
		c := strconv.Itoa(cpu)
		for _, m := range []struct {
			mode   string
			lo, hi float64
		}{
			{"idle", 0.05, 0.95}, {"iowait", 0, 0.05}, {"irq", 0, 0.01}, {"nice", 0, 0.01},
			{"softirq", 0, 0.02}, {"steal", 0, 0.01}, {"system", 0.01, 0.2}, {"user", 0.02, 0.8},
		} {
			ts = append(ts, template{name: "node_cpu_seconds_total", labels: [][2]string{{"cpu", c}, {"mode", m.mode}}, kind: counter, lo: m.lo, hi: m.hi})
		}
	}
	const gib = 1 << 30
	ts = append(ts,
		template{name: "node_memory_MemTotal_bytes", kind: constant, lo: 16 * gib, hi: 16 * gib},
		template{name: "node_memory_MemAvailable_bytes", kind: gauge, lo: 2 * gib, hi: 14 * gib},
		template{name: "node_memory_MemFree_bytes", kind: gauge, lo: 0.5 * gib, hi: 8 * gib},
		template{name: "node_memory_Buffers_bytes", kind: gauge, lo: 0.1 * gib, hi: 0.5 * gib},
		template{name: "node_memory_Cached_bytes", kind: gauge, lo: 1 * gib, hi: 6 * gib},
		template{name: "node_load1", kind: gauge, lo: 0, hi: 8},
		template{name: "node_load5", kind: gauge, lo: 0, hi: 6},
		template{name: "node_load15", kind: gauge, lo: 0, hi: 4},
	)
	for _, fs := range [][3]string{{"/dev/sda1", "ext4", "/"}, {"/dev/sdb1", "xfs", "/var"}} {
		l := [][2]string{{"device", fs[0]}, {"fstype", fs[1]}, {"mountpoint", fs[2]}}
		ts = append(ts,
			template{name: "node_filesystem_size_bytes", labels: l, kind: constant, lo: 200 * gib, hi: 200 * gib},
			template{name: "node_filesystem_avail_bytes", labels: l, kind: gauge, lo: 20 * gib, hi: 180 * gib},
			template{name: "node_filesystem_free_bytes", labels: l, kind: gauge, lo: 30 * gib, hi: 190 * gib},
		)
	}
	for _, dev := range []string{"eth0", "lo"} {
		l := [][2]string{{"device", dev}}
		ts = append(ts,
			template{name: "node_network_receive_bytes_total", labels: l, kind: counter, lo: 1e3, hi: 5e7},
			template{name: "node_network_transmit_bytes_total", labels: l, kind: counter, lo: 1e3, hi: 5e7},
			template{name: "node_network_receive_packets_total", labels: l, kind: counter, lo: 10, hi: 4e4},
			template{name: "node_network_transmit_packets_total", labels: l, kind: counter, lo: 10, hi: 4e4},
		)
	}
	ts = append(ts,
		template{name: "node_disk_read_bytes_total", labels: [][2]string{{"device", "sda"}}, kind: counter, lo: 0, hi: 2e7},
		template{name: "node_disk_written_bytes_total", labels: [][2]string{{"device", "sda"}}, kind: counter, lo: 0, hi: 2e7},
		template{name: "node_disk_io_time_seconds_total", labels: [][2]string{{"device", "sda"}}, kind: counter, lo: 0, hi: 0.5},
	)
	// Application gauges are taken by configuration, not by name: the
	// receiver's default selection takes series labelled smartcloudops="true".
	app := [][2]string{{"smartcloudops", "true"}}
	ts = append(ts,
		template{name: "app_response_time_ms", labels: app, kind: gauge, lo: 20, hi: 400},
		template{name: "app_error_rate", labels: app, kind: gauge, lo: 0, hi: 0.05},
		template{name: "app_request_rate", labels: app, kind: gauge, lo: 5, hi: 500},
	)
	for i := 0; len(ts) < perHost; i++ {
		ts = append(ts, template{name: "node_interrupts_total",
			labels: [][2]string{{"cpu", strconv.Itoa(i % nodeCPUs)}, {"devices", "dev" + strconv.Itoa(i/nodeCPUs)}, {"type", "IR-PCI-MSI"}},
			kind:   counter, lo: 0, hi: 500})
	}
	// Fewer than the mapped families is refused by newUniverse; here it
	// yields them all, which is how minPerHost counts them.
	return ts
}

// minPerHost is the fewest series a host can have: the mapped families.
func minPerHost() int { return len(hostTemplates(0)) }

// series is one simulated series: its labels as sent (sorted by name, as
// Prometheus sends them) and where it stands.
type series struct {
	labels []prompb.Label
	kind   kind
	lo, hi float64
	// level is a gauge's value or a counter's current per-second rate.
	level float64
	// value is what the next sample carries.
	value float64
}

// universe is every series of a run: hosts × templates, in host order.
type universe struct {
	hosts   int
	perHost int
	all     []*series
}

// newUniverse lays out n series as n/perHost hosts named rwbench-<i> (the
// instance label is "rwbench-<i>:9100", the node_exporter's port).
func newUniverse(n, perHost int) (*universe, error) {
	if perHost < minPerHost() {
		return nil, fmt.Errorf("%d series per host: at least %d (the mapped node_exporter families)", perHost, minPerHost())
	}
	if n < perHost || n%perHost != 0 {
		return nil, fmt.Errorf("%d series: must be a positive multiple of the %d series per host", n, perHost)
	}
	u := &universe{hosts: n / perHost, perHost: perHost}
	tmpl := hostTemplates(perHost)
	for h := range u.hosts {
		inst := "rwbench-" + strconv.Itoa(h) + ":9100"
		for _, t := range tmpl {
			ls := []prompb.Label{{Name: "__name__", Value: t.name}, {Name: "instance", Value: inst}, {Name: "job", Value: "node"}}
			for _, l := range t.labels {
				ls = append(ls, prompb.Label{Name: l[0], Value: l[1]})
			}
			slices.SortFunc(ls, func(a, b prompb.Label) int {
				switch {
				case a.Name < b.Name:
					return -1
				case a.Name > b.Name:
					return 1
				}
				return 0
			})
			u.all = append(u.all, &series{labels: ls, kind: t.kind, lo: t.lo, hi: t.hi})
		}
	}
	return u, nil
}

// labelHash hashes a series' labels the way a shard is chosen: stable
// across runs and processes, so the service and the floor see the same
// partition.
func labelHash(ls []prompb.Label) uint64 {
	h := fnv.New64a()
	for _, l := range ls {
		_, _ = h.Write([]byte(l.Name))
		_, _ = h.Write([]byte{0xff})
		_, _ = h.Write([]byte(l.Value))
		_, _ = h.Write([]byte{0xff})
	}
	return h.Sum64()
}

// partition gives each of shards shards the series whose label hash falls
// to it, as Prometheus's queue manager assigns a series to one shard for
// good: a series' samples stay in order because one shard sends them all.
func (u *universe) partition(shards int) [][]*series {
	parts := make([][]*series, shards)
	for _, s := range u.all {
		i := labelHash(s.labels) % uint64(shards)
		parts[i] = append(parts[i], s)
	}
	return parts
}

// shardGen is one shard's sample source: it walks its series scrape by
// scrape in simulated time and cuts requests of batch samples. Only its
// shard's goroutine touches it.
type shardGen struct {
	series   []*series
	rng      *rand.Rand
	start    time.Time
	interval time.Duration
	// scrape is the scrape being emitted and next the index of its next
	// series; a request may end in the middle of a scrape.
	scrape int64
	next   int
	// progress mirrors scrape for the other shards' goroutines, which
	// keep within a bounded distance of the slowest shard.
	progress atomic.Int64
	// req and its backing arrays are reused for every request: the client
	// marshals the request before Write returns.
	req     prompb.WriteRequest
	samples []prompb.Sample
}

// newShardGen starts a shard at simulated time start. Seeds derive from the
// shard's index, so two generators of the same layout emit the same
// requests in the same order.
func newShardGen(ss []*series, shard int, start time.Time, interval time.Duration, batch int) *shardGen {
	g := &shardGen{
		series: ss, start: start, interval: interval,
		rng:     rand.New(rand.NewPCG(uint64(shard)+1, 0x5eed)),
		samples: make([]prompb.Sample, batch),
	}
	g.req.Timeseries = make([]prompb.TimeSeries, 0, batch)
	for _, s := range ss {
		g.init(s)
	}
	return g
}

// init puts a series somewhere in its range; counters start from a value
// a host up for a while would show.
func (g *shardGen) init(s *series) {
	s.level = s.lo + (s.hi-s.lo)*g.rng.Float64()
	switch s.kind {
	case counter:
		s.value = s.level * 86400 * (1 + 10*g.rng.Float64())
	default:
		s.value = s.level
	}
}

// advance moves a series one scrape on: a gauge or a counter's rate takes
// a mean-reverting random step of about 2% of its range, a counter adds
// rate × interval.
func (g *shardGen) advance(s *series) {
	if s.kind == constant {
		return
	}
	span := s.hi - s.lo
	mid := s.lo + span/2
	s.level += 0.02*span*g.rng.NormFloat64() + 0.01*(mid-s.level)
	s.level = math.Min(math.Max(s.level, s.lo), s.hi)
	switch s.kind {
	case counter:
		s.value += s.level * g.interval.Seconds()
	case gauge:
		s.value = s.level
	}
}

// Now is the simulated time the shard has reached.
func (g *shardGen) now() time.Time {
	return g.start.Add(time.Duration(g.scrape) * g.interval)
}

// nextRequest fills the shard's request with the next batch samples, one
// TimeSeries per sample as Prometheus's remote_write 1.0 queue sends them,
// and returns it with its sample count. The request is valid until the
// next call.
func (g *shardGen) nextRequest(batch int) (*prompb.WriteRequest, int) {
	g.req.Timeseries = g.req.Timeseries[:0]
	if len(g.series) == 0 {
		return &g.req, 0
	}
	for n := 0; n < batch; n++ {
		if g.next == len(g.series) {
			g.next = 0
			g.scrape++
			g.progress.Store(g.scrape)
		}
		s := g.series[g.next]
		g.next++
		if g.scrape > 0 {
			// The first scrape sends the initial values.
			g.advance(s)
		}
		ts := g.now().UnixMilli()
		g.samples[n] = prompb.Sample{Value: s.value, Timestamp: ts}
		g.req.Timeseries = append(g.req.Timeseries, prompb.TimeSeries{Labels: s.labels, Samples: g.samples[n : n+1 : n+1]})
	}
	return &g.req, batch
}
