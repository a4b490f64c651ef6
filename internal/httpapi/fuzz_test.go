package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartcloudops/smartcloudops/internal/anomaly"
	"github.com/smartcloudops/smartcloudops/internal/cache"
	"github.com/smartcloudops/smartcloudops/internal/config"
	"github.com/smartcloudops/smartcloudops/internal/domain"
	"github.com/smartcloudops/smartcloudops/internal/health"
	"github.com/smartcloudops/smartcloudops/internal/logs"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

// fzServer is the API as the service wires it, for the fuzz targets: a
// migrated SQLite store holding a little history, the memory-only cache,
// the log pipeline, the anomaly service on store and cache, and the runtime
// settings. Memory-only keeps each fuzz worker self-contained and fast; the
// handlers' decoding, which is what is fuzzed, is the same with Redis.
type fzServer struct {
	srv         *Server
	admin, user string // bearer headers: the admin token, a user of tenant team-a
}

// fzHosts have history and one anomaly each, so list endpoints answer with
// rows to encode.
var fzHosts = []string{"web-1", "team-a/web-2", "team-a/db 1"}

func newFzServer(tb testing.TB) *fzServer {
	tb.Helper()
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	cfg, err := config.Load(nil, func(k string) string {
		return map[string]string{"SMARTCLOUDOPS_ADMIN_TOKEN": oaAdmin, "JWT_SECRET": oaJWTSecret}[k]
	}, io.Discard)
	if err != nil {
		tb.Fatal(err)
	}
	level := new(slog.LevelVar)
	lg, err := logs.New(logs.Options{Dir: tb.TempDir(), Copy: io.Discard, Fallback: io.Discard, CopyLevel: "off", Level: level}, reg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = lg.Close(context.Background()) })
	x := &oaServer{}
	x.cache, err = cache.New(ctx, cache.Options{MaxValueBytes: 4096, Registerer: reg})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = x.cache.Close() })
	x.store, err = store.Open(ctx, store.Options{URL: storetest.SQLiteURL(tb), PoolSize: 2, Registerer: reg, Logger: lg.Slog(),
		Cache: rawCache{x.cache, "_smartcloudops.query-results"}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { x.store.Close() })
	if _, err := x.store.Migrate(ctx, nil); err != nil {
		tb.Fatal(err)
	}
	var samples []domain.MetricSample
	var found []domain.Anomaly
	for _, h := range fzHosts {
		for i := range 5 {
			cpu, mem := float64(10*i), 50.0
			samples = append(samples, domain.MetricSample{Host: h, Timestamp: oaNow.Add(time.Duration(i-5) * time.Minute), CPUUsage: &cpu, MemoryUsage: &mem})
		}
		found = append(found, domain.Anomaly{Host: h, Metric: "cpu_usage", DetectedAt: oaNow.Add(-2 * time.Minute), Score: 0.9, Confidence: 0.8,
			Severity: "high", ModelVersion: "threshold-v1", Features: map[string]float64{"cpu_usage": 30}, Explanation: "cpu_usage 30 > 20"})
	}
	if _, err := x.store.InsertMetrics(ctx, samples); err != nil {
		tb.Fatal(err)
	}
	if _, err := x.store.InsertAnomalies(ctx, found); err != nil {
		tb.Fatal(err)
	}
	x.svc, err = anomaly.New(ctx, anomaly.Options{Store: x.store, Cache: rawCache{x.cache, "_smartcloudops.predictions"}, Registerer: reg,
		Logger: lg.Slog(), Clock: oaClock{}, MaxBatch: 50, QueueSize: 1000, MinTrainingRows: 100, Trees: 10})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = x.svc.Close(context.Background()) })
	srv, err := New(Deps{Logger: lg.Slog(), Registry: reg, Config: cfg, Ready: x.store, Database: adminOf(tb, x.store), Series: x.store, Cache: x.cache, Logs: lg,
		Anomaly: x.svc, Tunables: oaTunables(lg.Slog(), level, x), Auth: oaAuth(), MaxBodyBytes: 64 << 10,
		Components: map[string]health.Checker{"database": x.store, "cache": x.cache}, Now: func() time.Time { return oaNow }})
	if err != nil {
		tb.Fatal(err)
	}
	c := jwt.MapClaims{"sub": "fuzz-user", "role": "user", "tenant": "team-a", "exp": oaNow.Add(24 * time.Hour).Unix()}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(oaJWTSecret))
	if err != nil {
		tb.Fatal(err)
	}
	return &fzServer{srv: srv, admin: "Bearer " + oaAdmin, user: "Bearer " + tok}
}

