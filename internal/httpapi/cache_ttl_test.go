package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/redistest"
)

// TestCachePutAnswersEffectiveTTL: a PUT without ttl (or ttl=0) answers the
// TTL the entry really got, the default, and Redis holds it for that long;
// a memory-only cache says its breaker state is "none", not "".
func TestCachePutAnswersEffectiveTTL(t *testing.T) {
	for _, mode := range []struct{ name, url string }{{"redis", redistest.URL()}, {"memory", ""}} {
		t.Run(mode.name, func(t *testing.T) {
			f, c := newCacheFixture(t, mode.url)
			a := tenantJWT(t, "team-a")
			def := c.DefaultTTL()
			for _, tc := range []struct {
				path string
				want time.Duration
			}{
				{"/performance/cache/team-a/ttl/none", def},
				{"/performance/cache/team-a/ttl/zero?ttl=0", def},
				{"/performance/cache/team-a/ttl/sixty?ttl=60", time.Minute},
			} {
				w := f.do(t, http.MethodPut, tc.path, a, "text/plain", "v")
				var resp cachePutResponse
				if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &resp) != nil {
					t.Fatalf("PUT %s: %d %s", tc.path, w.Code, w.Body)
				}
				if resp.TTLSeconds != tc.want.Seconds() {
					t.Errorf("PUT %s: ttl_seconds %v; want %v", tc.path, resp.TTLSeconds, tc.want.Seconds())
				}
				if mode.url == "" {
					continue
				}
				left, found, err := c.TTL(context.Background(), "team-a", resp.Key)
				if err != nil || !found || left > tc.want || left < tc.want-30*time.Second {
					t.Errorf("PUT %s: Redis holds it for %v (found %v, %v); want about %v", tc.path, left, found, err, tc.want)
				}
			}
			if mode.url == "" {
				if st := c.Stats(context.Background()); st.Breaker.State != "none" {
					t.Errorf("memory-only breaker state %q; want none", st.Breaker.State)
				}
			}
		})
	}
}
