package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/alerting"
	"github.com/smartcloudops/smartcloudops/internal/anomaly"
	"github.com/smartcloudops/smartcloudops/internal/config"
	"github.com/smartcloudops/smartcloudops/internal/domain"
)

// TestIncidentAlertLabels: the adapter labels a host without a tenant
// without the tenant label, and the host model's incident without a metric.
func TestIncidentAlertLabels(t *testing.T) {
	var mu sync.Mutex
	var got []alerting.Alert
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var batch []alerting.Alert
		_ = json.NewDecoder(r.Body).Decode(&batch)
		mu.Lock()
		got = append(got, batch...)
		mu.Unlock()
	}))
	defer srv.Close()
	n, err := alerting.New(alerting.Options{URLs: []string{srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	a := incidentAlerts{n: n, external: "http://ops:5000"}
	at := time.Now().Add(-time.Minute).UTC()
	a.Opened(anomaly.Incident{Host: "web-1", Metric: "disk_usage", Source: "threshold", StartsAt: at, Score: 0.9,
		Severity: domain.SeverityCritical, Reasons: []string{"disk_usage is 99, above its limit of 95"}, Explanation: "x"})
	a.Opened(anomaly.Incident{Host: "acme/db 1", Source: "iforest", StartsAt: at, Score: 0.7, Severity: domain.SeverityHigh, Explanation: "model"})
	a.Resolved(anomaly.Incident{Host: "web-1", Metric: "disk_usage", EndsAt: at.Add(30 * time.Second)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d alerts posted: %+v", len(got), got)
	}
	disk, model, resolved := got[0], got[1], got[2]
	if _, ok := disk.Labels["tenant"]; ok || disk.Labels["metric"] != "disk_usage" || disk.Labels["severity"] != "critical" ||
		disk.Annotations["description"] != "disk_usage is 99, above its limit of 95" || disk.GeneratorURL != "http://ops:5000/?host=web-1" {
		t.Errorf("disk alert = %+v", disk)
	}
	if _, ok := model.Labels["metric"]; ok || model.Labels["tenant"] != "acme" || model.Annotations["description"] != "model" ||
		model.Annotations["anomalies"] != "http://ops:5000/api/v1/anomalies?host=acme%2Fdb+1" {
		t.Errorf("model alert = %+v", model)
	}
	if resolved.Labels["host"] != "web-1" || !resolved.EndsAt.Equal(at.Add(30*time.Second)) {
		t.Errorf("resolution = %+v", resolved)
	}
}

func TestExternalURL(t *testing.T) {
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	for _, tc := range []struct{ addr, ext, want string }{
		{":5000", "", "http://" + host + ":5000"},
		{"0.0.0.0:8080", "", "http://" + host + ":8080"},
		{"127.0.0.1:5000", "", "http://127.0.0.1:5000"},
		{"[::1]:5000", "", "http://[::1]:5000"},
		{":5000", "https://ops.example.com", "https://ops.example.com"},
	} {
		if got := externalURL(&config.Config{Addr: tc.addr, ExternalURL: tc.ext}); got != tc.want {
			t.Errorf("externalURL(%q, %q) = %q; want %q", tc.addr, tc.ext, got, tc.want)
		}
	}
}
