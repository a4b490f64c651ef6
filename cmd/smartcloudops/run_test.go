package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/logtest"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

func envOf(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

type running struct {
	base   string
	cancel context.CancelFunc
	done   chan int
	stderr *logtest.Buffer
	logDir string
}

// start runs the service in-process on a free loopback port and waits until it listens.
func start(t *testing.T, env map[string]string, wrap func(http.Handler) http.Handler) *running {
	t.Helper()
	env["SMARTCLOUDOPS_ADDR"] = "127.0.0.1:0"
	if _, ok := env["SMARTCLOUDOPS_SHUTDOWN_DELAY"]; !ok {
		env["SMARTCLOUDOPS_SHUTDOWN_DELAY"] = "0" // tests stop at once; TestShutdownDelayDrains sets one
	}
	if env["LOG_DIR"] == "" {
		env["LOG_DIR"] = t.TempDir()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan int, 1), stderr: &logtest.Buffer{}, logDir: env["LOG_DIR"]}
	addrc := make(chan net.Addr, 1)
	go func() {
		r.done <- runWith(ctx, []string{"serve"}, envOf(env), strings.NewReader(""), io.Discard, r.stderr,
			hooks{onListen: func(a net.Addr) { addrc <- a }, wrap: wrap})
	}()
	select {
	case a := <-addrc:
		r.base = "http://" + a.String()
	case code := <-r.done:
		t.Fatalf("service exited with %d before listening: %s", code, r.stderr)
	case <-time.After(60 * time.Second):
		t.Fatalf("service did not listen: %s", r.stderr)
	}
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) int {
	t.Helper()
	r.cancel()
	select {
	case code := <-r.done:
		r.done <- code
		return code
	case <-time.After(60 * time.Second):
		t.Fatalf("service did not stop: %s", r.stderr)
		return -1
	}
}

func getJSON(t *testing.T, url string, dst any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(dst); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return resp.StatusCode
}

type healthBody struct {
	Status     string `json:"status"`
	Components map[string]struct {
		Status  string         `json:"status"`
		Details map[string]any `json:"details"`
	} `json:"components"`
}

// TestServeEndToEnd is the README's promise: the service starts on the
// embedded default (and on PostgreSQL), health is UP with the database UP and
// Redis DISABLED, and it stops cleanly.
func TestServeEndToEnd(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		r := start(t, map[string]string{"DATABASE_URL": url}, nil)
		var h healthBody
		if code := getJSON(t, r.base+"/performance/health", &h); code != http.StatusOK {
			t.Fatalf("health %d", code)
		}
		if h.Status != "UP" || h.Components["database"].Status != "UP" || h.Components["redis"].Status != "DISABLED" ||
			h.Components["redis"].Details["reason"] == nil {
			t.Fatalf("health = %+v", h)
		}
		for _, p := range []string{"/livez", "/readyz"} {
			var v map[string]any
			if code := getJSON(t, r.base+p, &v); code != http.StatusOK {
				t.Errorf("%s: %d", p, code)
			}
		}
		resp, err := http.Get(r.base + "/performance/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{"smartcloudops_build_info", "go_goroutines", "process_cpu_seconds_total", "smartcloudops_db_pool_connections", "smartcloudops_http_requests_total"} {
			if !bytes.Contains(body, []byte(want)) {
				t.Errorf("metrics lack %s", want)
			}
		}
		if h.Components["logs"].Status != "UP" || h.Components["cache"].Status != "UP" || h.Components["cache"].Details["mode"] != "memory" {
			t.Errorf("logs/cache components: %+v", h.Components)
		}
		var ls struct {
			RecordsWritten uint64 `json:"records_written"`
		}
		if code := getJSON(t, r.base+"/performance/logs/stats", &ls); code != http.StatusOK {
			t.Errorf("logs stats: %d", code)
		}
		if code := r.stop(t); code != exitOK {
			t.Fatalf("exit %d: %s", code, r.stderr)
		}
		// The access lines went through the pipeline to LOG_DIR, flushed on shutdown.
		data, err := os.ReadFile(filepath.Join(r.logDir, "smartcloudops.log"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(data, []byte(`"route":"GET /performance/health"`)) || !bytes.Contains(data, []byte(`"msg":"stopped"`)) {
			t.Errorf("log file lacks the access line or the shutdown line:\n%s", data)
		}
		// Startup and shutdown steps are timed (logs.Time), so a slow start
		// or a slow drain names its step.
		for _, step := range []string{"store.open", "anomaly.start", "anomaly.close"} {
			if !bytes.Contains(data, []byte(`"msg":"call","func":"`+step+`","duration_seconds":`)) {
				t.Errorf("log file lacks the timing of %s:\n%s", step, data)
			}
		}
	})
}

