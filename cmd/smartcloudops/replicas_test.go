package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

// eventually polls cond every 10ms until it holds or d passes, and says how
// long it took.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// TestTwoReplicasShareState runs two services on one PostgreSQL database,
// as two replicas behind a load balancer: each names itself in the summary;
// a model activated on A is the one B's detection uses within a second; a
// runtime setting put on A is in force on B within a second; and the status
// URL of a database job started on A answers on B.
func TestTwoReplicasShareState(t *testing.T) {
	const token = "admin-token-0123456789"
	db := storetest.PostgresDatabaseURL(t)
	env := func(id string) map[string]string {
		return map[string]string{"DATABASE_URL": db, "SMARTCLOUDOPS_ADMIN_TOKEN": token, "SMARTCLOUDOPS_REPLICA_ID": id,
			"LOG_STDERR_LEVEL": "off", "ENABLE_CACHE": "false"}
	}
	a := start(t, env("replica-a"), nil)
	b := start(t, env("replica-b"), nil)

	for _, r := range []struct{ base, id string }{{a.base, "replica-a"}, {b.base, "replica-b"}} {
		code, body := doJSON(t, http.MethodGet, r.base+"/performance/summary", token, "")
		var sum struct {
			Replica string `json:"replica"`
		}
		if err := json.Unmarshal(body, &sum); code != http.StatusOK || err != nil || sum.Replica != r.id {
			t.Fatalf("summary of %s: %d %s", r.id, code, body)
		}
	}

	// Runtime settings.
	if code, body := doJSON(t, http.MethodPut, a.base+"/performance/config", token, `{"logs.max_files": 77}`); code != http.StatusOK {
		t.Fatalf("PUT config on A: %d %s", code, body)
	}
	took := eventually(t, time.Second, "B shows logs.max_files=77", func() bool {
		_, body := doJSON(t, http.MethodGet, b.base+"/performance/config", token, "")
		var cfg struct {
			Runtime []struct {
				Key         string `json:"key"`
				Value       any    `json:"value"`
				AppliedFrom string `json:"applied_from"`
			} `json:"runtime"`
		}
		_ = json.Unmarshal(body, &cfg)
		for _, e := range cfg.Runtime {
			if e.Key == "logs.max_files" {
				return e.Value == float64(77) && e.AppliedFrom == "replica-a"
			}
		}
		return false
	})
	t.Logf("PUT /performance/config on A seen on B after %s", took)

	// A database job's status URL, started on A, read on B.
	var location string
	for i := 0; i < 20 && location == ""; i++ {
		req, _ := http.NewRequest(http.MethodPost, a.base+"/performance/database/optimize?wait=0s", strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusAccepted {
			location = resp.Header.Get("Location")
		} else if resp.StatusCode != http.StatusOK {
			t.Fatalf("optimize on A: %d", resp.StatusCode)
		}
	}
	if location == "" {
		t.Fatal("optimize always finished within wait=0s; no job to look up")
	}
	eventually(t, 10*time.Second, "B reports the job finished", func() bool {
		code, body := doJSON(t, http.MethodGet, b.base+location, token, "")
		var j struct {
			Status  string `json:"status"`
			Replica string `json:"replica"`
		}
		if err := json.Unmarshal(body, &j); code != http.StatusOK || err != nil {
			t.Fatalf("job status on B: %d %s", code, body)
		}
		if j.Replica != "replica-a" {
			t.Fatalf("job status on B names replica %q: %s", j.Replica, body)
		}
		return j.Status == "succeeded"
	})

	// The active model.
	now := time.Now().UTC().Truncate(time.Minute)
	var samples []map[string]any
	for h := range 3 {
		for i := range 300 {
			load := 0.5 + 0.1*math.Sin(float64(i*(h+1))/7)
			samples = append(samples, map[string]any{"host": fmt.Sprintf("web-%d", h), "timestamp": now.Add(time.Duration(i-300) * time.Minute).Format(time.RFC3339),
				"metrics": map[string]float64{"cpu_usage": 40 + 20*load, "memory_usage": 55 + 5*load + float64(i%3), "request_rate": 200 + 150*load}})
		}
	}
	for i := 0; i < len(samples); i += 900 {
		body, _ := json.Marshal(map[string]any{"samples": samples[i:min(i+900, len(samples))]})
		if code, out := doJSON(t, http.MethodPost, a.base+"/api/v1/metrics", token, string(body)); code != http.StatusOK {
			t.Fatalf("ingest: %d %s", code, out)
		}
	}
	var versions []string
	for range 2 {
		code, body := doJSON(t, http.MethodPost, a.base+"/performance/anomaly/models", token, `{"activate": false}`)
		var info struct {
			Version string `json:"version"`
		}
		if err := json.Unmarshal(body, &info); (code != http.StatusOK && code != http.StatusCreated) || err != nil || info.Version == "" {
			t.Fatalf("train on A: %d %s", code, body)
		}
		versions = append(versions, info.Version)
	}
	detect := `{"host": "web-0", "metrics": {"cpu_usage": 50, "memory_usage": 57, "request_rate": 270}}`
	for _, v := range []string{versions[0], versions[1], versions[0]} {
		if code, body := doJSON(t, http.MethodPost, a.base+"/performance/anomaly/models/"+v+"/activate", token, ""); code != http.StatusOK {
			t.Fatalf("activate %s on A: %d %s", v, code, body)
		}
		took := eventually(t, time.Second, "B detects with "+v, func() bool {
			code, body := doJSON(t, http.MethodPost, b.base+"/performance/anomaly/detect?use_cache=false", token, detect)
			var res struct {
				ModelVersion string `json:"model_version"`
			}
			if err := json.Unmarshal(body, &res); code != http.StatusOK || err != nil {
				t.Fatalf("detect on B: %d %s", code, body)
			}
			return strings.Contains(res.ModelVersion, v)
		})
		t.Logf("activation of %s on A used by B's detection after %s", v, took)
	}
}
