package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/smartcloudops/smartcloudops/internal/config"
	"github.com/smartcloudops/smartcloudops/internal/health"
	"github.com/smartcloudops/smartcloudops/internal/logs"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/dbadmin"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

const (
	adminToken = "admin-token-0123456789"
	jwtSecret  = "jwt-secret-0123456789-0123456789-abcdef"
)

var testNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

type fakeMaintainer struct {
	calls []dbadmin.OptimizeOptions
	err   error
	jobs  sync.WaitGroup
}

// Go owns the job as dbadmin.Admin does: detached from the request, and
// waited for when the test ends.
func (f *fakeMaintainer) Go(ctx context.Context, job func(context.Context)) error {
	f.jobs.Go(func() { job(context.WithoutCancel(ctx)) })
	return nil
}

func (f *fakeMaintainer) Optimize(_ context.Context, o dbadmin.OptimizeOptions) (dbadmin.OptimizeReport, error) {
	f.calls = append(f.calls, o)
	return dbadmin.OptimizeReport{Driver: "fake", OK: f.err == nil}, f.err
}

func (f *fakeMaintainer) Stats(context.Context, dbadmin.StatsOptions) (dbadmin.DatabaseStats, error) {
	return dbadmin.DatabaseStats{Driver: "fake"}, f.err
}

func (f *fakeMaintainer) Headline(context.Context) (dbadmin.Headline, error) {
	return dbadmin.Headline{Driver: "fake"}, f.err
}

func (f *fakeMaintainer) Indexes(context.Context) (dbadmin.IndexReport, error) {
	return dbadmin.IndexReport{Driver: "fake"}, f.err
}

func (f *fakeMaintainer) CreateIndex(context.Context, dbadmin.IndexRequest) (dbadmin.CreatedIndex, error) {
	return dbadmin.CreatedIndex{}, f.err
}

type fixture struct {
	srv   *Server
	reg   *prometheus.Registry
	maint *fakeMaintainer
}

func newFixture(t *testing.T, mod func(d *Deps)) *fixture {
	t.Helper()
	cfg, err := config.Load(nil, func(k string) string {
		return map[string]string{"REDIS_PASSWORD": "hunter2", "SMARTCLOUDOPS_ADMIN_TOKEN": adminToken, "JWT_SECRET": jwtSecret}[k]
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{reg: prometheus.NewRegistry(), maint: &fakeMaintainer{}}
	t.Cleanup(f.maint.jobs.Wait)
	up := health.CheckerFunc(func(context.Context) health.Component { return health.Component{Status: health.StatusUp} })
	d := Deps{
		Logger:       slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Registry:     f.reg,
		Components:   map[string]health.Checker{"database": up},
		Ready:        up,
		Config:       cfg,
		Database:     f.maint,
		Auth:         AuthOptions{AdminToken: adminToken, JWTSecret: jwtSecret},
		MaxBodyBytes: 64,
		Now:          func() time.Time { return testNow },
	}
	if mod != nil {
		mod(&d)
	}
	f.srv, err = New(d)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) do(t *testing.T, method, path, auth, contentType, body string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	f.srv.ServeHTTP(w, r)
	return w
}

func signed(t *testing.T, method jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + s
}

func decodeProblem(t *testing.T, w *httptest.ResponseRecorder) Problem {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q; want application/problem+json (body %s)", ct, w.Body)
	}
	var p Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatalf("problem body: %v: %s", err, w.Body)
	}
	if p.Status != w.Code || p.Type == "" || p.Title == "" || p.RequestID == "" || p.Instance == "" {
		t.Fatalf("incomplete problem %+v for status %d", p, w.Code)
	}
	return p
}

