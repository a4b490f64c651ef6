package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/config"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

// Start-up says in one line which reads need a token, and warns when tenant
// data is open although tokens carry tenants.
func TestReadPolicyLine(t *testing.T) {
	secret := strings.Repeat("s", 32)
	cases := []struct {
		name   string
		env    map[string]string
		level  string
		policy string
		says   string
	}{
		{"single user", nil, "INFO", "reads-open", "reads are open"},
		{"admin token only", map[string]string{"SMARTCLOUDOPS_ADMIN_TOKEN": "0123456789abcdef"}, "INFO", "reads-open", "reads are open"},
		{"JWT, auto", map[string]string{"JWT_SECRET": secret}, "INFO", "tenant-reads-need-token", "tenant data"},
		{"JWT, auto spelled out", map[string]string{"JWT_SECRET": secret, "SMARTCLOUDOPS_REQUIRE_AUTH": "auto"}, "INFO", "tenant-reads-need-token", "needs a token"},
		{"JWT, explicitly open", map[string]string{"JWT_SECRET": secret, "SMARTCLOUDOPS_REQUIRE_AUTH": "false"}, "WARN", "reads-open", "readable without a token"},
		{"no JWT, explicitly open", map[string]string{"SMARTCLOUDOPS_REQUIRE_AUTH": "false"}, "INFO", "reads-open", "reads are open"},
		{"required", map[string]string{"JWT_SECRET": secret, "SMARTCLOUDOPS_REQUIRE_AUTH": "true"}, "INFO", "all-reads-need-token", "every read"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Load(nil, envOf(tc.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			logReadPolicy(slog.New(slog.NewJSONHandler(&buf, nil)), cfg, authOptions(cfg))
			if n := strings.Count(buf.String(), "\n"); n != 1 {
				t.Fatalf("%d lines: %s", n, buf.String())
			}
			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatal(err)
			}
			if line["level"] != tc.level || line["policy"] != tc.policy || !strings.Contains(line["msg"].(string), tc.says) {
				t.Errorf("line %v; want %s, policy %s, saying %q", line, tc.level, tc.policy, tc.says)
			}
		})
	}
}

// The settings reach the running service: with JWT_SECRET set tenant data
// needs a token by default, start-up says so, and the per-client limits
// answer 429 with Retry-After over a real connection.
func TestServeWiresAuthSettings(t *testing.T) {
	const admin = "wiring-admin-token-0123456789"
	r := start(t, map[string]string{
		"DATABASE_URL":                     storetest.SQLiteURL(t),
		"SMARTCLOUDOPS_ADMIN_TOKEN":        admin,
		"JWT_SECRET":                       strings.Repeat("w", 32),
		"SMARTCLOUDOPS_AUTH_FAILURE_LIMIT": "2",
		"SMARTCLOUDOPS_WRITE_RATE_LIMIT":   "0.5",
		"LOG_STDERR_LEVEL":                 "info",
		"ENABLE_CACHE":                     "false",
	}, nil)
	steps := []struct {
		name, method, path, token string
		status                    int
		retryAfter                bool
	}{
		{"tenant data needs a token", "GET", "/api/v1/hosts", "", 401, false},
		{"with one it answers", "GET", "/api/v1/hosts", admin, 200, false},
		{"other reads stay open", "GET", "/performance/config", "", 200, false},
		{"a write within the burst", "POST", "/performance/anomaly/models/v0/activate", admin, 404, false},
		{"the next write waits", "POST", "/performance/anomaly/models/v0/activate", admin, 429, true},
		{"refused credential 1", "GET", "/performance/config", "guess-1", 401, false},
		{"refused credential 2", "GET", "/performance/config", "guess-2", 401, false},
		{"then even the right one waits", "GET", "/api/v1/hosts", admin, 429, true},
	}
	for _, s := range steps {
		req, err := http.NewRequest(s.method, r.base+s.path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		if s.token != "" {
			req.Header.Set("Authorization", "Bearer "+s.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != s.status || (resp.Header.Get("Retry-After") != "") != s.retryAfter {
			t.Fatalf("%s: %d Retry-After %q; want %d: %s", s.name, resp.StatusCode, resp.Header.Get("Retry-After"), s.status, b)
		}
	}
	// The log pipeline writes asynchronously: wait for the start-up line.
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(r.stderr.String(), "tenant-reads-need-token"); {
		if time.Now().After(deadline) {
			t.Fatalf("start-up does not say tenant reads need a token: %s", r.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
