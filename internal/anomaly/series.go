package anomaly

import (
	"container/list"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/anomaly/stream"
)

// seriesKey names one metric series.
type seriesKey struct{ host, metric string }

// series is the learned state of one (host, metric) series.
type series struct {
	key  seriesKey
	det  *stream.Detector
	ctx  seriesContext
	last time.Time // newest timestamp learned from
	elem *list.Element
}

// seriesShards spreads the series over independently locked maps so
// concurrent requests for different hosts rarely wait on each other.
const seriesShards = 64

// seriesOverhead is what a series costs on the heap besides its detector
// and its names: the series struct, its LRU element, its map entry and the
// allocator's rounding (TestSeriesMemoryEstimate measures it against the
// heap).
const seriesOverhead = 450

// bytes is the series' estimated heap footprint.
func (sr *series) bytes() int64 {
	return int64(sr.det.MemBytes() + len(sr.key.host) + len(sr.key.metric) + seriesOverhead)
}

// seriesSet holds every series' state with two bounds, a count and an
// estimate of the heap bytes: past either the least recently updated series
// of a shard are evicted (they warm up again if they come back), so memory
// stays bounded whatever hosts and metric names clients invent. The heap the
// Go runtime asks the OS for is about twice the live bytes at the default
// GOGC, which is what RSS shows.
type seriesSet struct {
	seed          maphash.Seed
	shards        [seriesShards]seriesShard
	perShard      int
	perShardBytes int64
	opt           stream.Options
	count         atomic.Int64
	bytes         atomic.Int64
	evicted       atomic.Uint64
	onEvict       func()
	// empty is a detector that has seen nothing, copied for series a detect
	// request reads that the set does not hold; pool holds the copies.
	empty *stream.Detector
	pool  sync.Pool
}

type seriesShard struct {
	mu    sync.Mutex
	m     map[seriesKey]*series
	lru   list.List // front = most recently used
	bytes int64
}

// newSeriesSet builds the set; opt must have passed stream.New.
func newSeriesSet(maxSeries int, maxBytes int64, opt stream.Options, onEvict func()) (*seriesSet, error) {
	empty, err := stream.New(opt)
	if err != nil {
		return nil, err
	}
	s := &seriesSet{seed: maphash.MakeSeed(), perShard: max(1, maxSeries/seriesShards), perShardBytes: max(1, maxBytes/seriesShards), opt: opt, onEvict: onEvict, empty: empty}
	s.pool.New = func() any { return &series{det: empty.Clone()} }
	for i := range s.shards {
		s.shards[i].m = make(map[seriesKey]*series)
	}
	return s, nil
}

// observation is what one metric of one sample yielded.
type observation struct {
	metric string
	value  float64
	res    stream.Result
	// scored is false while the series warms up and for a late point, which
	// the stream does not take: the thresholds speak for it instead.
	scored bool
	late   bool
}

// observe reads every metric of s against its series, teaching the series
// when s is newer than what it has seen, and writes the context features.
// Only ingest calls it: it is the one path that changes what the service has
// learned.
func (ss *seriesSet) observe(s Sample, feats map[string]float64) []observation {
	names := sortedKeys(s.Metrics)
	out := make([]observation, 0, len(names))
	for _, name := range names {
		k := seriesKey{s.Host, name}
		sh := ss.shard(k)
		sh.mu.Lock()
		sr := sh.m[k]
		if sr == nil {
			det, err := stream.New(ss.opt)
			if err != nil { // options were checked in New; unreachable
				sh.mu.Unlock()
				continue
			}
			sr = &series{key: k, det: det}
			sr.elem = sh.lru.PushFront(sr)
			sh.m[k] = sr
			b := sr.bytes()
			sh.bytes += b
			ss.bytes.Add(b)
			ss.count.Add(1)
			for sh.lru.Len() > 1 && (sh.lru.Len() > ss.perShard || sh.bytes > ss.perShardBytes) {
				old := sh.lru.Remove(sh.lru.Back()).(*series)
				delete(sh.m, old.key)
				b := old.bytes()
				sh.bytes -= b
				ss.bytes.Add(-b)
				ss.count.Add(-1)
				ss.evicted.Add(1)
				if ss.onEvict != nil {
					ss.onEvict()
				}
			}
		} else {
			sh.lru.MoveToFront(sr.elem)
		}
		out = append(out, sr.step(name, s.Metrics[name], s.Timestamp, feats))
		sh.mu.Unlock()
	}
	return out
}

