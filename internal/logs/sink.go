package logs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// errFileReplaced: something moved, removed or replaced the current file.
var errFileReplaced = errors.New("current file was replaced")

// stampLayout is fixed-width so that file names sort by time.
const stampLayout = "20060102T150405.000000000Z"

// flushAt bounds one write(2), trading syscalls against latency.
const flushAt = 256 << 10

func backupName(stem string, t time.Time) string {
	return stem + "-" + t.UTC().Format(stampLayout) + ".log"
}

// parseBackup recognises "<stem>-<stamp>.log" and "<stem>-<stamp>.log.gz".
func parseBackup(stem, name string) (t time.Time, gz, ok bool) {
	rest, found := strings.CutPrefix(name, stem+"-")
	if !found || len(rest) < len(stampLayout) {
		return time.Time{}, false, false
	}
	switch rest[len(stampLayout):] {
	case ".log":
	case ".log.gz":
		gz = true
	default:
		return time.Time{}, false, false
	}
	t, err := time.Parse(stampLayout, rest[:len(stampLayout)])
	return t, gz, err == nil
}

// lockedWriter serialises the writer goroutine and producers that write
// an ERROR record themselves; Copy and Fallback share one when they are
// the same writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer

	// perSecond bounds writeLines (the fallback path); 0 or less is no
	// bound. used counts the bytes written since windowStart.
	perSecond   int64
	windowStart time.Time
	used        int64
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// writeLines writes the whole lines of p that fit in this second's budget.
// It returns how many lines it passed to the writer (all lost when err is
// not nil) and how many it left out for the budget. A disk that stays full
// then costs stderr a bounded rate, not everything the service logs.
func (l *lockedWriter) writeLines(p []byte) (lines, over int64, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perSecond > 0 {
		now := time.Now()
		if now.Sub(l.windowStart) >= time.Second {
			l.windowStart, l.used = now, 0
		}
		if room := l.perSecond - l.used; int64(len(p)) > room {
			cut := 0
			if room > 0 {
				cut = bytes.LastIndexByte(p[:room], '\n') + 1
			}
			over = countLines(p[cut:])
			p = p[:cut]
		}
		l.used += int64(len(p))
	}
	if len(p) == 0 {
		return 0, over, nil
	}
	_, err = l.w.Write(p)
	return countLines(p), over, err
}

// countLines counts records: each ends in a newline, and a tail without
// one is a record too.
func countLines(p []byte) int64 {
	n := int64(bytes.Count(p, []byte{'\n'}))
	if len(p) > 0 && p[len(p)-1] != '\n' {
		n++
	}
	return n
}

// sink owns the current file: batching, rotation, fault handling. It is
// used by the writer goroutine (async) or by callers under mu (sync).
type sink struct {
	mu  sync.Mutex
	o   Options
	c   *counters
	lim *limits

	cur  string
	f    *os.File
	size int64
	// boundary is the next time rotation; zero when disabled.
	boundary    time.Time
	lastAttempt time.Time
	lastStamp   time.Time
	closed      bool
	// failing is set by a failed write and cleared by the next one that
	// succeeds: reopening the file proves nothing on a full disk (open
	// works, write does not), so the pipeline stays DEGRADED until a write
	// has gone through.
	failing bool

	// one holds the single record of a synchronous write without allocating.
	one [1]entry

	buf     []byte
	nbuf    int64
	copyBuf []byte

	copyW      *lockedWriter
	copyLevel  slog.Level
	copyOff    bool
	copyIsFall bool
	fallback   *lockedWriter

	// rotated tells the maintainer there is a file to compress.
	rotated func()
}

func newSink(o Options, c *counters, lim *limits, copyW, fallback *lockedWriter, rotated func()) *sink {
	lvl, off, _ := parseCopyLevel(o.CopyLevel)
	s := &sink{
		o:          o,
		c:          c,
		lim:        lim,
		cur:        filepath.Join(o.Dir, o.FileName+".log"),
		copyW:      copyW,
		copyLevel:  lvl,
		copyOff:    off,
		copyIsFall: copyW == fallback,
		fallback:   fallback,
		rotated:    rotated,
		buf:        make([]byte, 0, flushAt+4096),
	}
	now := o.Now()
	s.boundary = s.nextBoundary(now)
	s.open(now, true)
	return s
}

