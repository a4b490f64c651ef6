package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/smartcloudops/smartcloudops/internal/config"
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
