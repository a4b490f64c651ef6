package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartcloudops/smartcloudops/internal/cache"
	"github.com/smartcloudops/smartcloudops/internal/config"
	"github.com/smartcloudops/smartcloudops/internal/health"
)

// BenchmarkTracingOff measures the request path with tracing off (no
// TracerProvider, the service's default): the health probe and a cached GET
// answered by the in-process tier. It uses nothing but the API that predates
// tracing, so the same file runs against the code before it and the two
// runs compare directly:
//
//	go test -run '^$' -bench BenchmarkTracingOff -benchmem -count 10 ./internal/httpapi/
func BenchmarkTracingOff(b *testing.B) {
	cfg, err := config.Load(nil, func(k string) string {
		return map[string]string{"SMARTCLOUDOPS_ADMIN_TOKEN": adminToken}[k]
	}, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	c, err := cache.New(context.Background(), cache.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	if _, err := c.PutRaw(context.Background(), "bench", "user/42", "text/plain", []byte("a small cached value"), time.Hour); err != nil {
		b.Fatal(err)
	}
	up := health.CheckerFunc(func(context.Context) health.Component { return health.Component{Status: health.StatusUp} })
	srv, err := New(Deps{
		// The access line is built and written, as in production, to nowhere.
		Logger:   slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Registry: prometheus.NewRegistry(),
		Ready:    up,
		Config:   cfg,
		Cache:    c,
		Auth:     AuthOptions{AdminToken: adminToken},
	})
	if err != nil {
		b.Fatal(err)
	}
	run := func(b *testing.B, path, auth string) {
		b.ReportAllocs()
		r := httptest.NewRequest(http.MethodGet, path, nil)
		if auth != "" {
			r.Header.Set("Authorization", "Bearer "+auth)
		}
		for b.Loop() {
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				b.Fatalf("%s: %d %s", path, w.Code, w.Body)
			}
		}
	}
	b.Run("livez", func(b *testing.B) { run(b, "/livez", "") })
	b.Run("cache_get_l1_hit", func(b *testing.B) { run(b, "/performance/cache/bench/user/42", adminToken) })
}