func TestAuth(t *testing.T) {
	exp := testNow.Add(time.Hour).Unix()
	key := []byte(jwtSecret)
	cases := []struct {
		name   string
		auth   string
		status int
	}{
		{"no credential", "", http.StatusUnauthorized},
		{"not bearer", "Basic YWRtaW46YWRtaW4=", http.StatusUnauthorized},
		{"empty bearer", "Bearer ", http.StatusUnauthorized},
		{"wrong static token", "Bearer admin-token-0123456780", http.StatusUnauthorized},
		{"admin token", "Bearer " + adminToken, http.StatusOK},
		{"admin jwt", signed(t, jwt.SigningMethodHS256, key, jwt.MapClaims{"sub": "ops", "role": "admin", "exp": exp}), http.StatusOK},
		{"user jwt lacks admin role", signed(t, jwt.SigningMethodHS256, key, jwt.MapClaims{"sub": "u", "role": "user", "exp": exp}), http.StatusForbidden},
		{"jwt without role", signed(t, jwt.SigningMethodHS256, key, jwt.MapClaims{"sub": "u", "exp": exp}), http.StatusForbidden},
		{"expired jwt", signed(t, jwt.SigningMethodHS256, key, jwt.MapClaims{"role": "admin", "exp": testNow.Add(-time.Hour).Unix()}), http.StatusUnauthorized},
		{"jwt without exp", signed(t, jwt.SigningMethodHS256, key, jwt.MapClaims{"role": "admin"}), http.StatusUnauthorized},
		{"jwt signed with another secret", signed(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789-0123456789"), jwt.MapClaims{"role": "admin", "exp": exp}), http.StatusUnauthorized},
		{"wrong algorithm HS512", signed(t, jwt.SigningMethodHS512, key, jwt.MapClaims{"role": "admin", "exp": exp}), http.StatusUnauthorized},
		{"alg none", signed(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"role": "admin", "exp": exp}), http.StatusUnauthorized},
		{"garbage", "Bearer not.a.jwt", http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			w := f.do(t, http.MethodPost, "/performance/database/optimize", tc.auth, "application/json", `{}`)
			if w.Code != tc.status {
				t.Fatalf("status %d; want %d (%s)", w.Code, tc.status, w.Body)
			}
			if tc.status != http.StatusOK {
				decodeProblem(t, w)
				if len(f.maint.calls) != 0 {
					t.Fatal("the handler ran for a refused request")
				}
			}
			if tc.status == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}

func TestAuthNotConfiguredRefusesWrites(t *testing.T) {
	f := newFixture(t, func(d *Deps) { d.Auth = AuthOptions{} })
	w := f.do(t, http.MethodPost, "/performance/database/optimize", "Bearer "+adminToken, "", "")
	p := decodeProblem(t, w)
	if w.Code != http.StatusForbidden || !strings.Contains(p.Detail, "SMARTCLOUDOPS_ADMIN_TOKEN") {
		t.Fatalf("got %d %+v; want 403 that says how to configure a credential", w.Code, p)
	}
	// Reads stay open.
	if w := f.do(t, http.MethodGet, "/performance/config", "", "", ""); w.Code != http.StatusOK {
		t.Fatalf("config read: %d", w.Code)
	}
}

func TestRequireAuthProtectsReads(t *testing.T) {
	f := newFixture(t, func(d *Deps) { d.Auth.RequireAuth = true })
	userJWT := signed(t, jwt.SigningMethodHS256, []byte(jwtSecret), jwt.MapClaims{"role": "user", "exp": testNow.Add(time.Hour).Unix()})
	for _, tc := range []struct {
		path, auth string
		status     int
	}{
		{"/performance/config", "", http.StatusUnauthorized},
		{"/performance/metrics", "", http.StatusUnauthorized},
		{"/performance/config", userJWT, http.StatusOK},
		{"/performance/health", "", http.StatusOK}, // probes stay public
		{"/livez", "", http.StatusOK},
	} {
		if w := f.do(t, http.MethodGet, tc.path, tc.auth, "", ""); w.Code != tc.status {
			t.Errorf("GET %s auth=%v: %d; want %d", tc.path, tc.auth != "", w.Code, tc.status)
		}
	}
}

func TestBadInputIsAProblem(t *testing.T) {
	admin := "Bearer " + adminToken
	cases := []struct {
		name, method, path, ct, body string
		status                       int
		code                         Code
	}{
		{"unknown route", http.MethodGet, "/nope", "", "", http.StatusNotFound, CodeNotFound},
		{"wrong method", http.MethodDelete, "/performance/health", "", "", http.StatusMethodNotAllowed, CodeMethodNotAllowed},
		{"malformed json", http.MethodPost, "/performance/database/optimize", "application/json", `{"vacuum":`, http.StatusBadRequest, CodeMalformed},
		{"syntax error", http.MethodPost, "/performance/database/optimize", "application/json", `{vacuum}`, http.StatusBadRequest, CodeMalformed},
		{"wrong type", http.MethodPost, "/performance/database/optimize", "application/json", `{"vacuum":"yes"}`, http.StatusBadRequest, CodeValidation},
		{"unknown field", http.MethodPost, "/performance/database/optimize", "application/json", `{"vaccum":true}`, http.StatusBadRequest, CodeValidation},
		{"trailing data", http.MethodPost, "/performance/database/optimize", "application/json", `{} {}`, http.StatusBadRequest, CodeMalformed},
		{"wrong top-level type", http.MethodPost, "/performance/database/optimize", "application/json", `[]`, http.StatusBadRequest, CodeMalformed},
		{"not json", http.MethodPost, "/performance/database/optimize", "text/plain", `vacuum`, http.StatusUnsupportedMediaType, CodeUnsupportedMedia},
		{"too large", http.MethodPost, "/performance/database/optimize", "application/json", `{"vacuum":true,"x":"` + strings.Repeat("a", 100) + `"}`, http.StatusRequestEntityTooLarge, CodeTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			w := f.do(t, tc.method, tc.path, admin, tc.ct, tc.body)
			if w.Code != tc.status {
				t.Fatalf("status %d; want %d: %s", w.Code, tc.status, w.Body)
			}
			p := decodeProblem(t, w)
			if p.Type != problemType(tc.code) {
				t.Errorf("type %s; want %s", p.Type, problemType(tc.code))
			}
			if strings.Contains(w.Body.String(), "goroutine") || strings.Contains(strings.ToUpper(w.Body.String()), "SELECT") {
				t.Errorf("response leaks internals: %s", w.Body)
			}
			if len(f.maint.calls) != 0 {
				t.Error("the handler acted on bad input")
			}
		})
	}
	f := newFixture(t, nil)
	if w := f.do(t, http.MethodDelete, "/performance/health", "", "", ""); w.Header().Get("Allow") == "" {
		t.Error("405 without Allow")
	}
}

func TestOptimizeEmptyBodyAndVacuum(t *testing.T) {
	f := newFixture(t, nil)
	if w := f.do(t, http.MethodPost, "/performance/database/optimize", "Bearer "+adminToken, "", ""); w.Code != http.StatusOK {
		t.Fatalf("empty body: %d %s", w.Code, w.Body)
	}
	if w := f.do(t, http.MethodPost, "/performance/database/optimize", "Bearer "+adminToken, "application/json", `{"vacuum":true}`); w.Code != http.StatusOK {
		t.Fatalf("vacuum: %d %s", w.Code, w.Body)
	}
	if len(f.maint.calls) != 2 || f.maint.calls[0].Vacuum || !f.maint.calls[1].Vacuum {
		t.Fatalf("calls = %+v", f.maint.calls)
	}
	f.maint.err = errors.New("disk I/O error")
	w := f.do(t, http.MethodPost, "/performance/database/optimize", "Bearer "+adminToken, "", "")
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), `"ok": false`) {
		t.Fatalf("a failed optimize must say so: %d %s", w.Code, w.Body)
	}
}

