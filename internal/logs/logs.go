// Package logs is SmartCloudOps' log pipeline: a log/slog JSON handler
// that encodes on the caller's goroutine into a bounded queue, one writer
// goroutine that batches lines into the current file, rotation by size and
// by wall-clock time, gzip of rotated files in the background, retention,
// statistics and Prometheus metrics, and a fallback writer for when the
// disk cannot take the lines.
package logs

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartcloudops/smartcloudops/internal/health"
)

// Logger is the pipeline. Create it with New, log through Slog or
// Handler, and Close it on shutdown.
type Logger struct {
	opts    Options
	c       *counters
	lim     *limits
	q       *queue // nil in synchronous mode
	sink    *sink
	maint   *maintainer
	handler *Handler
	slog    *slog.Logger

	fallback  *lockedWriter
	abandon   atomic.Bool
	inFlight  atomic.Int64
	writerEnd chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// New validates opts, opens the current file and starts the writer and
// maintenance goroutines. A directory it cannot write is not an error: the
// pipeline starts DEGRADED, writes to Fallback and recovers by itself.
// When reg is not nil the metrics are registered in it.
func New(opts Options, reg prometheus.Registerer) (*Logger, error) {
	o := opts.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	if abs, err := filepath.Abs(o.Dir); err == nil {
		o.Dir = abs
	}
	if o.Copy == nil {
		o.Copy = os.Stderr
	}
	if o.Fallback == nil {
		o.Fallback = os.Stderr
	}
	l := &Logger{opts: o, c: &counters{}}
	l.fallback = &lockedWriter{w: o.Fallback, perSecond: o.FallbackBytesPerSecond}
	copyW := l.fallback
	if o.Copy != o.Fallback {
		copyW = &lockedWriter{w: o.Copy}
	}
	if reg != nil {
		if err := reg.Register(&collector{l: l}); err != nil {
			return nil, fmt.Errorf("logs: register metrics: %w", err)
		}
	}
	l.lim = newLimits(o)
	l.maint = newMaintainer(o, l.c, l.lim)
	l.sink = newSink(o, l.c, l.lim, copyW, l.fallback, l.maint.notify)
	l.handler = &Handler{l: l}
	l.slog = slog.New(l.handler)
	if o.Synchronous {
		l.maint.tick = func() {
			l.sink.mu.Lock()
			l.sink.tick()
			l.sink.mu.Unlock()
		}
	} else {
		l.q = newQueue(o.QueueRecords, o.QueueBytes)
		l.writerEnd = make(chan struct{})
		go l.writer()
	}
	go l.maint.run()
	return l, nil
}

// Slog returns a *slog.Logger that logs through the pipeline.
func (l *Logger) Slog() *slog.Logger { return l.slog }

// Handler returns the pipeline's slog.Handler, for wrapping.
func (l *Logger) Handler() slog.Handler { return l.handler }

// submit hands an encoded record to the pipeline, which copies or writes
// it before returning: the caller keeps b.
func (l *Logger) submit(level slog.Level, b []byte) error {
	important := level >= slog.LevelError
	if l.q == nil {
		l.sink.mu.Lock()
		if l.sink.closed {
			l.sink.mu.Unlock()
			return l.refuse(b, important)
		}
		l.sink.one[0] = entry{n: len(b), level: level}
		l.sink.write(l.sink.one[:], b)
		l.sink.mu.Unlock()
		return nil
	}
	switch l.q.push(b, level, l.opts.OnFull == OverflowBlock, l.opts.BlockTimeout) {
	case pushed:
	case pushFull:
		l.c.dropped[dropQueueFull].Add(1)
	case pushTimeout:
		l.c.dropped[dropTimeout].Add(1)
	case pushClosed:
		return l.refuse(b, important)
	case pushNoReserve:
		return l.writeFallback(b)
	}
	return nil
}

// refuse handles a record that arrived after Close: ERROR and above still
// reach the fallback writer, the rest is counted and dropped.
func (l *Logger) refuse(b []byte, important bool) error {
	if important {
		return l.writeFallback(b)
	}
	l.c.dropped[dropClosed].Add(1)
	return nil
}

func (l *Logger) writeFallback(b []byte) error {
	lines, over, err := l.fallback.writeLines(b)
	l.c.dropped[dropFallbackLimit].Add(over)
	if err != nil {
		l.c.dropped[dropWriteError].Add(lines)
		l.c.fail(opFallback, fmt.Errorf("logs: fallback: %w", err))
		return fmt.Errorf("logs: fallback: %w", err)
	}
	l.c.fallback.Add(lines)
	return nil
}

// The writer polls the queue rather than being woken by every record:
// waking it is a syscall on the caller's goroutine, and on a VM a wake-up
// also costs a few hundred microseconds of CPU in all. It polls every
// writerPoll to writerMaxPoll, halving the wait after a batch of
// pollBatchBytes or more and doubling it after a smaller one or none, so a
// busy logger writes batches of about that size and a slow one wakes
// fifty times a second. After writerParkAfter without a record it parks,
// costing nothing, and the next record wakes it. ERROR and above, Sync,
// Close and a half-full queue wake it at once.
const (
	writerPoll      = time.Millisecond
	writerMaxPoll   = 20 * time.Millisecond
	pollBatchBytes  = 64 << 10
	writerParkAfter = time.Second
)

// writer is the one goroutine that writes in async mode.
func (l *Logger) writer() {
	defer close(l.writerEnd)
	t := time.NewTicker(l.opts.RecoveryInterval)
	defer t.Stop()
	wait := writerPoll
	poll := time.NewTimer(wait)
	defer poll.Stop()
	var (
		lastRecord = time.Now()
		parked     bool
	)
	// The queue's first take gets buffers of the sizes it started with, so
	// producers do not grow them from nothing under its lock.
	spare, spareSlab := l.q.newItems(), l.q.newSlab()
	for {
		select {
		case <-l.q.notify:
		case <-poll.C:
		case <-t.C:
			// Falls through to take: a missed wake-up never strands a
			// closed queue.
			l.sink.tick()
		}
		batch, slab, closed := l.q.take(spare, spareSlab)
		// take handed the spares to the queue: from here on the writer
		// owns only what it got back, and gives those at the next take.
		spare, spareSlab = batch, slab
		if parked && len(batch) == 0 && !closed && l.q.park() {
			continue // the ticker: still nothing to write
		}
		parked = false
		if len(slab) >= pollBatchBytes {
			wait = max(wait/2, writerPoll)
		} else {
			wait = min(2*wait, writerMaxPoll)
		}
		if len(batch) > 0 {
			lastRecord = time.Now()
			if l.abandon.Load() {
				l.dropBatch(batch, slab, dropShutdown)
			} else {
				l.inFlight.Store(int64(len(batch)))
				l.sink.write(batch, slab)
				l.inFlight.Store(0)
			}
			clear(batch) // barriers' channels
		}
		spareSlab = l.q.reuse(spareSlab)
		if closed {
			// take after close returns everything, so nothing is left.
			if l.abandon.Load() {
				l.sink.closed = true
				l.sink.closeFile(opSync)
			} else {
				l.sink.shutdown()
			}
			return
		}
		if time.Since(lastRecord) >= writerParkAfter && l.q.park() {
			// No timer until a record, Sync, Close or the ticker wakes it.
			poll.Stop()
			parked, wait = true, writerPoll
			continue
		}
		poll.Reset(wait)
	}
}

// dropBatch gives up on batch, except for ERROR and above, which still go
// to the fallback writer.
func (l *Logger) dropBatch(batch []entry, slab []byte, reason int) {
	for _, e := range batch {
		switch {
		case e.done != nil:
			close(e.done)
		case e.level >= slog.LevelError:
			_ = l.writeFallback(slab[e.off : e.off+e.n])
		default:
			l.c.dropped[reason].Add(1)
		}
	}
}

// Sync waits until every record logged before the call is written and the
// file is fsynced.
func (l *Logger) Sync(ctx context.Context) error {
	if l.q == nil {
		l.sink.mu.Lock()
		defer l.sink.mu.Unlock()
		l.sink.syncFile()
		return nil
	}
	done := make(chan struct{})
	if !l.q.pushBarrier(done) {
		return fmt.Errorf("logs: sync: %w", errClosed)
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("logs: sync: %w", ctx.Err())
	}
}

type closedError struct{}

func (closedError) Error() string { return "logger closed" }

var errClosed error = closedError{}

// Close stops intake, drains the queue, fsyncs and closes the current
// file, and waits for pending compressions. When ctx ends first it reports
// how many records were not written; those are counted as dropped with
// reason "shutdown". Records logged after Close are dropped with reason
// "closed", except ERROR and above, which go to the fallback writer.
// Close is idempotent: later calls return the first call's result.
func (l *Logger) Close(ctx context.Context) error {
	l.closeOnce.Do(func() { l.closeErr = l.close(ctx) })
	return l.closeErr
}

func (l *Logger) close(ctx context.Context) error {
	var errs []error
	if l.q == nil {
		l.sink.mu.Lock()
		l.sink.shutdown()
		l.sink.mu.Unlock()
	} else {
		l.q.close()
		select {
		case <-l.writerEnd:
		case <-ctx.Done():
			l.abandon.Store(true)
			// Whatever take has not yet handed to the writer is lost.
			batch, slab, _ := l.q.take(nil, nil)
			l.dropBatch(batch, slab, dropShutdown)
			var lost int64
			for _, e := range batch {
				if e.done == nil && e.level < slog.LevelError {
					lost++
				}
			}
			lost += l.inFlight.Load()
			errs = append(errs, fmt.Errorf("logs: close: %d records not written (%d in flight): %w", lost, l.inFlight.Load(), ctx.Err()))
		}
	}
	close(l.maint.stop)
	select {
	case <-l.maint.done:
	case <-ctx.Done():
		l.maint.cancel()
		<-l.maint.done
		errs = append(errs, fmt.Errorf("logs: close: compression unfinished: %w", ctx.Err()))
	}
	l.maint.cancel()
	if len(errs) == 1 {
		return errs[0]
	}
	if len(errs) > 1 {
		return fmt.Errorf("%w; %w", errs[0], errs[1])
	}
	return nil
}

// Check reports the pipeline as the health component "logs": DEGRADED
// while lines go to the fallback writer, or the file has failed a write and
// none has succeeded since, or rotated files fail to compress; DOWN once
// closed. /performance/health is public, so the details name no path: the
// file and the full error are on the authenticated /performance/logs/stats.
func (l *Logger) Check(ctx context.Context) health.Component {
	st := l.Stats()
	details := map[string]any{
		"queue_length":    st.QueueLength,
		"records_dropped": st.RecordsDroppedTotal,
	}
	if le := l.c.last.Load(); le != nil {
		details["last_error"] = le.cause
		details["last_error_op"] = le.op
	}
	switch {
	case l.isClosed():
		return health.Component{Status: health.StatusDown, Details: map[string]any{"reason": "closed"}}
	case st.Degraded:
		details["reason"] = "log file unwritable or disk full; lines go to the fallback writer until a write to the file succeeds"
		return health.Component{Status: health.StatusDegraded, Details: details}
	case l.c.compFail.Load():
		details["reason"] = "compression of rotated files failing"
		return health.Component{Status: health.StatusDegraded, Details: details}
	}
	return health.Component{Status: health.StatusUp, Details: details}
}

func (l *Logger) isClosed() bool {
	if l.q == nil {
		l.sink.mu.Lock()
		defer l.sink.mu.Unlock()
		return l.sink.closed
	}
	l.q.mu.Lock()
	defer l.q.mu.Unlock()
	return l.q.closed
}

// Stats returns a snapshot of the counters.
func (l *Logger) Stats() Stats {
	c := l.c
	st := Stats{
		RecordsAttempted:    c.attempted.Load(),
		RecordsWritten:      c.written.Load(),
		RecordsFallback:     c.fallback.Load(),
		RecordsDropped:      make(map[string]int64, len(dropReasons)),
		BytesWritten:        c.bytes.Load(),
		Rotations:           make(map[string]int64, len(rotationCauses)),
		FilesRemoved:        make(map[string]int64, len(removalReasons)),
		FilesCompressed:     c.compressed.Load(),
		CompressionBytesIn:  c.compressIn.Load(),
		CompressionBytesOut: c.compressOut.Load(),
		CurrentFile:         l.sink.cur,
		CurrentFileBytes:    c.curSize.Load(),
		Errors:              make(map[string]int64, len(errorOps)),
		Degraded:            c.degraded.Load(),
	}
	if l.q != nil {
		st.QueueLength, st.QueueBytes = l.q.size()
		st.QueueCapacity = int64(l.opts.QueueRecords)
		st.QueueCapacityBytes = l.opts.QueueBytes
	}
	for i, r := range dropReasons {
		st.RecordsDropped[r] = c.dropped[i].Load()
		st.RecordsDroppedTotal += st.RecordsDropped[r]
	}
	for i, r := range rotationCauses {
		st.Rotations[r] = c.rotations[i].Load()
	}
	for i, r := range removalReasons {
		st.FilesRemoved[r] = c.removed[i].Load()
	}
	for i, r := range errorOps {
		st.Errors[r] = c.errors[i].Load()
	}
	if st.CompressionBytesIn > 0 {
		st.CompressionRatio = float64(st.CompressionBytesOut) / float64(st.CompressionBytesIn)
	}
	st.FilesOnDisk = c.backups.Load()
	st.FilesBytes = c.backupSize.Load()
	if c.curOpen.Load() {
		st.FilesOnDisk++
		st.FilesBytes += st.CurrentFileBytes
	}
	if le := c.last.Load(); le != nil {
		st.LastError = le.msg
		t := le.when
		st.LastErrorTime = &t
	}
	counts, total := c.enqueue.snapshot()
	st.EnqueueLatency = LatencySummary{
		Count: total,
		P50:   quantile(&counts, total, 0.50).Seconds(),
		P90:   quantile(&counts, total, 0.90).Seconds(),
		P99:   quantile(&counts, total, 0.99).Seconds(),
		P999:  quantile(&counts, total, 0.999).Seconds(),
		Max:   time.Duration(c.enqueue.max.Load()).Seconds(),
	}
	return st
}
