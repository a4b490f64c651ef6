package anomaly

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock whose time moves only when the test says so. Timers
// announce themselves on created, so a test can wait until the batcher has
// armed its window before moving time past it.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	created chan struct{}
}

type fakeTimer struct {
	c       chan time.Time
	at      time.Time
	stopped bool
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC), created: make(chan struct{}, 1024)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	t := &fakeTimer{c: make(chan time.Time, 1), at: c.now.Add(d)}
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	// Never block the batcher: under sustained load (a fast machine) it arms
	// more windows than any test waits for, and a full channel would stall it.
	select {
	case c.created <- struct{}{}:
	default:
	}
	return &fakeTimerHandle{c: c, t: t}
}

type fakeTimerHandle struct {
	c *fakeClock
	t *fakeTimer
}

func (h *fakeTimerHandle) C() <-chan time.Time { return h.t.c }
func (h *fakeTimerHandle) Stop() bool {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	was := !h.t.stopped
	h.t.stopped = true
	return was
}

// Advance moves time by d and fires every timer that is due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if !t.stopped && !t.at.After(c.now) {
			t.c <- c.now
			continue
		}
		if !t.stopped {
			kept = append(kept, t)
		}
	}
	c.timers = kept
}

func (c *fakeClock) waitTimer(t *testing.T) {
	t.Helper()
	select {
	case <-c.created:
	case <-time.After(10 * time.Second):
		t.Fatal("the batcher never armed its batch window")
	}
}

// gatedScorer blocks each batch until the test releases it and records the
// batch sizes in order.
type gatedScorer struct {
	mu      sync.Mutex
	sizes   []int
	entered chan int
	release chan struct{}
}

func newGatedScorer() *gatedScorer {
	return &gatedScorer{entered: make(chan int, 100), release: make(chan struct{})}
}

func (g *gatedScorer) score(batch []*job) {
	g.mu.Lock()
	g.sizes = append(g.sizes, len(batch))
	g.mu.Unlock()
	g.entered <- len(batch)
	<-g.release
	for _, j := range batch {
		j.score = 0.5
	}
}

type flushLog struct {
	mu      sync.Mutex
	reasons []flushReason
	sizes   []int
}

func (f *flushLog) observe(n int, r flushReason) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reasons = append(f.reasons, r)
	f.sizes = append(f.sizes, n)
}

func (f *flushLog) snapshot() ([]flushReason, []int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]flushReason(nil), f.reasons...), append([]int(nil), f.sizes...)
}

// submitAsync reserves and submits n jobs in the background.
func submitAsync(t *testing.T, b *batcher, n int) <-chan error {
	t.Helper()
	if err := b.reserve(n); err != nil {
		t.Fatalf("reserve(%d): %v", n, err)
	}
	// Queue synchronously (as submit does), so that when this returns every
	// job is in the batcher's input; only the wait is in the background.
	c := newCall(n)
	for range n {
		b.in <- &job{call: c}
	}
	done := make(chan error, 1)
	go func() { <-c.done; done <- nil }()
	return done
}

func waitEntered(t *testing.T, g *gatedScorer) int {
	t.Helper()
	select {
	case n := <-g.entered:
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("no batch reached the worker")
		return 0
	}
}

// waitCollected waits until the collector has taken every queued job into
// its pending batch.
func waitCollected(t *testing.T, b *batcher) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(b.in) > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}