func TestServeWithRedisConfigured(t *testing.T) {
	redisURL := "redis://127.0.0.1:6379/0"
	r := start(t, map[string]string{"DATABASE_URL": storetest.SQLiteURL(t), "REDIS_URL": redisURL}, nil)
	var h healthBody
	getJSON(t, r.base+"/performance/health", &h)
	if h.Components["redis"].Status != "UP" {
		t.Fatalf("redis component with a live Redis: %+v", h.Components["redis"])
	}
	r2 := start(t, map[string]string{"DATABASE_URL": storetest.SQLiteURL(t), "REDIS_URL": "redis://127.0.0.1:1/0"}, nil)
	getJSON(t, r2.base+"/performance/health", &h)
	if h.Status != "DEGRADED" || h.Components["redis"].Status != "DEGRADED" {
		t.Fatalf("unreachable Redis must degrade, not fail: %+v", h)
	}
}

// TestGracefulShutdownFinishesInFlight holds a request in the handler, cancels
// the service (as SIGTERM does), and checks the request still completes and
// the process exits 0.
func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	wrap := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/livez" && r.URL.Query().Get("hold") == "1" {
				close(entered)
				<-release
			}
			next.ServeHTTP(w, r)
		})
	}
	r := start(t, map[string]string{"DATABASE_URL": storetest.SQLiteURL(t)}, wrap)
	type result struct {
		code int
		err  error
	}
	resc := make(chan result, 1)
	go func() {
		resp, err := http.Get(r.base + "/livez?hold=1")
		if err != nil {
			resc <- result{err: err}
			return
		}
		resp.Body.Close()
		resc <- result{code: resp.StatusCode}
	}()
	<-entered
	r.cancel()
	// New connections are refused once shutdown begins.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(r.base, "http://"), 200*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still accepting after shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	res := <-resc
	if res.err != nil || res.code != http.StatusOK {
		t.Fatalf("in-flight request: %d %v", res.code, res.err)
	}
	if code := r.stop(t); code != exitOK {
		t.Fatalf("exit %d: %s", code, r.stderr)
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExitStatuses(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name     string
		args     []string
		env      map[string]string
		want     int
		contains string
	}{
		{"bad pool size", []string{"serve"}, map[string]string{"DATABASE_POOL_SIZE": "abc"}, exitUsage, "DATABASE_POOL_SIZE"},
		{"bad database url", []string{"serve"}, map[string]string{"DATABASE_URL": "ftp://x"}, exitUsage, "DATABASE_URL"},
		{"bad flag", []string{"serve", "--addr", "nope"}, nil, exitUsage, "--addr"},
		{"bad remote-write selector", []string{"serve"}, map[string]string{"PROMWRITE_SELECT": `up{job=}`}, exitUsage, "PROMWRITE_SELECT"},
		{"unknown command", []string{"frobnicate"}, nil, exitUsage, "unknown command"},
		{"ftp database", []string{"migrate"}, map[string]string{"DATABASE_URL": "ftp://x"}, exitUsage, "DATABASE_URL"},
		{"sqlite without path", []string{"serve"}, map[string]string{"DATABASE_URL": "sqlite://x.db"}, exitUsage, "DATABASE_URL"},
		{"postgres without host", []string{"serve"}, map[string]string{"DATABASE_URL": "postgres://:secret@/db"}, exitUsage, "DATABASE_URL"},
		{"migrate", []string{"migrate"}, map[string]string{"DATABASE_URL": "sqlite:///" + filepath.Join(dir, "m.db")}, exitOK, ""},
		{"version", []string{"version"}, nil, exitOK, ""},
		{"detect bad timestamp", []string{"detect", "--input", writeFile(t, dir, "bad.csv", "timestamp,value\nyesterday,1\n")}, nil, exitUsage, "timestamp"},
		{"detect", []string{"detect", "--input", writeFile(t, dir, "ok.csv", "timestamp,value\n2026-01-01 00:00:00,1\n2026-01-01 00:05:00,2\n")}, nil, exitOK, ""},
		{"unreachable postgres", []string{"migrate"}, map[string]string{"DATABASE_URL": "postgres://postgres@127.0.0.1:1/x?connect_timeout=1"}, exitFailure, "store"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			env := tc.env
			if env == nil {
				env = map[string]string{}
			}
			code := run(context.Background(), tc.args, envOf(env), strings.NewReader(""), &stdout, &stderr)
			if code != tc.want {
				t.Fatalf("exit %d; want %d; stderr %s", code, tc.want, stderr.String())
			}
			if tc.want == exitUsage && strings.Count(strings.TrimSpace(stderr.String()), "\n") > 0 && tc.name != "unknown command" {
				t.Errorf("config error is not one line: %q", stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.contains) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tc.contains)
			}
		})
	}
}

