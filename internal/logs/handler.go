package logs

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"
)

type requestIDKey struct{}

// WithRequestID returns ctx carrying id, which every record logged with
// that context shows as "request_id".
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request id that WithRequestID put in ctx.
func RequestID(ctx context.Context) (string, bool) {
	if ctx == nil {
		return "", false
	}
	id, ok := ctx.Value(requestIDKey{}).(string)
	return id, ok && id != ""
}

// enqueueSample is the one-in-N of records whose enqueue is timed for the
// latency histogram. Timing costs two clock reads (about 40 ns each on a
// VM) and three atomic updates. Timing every record made that a fifth of
// the median; timing one in 16 still put the timed calls, 6% of all, in
// the slowest 1% and so set the very p99 they measure. One in 128 keeps
// the timed calls under 1%, and still gives thousands of samples a second
// when latency matters, at high rates.
const enqueueSample = 128

// clockBase anchors the monotonic readings that time a sampled record:
// time.Since on it reads one clock, time.Now reads two.
var clockBase = time.Now()

// maxPooledBuf keeps a rare huge record from pinning its buffer forever.
const maxPooledBuf = 64 << 10

// bufPool holds encoding buffers. The queue copies a record before submit
// returns, so only one buffer per running goroutine is ever in use, and a
// steady state encodes without allocating.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > maxPooledBuf {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// Handler is the slog.Handler of a Logger: it encodes each record as one
// JSON line on the caller's goroutine and hands the bytes to the pipeline.
type Handler struct {
	l *Logger
	// pre holds the attributes of WithAttrs, already encoded, including the
	// openings of the groups they sit in.
	pre []byte
	// open counts the groups opened in pre, to close after the record.
	open int
	// pending holds groups from WithGroup that have no attribute yet: slog
	// omits empty groups, so they are opened only when one arrives.
	pending []string
}

// Enabled reports whether lvl reaches the Logger's level.
func (h *Handler) Enabled(_ context.Context, lvl slog.Level) bool {
	return lvl >= h.l.opts.Level.Level()
}

// WithAttrs returns a handler that adds attrs to every record.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	h2 := *h
	// The sentinel byte makes the first key take its comma: pre always
	// follows the built-in fields.
	pre := append([]byte{' '}, h.pre...)
	for _, g := range h.pending {
		pre = appendKey(pre, g)
		pre = append(pre, '{')
	}
	n := len(pre)
	for _, a := range attrs {
		pre = appendAttr(pre, a)
	}
	if len(pre) == n {
		return h
	}
	h2.pre = slices.Clip(pre[1:])
	h2.open += len(h.pending)
	h2.pending = nil
	return &h2
}

// WithGroup returns a handler that nests later attributes under name.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.pending = append(slices.Clip(h.pending), name)
	return &h2
}

// Handle encodes r and submits it. The error reports a record that could
// be neither queued nor written anywhere.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	start := h.l.startEnqueue()
	return h.l.finishEnqueue(start, r.Level, h.encode(ctx, &r))
}

// logAttrs is Handle without a slog.Record: LogAttrs's path.
func (h *Handler) logAttrs(ctx context.Context, level slog.Level, msg string, attrs []slog.Attr) error {
	start := h.l.startEnqueue()
	return h.l.finishEnqueue(start, level, h.encodeAttrs(ctx, time.Now(), level, msg, attrs))
}

// encode renders r as one JSON line into a pooled buffer.
func (h *Handler) encode(ctx context.Context, r *slog.Record) *[]byte {
	bp := getBuf()
	b := h.appendHead((*bp)[:0], ctx, r.Time, r.Level, r.Message)
	switch {
	case r.NumAttrs() == 0:
	case len(h.pending) == 0:
		// No group waits to be opened: the common case, kept lean.
		r.Attrs(func(a slog.Attr) bool {
			b = appendAttr(b, a)
			return true
		})
	default:
		g := pendingGroups{names: h.pending}
		r.Attrs(func(a slog.Attr) bool {
			b = g.append(b, a)
			return true
		})
		b = g.end(b)
	}
	*bp = h.appendTail(b)
	return bp
}

// encodeAttrs is encode for a record given by its parts. It keeps its own
// loops: one encoder over an iter.Seq (r.Attrs or slices.Values) put the
// sequence's closures and LogAttrs's attributes on the heap, three
// allocations per call.
func (h *Handler) encodeAttrs(ctx context.Context, t time.Time, level slog.Level, msg string, attrs []slog.Attr) *[]byte {
	bp := getBuf()
	b := h.appendHead((*bp)[:0], ctx, t, level, msg)
	if len(h.pending) == 0 {
		for _, a := range attrs {
			b = appendAttr(b, a)
		}
	} else {
		g := pendingGroups{names: h.pending}
		for _, a := range attrs {
			b = g.append(b, a)
		}
		b = g.end(b)
	}
	*bp = h.appendTail(b)
	return bp
}

