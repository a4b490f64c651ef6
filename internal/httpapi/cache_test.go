package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/smartcloudops/smartcloudops/internal/cache"
	"github.com/smartcloudops/smartcloudops/internal/redistest"
)

// newCacheFixture serves the cache endpoints over a real cache: Redis-backed
// (its own key prefix) or memory-only.
func newCacheFixture(t *testing.T, redisURL string) (*fixture, *cache.Cache) {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	c, err := cache.New(context.Background(), cache.Options{RedisURL: redisURL, KeyPrefix: "sco-httpapi-test-" + hex.EncodeToString(b[:]) + ":", MaxValueBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = c.ClearNamespace(context.Background(), "team-a")
		_, _ = c.ClearNamespace(context.Background(), "team-b")
		c.Close()
	})
	f := newFixture(t, func(d *Deps) { d.Cache = c; d.MaxBodyBytes = 4096 })
	return f, c
}

func tenantJWT(t *testing.T, tenant string) string {
	return signed(t, jwt.SigningMethodHS256, []byte(jwtSecret), jwt.MapClaims{"role": "user", "tenant": tenant, "exp": testNow.Add(time.Hour).Unix()})
}

func TestCacheEndpoints(t *testing.T) {
	for _, mode := range []struct{ name, url, tier, durability string }{{"redis", redistest.URL(), "L2", "redis"}, {"memory", "", "L1", "memory"}} {
		t.Run(mode.name, func(t *testing.T) {
			f, _ := newCacheFixture(t, mode.url)
			a := tenantJWT(t, "team-a")

			w := f.do(t, http.MethodPut, "/performance/cache/team-a/user/42?ttl=60", a, "text/csv", "id,name\n42,Ada\n")
			if w.Code != http.StatusOK {
				t.Fatalf("PUT: %d %s", w.Code, w.Body)
			}
			if d := w.Header().Get("X-Cache-Durability"); d != mode.durability {
				t.Errorf("PUT X-Cache-Durability = %q; want %q", d, mode.durability)
			}
			w = f.do(t, http.MethodGet, "/performance/cache/team-a/user/42", a, "", "")
			if w.Code != http.StatusOK || w.Body.String() != "id,name\n42,Ada\n" || w.Header().Get("Content-Type") != "text/csv" {
				t.Fatalf("GET: %d %q %q", w.Code, w.Body, w.Header().Get("Content-Type"))
			}
			if x := w.Header().Get("X-Cache"); x != "L1" && x != "L2" {
				t.Fatalf("X-Cache = %q", x)
			}
			// Another replica's in-process tier is cold, so a Redis-backed
			// read can come from L2; a memory-only one always from L1.
			if mode.tier == "L1" && w.Header().Get("X-Cache") != "L1" {
				t.Fatalf("memory-only X-Cache = %q", w.Header().Get("X-Cache"))
			}

			// Tenant isolation: team-b can neither read nor clear team-a.
			b := tenantJWT(t, "team-b")
			for _, req := range []struct{ method, path, body string }{
				{http.MethodGet, "/performance/cache/team-a/user/42", ""},
				{http.MethodPut, "/performance/cache/team-a/user/42", "x"},
				{http.MethodDelete, "/performance/cache/team-a/user/42", ""},
				{http.MethodPost, "/performance/cache/clear", `{"namespace":"team-a"}`},
			} {
				if w := f.do(t, req.method, req.path, b, "application/json", req.body); w.Code != http.StatusForbidden {
					t.Errorf("team-b %s %s: %d; want 403", req.method, req.path, w.Code)
				}
			}
			reserved := tenantJWT(t, "_smartcloudops.query-results")
			if w := f.do(t, http.MethodGet, "/performance/cache/_smartcloudops.query-results/k", reserved, "", ""); w.Code != http.StatusForbidden {
				t.Errorf("reserved namespace with a matching tenant claim: %d; want 403", w.Code)
			}
			unscoped := signed(t, jwt.SigningMethodHS256, []byte(jwtSecret), jwt.MapClaims{"role": "user", "exp": testNow.Add(time.Hour).Unix()})
			if w := f.do(t, http.MethodGet, "/performance/cache/team-a/user/42", unscoped, "", ""); w.Code != http.StatusForbidden {
				t.Errorf("user without tenant claim: %d; want 403", w.Code)
			}
			if w := f.do(t, http.MethodGet, "/performance/cache/team-a/user/42", "", "", ""); w.Code != http.StatusUnauthorized {
				t.Errorf("no token: %d; want 401", w.Code)
			}
			if w := f.do(t, http.MethodGet, "/performance/cache/team-a/user/42", "Bearer "+adminToken, "", ""); w.Code != http.StatusOK {
				t.Errorf("admin: %d; want 200", w.Code)
			}

			if w := f.do(t, http.MethodGet, "/performance/cache/team-a/nope", a, "", ""); w.Code != http.StatusNotFound {
				t.Errorf("miss: %d; want 404", w.Code)
			} else {
				decodeProblem(t, w)
			}

			w = f.do(t, http.MethodPost, "/performance/cache/clear", a, "application/json", `{"namespace":"team-a"}`)
			var cleared struct {
				Removed int64 `json:"removed"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &cleared); err != nil || w.Code != http.StatusOK || cleared.Removed < 1 {
				t.Fatalf("clear: %d %s", w.Code, w.Body)
			}
			if d := w.Header().Get("X-Cache-Durability"); d != mode.durability {
				t.Errorf("clear X-Cache-Durability = %q; want %q", d, mode.durability)
			}
			if w := f.do(t, http.MethodGet, "/performance/cache/team-a/user/42", a, "", ""); w.Code != http.StatusNotFound {
				t.Errorf("after clear: %d; want 404", w.Code)
			}

			f.do(t, http.MethodPut, "/performance/cache/team-a/k", a, "", "v")
			if w := f.do(t, http.MethodDelete, "/performance/cache/team-a/k", a, "", ""); w.Code != http.StatusNoContent {
				t.Errorf("delete: %d", w.Code)
			}
			if w := f.do(t, http.MethodDelete, "/performance/cache/team-a/k", a, "", ""); w.Code != http.StatusNotFound {
				t.Errorf("delete again: %d; want 404", w.Code)
			}

			w = f.do(t, http.MethodGet, "/performance/cache/stats", "", "", "")
			var st cache.Stats
			if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil || w.Code != http.StatusOK {
				t.Fatalf("stats: %d %s", w.Code, w.Body)
			}
			if st.L1.Sets+st.L2.Sets == 0 || st.L1.Hits+st.L2.Hits == 0 {
				t.Errorf("stats did not move: %+v", st)
			}
			if strings.Contains(w.Body.String(), "6379") || strings.Contains(w.Body.String(), "redis://") {
				t.Errorf("stats show the Redis address: %s", w.Body)
			}
		})
	}
}

func TestCacheBadInput(t *testing.T) {
	f, _ := newCacheFixture(t, "")
	admin := "Bearer " + adminToken
	long := strings.Repeat("k", cache.MaxKeyBytes+1)
	cases := []struct {
		name, method, path, ct, body string
		status                       int
		field                        string
	}{
		{"key too long", http.MethodPut, "/performance/cache/ns/" + long, "", "v", 400, "key"},
		{"namespace too long", http.MethodGet, "/performance/cache/" + long + "/k", "", "", 400, "namespace"},
		{"control character in key", http.MethodGet, "/performance/cache/ns/a%07b", "", "", 400, "key"},
		{"control character in namespace", http.MethodPut, "/performance/cache/n%0As/k", "", "v", 400, "namespace"},
		{"empty key", http.MethodGet, "/performance/cache/ns/", "", "", 400, "key"},
		{"negative ttl", http.MethodPut, "/performance/cache/ns/k?ttl=-1", "", "v", 400, "ttl"},
		{"ttl not a number", http.MethodPut, "/performance/cache/ns/k?ttl=soon", "", "v", 400, "ttl"},
		{"value too large", http.MethodPut, "/performance/cache/ns/k", "", strings.Repeat("x", 1001), 413, ""},
		{"clear without namespace", http.MethodPost, "/performance/cache/clear", "application/json", `{}`, 400, "namespace"},
		{"clear malformed", http.MethodPost, "/performance/cache/clear", "application/json", `{"namespace":`, 400, ""},
		{"clear unknown field", http.MethodPost, "/performance/cache/clear", "application/json", `{"ns":"a"}`, 400, "ns"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := f.do(t, tc.method, tc.path, admin, tc.ct, tc.body)
			if w.Code != tc.status {
				t.Fatalf("status %d; want %d: %s", w.Code, tc.status, w.Body)
			}
			p := decodeProblem(t, w)
			if tc.field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != tc.field) {
				t.Errorf("problem does not name %s: %+v", tc.field, p)
			}
		})
	}
}

func TestCacheDisabled(t *testing.T) {
	f := newFixture(t, nil)
	w := f.do(t, http.MethodGet, "/performance/cache/stats", "", "", "")
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("stats without a cache: %d", w.Code)
	}
	decodeProblem(t, w)
}

// TestNoRedirects checks the API answers paths the mux would redirect with a
// problem instead: a client following a redirect could write another key.
func TestNoRedirects(t *testing.T) {
	f, c := newCacheFixture(t, "")
	admin := "Bearer " + adminToken
	for _, tc := range []struct{ method, path string }{
		{http.MethodPut, "/performance/cache/ns/a/../b"},
		{http.MethodPut, "/performance/cache/ns/a//b"},
		{http.MethodGet, "/performance/cache/ns"},
		{http.MethodPut, "/performance/cache/stats"},
		{http.MethodDelete, "/performance/cache/ns/./k"},
		// The same segments percent-encoded: PathValue decodes them after
		// the mux matched, so the handler refuses them the same way.
		{http.MethodPut, "/performance/cache/ns/%2e%2e/b"},
		{http.MethodPut, "/performance/cache/ns/%2E%2E/b"},
		{http.MethodGet, "/performance/cache/ns/%2e%2e/b"},
		{http.MethodDelete, "/performance/cache/ns/%2e/b"},
		{http.MethodPut, "/performance/cache/%2e%2e/b"},
		{http.MethodPut, "/performance/cache/%2e/b"},
		{http.MethodPut, "/performance/cache/ns/a%2F..%2Fb"},
		{http.MethodPut, "/performance/cache/ns/a%2F%2Fb"},
		{http.MethodPut, "/performance/cache/ns/%2Fb"},
		{http.MethodPut, "/performance/cache/ns/b%2F"},
		{http.MethodPut, "/performance/cache/ns/a/%2e%2e"},
	} {
		w := f.do(t, tc.method, tc.path, admin, "text/plain", "v")
		if w.Code != http.StatusNotFound || w.Header().Get("Location") != "" {
			t.Errorf("%s %s: %d Location=%q; want a 404 problem, no redirect", tc.method, tc.path, w.Code, w.Header().Get("Location"))
			continue
		}
		decodeProblem(t, w)
	}
	for _, key := range []string{"b", "../b", "./b", "a/../b", "a//b", "/b", "b/", "a/.."} {
		if _, found, _ := c.GetRaw(context.Background(), "ns", key); found {
			t.Errorf("a refused path wrote key %q", key)
		}
	}
	for _, ns := range []string{"..", "."} {
		if _, found, _ := c.GetRaw(context.Background(), ns, "b"); found {
			t.Errorf("a refused path wrote namespace %q", ns)
		}
	}
	// Keys with dots inside a segment are ordinary keys.
	if w := f.do(t, http.MethodPut, "/performance/cache/ns/v1.2/..hidden/a..b", admin, "text/plain", "v"); w.Code != http.StatusOK {
		t.Errorf("key with dots inside segments: %d %s", w.Code, w.Body)
	}
	// The namespace of a clear is no path, so a dot segment there is a 400
	// naming the field.
	w := f.do(t, http.MethodPost, "/performance/cache/clear", admin, "application/json", `{"namespace":".."}`)
	if p := decodeProblem(t, w); w.Code != http.StatusBadRequest || len(p.Errors) == 0 || p.Errors[0].Field != "namespace" {
		t.Errorf("clear of namespace \"..\": %d %+v", w.Code, p)
	}
}
