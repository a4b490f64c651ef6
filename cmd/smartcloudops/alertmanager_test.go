package main

// The alerting integration test runs the real Alertmanager (Debian's
// prometheus-alertmanager, 0.25) on a free loopback port and drives the
// whole service at it: an incident opened by ingest must appear in
// Alertmanager's API with its labels and annotations, stay firing while
// the service re-sends it, come back after Alertmanager restarts with its
// memory wiped, and be resolved when the metric returns to normal.

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/logtest"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

// alertmanagerBinary finds Alertmanager: Debian's name, or upstream's.
func alertmanagerBinary(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"prometheus-alertmanager", "alertmanager"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("Alertmanager is not installed (apt-get install -y prometheus-alertmanager); skipping the alerting integration test")
	return ""
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startAlertmanager runs Alertmanager on addr with a fresh data directory
// and clustering off, and waits until it is ready; the returned function
// stops it.
func startAlertmanager(t *testing.T, bin, addr string) func() {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(conf, []byte("route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := &logtest.Buffer{}
	cmd := exec.Command(bin, "--config.file="+conf, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=warn")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	t.Cleanup(stop)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return stop
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Alertmanager did not become ready on %s: %v\n%s", addr, err, out)
		}
	}
}

// gettableAlert is the part of Alertmanager's GET /api/v2/alerts answer the
// test reads.
type gettableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Status       struct {
		State string `json:"state"`
	} `json:"status"`
}

// ourAlerts lists the service's alerts Alertmanager holds as not resolved.
func ourAlerts(t *testing.T, amAddr string) []gettableAlert {
	t.Helper()
	resp, err := http.Get("http://" + amAddr + "/api/v2/alerts?filter=" + `alertname%3D%22` + alertName + `%22`)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []gettableAlert
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	return list
}

func waitAlerts(t *testing.T, amAddr, what string, within time.Duration, cond func([]gettableAlert) bool) []gettableAlert {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(200 * time.Millisecond) {
		list := ourAlerts(t, amAddr)
		if cond(list) {
			return list
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; Alertmanager holds %+v", what, list)
		}
	}
}

func TestAlertsReachAlertmanager(t *testing.T) {
	bin := alertmanagerBinary(t)
	amAddr := freePort(t)
	stopAM := startAlertmanager(t, bin, amAddr)
	const token = "alerting-test-token-0123"
	r := start(t, map[string]string{
		"DATABASE_URL":                               storetest.SQLiteURL(t),
		"SMARTCLOUDOPS_ADMIN_TOKEN":                  token,
		"SMARTCLOUDOPS_ALERTMANAGER_URL":             "http://" + amAddr,
		"SMARTCLOUDOPS_ALERTMANAGER_RESEND_INTERVAL": "1s",
		"SMARTCLOUDOPS_EXTERNAL_URL":                 "https://ops.example.test/",
		"LOG_STDERR_LEVEL":                           "off",
		"ENABLE_CACHE":                               "false",
	}, nil)
	ingest := func(at time.Time, cpu float64) {
		t.Helper()
		body := fmt.Sprintf(`{"samples":[{"host":"acme/web-1","timestamp":%q,"metrics":{"cpu_usage":%g,"memory_usage":50}}]}`, at.UTC().Format(time.RFC3339), cpu)
		if code, out := doJSON(t, http.MethodPost, r.base+"/api/v1/metrics", token, body); code != http.StatusOK {
			t.Fatalf("ingest: %d %s", code, out)
		}
	}
	now := time.Now().Truncate(time.Second)
	ingest(now.Add(-3*time.Minute), 40)
	if list := ourAlerts(t, amAddr); len(list) != 0 {
		t.Fatalf("alerts before any incident: %+v", list)
	}
	ingest(now.Add(-2*time.Minute), 97)
	list := waitAlerts(t, amAddr, "the incident's alert", 30*time.Second, func(l []gettableAlert) bool { return len(l) > 0 })
	a := list[0]
	want := map[string]string{"alertname": alertName, "host": "acme/web-1", "metric": "cpu_usage", "tenant": "acme"}
	for k, v := range want {
		if a.Labels[k] != v {
			t.Errorf("label %s = %q; want %q (labels %v)", k, a.Labels[k], v, a.Labels)
		}
	}
	if a.Labels["severity"] == "" || len(list) != 1 || a.Status.State != "active" {
		t.Errorf("alerts = %+v", list)
	}
	if !strings.Contains(a.Annotations["description"], "above its limit") || a.Annotations["explanation"] == "" {
		t.Errorf("annotations lack the detector's explanation: %v", a.Annotations)
	}
	if a.Annotations["dashboard"] != "https://ops.example.test/?host=acme%2Fweb-1" || a.GeneratorURL != a.Annotations["dashboard"] {
		t.Errorf("dashboard link %q, generatorURL %q", a.Annotations["dashboard"], a.GeneratorURL)
	}
	if !a.StartsAt.Equal(now.Add(-2 * time.Minute)) {
		t.Errorf("startsAt %v; want the alert point's timestamp %v", a.StartsAt, now.Add(-2*time.Minute))
	}

	// endsAt is 4 s ahead (4 × the 1 s re-send interval): still firing
	// past it means the re-sends arrive.
	time.Sleep(6 * time.Second)
	if list := ourAlerts(t, amAddr); len(list) != 1 {
		t.Fatalf("the firing alert expired: re-sends did not keep it: %+v", list)
	}

	// An Alertmanager restarted with its memory gone gets it back.
	stopAM()
	startAlertmanager(t, bin, amAddr)
	waitAlerts(t, amAddr, "the alert after Alertmanager's restart", 30*time.Second, func(l []gettableAlert) bool { return len(l) == 1 })

	// Resolved by the service's post, not by expiry: the last re-send, at
	// most 1 s ago, put endsAt at least 3 s ahead.
	ingest(now.Add(-1*time.Minute), 40)
	waitAlerts(t, amAddr, "the resolution", 2500*time.Millisecond, func(l []gettableAlert) bool { return len(l) == 0 })

	// The service reports what it sent.
	resp, err := http.Get(r.base + "/performance/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	metricsText := string(raw)
	if !strings.Contains(metricsText, `smartcloudops_alerts_sent_total{alertmanager="http://`+amAddr+`"}`) {
		t.Errorf("no sent counter for the Alertmanager in the metrics")
	}
	if strings.Contains(metricsText, `smartcloudops_anomaly_score{`) {
		t.Errorf("score gauge still holds a series after the incident resolved")
	}
}