// LogAttrs logs like logger.LogAttrs, and writes the same line. When
// logger's handler is the pipeline's (Logger.Slog, or any With or
// WithGroup of it) it skips slog.Logger's front end: the caller's PC,
// which this handler never writes, and the Record, which copies attributes
// past the fifth into a heap slice. That front end costs about as much as
// the pipeline's own encode and enqueue, and its allocation sets much of
// a call's p99, so hot paths (the access log, function timing) call this.
// Other handlers get the ordinary slog call.
func LogAttrs(ctx context.Context, logger *slog.Logger, level slog.Level, msg string, attrs ...slog.Attr) {
	h, ok := logger.Handler().(*Handler)
	if !ok {
		logger.LogAttrs(ctx, level, msg, attrs...)
		return
	}
	if h.Enabled(ctx, level) {
		// As slog.Logger does, a record that could not be written is left
		// to the counters and the health check.
		_ = h.logAttrs(ctx, level, msg, attrs)
	}
}

// startEnqueue counts an attempted record and, for one in enqueueSample,
// returns the clock reading that finishEnqueue times it from (else -1).
func (l *Logger) startEnqueue() time.Duration {
	if l.c.attempted.Add(1)%enqueueSample != 0 {
		return -1
	}
	return time.Since(clockBase)
}

// finishEnqueue submits the encoded record, returns its buffer to the pool
// and records the sampled enqueue time.
func (l *Logger) finishEnqueue(start time.Duration, level slog.Level, bp *[]byte) error {
	err := l.submit(level, *bp)
	putBuf(bp)
	if start >= 0 {
		l.c.enqueue.observe(time.Since(clockBase) - start)
	}
	return err
}

// appendHead writes the opening of a line: time, level, msg, the request
// id and the WithAttrs attributes.
func (h *Handler) appendHead(b []byte, ctx context.Context, t time.Time, level slog.Level, msg string) []byte {
	b = append(b, '{')
	if !t.IsZero() {
		b = append(b, `"time":`...)
		b = appendTime(b, t)
		b = append(b, ',')
	}
	b = append(b, `"level":`...)
	b = appendLevel(b, level)
	b = append(b, `,"msg":`...)
	b = appendString(b, msg)
	if id, ok := RequestID(ctx); ok {
		b = appendKey(b, "request_id")
		b = appendString(b, id)
	}
	return append(b, h.pre...)
}

// appendTail closes the groups of WithAttrs and the line.
func (h *Handler) appendTail(b []byte) []byte {
	for range h.open {
		b = append(b, '}')
	}
	return append(b, '}', '\n')
}

// pendingGroups opens the WithGroup groups that have no attribute yet in
// front of a record's first attribute that is not empty; slog omits a
// group that would stay empty.
type pendingGroups struct {
	names  []string
	opened bool
}

func (g *pendingGroups) append(b []byte, a slog.Attr) []byte {
	mark := len(b)
	if !g.opened {
		for _, name := range g.names {
			b = appendKey(b, name)
			b = append(b, '{')
		}
	}
	n := len(b)
	b = appendAttr(b, a)
	switch {
	case len(b) == n:
		b = b[:mark]
	case !g.opened:
		g.opened = true
	}
	return b
}

func (g *pendingGroups) end(b []byte) []byte {
	if g.opened {
		for range g.names {
			b = append(b, '}')
		}
	}
	return b
}

// appendAttr follows slog's rules: values resolved, empty attributes and
// empty groups omitted, groups with an empty key inlined.
func appendAttr(b []byte, a slog.Attr) []byte {
	v := a.Value
	kind := v.Kind()
	if kind == slog.KindLogValuer {
		// Resolve guards against a panicking LogValue with a deferred
		// recover, which is dear enough to skip for plain values.
		v = v.Resolve()
		kind = v.Kind()
	}
	if a.Key == "" && kind == slog.KindAny && v.Any() == nil {
		return b
	}
	switch kind {
	case slog.KindGroup:
		attrs := v.Group()
		if len(attrs) == 0 {
			return b
		}
		if a.Key == "" {
			for _, x := range attrs {
				b = appendAttr(b, x)
			}
			return b
		}
		mark := len(b)
		b = appendKey(b, a.Key)
		b = append(b, '{')
		n := len(b)
		for _, x := range attrs {
			b = appendAttr(b, x)
		}
		if len(b) == n {
			return b[:mark]
		}
		return append(b, '}')
	case slog.KindString:
		b = appendKey(b, a.Key)
		return appendString(b, v.String())
	case slog.KindInt64:
		b = appendKey(b, a.Key)
		return appendInt(b, v.Int64())
	case slog.KindUint64:
		b = appendKey(b, a.Key)
		return appendUint(b, v.Uint64())
	case slog.KindFloat64:
		b = appendKey(b, a.Key)
		return appendFloat(b, v.Float64())
	case slog.KindBool:
		b = appendKey(b, a.Key)
		if v.Bool() {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case slog.KindDuration:
		// Nanoseconds as an integer, as slog's JSON handler writes them.
		b = appendKey(b, a.Key)
		return appendInt(b, int64(v.Duration()))
	case slog.KindTime:
		b = appendKey(b, a.Key)
		return appendTime(b, v.Time())
	default:
		b = appendKey(b, a.Key)
		return appendAny(b, v.Any())
	}
}
