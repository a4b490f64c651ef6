package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

// chromiumPath finds Debian's chromium (or CHROMIUM), or skips the test.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium is not installed (apt-get install -y chromium), so the dashboard browser test cannot run; set CHROMIUM to a Chrome binary to use another")
	return ""
}

// headless runs chromium headless against url with a fresh profile and
// returns its stdout. Virtual time lets the page's timers (the polls) run
// for budget while the network fetches they start are waited for.
func headless(t *testing.T, bin, url string, budget time.Duration, extra ...string) string {
	t.Helper()
	profile, err := os.MkdirTemp("", "sco-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	// Chromium's helpers may still be writing the profile when it exits, so
	// the directory is removed without failing the test.
	defer os.RemoveAll(profile)
	args := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1400,900",
		"--user-data-dir=" + profile,
		"--virtual-time-budget=" + strconv.FormatInt(budget.Milliseconds(), 10),
	}
	args = append(append(args, extra...), url)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", url, err, stderr.String())
	}
	return stdout.String()
}

// dashStatus reads the data-* attributes of the page's #dash-status element
// (what the script drew at its last poll) out of a dumped DOM.
func dashStatus(t *testing.T, dom string) map[string]string {
	t.Helper()
	tag := regexp.MustCompile(`<div[^>]*id="dash-status"[^>]*>`).FindString(dom)
	if tag == "" {
		t.Fatalf("no #dash-status in the DOM:\n%s", dom)
	}
	out := map[string]string{}
	for _, m := range regexp.MustCompile(`data-([a-z-]+)="([^"]*)"`).FindAllStringSubmatch(tag, -1) {
		out[m[1]] = m[2]
	}
	return out
}

// chartOf returns the chart card of host in a dumped DOM, "" when absent.
func chartOf(dom, host string) string {
	start := strings.Index(dom, `<article class="chart-card" data-host="`+host+`"`)
	if start < 0 {
		return ""
	}
	end := strings.Index(dom[start:], "</article>")
	if end < 0 {
		return dom[start:]
	}
	return dom[start : start+end]
}

func call(t *testing.T, method, url, token, ctype, body string, into any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if into != nil {
		if err := json.Unmarshal(raw, into); err != nil {
			t.Fatalf("%s %s: %d %v: %s", method, url, resp.StatusCode, err, raw)
		}
	}
	return resp.StatusCode
}