// TestOptimizeOnRealDatabases runs the maintenance endpoint against both real stores.
func TestOptimizeOnRealDatabases(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		st, err := store.Open(ctx, store.Options{URL: url, PoolSize: 2})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if _, err := st.Migrate(ctx, nil); err != nil {
			t.Fatal(err)
		}
		admin := adminOf(t, st)
		f := newFixture(t, func(d *Deps) { d.Database, d.Series = admin, st })
		w := f.do(t, http.MethodPost, "/performance/database/optimize", "Bearer "+adminToken, "application/json", `{"vacuum":true}`)
		var rep dbadmin.OptimizeReport
		if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil || w.Code != http.StatusOK || !rep.OK || len(rep.Steps) == 0 {
			t.Fatalf("optimize: %d %v %s", w.Code, err, w.Body)
		}
		for _, s := range rep.Steps {
			if !s.OK {
				t.Errorf("step %s failed: %s", s.Step, s.Error)
			}
		}
		// Shutting down, the admin takes no new jobs: a retryable 503.
		admin.Close()
		for _, c := range []struct{ path, body string }{
			{"/performance/database/optimize", ""},
			{"/performance/database/indexes", `{"table":"system_metrics","columns":["cpu_usage"]}`},
		} {
			w = f.do(t, http.MethodPost, c.path, "Bearer "+adminToken, "application/json", c.body)
			if p := decodeProblem(t, w); w.Code != http.StatusServiceUnavailable || p.Type != problemType(CodeUnavailable) || w.Header().Get("Retry-After") == "" {
				t.Errorf("%s after the admin closed: %d %+v %v", c.path, w.Code, p, w.Header())
			}
		}
	})
}

func TestHealthStatus(t *testing.T) {
	comp := func(s health.Status) health.Checker {
		return health.CheckerFunc(func(context.Context) health.Component { return health.Component{Status: s} })
	}
	hang := health.CheckerFunc(func(ctx context.Context) health.Component {
		<-ctx.Done()
		time.Sleep(10 * time.Millisecond)
		return health.Component{Status: health.StatusUp}
	})
	cases := []struct {
		name   string
		comps  map[string]health.Checker
		want   health.Status
		status int
	}{
		{"up with redis disabled", map[string]health.Checker{"database": comp(health.StatusUp), "redis": comp(health.StatusDisabled)}, health.StatusUp, 200},
		{"degraded", map[string]health.Checker{"database": comp(health.StatusUp), "redis": comp(health.StatusDegraded)}, health.StatusDegraded, 200},
		{"down", map[string]health.Checker{"database": comp(health.StatusDown), "redis": comp(health.StatusUp)}, health.StatusDown, 503},
		{"hung check is down", map[string]health.Checker{"database": hang}, health.StatusDown, 503},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(d *Deps) { d.Components = tc.comps; d.CheckTimeout = 50 * time.Millisecond })
			w := f.do(t, http.MethodGet, "/performance/health", "", "", "")
			var rep HealthReport
			if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil {
				t.Fatal(err)
			}
			if w.Code != tc.status || rep.Status != tc.want || len(rep.Components) != len(tc.comps) || !rep.Timestamp.Equal(testNow) {
				t.Fatalf("got %d %+v; want %d %s", w.Code, rep, tc.status, tc.want)
			}
		})
	}
}

