package logs

import (
	"log/slog"
	"sync"
	"time"
)

// entry is one encoded record, bytes [off, off+n) of the slab it was
// queued in, or a barrier (done != nil) that the writer closes once
// everything queued before it is written and synced.
type entry struct {
	off, n int
	level  slog.Level
	done   chan struct{}
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
//
// Records are copied into slab, one contiguous buffer that the writer swaps
// for its spare at each take, so the two slabs are reused for as long as
// the logger lives. A buffer per record instead kept hundreds of them in
// flight between the writer's polls, and every fresh one cost the caller a
// page fault (a few microseconds, a few times per hundred records).
type queue struct {
	mu       sync.Mutex
	items    []entry
	slab     []byte
	capRecs  int
	capBytes int64
	closed   bool
	// space is closed and replaced when the writer frees room while
	// producers wait, so a blocked producer needs no polling.
	space   chan struct{}
	waiters int
	// notify wakes the writer; one pending signal is enough. While the
	// writer polls (see writerPoll), ordinary records do not send it:
	// waking a parked goroutine costs the caller a futex call, on a VM
	// tens of microseconds, which at a few hundred records a second was
	// nearly every record's whole cost.
	notify chan struct{}
	// idle is set when the writer parks after a quiet spell (see park);
	// the next push wakes it.
	idle bool
	// urgentRecs and urgentBytes are the fill at which producers wake a
	// polling writer early, long before the queue is full.
	urgentRecs  int
	urgentBytes int64
}

func newQueue(recs int, bytes int64) *queue {
	q := &queue{
		capRecs:  recs,
		capBytes: bytes,
		space:    make(chan struct{}),
		notify:   make(chan struct{}, 1),
		// Half the bounds: the writer empties the queue before producers
		// could have to wait, even between two polls.
		urgentRecs:  max(recs/2, 1),
		urgentBytes: max(bytes/2, 1),
	}
	q.items, q.slab = q.newItems(), q.newSlab()
	return q
}

// newItems and newSlab return empty buffers of the first sizes.
func (q *queue) newItems() []entry { return make([]entry, 0, min(q.capRecs, 1024)) }
func (q *queue) newSlab() []byte   { return make([]byte, 0, min(q.capBytes, initialSlab)) }

// fits must be called with mu held. A record larger than the byte bound
// still fits an empty queue, so one huge record is never unloggable.
// ERROR and above may use a reserve of a quarter more.
func (q *queue) fits(n int64, important bool) bool {
	recs, bytes := q.capRecs, q.capBytes
	if important {
		recs += recs / 4
		bytes += bytes / 4
	}
	return len(q.items) < recs && (len(q.slab) == 0 || int64(len(q.slab))+n <= bytes)
}

// initialSlab is a slab's first capacity: room for a few thousand typical
// records, which is more than a polling writer usually finds queued.
const initialSlab = 256 << 10

// maxSpareSlab bounds the slab the writer keeps for reuse once a burst is
// over: one grown by a burst is dropped after it rather than held for good.
const maxSpareSlab = 4 << 20

// reuse returns the slab the writer hands to the next take, given the one
// whose batch it has just written. A slab grown past maxSpareSlab is kept
// while batches stay large: dropping it at every take made producers
// regrow one during a burst, copying megabytes under the queue's lock.
// Once a batch is small again, the burst is over and a slab of the first
// size replaces it.
func (q *queue) reuse(slab []byte) []byte {
	if cap(slab) > maxSpareSlab && len(slab) < maxSpareSlab/4 {
		return q.newSlab()
	}
	return slab
}

func (q *queue) appendLocked(b []byte, level slog.Level) {
	q.items = append(q.items, entry{off: len(q.slab), n: len(b), level: level})
	q.slab = append(q.slab, b...)
}

// size is what is queued, for Stats: read under the lock rather than
// kept in atomics that every push would have to store to.
func (q *queue) size() (recs, bytes int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return int64(len(q.items)), int64(len(q.slab))
}

// needsWake must be called with mu held after an append: a parked writer
// is woken, and ERROR and above and a half-full queue do not wait for the
// writer's next poll. It clears idle, so of the records that find the
// writer parked only the first pays for the wake-up.
func (q *queue) needsWake(important bool) bool {
	if q.idle || important || len(q.items) >= q.urgentRecs || int64(len(q.slab)) >= q.urgentBytes {
		q.idle = false
		return true
	}
	return false
}

// park marks the writer parked, so that the next push wakes it. It reports
// false, and the writer must keep polling, when records arrived meanwhile.
func (q *queue) park() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) > 0 || q.closed {
		return false
	}
	q.idle = true
	return true
}

func (q *queue) wake() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// push copies b into the queue; the caller keeps b. Records below ERROR
// follow the policy; ERROR and above never wait and never drop:
// pushNoReserve tells the caller to write them itself when even the
// reserve is full.
func (q *queue) push(b []byte, level slog.Level, block bool, timeout time.Duration) pushResult {
	n := int64(len(b))
	important := level >= slog.LevelError
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return pushClosed
	}
	if q.fits(n, important) {
		q.appendLocked(b, level)
		wake := q.needsWake(important)
		q.mu.Unlock()
		if wake {
			q.wake()
		}
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
			q.appendLocked(b, level)
			wake := q.needsWake(false)
			q.mu.Unlock()
			if wake {
				q.wake()
			}
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
	q.idle = false
	q.mu.Unlock()
	q.wake()
	return true
}

// take swaps the queued entries and their slab for the spares, so the
// writer takes a whole batch under one lock and the buffers are reused.
func (q *queue) take(spare []entry, spareSlab []byte) (batch []entry, slab []byte, closed bool) {
	q.mu.Lock()
	batch, slab = q.items, q.slab
	q.items = spare[:0]
	q.slab = spareSlab[:0]
	if q.waiters > 0 {
		close(q.space)
		q.space = make(chan struct{})
	}
	closed = q.closed
	q.mu.Unlock()
	return batch, slab, closed
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