// TestDashboardInBrowser starts the service with authentication required,
// ingests an hour of samples for three hosts through the API (one CPU spike
// that the detector flags), and loads the dashboard in headless Chromium:
// without a token it must say a token is needed; with the admin token every
// host's chart must be drawn from the stored series with the spike marked;
// with a tenant's token only the tenant's host is charted. It also writes a
// screenshot (to DASHBOARD_SCREENSHOT when set) for a person to look at.
func TestDashboardInBrowser(t *testing.T) {
	bin := chromiumPath(t)
	const (
		admin  = "dashboard-admin-token-0123456789"
		secret = "dashboard-jwt-secret-0123456789-0123456789-abc"
	)
	r := start(t, map[string]string{
		"DATABASE_URL":               storetest.SQLiteURL(t),
		"SMARTCLOUDOPS_REQUIRE_AUTH": "true",
		"SMARTCLOUDOPS_ADMIN_TOKEN":  admin,
		"JWT_SECRET":                 secret,
	}, nil)

	now := time.Now().UTC().Truncate(time.Minute)
	hosts := []string{"web-1", "web-2", "acme/web-3"}
	spike := now.Add(-15 * time.Minute)
	var samples []map[string]any
	for h, host := range hosts {
		for i := range 60 {
			at := now.Add(time.Duration(i-60) * time.Minute)
			cpu := 30 + 10*float64(h) + 4*math.Sin(float64(i)/4)
			if host == "web-1" && at.Equal(spike) {
				cpu = 97
			}
			samples = append(samples, map[string]any{"host": host, "timestamp": at.Format(time.RFC3339),
				"metrics": map[string]float64{"cpu_usage": cpu, "memory_usage": 40 + float64(i%7), "response_time_ms": 80 + float64(i%11)}})
		}
	}
	body, _ := json.Marshal(map[string]any{"samples": samples})
	var rep struct {
		Stored    int64 `json:"stored"`
		Anomalies int64 `json:"anomalies"`
	}
	if code := call(t, "POST", r.base+"/api/v1/metrics", admin, "application/json", string(body), &rep); code != http.StatusOK || rep.Stored != int64(len(samples)) {
		t.Fatalf("ingest: %d %+v", code, rep)
	}
	var stored struct {
		Anomalies []struct {
			DetectedAt time.Time `json:"detected_at"`
			Severity   string    `json:"severity"`
		} `json:"anomalies"`
	}
	call(t, "GET", r.base+"/api/v1/anomalies?host=web-1", admin, "", "", &stored)
	spikeFound := false
	for _, a := range stored.Anomalies {
		spikeFound = spikeFound || a.DetectedAt.Equal(spike)
	}
	if !spikeFound {
		t.Fatalf("the CPU spike was not stored as an anomaly: %+v", stored)
	}
	// Some cache traffic, so the hit-rate meters have something to show.
	if code := call(t, "PUT", r.base+"/performance/cache/dash/k1", admin, "text/plain", "value", nil); code != http.StatusOK && code != http.StatusCreated {
		t.Fatalf("cache put: %d", code)
	}
	for _, key := range []string{"k1", "k1", "k1", "missing"} {
		call(t, "GET", r.base+"/performance/cache/dash/"+key, admin, "", "", nil)
	}

	t.Run("without a token", func(t *testing.T) {
		dom := headless(t, bin, r.base+"/", 3*time.Second, "--dump-dom")
		st := dashStatus(t, dom)
		if st["auth"] != "unauthorized" || !strings.Contains(dom, "This server needs a token") {
			t.Fatalf("status %v; want the page to ask for a token:\n%s", st, dom)
		}
		// Health is public, so it shows even before a token is given.
		if st["health"] != "UP" && st["health"] != "DEGRADED" {
			t.Fatalf("health %q without a token", st["health"])
		}
	})

	t.Run("with the admin token", func(t *testing.T) {
		dom := headless(t, bin, r.base+"/#token="+admin, 12*time.Second, "--dump-dom")
		st := dashStatus(t, dom)
		polls, _ := strconv.Atoi(st["polls"])
		points, _ := strconv.Atoi(st["points"])
		markers, _ := strconv.Atoi(st["anomaly-markers"])
		if st["auth"] != "ok" || polls < 2 || st["charts"] != "3" || points != 3*60 || markers < 1 || st["errors"] != "0" {
			t.Fatalf("status %v; want auth ok, 2+ polls, 3 charts of 60 points, an anomaly marker and no errors", st)
		}
		web1 := chartOf(dom, "web-1")
		mark := fmt.Sprintf(`data-detected-at="%s"`, spike.Format(time.RFC3339))
		if !strings.Contains(web1, `data-points="60"`) || !strings.Contains(web1, `class="anomaly-marker"`) || !strings.Contains(web1, mark) {
			t.Fatalf("web-1's chart lacks its 60 points or the spike's marker (%s):\n%s", mark, web1)
		}
		for _, want := range []string{
			`data-tiers="3"`,             // cache hit-rate meters for L1, L2 and fallback
			"log queue", "anomaly queue", // queue depths
			"/api/v1/hosts",                  // the top routes, parsed from /performance/metrics
			`id="http-rate" class="figure">`, // the request rate figure
		} {
			if !strings.Contains(dom, want) {
				t.Fatalf("the page lacks %q:\n%s", want, dom)
			}
		}
		if m := regexp.MustCompile(`id="http-rate" class="figure">([^<]*)<`).FindStringSubmatch(dom); m == nil || m[1] == "–" {
			t.Fatalf("no request rate drawn: %v", m)
		}
		if m := regexp.MustCompile(`id="http-p99" class="figure">([^<]*)<`).FindStringSubmatch(dom); m == nil || m[1] == "–" {
			t.Fatalf("no p99 latency drawn: %v", m)
		}
	})

	t.Run("one host, as an alert links it", func(t *testing.T) {
		dom := headless(t, bin, r.base+"/?host=web-2#token="+admin, 3*time.Second, "--dump-dom")
		st := dashStatus(t, dom)
		if st["auth"] != "ok" || st["charts"] != "1" || chartOf(dom, "web-2") == "" || chartOf(dom, "web-1") != "" {
			t.Fatalf("?host=web-2: status %v; want only web-2 charted", st)
		}
	})

	t.Run("an anomaly sits on its own metric's chart", func(t *testing.T) {
		dom := headless(t, bin, r.base+"/?host=web-1&metric=memory_usage#token="+admin, 3*time.Second, "--dump-dom")
		web1 := chartOf(dom, "web-1")
		mark := fmt.Sprintf(`data-detected-at="%s"`, spike.Format(time.RFC3339))
		if !strings.Contains(web1, `data-metric="memory_usage"`) || strings.Contains(web1, mark) {
			t.Fatalf("web-1's memory chart: want it drawn without the cpu spike's marker (%s):\n%s", mark, web1)
		}
	})

	t.Run("with a tenant token", func(t *testing.T) {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": "acme-sre", "role": "user", "tenant": "acme", "exp": time.Now().Add(time.Hour).Unix(),
		}).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		dom := headless(t, bin, r.base+"/#token="+tok, 3*time.Second, "--dump-dom")
		st := dashStatus(t, dom)
		if st["auth"] != "ok" || st["charts"] != "1" || chartOf(dom, "acme/web-3") == "" || chartOf(dom, "web-1") != "" {
			t.Fatalf("tenant acme: status %v; want only acme/web-3 charted", st)
		}
	})

	t.Run("screenshot", func(t *testing.T) {
		path := os.Getenv("DASHBOARD_SCREENSHOT")
		if path == "" {
			path = filepath.Join(t.TempDir(), "dash.png")
		}
		headless(t, bin, r.base+"/#token="+admin, 12*time.Second, "--screenshot="+path)
		png, err := os.ReadFile(path)
		if err != nil || len(png) < 10_000 || !bytes.HasPrefix(png, []byte("\x89PNG")) {
			t.Fatalf("screenshot %s: %d bytes, %v", path, len(png), err)
		}
		t.Logf("screenshot written to %s", path)
	})
}
