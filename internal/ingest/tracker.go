package ingest

import (
	"sync"
	"sync/atomic"
	"time"
)

// Kind says how a series' values are read.
type Kind uint8

// The kinds of series a receiver maps.
const (
	// Gauge values are kept as they are.
	Gauge Kind = iota
	// Counter values are cumulative; what is kept is the per-second rate
	// between a sample and the series' previous one.
	Counter
)

// Outcome is what a Tracker made of one sample. Receivers count every
// outcome, so a sample that is not kept is never silently gone.
type Outcome uint8

// The outcomes of Tracker.Observe.
const (
	// Kept: the returned value is to be stored (a gauge's value, a
	// counter's rate).
	Kept Outcome = iota
	// First: a counter's first sample, or its first after a stale marker;
	// it gives no rate yet.
	First
	// Repeat: the same time and value as the series' newest sample, as a
	// sender's retry sends it. When that sample was kept, the returned value
	// is what was kept then, so the retry rebuilds the same row.
	Repeat
	// OutOfOrder: older than the series' newest sample, or at its time with
	// another value. Not kept: the series has moved past it, as in
	// Prometheus's own storage.
	OutOfOrder
	// OverLimit: a new series of a tenant that already has
	// TrackerOptions.MaxSeriesPerTenant series.
	OverLimit
)

var outcomeNames = [...]string{Kept: "kept", First: "first_counter_sample", Repeat: "repeat",
	OutOfOrder: "out_of_order", OverLimit: "series_limit"}

// String is the outcome's metric label value.
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// TrackerOptions configure a Tracker. The zero value is usable: no series
// cap, and series idle for DefaultIdleAfter are forgotten.
type TrackerOptions struct {
	// MaxSeriesPerTenant caps the series one tenant has at a time; 0 is no
	// cap. A series counts from its first sample until it goes stale or
	// idle, so a fleet that churns series frees room as they go.
	MaxSeriesPerTenant int
	// IdleAfter forgets a series not seen for this long (by the wall
	// clock): its counter state and its place under the cap.
	IdleAfter time.Duration
	// Now is the wall clock; time.Now when nil.
	Now func() time.Time
}

// DefaultIdleAfter is TrackerOptions.IdleAfter when zero: Prometheus marks
// a series stale after 5 minutes without a scrape, and a third of an hour
// leaves room for a sender that was down briefly to keep its counters.
const DefaultIdleAfter = 20 * time.Minute

const trackerShards = 32

// Tracker holds what a receiver must remember per series between requests:
// the newest sample (to order and deduplicate), the counter value a rate is
// taken from, and the series' place under its tenant's cap. It is safe for
// concurrent use; Prometheus sends one series' samples in order on one
// shard, and concurrent requests touch mostly different series.
type Tracker struct {
	opt     TrackerOptions
	shards  [trackerShards]trackerShard
	mu      sync.Mutex // guards tenants
	tenants map[string]*atomic.Int64
	total   atomic.Int64
}

type seriesID struct {
	tenant string
	id     uint64
}

type seriesState struct {
	t      int64 // newest sample's time, Unix ns
	v      float64
	start  int64   // the counter's start time, Unix ns, when its sender says (ObserveSince)
	out    float64 // what was kept for it, when kept
	kept   bool
	seenNS int64 // wall clock of the last sample
}

type trackerShard struct {
	mu        sync.Mutex
	m         map[seriesID]*seriesState
	lastSweep int64
}

