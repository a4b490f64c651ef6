package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/logtest"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

// TestPrometheusRemoteWriteEndToEnd is the README's "Point Prometheus at
// it": the real Prometheus scrapes the real node_exporter every second and
// remote-writes to the service, and within a minute the host is on the
// dashboard's API with cpu_usage and memory_usage equal to what
// node_exporter's page said at those scrapes (read back from Prometheus's
// own storage, which holds the page's values as scraped).
func TestPrometheusRemoteWriteEndToEnd(t *testing.T) {
	promBin, err1 := exec.LookPath("prometheus")
	nodeBin, err2 := exec.LookPath("prometheus-node-exporter")
	if err2 != nil {
		nodeBin, err2 = exec.LookPath("node_exporter")
	}
	if err1 != nil || err2 != nil {
		t.Skip("prometheus or node_exporter is not installed (apt-get install -y prometheus prometheus-node-exporter); skipping the remote-write end-to-end test")
	}
	if testing.Short() {
		t.Skip("-short: skipping the remote-write end-to-end test (it runs Prometheus for up to a minute)")
	}
	const token = "remote-write-test-token-0123"
	r := start(t, map[string]string{"DATABASE_URL": storetest.SQLiteURL(t), "SMARTCLOUDOPS_ADMIN_TOKEN": token, "ENABLE_CACHE": "false"}, nil)

	nodePort, promPort := loopbackPort(t), loopbackPort(t)
	nodeAddr := fmt.Sprintf("127.0.0.1:%d", nodePort)
	startProcess(t, nodeBin, "--web.listen-address="+nodeAddr)
	waitHTTP(t, "http://"+nodeAddr+"/metrics")

	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: node
    static_configs:
      - targets: [%q]
remote_write:
  - url: %s/api/v1/write
    authorization:
      credentials: %s
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
`, nodeAddr, r.base, token)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	promAddr := fmt.Sprintf("127.0.0.1:%d", promPort)
	startProcess(t, promBin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")

	// The host is the scrape target's instance without its port.
	var rows []seriesPoint
	deadline := time.Now().Add(90 * time.Second)
	for {
		rows = hostRows(t, r.base, "127.0.0.1", token)
		if n := countWith(rows, "cpu_usage", "memory_usage"); n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no host with cpu_usage and memory_usage after 90 s; rows: %+v\nservice log: %s", rows, r.stderr)
		}
		time.Sleep(time.Second)
	}

	// What Prometheus scraped from node_exporter's page, sample by sample.
	cpu := promRange(t, promAddr, "node_cpu_seconds_total[5m]")
	avail := promRange(t, promAddr, "node_memory_MemAvailable_bytes[5m]")
	total := promRange(t, promAddr, "node_memory_MemTotal_bytes[5m]")
	checked := 0
	for _, row := range rows {
		ms := row.Timestamp.UnixMilli()
		if v, ok := row.Metrics["memory_usage"]; ok {
			a, ok1 := avail.at(ms, "")
			tot, ok2 := total.at(ms, "")
			if ok1 && ok2 {
				if want := 100 * (1 - a/tot); math.Abs(v-want) > 1e-9 {
					t.Errorf("memory_usage at %s = %v, node_exporter's page gives %v", row.Timestamp, v, want)
				}
				checked++
			}
		}
		if v, ok := row.Metrics["cpu_usage"]; ok {
			if want, ok := cpu.cpuUsage(ms); ok {
				if math.Abs(v-want) > 1e-6 {
					t.Errorf("cpu_usage at %s = %v, node_exporter's page gives %v", row.Timestamp, v, want)
				}
				checked++
			}
		}
	}
	if checked < 4 {
		t.Fatalf("only %d values could be checked against Prometheus's samples; rows %+v", checked, rows)
	}
	// And against two scrapes of the page taken here: the latest memory
	// reading is close to the service's (memory moves slowly).
	page := scrapeGauge(t, "http://"+nodeAddr+"/metrics", "node_memory_MemAvailable_bytes", "node_memory_MemTotal_bytes")
	last := rows[len(rows)-1]
	for i := len(rows) - 1; i >= 0; i-- {
		if _, ok := rows[i].Metrics["memory_usage"]; ok {
			last = rows[i]
			break
		}
	}
	if now := 100 * (1 - page[0]/page[1]); math.Abs(now-last.Metrics["memory_usage"]) > 10 {
		t.Errorf("memory_usage %v stored, node_exporter's page says %v now", last.Metrics["memory_usage"], now)
	}
	for _, row := range rows {
		if v, ok := row.Metrics["cpu_usage"]; ok && (v < 0 || v > 100) {
			t.Errorf("cpu_usage %v out of 0-100", v)
		}
	}
	// The other well-known features of a node_exporter host arrive too.
	for _, m := range []string{"load_average", "disk_usage", "network_in", "network_out"} {
		if countWith(rows, m) == 0 {
			t.Errorf("no row has %s: %+v", m, rows)
		}
	}
	t.Logf("%d rows, %d values checked against the scraped page; last %+v", len(rows), checked, rows[len(rows)-1])
}

type seriesPoint struct {
	Timestamp time.Time          `json:"timestamp"`
	Metrics   map[string]float64 `json:"metrics"`
}

func hostRows(t *testing.T, base, host, token string) []seriesPoint {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/hosts/"+url.PathEscape(host)+"/metrics?limit=1000", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Samples []seriesPoint `json:"samples"`
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("host series: %d %v", resp.StatusCode, err)
	}
	return body.Samples
}

func countWith(rows []seriesPoint, metrics ...string) int {
	n := 0
	for _, r := range rows {
		ok := true
		for _, m := range metrics {
			_, has := r.Metrics[m]
			ok = ok && has
		}
		if ok {
			n++
		}
	}
	return n
}

// loopbackPort is a free loopback TCP port.
func loopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startProcess runs an outside program for the test's life; its output
// is kept for a failure message.
func startProcess(t *testing.T, bin string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	out := &logtest.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(bin), out)
		}
	})
}

func waitHTTP(t *testing.T, u string) {
	t.Helper()
	for range 100 {
		resp, err := http.Get(u)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not answer", u)
}

// promSeries is a range query's raw samples: per series (labels), Unix ms
// to value.
type promSeries []struct {
	labels map[string]string
	values map[int64]float64
	times  []int64
}

func promRange(t *testing.T, addr, query string) promSeries {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("prometheus query %s: %v", query, err)
	}
	out := make(promSeries, len(body.Data.Result))
	for i, r := range body.Data.Result {
		out[i].labels = r.Metric
		out[i].values = map[int64]float64{}
		for _, v := range r.Values {
			sec, _ := v[0].(float64)
			s, _ := v[1].(string)
			f, _ := strconv.ParseFloat(s, 64)
			ms := int64(math.Round(sec * 1000))
			out[i].values[ms] = f
			out[i].times = append(out[i].times, ms)
		}
	}
	return out
}

// at is the value at ms of the series whose mode label is mode ("" for
// any: the first series).
func (p promSeries) at(ms int64, mode string) (float64, bool) {
	for _, s := range p {
		if mode == "" || s.labels["mode"] == mode {
			v, ok := s.values[ms]
			return v, ok
		}
	}
	return 0, false
}

// cpuUsage is 100 × (1 − Σ idle rate / Σ rate) between ms and each
// series' previous sample, as the service computes it.
func (p promSeries) cpuUsage(ms int64) (float64, bool) {
	idle, all := 0.0, 0.0
	for _, s := range p {
		v, ok := s.values[ms]
		if !ok {
			return 0, false
		}
		prev := int64(-1)
		for _, t := range s.times {
			if t < ms {
				prev = t
			}
		}
		if prev < 0 {
			return 0, false
		}
		rate := (v - s.values[prev]) / (float64(ms-prev) / 1000)
		if v < s.values[prev] {
			rate = v / (float64(ms-prev) / 1000)
		}
		all += rate
		if s.labels["mode"] == "idle" {
			idle += rate
		}
	}
	if all <= 0 {
		return 0, false
	}
	return min(100, max(0, 100*(1-idle/all))), true
}

// scrapeGauge reads unlabelled gauges from a text exposition page.
func scrapeGauge(t *testing.T, u string, names ...string) []float64 {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := make([]float64, len(names))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		for i, n := range names {
			if name == n {
				out[i], _ = strconv.ParseFloat(val, 64)
			}
		}
	}
	return out
}