func TestConfigMasksSecrets(t *testing.T) {
	f := newFixture(t, nil)
	w := f.do(t, http.MethodGet, "/performance/config", "", "", "")
	for _, secret := range []string{"hunter2", adminToken, jwtSecret} {
		if strings.Contains(w.Body.String(), secret) {
			t.Errorf("config shows a secret: %s", secret)
		}
	}
	var rep ConfigReport
	if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil || len(rep.Settings) == 0 {
		t.Fatalf("config body: %v %s", err, w.Body)
	}
	for _, e := range rep.Settings {
		if e.Name == "REDIS_PASSWORD" && (e.Value != config.Masked || e.Source != config.SourceEnv) {
			t.Errorf("REDIS_PASSWORD entry %+v", e)
		}
	}
}

func TestMetricsAndRequestID(t *testing.T) {
	f := newFixture(t, func(d *Deps) {
		if err := RegisterBuildInfo(d.Registry, BuildInfo{Version: "test"}); err != nil {
			t.Fatal(err)
		}
	})
	r := httptest.NewRequest(http.MethodGet, "/livez", nil)
	r.Header.Set("X-Request-ID", "trace-abc")
	w := httptest.NewRecorder()
	f.srv.ServeHTTP(w, r)
	if w.Header().Get("X-Request-ID") != "trace-abc" {
		t.Errorf("request id not echoed: %q", w.Header().Get("X-Request-ID"))
	}
	f.do(t, http.MethodGet, "/nope", "", "", "")
	if got := testutil.ToFloat64(f.srv.metrics.requests.WithLabelValues("GET /livez", "GET", "200")); got != 1 {
		t.Errorf("livez counter = %v", got)
	}
	if got := testutil.ToFloat64(f.srv.metrics.requests.WithLabelValues("unmatched", "GET", "404")); got != 1 {
		t.Errorf("unmatched counter = %v", got)
	}
	w = f.do(t, http.MethodGet, "/performance/metrics", "", "", "")
	body := w.Body.String()
	for _, want := range []string{"smartcloudops_build_info{", "smartcloudops_http_requests_total{", "smartcloudops_http_request_duration_seconds_bucket{"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestAccessLogThroughPipeline: the service's access line goes through the
// log pipeline's direct path (logs.LogAttrs) and carries the request id,
// route, status and level.
func TestAccessLogThroughPipeline(t *testing.T) {
	dir := t.TempDir()
	lg, err := logs.New(logs.Options{Dir: dir, Synchronous: true, CopyLevel: "off"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(d *Deps) { d.Logger = lg.Slog() })
	r := httptest.NewRequest(http.MethodGet, "/livez", nil)
	r.Header.Set("X-Request-ID", "req-77")
	f.srv.ServeHTTP(httptest.NewRecorder(), r)
	f.do(t, http.MethodGet, "/nope", "", "", "")
	if err := lg.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, logs.DefaultFileName+".log"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == "http request" {
			lines = append(lines, m)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("%d access lines, want 2: %s", len(lines), data)
	}
	if l := lines[0]; l["request_id"] != "req-77" || l["route"] != "GET /livez" || l["status"] != 200.0 || l["level"] != "INFO" {
		t.Errorf("livez line: %v", l)
	}
	if l := lines[1]; l["route"] != "unmatched" || l["status"] != 404.0 || l["level"] != "WARN" || l["request_id"] == nil {
		t.Errorf("404 line: %v", l)
	}
}

func TestPanicBecomesProblem(t *testing.T) {
	f := newFixture(t, nil)
	f.srv.handle("GET /boom", Public, func(http.ResponseWriter, *http.Request) error { panic("kaboom") })
	w := f.do(t, http.MethodGet, "/boom", "", "", "")
	p := decodeProblem(t, w)
	if w.Code != http.StatusInternalServerError || strings.Contains(w.Body.String(), "kaboom") {
		t.Fatalf("got %d %+v", w.Code, p)
	}
}
