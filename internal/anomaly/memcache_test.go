package anomaly

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// memoryCache is a bounded in-process PredictionCache for tests (the
// service is wired to internal/cache): entries expire after
// their TTL by the injected clock, and past MaxEntries the oldest is dropped.
type memoryCache struct {
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

// newMemoryCache returns a cache of at most maxEntries (default 10000)
// reading time from now (time.Now when nil).
func newMemoryCache(maxEntries int, now func() time.Time) *memoryCache {
	if maxEntries <= 0 {
		maxEntries = 10000
	}
	if now == nil {
		now = time.Now
	}
	return &memoryCache{max: maxEntries, now: now, items: make(map[string]*list.Element)}
}

// Get implements PredictionCache.
func (c *memoryCache) Get(_ context.Context, key string) ([]byte, bool, error) {
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
func (c *memoryCache) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
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