// nextBoundary aligns to midnight in Location when the interval divides a
// day, so "24h" rotates at midnight and "1h" on the hour.
func (s *sink) nextBoundary(now time.Time) time.Time {
	d := s.o.RotationInterval
	if d <= 0 {
		return time.Time{}
	}
	if 24*time.Hour%d != 0 {
		return now.Truncate(d).Add(d)
	}
	t := now.In(s.o.Location)
	midnight := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, s.o.Location)
	next := midnight.Add((t.Sub(midnight)/d + 1) * d)
	// A DST day is not 24h long; never skip past the next midnight.
	if nextMidnight := time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, s.o.Location); next.After(nextMidnight) {
		next = nextMidnight
	}
	return next
}

func (s *sink) due(now time.Time) bool {
	return !s.boundary.IsZero() && !now.Before(s.boundary)
}

// open (re)opens the current file. At startup a non-empty file left from
// an earlier period is rotated first so it is not mixed with this one.
func (s *sink) open(now time.Time, startup bool) {
	s.lastAttempt = time.Now()
	defer func() { s.c.degraded.Store((s.f == nil || s.failing) && !s.closed) }()
	if err := os.MkdirAll(s.o.Dir, 0o755); err != nil {
		s.c.fail(opOpen, fmt.Errorf("logs: open: %w", err))
		return
	}
	f, err := os.OpenFile(s.cur, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		s.c.fail(opOpen, fmt.Errorf("logs: open: %w", err))
		return
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		s.c.fail(opOpen, fmt.Errorf("logs: open: %w", err))
		return
	}
	s.f, s.size = f, fi.Size()
	s.c.curOpen.Store(true)
	s.c.curSize.Store(s.size)
	if startup && s.size > 0 && !s.boundary.IsZero() && fi.ModTime().Before(s.boundary.Add(-s.o.RotationInterval)) {
		s.rotate(now, causeTime)
	}
}

func (s *sink) closeFile(op int) {
	if s.f == nil {
		return
	}
	if err := s.f.Close(); err != nil {
		s.c.fail(op, fmt.Errorf("logs: close: %w", err))
	}
	s.f = nil
	s.c.curOpen.Store(false)
}

// rotate moves the current file aside under a name stamped with the
// rotation time, made unique so names stay strictly ordered even when the
// clock stands still.
func (s *sink) rotate(now time.Time, cause int) {
	if s.f == nil {
		return
	}
	s.closeFile(opRotate)
	stamp := now.UTC()
	if !stamp.After(s.lastStamp) {
		stamp = s.lastStamp.Add(time.Nanosecond)
	}
	dst := filepath.Join(s.o.Dir, backupName(s.o.FileName, stamp))
	if err := os.Rename(s.cur, dst); err != nil {
		s.c.fail(opRotate, fmt.Errorf("logs: rotate: %w", err))
		s.c.degraded.Store(true)
		return
	}
	s.lastStamp = stamp
	s.c.rotations[cause].Add(1)
	s.c.backups.Add(1)
	s.c.backupSize.Add(s.size)
	s.size = 0
	s.c.curSize.Store(0)
	s.boundary = s.nextBoundary(now)
	s.rotated()
	s.open(now, false)
}

// retry reopens a faulted sink at most once per RecoveryInterval, so a
// dead disk costs one failed syscall per interval, not one per batch.
func (s *sink) retry(now time.Time) {
	if s.f == nil && !s.closed && time.Since(s.lastAttempt) >= s.o.RecoveryInterval {
		s.open(now, false)
	}
}

// write writes a batch; only called with the records in queue order.
func (s *sink) write(batch []entry, slab []byte) {
	now := s.o.Now()
	s.retry(now)
	if s.f != nil && s.due(now) {
		if s.size > 0 {
			s.rotate(now, causeTime)
		} else {
			s.boundary = s.nextBoundary(now)
		}
	}
	for i := range batch {
		e := &batch[i]
		if e.done != nil {
			s.flush()
			s.syncFile()
			close(e.done)
			continue
		}
		b := slab[e.off : e.off+e.n]
		if s.f != nil {
			pending := s.size + int64(len(s.buf))
			if limit := s.lim.maxFileSize.Load(); limit > 0 && pending > 0 && pending+int64(len(b)) > limit {
				s.flush()
				s.rotate(now, causeSize)
			}
		}
		s.buf = append(s.buf, b...)
		s.nbuf++
		if !s.copyOff && e.level >= s.copyLevel && (s.f != nil || !s.copyIsFall) && (s.o.CopySkip == nil || !s.o.CopySkip(e.level, b)) {
			s.copyBuf = append(s.copyBuf, b...)
		}
		if len(s.buf) >= flushAt {
			s.flush()
		}
	}
	s.flush()
	if len(s.copyBuf) > 0 {
		if _, err := s.copyW.Write(s.copyBuf); err != nil {
			s.c.fail(opCopy, fmt.Errorf("logs: copy: %w", err))
		}
		s.copyBuf = s.copyBuf[:0]
	}
}