// latest is the newest value series (host, metric) learned and its time.
func (ss *seriesSet) latest(host, metric string) (float64, time.Time, bool) {
	k := seriesKey{host, metric}
	sh := ss.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sr := sh.m[k]
	if sr == nil || sr.ctx.n == 0 {
		return 0, time.Time{}, false
	}
	return sr.ctx.prev, sr.last, true
}

// latest is seriesSet.latest as the request sees it: its own copy of the
// series when it read one, else the shared set.
func (sn *snapshot) latest(host, metric string) (float64, time.Time, bool) {
	if sr := sn.find(seriesKey{host, metric}); sr != nil {
		if sr.ctx.n == 0 {
			return 0, time.Time{}, false
		}
		return sr.ctx.prev, sr.last, true
	}
	return sn.ss.latest(host, metric)
}

func (ss *seriesSet) shard(k seriesKey) *seriesShard {
	return &ss.shards[maphash.Comparable(ss.seed, k)%seriesShards]
}

// step scores v against the series and learns from it unless it is late.
func (sr *series) step(name string, v float64, t time.Time, feats map[string]float64) observation {
	sr.ctx.features(name, v, feats)
	o := observation{metric: name, value: v}
	if sr.ctx.n > 0 && !t.After(sr.last) {
		o.late = true
		return o
	}
	o.res = sr.det.Update(t, v)
	o.scored = !o.res.Warming
	sr.ctx.update(v)
	sr.last = t
	return o
}

// snapshot is a read-only view of the series set for one detect request.
// The first time the request reads a series it copies the series' state
// (under the shard's lock, so the copy is consistent), and it scores every
// later sample of the request against that copy: a request's own samples
// are read in order against each other, as ingest would read them, but
// nothing it sends reaches the shared state. A series the set does not hold
// starts empty in the copy and is never added, so a detect request cannot
// create series, evict them, move their clocks or poison their statistics.
// The copies come from a pool and go back to it on release, so a detect
// allocates no detector state in the steady state.
type snapshot struct {
	ss     *seriesSet
	copies []*series
	// index finds a copy once a request holds many series; small requests
	// search copies.
	index map[seriesKey]*series
}

// snapshotIndexAt is the number of copies past which a request indexes
// them in a map rather than searching the slice.
const snapshotIndexAt = 16

func (ss *seriesSet) snapshot() *snapshot { return &snapshot{ss: ss} }

// observe is seriesSet.observe against the request's copies.
func (sn *snapshot) observe(s Sample, feats map[string]float64) []observation {
	names := sortedKeys(s.Metrics)
	out := make([]observation, 0, len(names))
	for _, name := range names {
		k := seriesKey{s.Host, name}
		sr := sn.find(k)
		if sr == nil {
			sr = sn.ss.copyOf(k)
			sn.copies = append(sn.copies, sr)
			switch {
			case sn.index != nil:
				sn.index[k] = sr
			case len(sn.copies) > snapshotIndexAt:
				sn.index = make(map[seriesKey]*series, 2*len(sn.copies))
				for _, c := range sn.copies {
					sn.index[c.key] = c
				}
			}
		}
		out = append(out, sr.step(name, s.Metrics[name], s.Timestamp, feats))
	}
	return out
}

func (sn *snapshot) find(k seriesKey) *series {
	if sn.index != nil {
		return sn.index[k]
	}
	for _, c := range sn.copies {
		if c.key == k {
			return c
		}
	}
	return nil
}

// release returns the copies to the pool; the snapshot is not used again.
func (sn *snapshot) release() {
	for i, c := range sn.copies {
		c.key = seriesKey{}
		sn.ss.pool.Put(c)
		sn.copies[i] = nil
	}
	sn.copies, sn.index = nil, nil
}

// copyOf returns a private copy of series k, or an empty series (a copy of
// the pristine detector) when the set holds none.
func (ss *seriesSet) copyOf(k seriesKey) *series {
	c := ss.pool.Get().(*series)
	c.key = k
	sh := ss.shard(k)
	sh.mu.Lock()
	if sr := sh.m[k]; sr != nil {
		sr.det.CopyTo(c.det)
		c.ctx, c.last = sr.ctx, sr.last
		sh.mu.Unlock()
		return c
	}
	sh.mu.Unlock()
	ss.empty.CopyTo(c.det)
	c.ctx, c.last = seriesContext{}, time.Time{}
	return c
}

// len is the number of series held.
func (ss *seriesSet) len() int { return int(ss.count.Load()) }

// heapBytes is the estimated heap footprint of the series held.
func (ss *seriesSet) heapBytes() int64 { return ss.bytes.Load() }
