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

// assembleDepth is how many instants a group remembers while its senders
// keep up: the one filling, the ones before it (which late shards may still
// complete, and whose values a sender's retry rebuilds), and the history
// the expected input count is learned from.
const assembleDepth = 4

// maxAssembleDepth is how many a group may remember while instants are
// still incomplete. A Prometheus catching up after an outage lets each
// shard run up to its queue capacity ahead of the slowest (10,000 samples
// by default), which for a host whose series spread over many shards is
// tens of scrapes; a group grows only while it has that many unfinished
// instants, and a finished instant keeps no input list.
const maxAssembleDepth = 64

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
	n       int   // inputs taken
	ids     []uint64
	acc     [2]float64
	partial bool // an input had no value (a counter's first sample)
	done    bool // the value was given (or given up on)
	emitted bool
	value   float64
}

type group struct {
	slots  []instant
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
	// repeat: the tracker saw this sample already (a retried request).
	repeat bool
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
		g = &group{slots: make([]instant, assembleDepth)}
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
	if s.done {
		// A retried request, or an input past the count expected (the
		// host grew, or the instant completed on a count learned before
		// a lagging shard's series were first seen): the next instants
		// learn the new count. Give the value again if it was given, so
		// a retry rebuilds the same row.
		if !in.repeat {
			s.n++
		}
		if s.emitted {
			out = append(out, assembled{in.key.host, featureNames[in.key.f], s.t, s.value})
		}
		return out
	}
	if slices.Contains(s.ids, in.id) {
		return out // a retried request's input of an unfinished instant
	}
	s.ids = append(s.ids, in.id)
	s.n++
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
	want := fixedInputs[in.key.f]
	if want == 0 {
		want = g.expected(s)
	}
	if want == 0 || s.n < want {
		return out
	}
	s.done, s.ids = true, nil
	g.giveUpBefore(s.t, func() { a.result(in.key.f, false) })
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

// slot finds the instant t, or makes room for it: in a free slot (unused
// or finished, the oldest first), in a new one while the group is below
// maxAssembleDepth, or in place of the oldest unfinished instant; nil when
// t is older than every instant held. dropped says the instant forgotten
// had inputs but never completed.
func (g *group) slot(t int64) (_ *instant, dropped bool) {
	oldest, free := -1, -1
	for i := range g.slots {
		s := &g.slots[i]
		if s.t == t && s.t != 0 {
			return s, false
		}
		if oldest < 0 || s.t < g.slots[oldest].t {
			oldest = i
		}
		if (s.t == 0 || s.done) && (free < 0 || s.t < g.slots[free].t) {
			free = i
		}
	}
	switch {
	case g.slots[oldest].t != 0 && t < g.slots[oldest].t:
		return nil, false
	case free >= 0:
		s := &g.slots[free]
		*s = instant{t: t, ids: s.ids[:0]}
		return s, false
	case len(g.slots) < maxAssembleDepth:
		g.slots = append(g.slots, instant{t: t})
		return &g.slots[len(g.slots)-1], false
	}
	o := &g.slots[oldest]
	dropped = o.n > 0
	*o = instant{t: t, ids: o.ids[:0]}
	return o, dropped
}

// giveUpBefore ends the unfinished instants older than t, which has just
// completed: every shard sends its series in time order, so the shards
// that completed t have sent all they had for the instants before it, and
// an older instant still short of inputs never gets them (a counter's
// first sample, a device that went away). Ending them frees their slots,
// so a group grows only while its senders are catching up.
func (g *group) giveUpBefore(t int64, dropped func()) {
	for i := range g.slots {
		s := &g.slots[i]
		if s.t != 0 && s.t < t && !s.done {
			s.done, s.ids = true, nil
			if s.n > 0 {
				dropped()
			}
		}
	}
}

// expected is the input count learned from the group's other instants:
// the most any of them saw, once at least minHistory of them saw any.
func (g *group) expected(self *instant) int {
	n, hist := 0, 0
	for i := range g.slots {
		s := &g.slots[i]
		if s == self || s.t == 0 || s.n == 0 {
			continue
		}
		hist++
		n = max(n, s.n)
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
