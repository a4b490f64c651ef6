package logs

import (
	"errors"
	"io/fs"
	"math/bits"
	"os"
	"sync/atomic"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/latency"
)

// Drop reasons, the values of the "reason" label.
const (
	// DropQueueFull: the queue was full under OverflowDrop.
	DropQueueFull = "queue_full"
	// DropTimeout: the queue stayed full for BlockTimeout under OverflowBlock.
	DropTimeout = "timeout"
	// DropClosed: the record arrived after Close.
	DropClosed = "closed"
	// DropShutdown: the record was still queued when Close's deadline passed.
	DropShutdown = "shutdown"
	// DropWriteError: neither the file nor the fallback writer took it.
	DropWriteError = "write_error"
	// DropFallbackLimit: the file could not take it and the fallback writer
	// had used up its Options.FallbackBytesPerSecond.
	DropFallbackLimit = "fallback_limit"
)

var dropReasons = [...]string{DropQueueFull, DropTimeout, DropClosed, DropShutdown, DropWriteError, DropFallbackLimit}

const (
	dropQueueFull = iota
	dropTimeout
	dropClosed
	dropShutdown
	dropWriteError
	dropFallbackLimit
)

// Rotation causes, the values of the "cause" label.
const (
	causeSize = iota
	causeTime
)

var rotationCauses = [...]string{"size", "time"}

// Operations that can fail, the values of the "op" label.
const (
	opOpen = iota
	opWrite
	opSync
	opRotate
	opCompress
	opRetention
	opFallback
	opCopy
	opReopen
)

var errorOps = [...]string{"open", "write", "sync", "rotate", "compress", "retention", "fallback", "copy", "reopen"}

// Retention reasons, the values of the "reason" label of removed files.
const (
	removedCount = iota
	removedAge
)

var removalReasons = [...]string{"count", "age"}

type lastError struct {
	op  string
	msg string
	// cause is msg without the file names os errors quote: the public
	// health endpoint shows it, and it must not reveal the server's paths.
	cause string
	when  time.Time
}

// counters is the one record of what happened; Stats and the Prometheus
// collector both read it, so the endpoint and the metrics always agree.
type counters struct {
	// attempted is added to by every record on its caller's goroutine; the
	// padding keeps the writer's own counters off its cache line (and the
	// line next to it, which the CPU fetches in pairs), so a batch written
	// does not cost the next caller a cache miss.
	_         [128]byte
	attempted atomic.Int64
	_         [120]byte

	written     atomic.Int64
	fallback    atomic.Int64
	dropped     [len(dropReasons)]atomic.Int64
	bytes       atomic.Int64
	rotations   [len(rotationCauses)]atomic.Int64
	errors      [len(errorOps)]atomic.Int64
	removed     [len(removalReasons)]atomic.Int64
	compressed  atomic.Int64
	compressIn  atomic.Int64
	compressOut atomic.Int64

	curSize    atomic.Int64
	curOpen    atomic.Bool
	backups    atomic.Int64
	backupSize atomic.Int64
	degraded   atomic.Bool
	compFail   atomic.Bool

	last    atomic.Pointer[lastError]
	enqueue latencyHist
}

func (c *counters) fail(op int, err error) {
	c.errors[op].Add(1)
	c.last.Store(&lastError{op: errorOps[op], msg: err.Error(), cause: pathFree(err), when: time.Now()})
}

// pathFree describes err by what went wrong, not where: the innermost
// error of an os path, link or syscall error ("no space left on device"),
// or a fixed text when err carries no such error and may name a path.
func pathFree(err error) string {
	var (
		pe *fs.PathError
		le *os.LinkError
		se *os.SyscallError
	)
	switch {
	case errors.As(err, &pe):
		return pe.Op + ": " + pe.Err.Error()
	case errors.As(err, &le):
		return le.Op + ": " + le.Err.Error()
	case errors.As(err, &se):
		return se.Syscall + ": " + se.Err.Error()
	case errors.Is(err, errFileReplaced):
		return errFileReplaced.Error()
	}
	return "see /performance/logs/stats"
}

// latencyHist is a lock-free log-linear histogram of nanoseconds: four
// buckets per power of two (relative error under 25%), one atomic add per
// observation, so it is cheap enough to time every record.
type latencyHist struct {
	buckets [histBuckets]atomic.Uint64
	sum     atomic.Uint64
	max     atomic.Uint64
}

const histBuckets = 4 + 62*4