func TestBatcherLoneRequestDoesNotWait(t *testing.T) {
	clock := newFakeClock()
	g := newGatedScorer()
	var fl flushLog
	b := newBatcher(100, 500*time.Millisecond, 2, 1000, clock, g.score, fl.observe)
	done := submitAsync(t, b, 1)
	// The clock never moves: the batch must go to the idle worker at once.
	if n := waitEntered(t, g); n != 1 {
		t.Fatalf("lone batch size = %d", n)
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := b.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r, _ := fl.snapshot(); len(r) != 1 || r[0] != flushIdle {
		t.Fatalf("flush reasons = %v; want [idle]", r)
	}
}

func TestBatcherFlushBySize(t *testing.T) {
	clock := newFakeClock()
	g := newGatedScorer()
	var fl flushLog
	b := newBatcher(4, 500*time.Millisecond, 1, 1000, clock, g.score, fl.observe)
	first := submitAsync(t, b, 1)
	waitEntered(t, g) // the only worker is now busy
	rest := submitAsync(t, b, 10)
	// With the worker busy and the clock still, only the size can cut
	// batches: 4, 4, and the last 2 go to the worker once it is idle.
	close(g.release)
	for _, d := range []<-chan error{first, rest} {
		if err := <-d; err != nil {
			t.Fatal(err)
		}
	}
	if err := b.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	sizes := g.sizes
	g.mu.Unlock()
	total := 0
	for _, n := range sizes[1:] {
		total += n
		if n > 4 {
			t.Fatalf("batch of %d exceeds the size 4: %v", n, sizes)
		}
	}
	if total != 10 {
		t.Fatalf("batches %v carry %d jobs; want 10", sizes, total)
	}
	reasons, _ := fl.snapshot()
	sizeFlushes := 0
	for _, r := range reasons {
		if r == flushTimeout {
			t.Fatalf("a timeout flush without the clock moving: %v", reasons)
		}
		if r == flushSize {
			sizeFlushes++
		}
	}
	if sizeFlushes != 2 {
		t.Fatalf("flush reasons %v sizes %v; want two size flushes", reasons, sizes)
	}
	if b.queued() != 0 {
		t.Fatalf("queue depth after drain = %d", b.queued())
	}
}

func TestBatcherFlushByTimeout(t *testing.T) {
	clock := newFakeClock()
	g := newGatedScorer()
	var fl flushLog
	b := newBatcher(100, 500*time.Millisecond, 1, 1000, clock, g.score, fl.observe)
	first := submitAsync(t, b, 1)
	clock.waitTimer(t)
	waitEntered(t, g) // worker busy
	second := submitAsync(t, b, 3)
	clock.waitTimer(t) // the window of the batch holding these 3 is armed
	waitCollected(t, b)
	clock.Advance(499 * time.Millisecond)
	if r, _ := fl.snapshot(); len(r) != 1 {
		t.Fatalf("flushed before the timeout: %v", r)
	}
	clock.Advance(time.Millisecond)
	// The timed-out batch is cut (and waits for the worker); later jobs
	// start a new batch.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, _ := fl.snapshot()
		if len(r) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no timeout flush after the window passed: %v", r)
		}
		time.Sleep(time.Millisecond)
	}
	third := submitAsync(t, b, 2)
	close(g.release)
	for _, d := range []<-chan error{first, second, third} {
		if err := <-d; err != nil {
			t.Fatal(err)
		}
	}
	if err := b.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	reasons, sizes := fl.snapshot()
	if len(reasons) < 3 || reasons[1] != flushTimeout || sizes[1] != 3 || sizes[2] != 2 {
		t.Fatalf("flushes %v sizes %v; want the second a timeout flush of 3 and then 2", reasons, sizes)
	}
}

func TestBatcherFullQueueRefusesWhole(t *testing.T) {
	clock := newFakeClock()
	g := newGatedScorer()
	b := newBatcher(10, 500*time.Millisecond, 1, 5, clock, g.score, nil)
	first := submitAsync(t, b, 1)
	waitEntered(t, g)
	if err := b.reserve(4); err != nil {
		t.Fatalf("reserve 4 of the remaining room: %v", err)
	}
	err := b.reserve(2)
	var full *QueueFullError
	if !errors.As(err, &full) || full.Capacity != 5 || full.RetryAfter < time.Second {
		t.Fatalf("reserve over capacity = %v", err)
	}
	b.release(4)
	close(g.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := b.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.submit(context.Background(), []*job{{}}); err != ErrClosed {
		t.Fatalf("submit after close = %v", err)
	}
}
