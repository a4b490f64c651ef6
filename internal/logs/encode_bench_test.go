package logs

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

// BenchmarkEncode is the handler's encoding alone, for a record with ten
// attributes (the pipeline's hot path minus the queue).
func BenchmarkEncode(b *testing.B) {
	h := &Handler{l: &Logger{}}
	r := slog.NewRecord(time.Now(), slog.LevelInfo, "request handled", 0)
	r.AddAttrs(slog.String("method", "GET"), slog.String("route", "/api/v1/items/{id}"),
		slog.Int("status", 200), slog.Int("bytes", 5123), slog.Duration("duration", 1234567*time.Nanosecond),
		slog.String("user", "alice"), slog.String("tenant", "acme"), slog.String("region", "eu-west-1"),
		slog.Bool("cache_hit", true), slog.Int("seq", 1))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		putBuf(h.encode(ctx, &r))
	}
}
