package logs

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// Time starts timing a call named name and returns the func that logs it:
// name, duration_seconds, outcome ("ok" or "error") and the error, at INFO
// for success and ERROR for failure. Used with a named error result:
//
//	func load(ctx context.Context) (err error) {
//		defer logs.Time(ctx, log, "load")(&err)
//
// errp may be nil. When the logger does not log INFO, a successful call
// costs two clock reads and nothing else.
func Time(ctx context.Context, logger *slog.Logger, name string) func(errp *error) {
	start := time.Now()
	return func(errp *error) {
		var err error
		if errp != nil {
			err = *errp
		}
		level := slog.LevelInfo
		if err != nil {
			level = slog.LevelError
		}
		if !logger.Enabled(ctx, level) {
			return
		}
		d := time.Since(start)
		if err != nil {
			LogAttrs(ctx, logger, level, "call", slog.String("func", name),
				slog.Float64("duration_seconds", d.Seconds()), slog.String("outcome", "error"),
				slog.String("error", err.Error()))
			return
		}
		LogAttrs(ctx, logger, level, "call", slog.String("func", name),
			slog.Float64("duration_seconds", d.Seconds()), slog.String("outcome", "ok"))
	}
}

// ResponseRecorder records the status and size of a response for logs and
// metrics while passing everything through. Unwrap lets
// http.ResponseController reach Flush and the rest on the real writer.
type ResponseRecorder struct {
	http.ResponseWriter
	// Status is the status sent, 0 until the handler writes.
	Status int
	// Bytes counts the body bytes written.
	Bytes int64
}

// WriteHeader records the first status sent and passes it on.
func (w *ResponseRecorder) WriteHeader(code int) {
	if w.Status == 0 {
		w.Status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write counts the bytes written; a body without WriteHeader is a 200.
func (w *ResponseRecorder) Write(p []byte) (int, error) {
	if w.Status == 0 {
		w.Status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.Bytes += int64(n)
	return n, err
}

// Unwrap exposes the underlying writer to http.ResponseController.
func (w *ResponseRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush keeps streaming handlers working through the wrapper.
func (w *ResponseRecorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
