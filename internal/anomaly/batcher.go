package anomaly

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Clock is the time source of batching windows, cache TTLs and retraining,
// injected so tests can move time by hand.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that fires once after d.
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer the service uses.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now implements Clock.
func (SystemClock) Now() time.Time { return time.Now() }

// NewTimer implements Clock.
func (SystemClock) NewTimer(d time.Duration) Timer { return sysTimer{time.NewTimer(d)} }

type sysTimer struct{ t *time.Timer }

func (t sysTimer) C() <-chan time.Time { return t.t.C }
func (t sysTimer) Stop() bool          { return t.t.Stop() }

// ErrQueueFull means the scoring queue has no room for the request; nothing
// was scored or changed, and the caller should retry after RetryAfter.
var ErrQueueFull = errors.New("anomaly: scoring queue is full")

// ErrClosed means the service is shutting down.
var ErrClosed = errors.New("anomaly: service is closed")

// QueueFullError is the error Detect and Ingest return when the queue is
// full; it wraps ErrQueueFull and says when to come back.
type QueueFullError struct {
	Depth, Capacity int
	RetryAfter      time.Duration
}

func (e *QueueFullError) Error() string {
	return fmt.Sprintf("anomaly: scoring queue is full (%d of %d samples waiting); retry after %s", e.Depth, e.Capacity, e.RetryAfter)
}

// Unwrap makes errors.Is(err, ErrQueueFull) hold.
func (e *QueueFullError) Unwrap() error { return ErrQueueFull }

// job is one forest row waiting to be scored.
type job struct {
	model *activeModel
	host  *hostModel // the model of model that scores row
	row   []float64
	score float64 // written by the worker
	call  *call
	// span is the submitting request's span when tracing, else nil: the
	// batch span's parent or link (see tracing.go).
	span trace.Span
}

// call tracks one request's jobs; done is closed when the last is scored.
type call struct {
	left atomic.Int64
	done chan struct{}
}

func newCall(n int) *call {
	c := &call{done: make(chan struct{})}
	c.left.Store(int64(n))
	return c
}

func (c *call) finish() {
	if c.left.Add(-1) == 0 {
		close(c.done)
	}
}

// flushReason says why a batch was cut; the tests and the stats read it.
type flushReason int

const (
	flushIdle    flushReason = iota // a worker was idle: do not make a lone request wait
	flushSize                       // the batch reached its size
	flushTimeout                    // the oldest job waited the whole timeout
	flushClose                      // shutting down
	numFlushReasons
)

// batcher collects jobs into batches and hands them to a bounded pool of
// workers. A batch is cut when it reaches size, when its oldest job has
// waited timeout, or as soon as a worker is idle — so under light load a
// request is scored at once and batches grow only while every worker is busy.
// Admission is by reservation: a request reserves room for all its jobs
// before it touches any state, so a full queue rejects it whole and nothing
// is dropped half-way.
type batcher struct {
	// size and timeout may change while the batcher runs (SetBatching).
	size     atomic.Int64
	timeout  atomic.Int64
	capacity int
	clock    Clock
	score    func(batch []*job)
	observe  func(n int, r flushReason)

	in    chan *job
	ready chan []*job
	depth atomic.Int64

	mu     sync.RWMutex // guards closed against sends on in
	closed bool
	wg     sync.WaitGroup
}

func newBatcher(size int, timeout time.Duration, workers, capacity int, clock Clock, score func([]*job), observe func(int, flushReason)) *batcher {
	b := &batcher{capacity: capacity, clock: clock, score: score, observe: observe,
		in: make(chan *job, capacity), ready: make(chan []*job)}
	b.size.Store(int64(size))
	b.timeout.Store(int64(timeout))
	b.wg.Add(1 + workers)
	go b.collect()
	for range workers {
		go b.work()
	}
	return b
}

// reserve claims room for n jobs or fails with a *QueueFullError.
func (b *batcher) reserve(n int) error {
	for {
		d := b.depth.Load()
		if d+int64(n) > int64(b.capacity) {
			return &QueueFullError{Depth: int(d), Capacity: b.capacity, RetryAfter: b.retryAfter()}
		}
		if b.depth.CompareAndSwap(d, d+int64(n)) {
			return nil
		}
	}
}

// release returns n reserved slots that will not be used.
func (b *batcher) release(n int) { b.depth.Add(-int64(n)) }

// retryAfter is a client's back-off: the time the workers need to drain a
// full queue at one batch per timeout, at least a second (Retry-After's unit).
func (b *batcher) retryAfter() time.Duration {
	return max(time.Second, (time.Duration(b.timeout.Load()) * time.Duration(int64(b.capacity)/max(b.size.Load(), 1))).Round(time.Second))
}

// submit queues reserved jobs and waits until they are scored or ctx ends.
func (b *batcher) submit(ctx context.Context, jobs []*job) error {
	c := newCall(len(jobs))
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		b.release(len(jobs))
		return ErrClosed
	}
	for _, j := range jobs {
		j.call = c
		b.in <- j // never blocks: room was reserved
	}
	b.mu.RUnlock()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		// The jobs are still scored (nothing is dropped); only this caller
		// stops waiting for them.
		return fmt.Errorf("anomaly: waiting for scoring: %w", ctx.Err())
	}
}

func (b *batcher) collect() {
	defer b.wg.Done()
	defer close(b.ready)
	var (
		pending []*job
		timer   Timer
		timeout <-chan time.Time
	)
	cut := func(r flushReason) {
		if timer != nil {
			timer.Stop()
			timer, timeout = nil, nil
		}
		// Record the cut before the hand-off, which may wait for a worker.
		if b.observe != nil {
			b.observe(len(pending), r)
		}
		if r != flushIdle { // an idle hand-off has already happened in the select
			b.ready <- pending
		}
		pending = nil
	}
	for {
		if len(pending) == 0 {
			j, ok := <-b.in
			if !ok {
				return
			}
			pending = append(pending, j)
			timer = b.clock.NewTimer(time.Duration(b.timeout.Load()))
			timeout = timer.C()
		}
		// Take whatever is already queued, up to the batch size.
		open := true
	drain:
		for int64(len(pending)) < b.size.Load() {
			select {
			case j, ok := <-b.in:
				if !ok {
					open = false
					break drain
				}
				pending = append(pending, j)
			default:
				break drain
			}
		}
		switch {
		case !open:
			cut(flushClose)
			return
		case int64(len(pending)) >= b.size.Load():
			cut(flushSize)
			continue
		}
		select {
		case b.ready <- pending:
			cut(flushIdle)
		case j, ok := <-b.in:
			if !ok {
				cut(flushClose)
				return
			}
			pending = append(pending, j)
		case <-timeout:
			cut(flushTimeout)
		}
	}
}

func (b *batcher) work() {
	defer b.wg.Done()
	for batch := range b.ready {
		b.depth.Add(-int64(len(batch)))
		b.score(batch)
		for _, j := range batch {
			j.call.finish()
		}
	}
}

// queued is the number of jobs reserved or waiting for a worker.
func (b *batcher) queued() int { return int(b.depth.Load()) }

// close stops admission, lets the workers score everything already queued,
// and waits for them or for ctx. It is safe to call more than once.
func (b *batcher) close(ctx context.Context) error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.in)
	}
	b.mu.Unlock()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("anomaly: draining scoring queue: %w", ctx.Err())
	}
}
