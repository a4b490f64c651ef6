package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/smartcloudops/smartcloudops/internal/health"
)

const metricsToken = "scrape-token-0123456789"

// TestMetricsToken: the scrape token reads both metrics paths under
// SMARTCLOUDOPS_REQUIRE_AUTH=true, and nothing else: not other reads, not
// writes, not admin routes.
func TestMetricsToken(t *testing.T) {
	f := newFixture(t, func(d *Deps) {
		d.Auth.RequireAuth = true
		d.Auth.MetricsToken = metricsToken
	})
	scrape := "Bearer " + metricsToken
	user := signed(t, jwt.SigningMethodHS256, []byte(jwtSecret), jwt.MapClaims{"role": "user", "exp": testNow.Add(time.Hour).Unix()})
	for _, tc := range []struct {
		method, path, auth string
		status             int
	}{
		{"GET", "/metrics", scrape, http.StatusOK},
		{"GET", "/performance/metrics", scrape, http.StatusOK},
		{"GET", "/metrics", "", http.StatusUnauthorized},
		{"GET", "/metrics", "Bearer " + metricsToken + "x", http.StatusUnauthorized},
		{"GET", "/metrics", user, http.StatusOK},
		{"GET", "/metrics", "Bearer " + adminToken, http.StatusOK},
		{"GET", "/performance/config", scrape, http.StatusForbidden},
		{"GET", "/performance/summary", scrape, http.StatusForbidden},
		{"GET", "/api/v1/hosts", scrape, http.StatusForbidden},
		{"POST", "/performance/database/optimize", scrape, http.StatusForbidden},
		{"PUT", "/performance/config", scrape, http.StatusForbidden},
		{"GET", "/livez", scrape, http.StatusOK},
	} {
		w := f.do(t, tc.method, tc.path, tc.auth, "application/json", `{}`)
		if w.Code != tc.status {
			t.Errorf("%s %s: %d; want %d (%s)", tc.method, tc.path, w.Code, tc.status, truncate(w.Body.String(), 200))
		}
		if tc.status == http.StatusOK && strings.HasSuffix(tc.path, "metrics") && !strings.Contains(w.Body.String(), "smartcloudops_http_") {
			t.Errorf("%s %s: no exposition in the body", tc.method, tc.path)
		}
		if tc.status == http.StatusForbidden {
			decodeProblem(t, w)
		}
	}
	if len(f.maint.calls) != 0 {
		t.Fatal("the scrape token ran a state-changing handler")
	}
}

// TestMetricsPathsOpenByDefault: without REQUIRE_AUTH both paths answer
// anonymously, the same exposition.
func TestMetricsPathsOpenByDefault(t *testing.T) {
	f := newFixture(t, nil)
	for _, p := range []string{"/metrics", "/performance/metrics"} {
		if w := f.do(t, "GET", p, "", "", ""); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "# TYPE") {
			t.Errorf("GET %s: %d", p, w.Code)
		}
	}
}

// TestReadyzDrains: Drain turns /readyz 503 at once while the rest keeps
// serving, and /livez stays up (the process is healthy, just leaving).
func TestReadyzDrains(t *testing.T) {
	f := newFixture(t, nil)
	if w := f.do(t, "GET", "/readyz", "", "", ""); w.Code != http.StatusOK {
		t.Fatalf("before Drain: %d", w.Code)
	}
	f.srv.Drain()
	w := f.do(t, "GET", "/readyz", "", "", "")
	var c health.Component
	if err := json.Unmarshal(w.Body.Bytes(), &c); err != nil {
		t.Fatal(err)
	}
	if w.Code != http.StatusServiceUnavailable || c.Status != health.StatusDown || c.Details["error"] != "shutting down" {
		t.Fatalf("after Drain: %d %s", w.Code, w.Body)
	}
	for _, p := range []string{"/livez", "/performance/config", "/metrics"} {
		if w := f.do(t, "GET", p, "", "", ""); w.Code != http.StatusOK {
			t.Errorf("GET %s while draining: %d", p, w.Code)
		}
	}
}

// TestPprof: off by default the paths are 404; on, they are admin-only.
func TestPprof(t *testing.T) {
	off := newFixture(t, nil)
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline"} {
		if w := off.do(t, "GET", p, "Bearer "+adminToken, "", ""); w.Code != http.StatusNotFound {
			t.Errorf("pprof off: GET %s: %d; want 404", p, w.Code)
		}
	}
	on := newFixture(t, func(d *Deps) {
		d.Pprof = true
		d.Auth.MetricsToken = metricsToken
	})
	user := signed(t, jwt.SigningMethodHS256, []byte(jwtSecret), jwt.MapClaims{"role": "user", "exp": testNow.Add(time.Hour).Unix()})
	for _, tc := range []struct {
		path, auth string
		status     int
	}{
		{"/debug/pprof/", "Bearer " + adminToken, http.StatusOK},
		{"/debug/pprof/heap?debug=1", "Bearer " + adminToken, http.StatusOK},
		{"/debug/pprof/goroutine?debug=1", "Bearer " + adminToken, http.StatusOK},
		{"/debug/pprof/cmdline", "Bearer " + adminToken, http.StatusOK},
		{"/debug/pprof/", "", http.StatusUnauthorized},
		{"/debug/pprof/heap", "", http.StatusUnauthorized},
		{"/debug/pprof/heap", user, http.StatusForbidden},
		{"/debug/pprof/", "Bearer " + metricsToken, http.StatusForbidden},
	} {
		if w := on.do(t, "GET", tc.path, tc.auth, "", ""); w.Code != tc.status {
			t.Errorf("pprof on: GET %s: %d; want %d (%s)", tc.path, w.Code, tc.status, truncate(w.Body.String(), 200))
		}
	}
}