// NewTracker returns an empty Tracker.
func NewTracker(o TrackerOptions) *Tracker {
	if o.IdleAfter <= 0 {
		o.IdleAfter = DefaultIdleAfter
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	t := &Tracker{opt: o, tenants: map[string]*atomic.Int64{}}
	for i := range t.shards {
		t.shards[i].m = map[seriesID]*seriesState{}
	}
	return t
}

// Observe reads sample (ts, v) of series id of tenant, where id is the
// receiver's hash of the series' identity (its label set). It returns the
// value to keep and why; the value means something only for Kept and for a
// Repeat of a kept sample (the bool is then true).
func (t *Tracker) Observe(tenant string, id uint64, kind Kind, ts time.Time, v float64) (float64, Outcome, bool) {
	return t.observe(tenant, id, kind, ts, v, 0)
}

// ObserveSince is Observe for a Counter whose sender says since when it has
// counted (OTLP's start_time_unix_nano): a start other than the one the
// series had is a reset even when the new value is not below the old one
// (a process restarted and counted past its predecessor's total before its
// first export), so the rate is what was counted since the restart. A zero
// start says nothing and leaves the value-based reset rule alone.
func (t *Tracker) ObserveSince(tenant string, id uint64, start, ts time.Time, v float64) (float64, Outcome, bool) {
	var ns int64
	if !start.IsZero() {
		ns = start.UnixNano()
	}
	return t.observe(tenant, id, Counter, ts, v, ns)
}

func (t *Tracker) observe(tenant string, id uint64, kind Kind, ts time.Time, v float64, start int64) (float64, Outcome, bool) {
	now := t.opt.Now().UnixNano()
	key := seriesID{tenant, id}
	sh := &t.shards[id%trackerShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	t.sweep(sh, now)
	st := sh.m[key]
	tn := ts.UnixNano()
	if st == nil {
		if !t.admit(tenant) {
			return 0, OverLimit, false
		}
		st = &seriesState{t: tn, v: v, start: start, seenNS: now}
		sh.m[key] = st
		if kind == Counter {
			return 0, First, false
		}
		st.out, st.kept = v, true
		return v, Kept, true
	}
	st.seenNS = now
	switch {
	case tn == st.t && sameValue(v, st.v):
		return st.out, Repeat, st.kept
	case tn <= st.t:
		return 0, OutOfOrder, false
	}
	prevT, prevV := st.t, st.v
	restarted := start != 0 && st.start != 0 && start != st.start
	st.t, st.v = tn, v
	if start != 0 {
		st.start = start
	}
	if kind == Gauge {
		st.out, st.kept = v, true
		return v, Kept, true
	}
	dt := float64(tn-prevT) / 1e9
	inc := v - prevV
	if v < prevV || restarted {
		// A reset: the counter restarted from zero somewhere in between,
		// and v is what it counted since, as PromQL's rate() reads it.
		inc = v
	}
	st.out, st.kept = inc/dt, true
	return st.out, Kept, true
}

// Forget drops series id of tenant, as a stale marker asks: the series
// ended, its next sample starts afresh (a counter's gives no rate), and it
// no longer counts under the tenant's cap. It reports whether the series
// was known.
func (t *Tracker) Forget(tenant string, id uint64) bool {
	key := seriesID{tenant, id}
	sh := &t.shards[id%trackerShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.m[key]; !ok {
		return false
	}
	delete(sh.m, key)
	t.release(tenant)
	return true
}

// Series is the number of series tracked now.
func (t *Tracker) Series() int { return int(t.total.Load()) }

// TenantSeries is the number of series tenant has now.
func (t *Tracker) TenantSeries(tenant string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c := t.tenants[tenant]; c != nil {
		return int(c.Load())
	}
	return 0
}

func (t *Tracker) admit(tenant string) bool {
	t.mu.Lock()
	c := t.tenants[tenant]
	if c == nil {
		c = new(atomic.Int64)
		t.tenants[tenant] = c
	}
	t.mu.Unlock()
	if n := c.Add(1); t.opt.MaxSeriesPerTenant > 0 && n > int64(t.opt.MaxSeriesPerTenant) {
		c.Add(-1)
		return false
	}
	t.total.Add(1)
	return true
}

func (t *Tracker) release(tenant string) {
	t.mu.Lock()
	if c := t.tenants[tenant]; c != nil && c.Add(-1) == 0 {
		delete(t.tenants, tenant)
	}
	t.mu.Unlock()
	t.total.Add(-1)
}

// sweep forgets the shard's idle series, at most once per tenth of
// IdleAfter, so the cost is spread over the samples and the state stays
// bounded by what was sent in the last IdleAfter.
func (t *Tracker) sweep(sh *trackerShard, now int64) {
	idle := int64(t.opt.IdleAfter)
	if now-sh.lastSweep < idle/10 {
		return
	}
	sh.lastSweep = now
	for k, st := range sh.m {
		if now-st.seenNS > idle {
			delete(sh.m, k)
			t.release(k.tenant)
		}
	}
}

// sameValue is equality that also holds for two NaNs, so a repeated NaN
// sample is a repeat, not a conflict.
func sameValue(a, b float64) bool {
	return a == b || (a != a && b != b)
}