// request builds the request a server would read for method and target,
// or nil when no HTTP/1.1 client could send that target at all (a space or
// control byte, or a target that is not a valid request URI).
func fzRequest(method, target, auth, contentType string, body []byte) *http.Request {
	for i := 0; i < len(target); i++ {
		if target[i] <= ' ' || target[i] == 0x7f {
			return nil
		}
	}
	if _, err := url.ParseRequestURI(target); err != nil {
		return nil
	}
	r, err := http.NewRequest(method, "http://smartcloudops.test"+target, bytes.NewReader(body))
	if err != nil {
		return nil
	}
	r.RequestURI, r.RemoteAddr = target, "192.0.2.1:4711"
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	return r
}

// serve sends r and checks what every answer must be, whatever the input:
// no 5xx (a 503 with Retry-After is back-pressure, not a failure), every
// error a complete RFC 9457 problem, every 2xx body valid JSON.
func (z *fzServer) serve(t *testing.T, r *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	z.srv.ServeHTTP(w, r)
	ct := w.Header().Get("Content-Type")
	switch {
	case w.Code >= 500 && !(w.Code == http.StatusServiceUnavailable && w.Header().Get("Retry-After") != ""):
		t.Fatalf("%s %s: %d: %s", r.Method, r.URL, w.Code, w.Body)
	case w.Code >= 400:
		if ct != "application/problem+json" {
			t.Fatalf("%s %s: %d with Content-Type %q: %s", r.Method, r.URL, w.Code, ct, w.Body)
		}
		var p Problem
		dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("%s %s: problem does not parse: %v: %s", r.Method, r.URL, err, w.Body)
		}
		// The instance is the path as JSON can carry it: invalid UTF-8
		// arrives as U+FFFD.
		var path string
		b, _ := json.Marshal(r.URL.Path)
		_ = json.Unmarshal(b, &path)
		if p.Status != w.Code || p.Title == "" || !strings.HasPrefix(p.Type, "urn:smartcloudops:problem:") || p.RequestID == "" || p.Instance != path {
			t.Fatalf("%s %s: incomplete problem for %d: %s", r.Method, r.URL, w.Code, w.Body)
		}
		for _, fe := range p.Errors {
			if fe.Field == "" || fe.Detail == "" {
				t.Fatalf("%s %s: empty field error in %s", r.Method, r.URL, w.Body)
			}
		}
	case w.Code == http.StatusNoContent:
	case w.Code >= 200 && w.Code < 300:
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/performance/cache/") && r.URL.Path != "/performance/cache/stats" {
			break // a cache entry is served as stored
		}
		if ct != "application/json" || !json.Valid(w.Body.Bytes()) {
			t.Fatalf("%s %s: %d with Content-Type %q and a body that is not JSON: %s", r.Method, r.URL, w.Code, ct, w.Body)
		}
	default:
		t.Fatalf("%s %s: unexpected status %d: %s", r.Method, r.URL, w.Code, w.Body)
	}
	return w
}

