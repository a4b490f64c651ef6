package anomaly

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"sync"
	"time"
)

// PredictionCache stores forest predictions between requests. The cache part
// (internal/cache) is adapted to it by the wiring; MemoryCache is an
// in-process implementation. Errors are counted and read as misses: a cache
// outage must never fail a detection.
type PredictionCache interface {
	// Get returns the value under key; ok is false on a miss.
	Get(ctx context.Context, key string) (value []byte, ok bool, err error)
	// Set stores value under key for ttl.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
}

// cacheKey is "anomaly:pred2:<model scope>:<sha256 of the feature vector's
// bits>": exact, so two vectors share an entry only when every feature is
// bit-for-bit equal, and short whatever the vector's width.
func cacheKey(version string, row []float64) string {
	h := sha256.New()
	var b [8]byte
	for _, v := range row {
		binary.LittleEndian.PutUint64(b[:], math.Float64bits(v))
		h.Write(b[:])
	}
	return "anomaly:pred2:" + version + ":" + hex.EncodeToString(h.Sum(nil)[:16])
}

func encodeScore(v float64) []byte { return binary.LittleEndian.AppendUint64(nil, math.Float64bits(v)) }

func decodeScore(b []byte) (float64, bool) {
	if len(b) != 8 {
		return 0, false
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(b))
	return v, v >= 0 && v <= 1
}

// MemoryCache is a bounded in-process PredictionCache: entries expire after
// their TTL by the injected clock, and past MaxEntries the oldest is dropped.
type MemoryCache struct {
	mu    sync.Mutex
	max   int
	now   func() time.Time
	items map[string]*list.Element
	order list.List // front = newest
}

type memEntry struct {
	key     string
	value   []byte
	expires time.Time
}

// NewMemoryCache returns a cache of at most maxEntries (default 10000)
// reading time from now (time.Now when nil).
func NewMemoryCache(maxEntries int, now func() time.Time) *MemoryCache {
	if maxEntries <= 0 {
		maxEntries = 10000
	}
	if now == nil {
		now = time.Now
	}
	return &MemoryCache{max: maxEntries, now: now, items: make(map[string]*list.Element)}
}

// Get implements PredictionCache.
func (c *MemoryCache) Get(_ context.Context, key string) ([]byte, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		return nil, false, nil
	}
	ent := e.Value.(*memEntry)
	if !c.now().Before(ent.expires) {
		c.order.Remove(e)
		delete(c.items, key)
		return nil, false, nil
	}
	return append([]byte(nil), ent.value...), true, nil
}

// Set implements PredictionCache.
func (c *MemoryCache) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ent := &memEntry{key: key, value: append([]byte(nil), value...), expires: c.now().Add(ttl)}
	if e, ok := c.items[key]; ok {
		e.Value = ent
		c.order.MoveToFront(e)
		return nil
	}
	c.items[key] = c.order.PushFront(ent)
	for c.order.Len() > c.max {
		old := c.order.Remove(c.order.Back()).(*memEntry)
		delete(c.items, old.key)
	}
	return nil
}
