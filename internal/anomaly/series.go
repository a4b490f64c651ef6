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

// seriesSet holds every series' state with a bound on how many are kept:
// past it the least recently updated series of a shard is evicted (it warms
// up again if it comes back), so memory stays bounded whatever hosts and
// metric names clients invent.
type seriesSet struct {
	seed     maphash.Seed
	shards   [seriesShards]seriesShard
	perShard int
	opt      stream.Options
	count    atomic.Int64
	evicted  atomic.Uint64
	onEvict  func()
}

type seriesShard struct {
	mu  sync.Mutex
	m   map[seriesKey]*series
	lru list.List // front = most recently used
}

func newSeriesSet(maxSeries int, opt stream.Options, onEvict func()) *seriesSet {
	s := &seriesSet{seed: maphash.MakeSeed(), perShard: max(1, maxSeries/seriesShards), opt: opt, onEvict: onEvict}
	for i := range s.shards {
		s.shards[i].m = make(map[seriesKey]*series)
	}
	return s
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
func (ss *seriesSet) observe(s Sample, feats map[string]float64) []observation {
	names := sortedKeys(s.Metrics)
	out := make([]observation, 0, len(names))
	for _, name := range names {
		v := s.Metrics[name]
		k := seriesKey{s.Host, name}
		sh := &ss.shards[maphash.Comparable(ss.seed, k)%seriesShards]
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
			ss.count.Add(1)
			if sh.lru.Len() > ss.perShard {
				old := sh.lru.Remove(sh.lru.Back()).(*series)
				delete(sh.m, old.key)
				ss.count.Add(-1)
				ss.evicted.Add(1)
				if ss.onEvict != nil {
					ss.onEvict()
				}
			}
		} else {
			sh.lru.MoveToFront(sr.elem)
		}
		sr.ctx.features(name, v, feats)
		o := observation{metric: name, value: v}
		if sr.ctx.n > 0 && !s.Timestamp.After(sr.last) {
			o.late = true
		} else {
			o.res = sr.det.Update(s.Timestamp, v)
			o.scored = !o.res.Warming
			sr.ctx.update(v)
			sr.last = s.Timestamp
		}
		sh.mu.Unlock()
		out = append(out, o)
	}
	return out
}

// len is the number of series held.
func (ss *seriesSet) len() int { return int(ss.count.Load()) }