// settle waits for a database job a 202 left running, so the next input
// does not meet a VACUUM of this one's making.
func (z *fzServer) settle(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	if w.Code != http.StatusAccepted {
		return
	}
	loc := w.Header().Get("Location")
	for range 200 {
		jw := z.serve(t, fzRequest(http.MethodGet, loc, z.admin, "", nil))
		var j struct{ Status string }
		if jw.Code != http.StatusOK || json.Unmarshal(jw.Body.Bytes(), &j) != nil {
			t.Fatalf("job %s: %d %s", loc, jw.Code, jw.Body)
		}
		if j.Status != "running" {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("job %s still running after 2s", loc)
}

// fzBodyRoutes are the endpoints that read a request body, with the query
// parameter each also takes.
var fzBodyRoutes = []struct {
	method, path, param string
}{
	{"POST", "/performance/anomaly/detect", "use_cache"},
	{"POST", "/api/v1/metrics", ""},
	{"PUT", "/performance/config", ""},
	{"PUT", "/performance/cache/team-a/fuzz-key", "ttl"},
	{"POST", "/performance/anomaly/models", ""},
	{"POST", "/performance/database/indexes", "wait"},
	{"POST", "/performance/database/optimize", "wait"},
	{"POST", "/performance/cache/clear", ""},
}

// FuzzHTTPBody sends arbitrary bodies, content types and parameter values
// to every endpoint that reads a body (route picks one of fzBodyRoutes),
// as the admin or as a tenant's user. Besides the checks of serve, a cache
// value that was stored reads back byte for byte with its content type.
func FuzzHTTPBody(f *testing.F) {
	seeds := []struct {
		route  uint8
		ct     string
		param  string
		body   string
		tenant bool
	}{
		{0, "application/json", "", sampleJSON, false},
		{0, "application/json", "false", `[` + sampleJSON + `,{"host":"b","metrics":{"cpu":1e308}}]`, false},
		{0, "", "maybe", `{"samples":[{"host":"a","timestamp":1795867140123,"metrics":{"x":-1.5e3}}]}`, false},
		{1, "application/json", "", `{"host":"team-a/web-9","metrics":{"cpu_usage":12}}`, true},
		{1, "application/json", "", `[{"host":"web-1","timestamp":"2026-11-28 11:00:00","metrics":{"memory_usage":1}}]`, true},
		{2, "application/json", "", `{"logs.level":"DEBUG","anomaly.batch_size":7}`, false},
		{2, "application/json", "", `{"cache.default_ttl":"90s","database.slow_query_threshold":0.5}`, false},
		{2, "application/json", "", `{"anomaly.batch_size":9223372036854775807}`, false},
		{3, "text/plain; charset=utf-8", "60", "hello", false},
		{3, "", "0", "\x00\xff binary", true},
		{3, "application/json", "-1", `{"a":1}`, false},
		{4, "application/json", "", `{"activate":false}`, false},
		{4, "", "", ``, false},
		{5, "application/json", "0s", `{"table":"metrics","columns":["host","cpu_usage"]}`, false},
		{5, "application/json", "5", `{"suggestion_id":"nope"}`, false},
		{6, "application/json", "1s", `{"vacuum":true}`, false},
		{6, "", "0", ``, false},
		{7, "application/json", "", `{"namespace":"team-a"}`, true},
		{7, "application/merge-patch+json", "", `{"namespace":"_smartcloudops.predictions"}`, true},
	}
	for _, s := range seeds {
		f.Add(s.route, s.ct, s.param, []byte(s.body), s.tenant)
	}
	z := newFzServer(f)
	f.Fuzz(func(t *testing.T, route uint8, contentType, param string, body []byte, tenant bool) {
		rt := fzBodyRoutes[int(route)%len(fzBodyRoutes)]
		target := rt.path
		if rt.param != "" && param != "" {
			target += "?" + url.Values{rt.param: {param}}.Encode()
		}
		auth := z.admin
		if tenant {
			auth = z.user
		}
		r := fzRequest(rt.method, target, auth, contentType, body)
		if r == nil {
			t.Fatalf("target %q refused", target)
		}
		if strings.ContainsAny(contentType, "\r\n\x00") {
			r.Header.Del("Content-Type") // no client can send it
		}
		w := z.serve(t, r)
		z.settle(t, w)
		if rt.method == "PUT" && strings.HasPrefix(rt.path, "/performance/cache/") && w.Code == http.StatusOK {
			g := z.serve(t, fzRequest(http.MethodGet, rt.path, auth, "", nil))
			want := r.Header.Get("Content-Type")
			if want == "" {
				want = "application/octet-stream"
			}
			if g.Code != http.StatusOK || !bytes.Equal(g.Body.Bytes(), body) || g.Header().Get("Content-Type") != want {
				t.Fatalf("stored %q (%s); read back %d %q (%s)", body, want, g.Code, g.Body, g.Header().Get("Content-Type"))
			}
		}
	})
}

// fzQueryRoutes are the endpoints whose input is the query string or a path
// segment; "{}" marks where the fuzzed segment goes.
var fzQueryRoutes = []struct {
	method, path string
}{
	{"GET", "/api/v1/hosts"},
	{"GET", "/api/v1/hosts/{}/metrics"},
	{"GET", "/api/v1/anomalies"},
	{"GET", "/performance/cache/{}"},
	{"DELETE", "/performance/cache/{}"},
	{"GET", "/performance/database/stats"},
	{"POST", "/performance/database/optimize"},
	{"POST", "/performance/anomaly/detect"},
	{"GET", "/performance/database/jobs/{}"},
	{"POST", "/performance/anomaly/models/{}/activate"},
	{"GET", "/performance/health"},
}

// FuzzHTTPQuery sends arbitrary query strings and path segments (host
// names, cache namespaces and keys, job ids, model versions) to the
// endpoints that read them, with the checks of serve. seg is escaped as a
// client library would escape it, except that "/" stays a separator for
// cache paths (namespace/key...).
func FuzzHTTPQuery(f *testing.F) {
	seeds := []struct {
		route  uint8
		seg    string
		query  string
		tenant bool
	}{
		{0, "", "limit=2", false},
		{0, "", "limit=0&x=1", true},
		{1, "web-1", "from=2026-11-28T11:50:00Z&to=2026-11-28T12:00:00Z&limit=3", false},
		{1, "team-a/web-2", "from=2026-11-28T12:00:00Z&to=2026-11-28T11:00:00Z", true},
		{1, "web 1", "limit=abc&form=x", false},
		{2, "", "host=team-a/web-2&limit=1", true},
		{2, "", "host=&from=yesterday&severity=high", false},
		{2, "", "host=web-1&from=2026-11-28T11:00:00.123456789%2B02:00", false},
		{3, "team-a/some/key", "", true},
		{3, "_smartcloudops.predictions/x", "", true},
		{3, "team-a/../etc", "", false},
		{4, "team-a/k", "", false},
		{5, "", "sort=total_time&limit=5", false},
		{5, "", "sort=nope&limit=501", false},
		{6, "", "wait=0", false},
		{6, "", "wait=31s", false},
		{7, "", "use_cache=false", false},
		{7, "", "use_cache=%ff", false},
		{8, "0123456789abcdef", "", false},
		{9, "threshold-v1", "", false},
		{9, strings.Repeat("v", 129), "", false},
		{10, "", "verbose=1", false},
	}
	for _, s := range seeds {
		f.Add(s.route, s.seg, s.query, s.tenant)
	}
	z := newFzServer(f)
	f.Fuzz(func(t *testing.T, route uint8, seg, query string, tenant bool) {
		rt := fzQueryRoutes[int(route)%len(fzQueryRoutes)]
		path := rt.path
		if strings.Contains(path, "{}") {
			esc := url.PathEscape(seg)
			if strings.HasPrefix(path, "/performance/cache/") {
				esc = (&url.URL{Path: seg}).EscapedPath()
			}
			path = strings.Replace(path, "{}", esc, 1)
		}
		target := path
		if query != "" {
			target += "?" + query
		}
		auth := z.admin
		if tenant {
			auth = z.user
		}
		var body []byte
		if rt.path == "/performance/anomaly/detect" {
			body = []byte(sampleJSON)
		}
		r := fzRequest(rt.method, target, auth, "", body)
		if r == nil {
			return
		}
		z.settle(t, z.serve(t, r))
	})
}
