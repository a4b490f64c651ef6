package promwrite

import (
	"slices"
	"sync"
	"time"
)

// A derived feature (cpu_usage, memory_usage, disk_usage, network_in,
// network_out) is computed from several series of one host at one scrape:
// every cpu×mode counter, MemAvailable and MemTotal, every network device.
// Prometheus shards a scrape's series over parallel queues, so they reach
// the receiver in different requests, in any order, seconds apart. The
// assembler collects them per (tenant, host, feature, timestamp) and gives
// the feature's value once every input of that instant has arrived: a fixed
// number for two-input features, and for the others the most inputs seen at
// any other instant still remembered (a host's cpu count changes rarely).
// The value goes into the request that completed it; the store merges it
// into the host's row for that instant. An instant that never completes is
// dropped, counted, rather than computed from part of its inputs.

// Feature kinds that combine inputs.
type feature uint8

const (
	featCPU feature = iota
	featMemory
	featDisk
	featNetIn
	featNetOut
	numFeatures
)

var featureNames = [numFeatures]string{"cpu_usage", "memory_usage", "disk_usage", "network_in", "network_out"}

// fixedInputs is the input count of two-input features; 0 is learned.
var fixedInputs = [numFeatures]int{featMemory: 2, featDisk: 2}

// assembleDepth is how many instants a group remembers: the one filling,
// the ones before it (which late shards may still complete, and whose
// values a sender's retry rebuilds), and the history the expected input
// count is learned from.
const assembleDepth = 4

// minHistory is how many other instants with inputs a learned-count group
// needs before it trusts their count. One: a counter's first instant gives
// no value anyway, and by the second the first has normally all arrived.
const minHistory = 1

type groupKey struct {
	tenant, host string
	f            feature
}

// instant is one timestamp's inputs of a group.
type instant struct {
	t       int64 // Unix ms; 0: unused slot
	ids     []uint64
	acc     [2]float64
	partial bool // an input had no value (a counter's first sample)
	done    bool // the value was given (or given up on)
	emitted bool
	value   float64
}

type group struct {
	slots  [assembleDepth]instant
	seenNS int64
}

// assembled is a feature value to add to the request's points.
type assembled struct {
	host   string
	metric string
	t      int64
	value  float64
}

// assembler is safe for concurrent use.
type assembler struct {
	mu        sync.Mutex
	groups    map[groupKey]*group
	idle      time.Duration
	lastSweep int64
	// counts of instants completed and dropped, per feature, for metrics.
	onResult func(f feature, emitted bool)
}

func newAssembler(idle time.Duration, onResult func(feature, bool)) *assembler {
	return &assembler{groups: map[groupKey]*group{}, idle: idle, onResult: onResult}
}

// input is one series' contribution: its identity, its instant, which
// accumulator it adds to (role 0 and/or 1) and whether it has a value.
type input struct {
	key   groupKey
	id    uint64
	t     int64
	v     float64
	roles uint8 // bit 0: acc[0], bit 1: acc[1]
	ok    bool
}

// add takes a request's inputs (sorted by time, so one request holding two
// scrapes fills the earlier first) and appends what they complete to out.
func (a *assembler) add(nowNS int64, in []input, out []assembled) []assembled {
	if len(in) == 0 {
		return out
	}
	slices.SortStableFunc(in, func(x, y input) int {
		switch {
		case x.t < y.t:
			return -1
		case x.t > y.t:
			return 1
		}
		return 0
	})
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sweep(nowNS)
	for i := range in {
		out = a.one(nowNS, &in[i], out)
	}
	return out
}

func (a *assembler) one(nowNS int64, in *input, out []assembled) []assembled {
	g := a.groups[in.key]
	if g == nil {
		g = &group{}
		a.groups[in.key] = g
	}
	g.seenNS = nowNS
	s, dropped := g.slot(in.t)
	if dropped {
		a.result(in.key.f, false)
	}
	if s == nil {
		// Older than every instant remembered: its instant is long gone.
		return out
	}
	if slices.Contains(s.ids, in.id) {
		// A retried request: give the value again if it was given, so
		// the retry rebuilds the same row.
		if s.emitted {
			out = append(out, assembled{in.key.host, featureNames[in.key.f], s.t, s.value})
		}
		return out
	}
	s.ids = append(s.ids, in.id)
	if !in.ok {
		s.partial = true
	} else {
		if in.roles&1 != 0 {
			s.acc[0] += in.v
		}
		if in.roles&2 != 0 {
			s.acc[1] += in.v
		}
	}
	if s.done {
		// An input past the count expected: the host grew; the next
		// instants learn the new count.
		return out
	}
	want := fixedInputs[in.key.f]
	if want == 0 {
		want = g.expected(s)
	}
	if want == 0 || len(s.ids) < want {
		return out
	}
	s.done = true
	v, ok := compute(in.key.f, s.acc)
	if s.partial || !ok {
		a.result(in.key.f, false)
		return out
	}
	s.emitted, s.value = true, v
	a.result(in.key.f, true)
	return append(out, assembled{in.key.host, featureNames[in.key.f], s.t, v})
}

func (a *assembler) result(f feature, emitted bool) {
	if a.onResult != nil {
		a.onResult(f, emitted)
	}
}

// slot finds the instant t, or makes room for it by forgetting the oldest
// when t is newer than it; nil when t is older than every instant held.
// dropped says the instant forgotten had inputs but never completed.
func (g *group) slot(t int64) (_ *instant, dropped bool) {
	oldest := -1
	for i := range g.slots {
		s := &g.slots[i]
		if s.t == t && s.t != 0 {
			return s, false
		}
		if oldest < 0 || s.t < g.slots[oldest].t {
			oldest = i
		}
	}
	o := &g.slots[oldest]
	if o.t != 0 && t < o.t {
		return nil, false
	}
	dropped = o.t != 0 && !o.done && len(o.ids) > 0
	*o = instant{t: t, ids: o.ids[:0]}
	return o, dropped
}

// expected is the input count learned from the group's other instants:
// the most any of them saw, once at least minHistory of them saw any.
func (g *group) expected(self *instant) int {
	n, hist := 0, 0
	for i := range g.slots {
		s := &g.slots[i]
		if s == self || s.t == 0 || len(s.ids) == 0 {
			continue
		}
		hist++
		n = max(n, len(s.ids))
	}
	if hist < minHistory {
		return 0
	}
	return n
}

// compute is the feature's value from its accumulators.
func compute(f feature, acc [2]float64) (float64, bool) {
	switch f {
	case featCPU:
		// acc[0]: idle seconds per second, acc[1]: all modes.
		if acc[1] <= 0 {
			return 0, false
		}
		return clampPercent(100 * (1 - acc[0]/acc[1])), true
	case featMemory, featDisk:
		// acc[0]: available bytes, acc[1]: total bytes.
		if acc[1] <= 0 {
			return 0, false
		}
		return clampPercent(100 * (1 - acc[0]/acc[1])), true
	default:
		return acc[0], true
	}
}

func clampPercent(v float64) float64 { return min(100, max(0, v)) }

// sweep forgets groups not fed for the idle time, at most once per tenth
// of it, so a fleet that churns hosts keeps the map bounded.
func (a *assembler) sweep(nowNS int64) {
	idle := int64(a.idle)
	if nowNS-a.lastSweep < idle/10 {
		return
	}
	a.lastSweep = nowNS
	for k, g := range a.groups {
		if nowNS-g.seenNS > idle {
			delete(a.groups, k)
		}
	}
}
