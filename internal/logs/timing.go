package logs

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
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

// RequestIDHeader carries the request id in and out of the middleware.
const RequestIDHeader = "X-Request-Id"

// Middleware logs every request: method, route (the ServeMux pattern when
// there is one, else the path), status, bytes, duration_seconds and
// outcome ("ok", "client_error", "error" for 5xx, "panic"). It puts the
// request id (from X-Request-Id, or a new one) in the context so every
// record of the request carries it, and echoes it in the response.
func Middleware(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			ctx := r.Context()
			id, ok := RequestID(ctx)
			if !ok {
				id = r.Header.Get(RequestIDHeader)
				if id == "" || len(id) > 128 {
					id = strconv.FormatUint(rand.Uint64(), 16)
				}
				ctx = WithRequestID(ctx, id)
				r = r.WithContext(ctx)
			}
			w.Header().Set(RequestIDHeader, id)
			rw := &ResponseRecorder{ResponseWriter: w}
			defer func() {
				outcome, level := "ok", slog.LevelInfo
				var perr error
				p := recover()
				switch {
				case p != nil:
					outcome, level = "panic", slog.LevelError
					perr = fmt.Errorf("panic: %v", p)
					if rw.Status == 0 {
						rw.Status = http.StatusInternalServerError
					}
				case rw.Status >= 500:
					outcome, level = "error", slog.LevelError
				case rw.Status >= 400:
					outcome = "client_error"
				}
				if logger.Enabled(ctx, level) {
					route := r.Pattern
					if route == "" {
						route = r.URL.Path
					}
					status := rw.Status
					if status == 0 {
						status = http.StatusOK
					}
					attrs := []slog.Attr{
						slog.String("method", r.Method), slog.String("route", route),
						slog.Int("status", status), slog.Int64("bytes", rw.Bytes),
						slog.Float64("duration_seconds", time.Since(start).Seconds()),
						slog.String("outcome", outcome),
					}
					if perr != nil {
						attrs = append(attrs, slog.String("error", perr.Error()))
					}
					LogAttrs(ctx, logger, level, "http request", attrs...)
				}
				if p != nil {
					// Logged; the server still decides what a panic means.
					panic(p)
				}
			}()
			next.ServeHTTP(rw, r)
		})
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