func histIndex(ns uint64) int {
	if ns < 4 {
		return int(ns)
	}
	e := bits.Len64(ns) - 1
	m := (ns >> (e - 2)) & 3
	return (e-2)*4 + int(m) + 4
}

// histUpper is the exclusive upper bound of bucket i in nanoseconds.
func histUpper(i int) uint64 {
	if i < 4 {
		return uint64(i) + 1
	}
	e := (i-4)/4 + 2
	m := uint64((i - 4) % 4)
	if e >= 62 {
		return 1<<63 - 1
	}
	return (4 + m + 1) << (e - 2)
}

func (h *latencyHist) observe(d time.Duration) {
	ns := uint64(max(d, 0))
	h.buckets[histIndex(ns)].Add(1)
	h.sum.Add(ns)
	for {
		cur := h.max.Load()
		if ns <= cur || h.max.CompareAndSwap(cur, ns) {
			return
		}
	}
}

// snapshot copies the buckets so quantiles come from one consistent count.
func (h *latencyHist) snapshot() (counts [histBuckets]uint64, total uint64) {
	for i := range h.buckets {
		counts[i] = h.buckets[i].Load()
		total += counts[i]
	}
	return counts, total
}

func quantile(counts *[histBuckets]uint64, total uint64, q float64) time.Duration {
	if total == 0 {
		return 0
	}
	rank := latency.Rank(total, q)
	var seen uint64
	for i, n := range counts {
		seen += n
		if seen >= rank {
			return time.Duration(histUpper(i))
		}
	}
	return time.Duration(histUpper(histBuckets - 1))
}

// Stats is a snapshot of the pipeline for GET /performance/logs/stats.
// Durations and sizes are in base units: seconds and bytes.
type Stats struct {
	// RecordsAttempted counts records handed to the pipeline; it equals
	// written + fallback + dropped + queued.
	RecordsAttempted int64 `json:"records_attempted"`
	// RecordsWritten counts records written to the log file.
	RecordsWritten int64 `json:"records_written"`
	// RecordsFallback counts records written to the fallback writer
	// because the file could not take them.
	RecordsFallback int64 `json:"records_fallback"`
	// RecordsDropped counts lost records by reason (every reason present).
	RecordsDropped      map[string]int64 `json:"records_dropped"`
	RecordsDroppedTotal int64            `json:"records_dropped_total"`
	BytesWritten        int64            `json:"bytes_written"`

	QueueLength        int64 `json:"queue_length"`
	QueueCapacity      int64 `json:"queue_capacity"`
	QueueBytes         int64 `json:"queue_bytes"`
	QueueCapacityBytes int64 `json:"queue_capacity_bytes"`
	// EnqueueLatency is the caller's cost per record, encoding and
	// queueing, from a sample of one record in 128 (Count counts the sample).
	EnqueueLatency LatencySummary `json:"enqueue_latency"`

	// Rotations counts rotations by cause ("size", "time").
	Rotations map[string]int64 `json:"rotations"`
	// FilesRemoved counts rotated files removed by retention, by reason.
	FilesRemoved    map[string]int64 `json:"files_removed"`
	FilesCompressed int64            `json:"files_compressed"`
	// CompressionBytesIn and CompressionBytesOut are the sizes before and
	// after gzip; CompressionRatio is out/in, the share of the original size
	// the gzipped files take (0.12 means 12%), the same convention as the
	// cache's compression ratio.
	CompressionBytesIn  int64   `json:"compression_bytes_in"`
	CompressionBytesOut int64   `json:"compression_bytes_out"`
	CompressionRatio    float64 `json:"compression_ratio"`

	// FilesOnDisk and FilesBytes include the current file.
	FilesOnDisk      int64  `json:"files_on_disk"`
	FilesBytes       int64  `json:"files_bytes"`
	CurrentFile      string `json:"current_file"`
	CurrentFileBytes int64  `json:"current_file_bytes"`

	// Errors counts failures by operation.
	Errors        map[string]int64 `json:"errors"`
	LastError     string           `json:"last_error,omitempty"`
	LastErrorTime *time.Time       `json:"last_error_time,omitempty"`
	Degraded      bool             `json:"degraded"`
}

// LatencySummary holds quantiles in seconds, bucketed to within 25%.
type LatencySummary struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_seconds"`
	P90   float64 `json:"p90_seconds"`
	P99   float64 `json:"p99_seconds"`
	P999  float64 `json:"p999_seconds"`
	Max   float64 `json:"max_seconds"`
}
