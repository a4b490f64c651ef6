package cache

import (
	"hash/maphash"
	"strings"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
)

// localEntry is one value in the in-process tier. It is immutable once
// stored: readers share it without copying.
type localEntry struct {
	env envelope
	// expireAt is the value's own expiry (unix nanoseconds by the injected
	// clock); localExpireAt is when this copy must leave memory, which is
	// never later.
	expireAt      int64
	localExpireAt int64
}

// entryOverhead approximates the bookkeeping bytes otter and localEntry
// add to each key and value, so the byte bound is honest for small values.
const entryOverhead = 128

// stripes is the number of invalidation counters; a power of two.
const stripes = 1024

// localTier is the in-process tier: an otter cache bounded by bytes plus
// the invalidation counters that stop a read racing an invalidation from
// caching the value the invalidation was about.
type localTier struct {
	c         *otter.Cache[string, *localEntry]
	now       func() time.Time
	seed      maphash.Seed
	gens      [stripes]atomic.Uint64
	evictions atomic.Uint64
}

func newLocalTier(maxBytes int64, now func() time.Time) (*localTier, error) {
	l := &localTier{now: now, seed: maphash.MakeSeed()}
	c, err := otter.New(&otter.Options[string, *localEntry]{
		MaximumWeight: uint64(maxBytes),
		Weigher: func(k string, v *localEntry) uint32 {
			return uint32(len(k) + len(v.env.payload) + len(v.env.contentType) + entryOverhead)
		},
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, *localEntry]) time.Duration {
			d := time.Duration(e.Value.localExpireAt - l.now().UnixNano())
			return max(d, time.Nanosecond)
		}),
		OnAtomicDeletion: func(e otter.DeletionEvent[string, *localEntry]) {
			if e.Cause == otter.CauseOverflow {
				l.evictions.Add(1)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	l.c = c
	return l, nil
}

func (l *localTier) stripe(key string) *atomic.Uint64 {
	return &l.gens[maphash.String(l.seed, key)&(stripes-1)]
}

// get returns the live entry for key. Expiry is checked against the
// injected clock here, not only by otter, so TTL tests are deterministic.
func (l *localTier) get(key string) (*localEntry, bool) {
	e, ok := l.c.GetIfPresent(key)
	if !ok {
		return nil, false
	}
	if e.localExpireAt <= l.now().UnixNano() {
		l.c.Invalidate(key)
		return nil, false
	}
	return e, true
}

// set stores e unconditionally: used for the caller's own writes.
func (l *localTier) set(key string, e *localEntry) {
	l.stripe(key).Add(1)
	l.c.Set(key, e)
}

// generation is read before a Redis GET; fill stores the result only if
// no invalidation of that key's stripe happened since.
func (l *localTier) generation(key string) uint64 { return l.stripe(key).Load() }

// fill stores a value read from Redis unless key was invalidated after gen
// was taken. The check runs under otter's bucket lock, and invalidate bumps
// the counter before it takes that lock, so a stale fill cannot slip in
// between.
func (l *localTier) fill(key string, gen uint64, e *localEntry) {
	s := l.stripe(key)
	l.c.Compute(key, func(old *localEntry, found bool) (*localEntry, otter.ComputeOp) {
		if s.Load() != gen {
			return old, otter.CancelOp
		}
		return e, otter.WriteOp
	})
}

// invalidate drops key; it reports whether a live copy was present.
func (l *localTier) invalidate(key string) bool {
	l.stripe(key).Add(1)
	e, ok := l.c.Invalidate(key)
	return ok && e.localExpireAt > l.now().UnixNano()
}

// flush drops everything: the tier may have diverged from Redis.
func (l *localTier) flush() {
	for i := range l.gens {
		l.gens[i].Add(1)
	}
	l.c.InvalidateAll()
}

// clearPrefix drops every key starting with prefix and returns how many
// live entries it dropped. It walks the whole tier, which is bounded by
// LocalMaxBytes.
func (l *localTier) clearPrefix(prefix string) int64 {
	now := l.now().UnixNano()
	var n int64
	for k := range l.c.Keys() {
		if strings.HasPrefix(k, prefix) {
			l.stripe(k).Add(1)
			if e, ok := l.c.Invalidate(k); ok && e.localExpireAt > now {
				n++
			}
		}
	}
	return n
}

func (l *localTier) entries() int  { return l.c.EstimatedSize() }
func (l *localTier) bytes() uint64 { return l.c.WeightedSize() }
func (l *localTier) close()        { l.c.StopAllGoroutines() }