// flush writes the buffered records to the file, or to the fallback when
// there is no file. A short write is truncated away so that a full disk
// never leaves half a line behind for the next line to be glued to.
func (s *sink) flush() {
	if len(s.buf) == 0 {
		return
	}
	if s.f == nil {
		s.toFallback()
		return
	}
	if s.o.beforeWrite != nil {
		s.o.beforeWrite()
	}
	n, err := s.f.Write(s.buf)
	if err != nil {
		s.writeFailed(n, err)
		s.failing = true
		s.c.degraded.Store(true)
		s.toFallback()
		return
	}
	if s.failing {
		s.failing = false
		s.c.degraded.Store(false)
	}
	s.size += int64(n)
	s.c.curSize.Store(s.size)
	s.c.bytes.Add(int64(n))
	s.c.written.Add(s.nbuf)
	s.buf, s.nbuf = s.buf[:0], 0
}

func (s *sink) toFallback() {
	lines, over, err := s.fallback.writeLines(s.buf)
	s.c.dropped[dropFallbackLimit].Add(over)
	if err != nil {
		s.c.fail(opFallback, fmt.Errorf("logs: fallback: %w", err))
		s.c.dropped[dropWriteError].Add(lines)
	} else {
		s.c.fallback.Add(lines)
	}
	s.buf, s.nbuf = s.buf[:0], 0
}

func (s *sink) syncFile() {
	if s.f == nil {
		return
	}
	if err := s.f.Sync(); err != nil {
		s.c.fail(opSync, fmt.Errorf("logs: sync: %w", err))
	}
}

// tick runs between batches: it retries a faulted sink, reopens the file
// when something moved or removed it (writes to an unlinked file would
// vanish), and rotates an idle file at its time boundary.
func (s *sink) tick() {
	if s.closed {
		return
	}
	now := s.o.Now()
	if s.f == nil {
		s.retry(now)
		return
	}
	if s.failing {
		s.probe(now)
		if s.f == nil {
			return
		}
	}
	onDisk, err1 := os.Stat(s.cur)
	open, err2 := s.f.Stat()
	if err := errors.Join(err1, err2); err != nil || !os.SameFile(onDisk, open) {
		if err == nil {
			err = errFileReplaced
		}
		s.c.fail(opReopen, fmt.Errorf("logs: reopen %s: %w", s.cur, err))
		s.closeFile(opReopen)
		s.open(now, false)
		if s.f == nil {
			return
		}
	}
	if s.due(now) {
		if s.size > 0 {
			s.rotate(now, causeTime)
		} else {
			s.boundary = s.nextBoundary(now)
		}
	}
}

// probe writes one line to a file reopened after a failed write, so the
// pipeline recovers without waiting for traffic: the line marks the end of
// the gap in the file, and its failure (a disk still full) keeps the
// pipeline DEGRADED. It runs at most once per tick, as does retry.
// writeFailed counts a failed write, cuts a short write back off the file so
// no half line stays in it, and closes the file for the next attempt.
func (s *sink) writeFailed(n int, err error) {
	s.c.fail(opWrite, fmt.Errorf("logs: write: %w", err))
	if n > 0 {
		if terr := s.f.Truncate(s.size); terr != nil {
			s.c.fail(opWrite, fmt.Errorf("logs: truncate short write: %w", terr))
		}
	}
	s.closeFile(opWrite)
	s.lastAttempt = time.Now()
}

func (s *sink) probe(now time.Time) {
	line := append(s.buf, `{"time":`...)
	line = appendTime(line, now)
	line = append(line, `,"level":"WARN","msg":"logs: writing to the log file again after write errors; lines in between went to the fallback writer or were dropped (see /performance/logs/stats)"}`+"\n"...)
	s.buf = line[:0]
	n, err := s.f.Write(line)
	if err != nil {
		// Still no room: the line is not worth a fallback write of its own.
		s.writeFailed(n, err)
		return
	}
	s.size += int64(n)
	s.c.curSize.Store(s.size)
	s.c.bytes.Add(int64(n))
	s.c.written.Add(1)
	s.failing = false
	s.c.degraded.Store(false)
}

// shutdown flushes, syncs and closes the file; the sink then refuses work.
func (s *sink) shutdown() {
	s.flush()
	s.syncFile()
	s.closeFile(opSync)
	s.closed = true
	s.c.degraded.Store(false)
}
