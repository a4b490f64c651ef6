package logs

import (
	"log/slog"
	"sync"
	"time"
)

// entry is one encoded record, or a barrier (done != nil) that the writer
// closes once everything queued before it is written and synced.
type entry struct {
	b     *[]byte
	level slog.Level
	done  chan struct{}
}

type pushResult int

const (
	pushed pushResult = iota
	pushFull
	pushTimeout
	pushClosed
	pushNoReserve
)

// queue is a FIFO bounded in records and bytes. One mutex keeps it simple
// and keeps each producer's records in the order it logged them.
type queue struct {
	mu       sync.Mutex
	items    []entry
	bytes    int64
	capRecs  int
	capBytes int64
	closed   bool
	// space is closed and replaced when the writer frees room while
	// producers wait, so a blocked producer needs no polling.
	space   chan struct{}
	waiters int
	// notify wakes the writer; one pending signal is enough.
	notify chan struct{}
	c      *counters
}

func newQueue(recs int, bytes int64, c *counters) *queue {
	return &queue{
		capRecs:  recs,
		capBytes: bytes,
		space:    make(chan struct{}),
		notify:   make(chan struct{}, 1),
		c:        c,
		items:    make([]entry, 0, min(recs, 1024)),
	}
}

// fits must be called with mu held. A record larger than the byte bound
// still fits an empty queue, so one huge record is never unloggable.
// ERROR and above may use a reserve of a quarter more.
func (q *queue) fits(n int64, important bool) bool {
	recs, bytes := q.capRecs, q.capBytes
	if important {
		recs += recs / 4
		bytes += bytes / 4
	}
	return len(q.items) < recs && (q.bytes == 0 || q.bytes+n <= bytes)
}

func (q *queue) appendLocked(e entry, n int64) {
	q.items = append(q.items, e)
	q.bytes += n
	q.c.queueLen.Store(int64(len(q.items)))
	q.c.queueBytes.Store(q.bytes)
}

func (q *queue) wake() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// push queues e. Records below ERROR follow the policy; ERROR and above
// never wait and never drop: pushNoReserve tells the caller to write them
// itself when even the reserve is full.
func (q *queue) push(e entry, important, block bool, timeout time.Duration) pushResult {
	n := int64(len(*e.b))
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return pushClosed
	}
	if q.fits(n, important) {
		q.appendLocked(e, n)
		q.mu.Unlock()
		q.wake()
		return pushed
	}
	switch {
	case important:
		q.mu.Unlock()
		return pushNoReserve
	case !block || timeout <= 0:
		q.mu.Unlock()
		return pushFull
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		q.waiters++
		space := q.space
		q.mu.Unlock()
		q.wake()
		timedOut := false
		select {
		case <-space:
		case <-timer.C:
			timedOut = true
		}
		q.mu.Lock()
		q.waiters--
		if q.closed {
			q.mu.Unlock()
			return pushClosed
		}
		if q.fits(n, false) {
			q.appendLocked(e, n)
			q.mu.Unlock()
			q.wake()
			return pushed
		}
		if timedOut {
			q.mu.Unlock()
			return pushTimeout
		}
	}
}

// pushBarrier queues a barrier regardless of the bounds: it carries no bytes.
func (q *queue) pushBarrier(done chan struct{}) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, entry{done: done})
	q.mu.Unlock()
	q.wake()
	return true
}

// take swaps the queued entries for spare, so the writer takes a whole
// batch under one lock and the two slices are reused forever.
func (q *queue) take(spare []entry) (batch []entry, closed bool) {
	q.mu.Lock()
	batch = q.items
	q.items = spare[:0]
	q.bytes = 0
	q.c.queueLen.Store(0)
	q.c.queueBytes.Store(0)
	if q.waiters > 0 {
		close(q.space)
		q.space = make(chan struct{})
	}
	closed = q.closed
	q.mu.Unlock()
	return batch, closed
}

func (q *queue) close() {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.space)
		q.space = make(chan struct{})
	}
	q.mu.Unlock()
	q.wake()
}