func doJSON(t *testing.T, method, url, token, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestRuntimeConfig changes settings live through PUT /performance/config and
// checks they take effect, are visible, are audited, and that a request with
// one bad value changes nothing.
func TestRuntimeConfig(t *testing.T) {
	const token = "admin-token-0123456789"
	r := start(t, map[string]string{"DATABASE_URL": storetest.SQLiteURL(t), "SMARTCLOUDOPS_ADMIN_TOKEN": token}, nil)
	url := r.base + "/performance/config"

	if code, _ := doJSON(t, http.MethodPut, url, "", `{"logs.level":"debug"}`); code != http.StatusUnauthorized {
		t.Fatalf("PUT without a token: %d", code)
	}
	code, body := doJSON(t, http.MethodPut, url, token, `{"cache.default_ttl":"42s","anomaly.thresholds.cpu_usage":80,"logs.level":"bogus"}`)
	if code != http.StatusBadRequest || !bytes.Contains(body, []byte(`"field":"logs.level"`)) {
		t.Fatalf("bad value: %d %s", code, body)
	}
	code, body = doJSON(t, http.MethodPut, url, token, `{"cache.nope":1}`)
	if code != http.StatusBadRequest || !bytes.Contains(body, []byte(`"field":"cache.nope"`)) {
		t.Fatalf("unknown key: %d %s", code, body)
	}
	code, body = doJSON(t, http.MethodPut, url, token, `{"cache.default_ttl":"42s"}`)
	if code != http.StatusOK {
		t.Fatalf("good change: %d %s", code, body)
	}
	// The anomaly fallback limit was not half-applied by the refused request.
	var cfgBody struct {
		Runtime []struct {
			Key       string `json:"key"`
			Value     any    `json:"value"`
			ChangedBy string `json:"changed_by"`
		} `json:"runtime"`
	}
	getJSON(t, url, &cfgBody)
	got := map[string]any{}
	for _, e := range cfgBody.Runtime {
		got[e.Key] = e.Value
		if e.Key == "cache.default_ttl" && e.ChangedBy != "admin-token" {
			t.Errorf("cache.default_ttl changed_by = %q", e.ChangedBy)
		}
	}
	if got["cache.default_ttl"] != "42s" || got["anomaly.thresholds.cpu_usage"] != 90.0 || got["logs.level"] != "info" {
		t.Fatalf("runtime settings after the changes: %v", got)
	}
	r.stop(t)
	data, err := os.ReadFile(filepath.Join(r.logDir, "smartcloudops.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(`"audit":"config","key":"cache.default_ttl","old":"5m0s","new":"42s","by":"admin-token"`)) {
		t.Errorf("no audit line for the change in the log:\n%s", data)
	}
}
