package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// TestCLIOutput pins what each command prints and its exit status: help on
// stdout with status 0, a bad flag as one line naming it on stderr with 2.
func TestCLIOutput(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(secret, []byte("s3cr3t-token-value-0123456789abcdef-xyz\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		args       []string
		env        map[string]string
		want       int
		stdout     []string // each must appear
		notStdout  []string // none may appear
		stderr     string   // must appear; stderr must be empty when ""
		stderrLine bool     // stderr is exactly one line
	}{
		{name: "--help", args: []string{"--help"}, stdout: []string{"serve ", "migrate ", "detect ", "version ", "check-config ", "<command> --help"}, notStdout: []string{"--addr"}},
		{name: "-h", args: []string{"-h"}, stdout: []string{"Commands:", "serve "}},
		{name: "help", args: []string{"help"}, stdout: []string{"Commands:"}},
		{name: "help serve", args: []string{"help", "serve"}, stdout: []string{"--addr"}},
		{name: "help unknown", args: []string{"help", "nope"}, want: exitUsage, stderr: "unknown command", stderrLine: true},
		{name: "serve --help", args: []string{"serve", "--help"},
			stdout: []string{"Server:", "Database", "Cache", "Logs:", "Anomaly", "Ingest", "Authentication", "Alerting:",
				"--addr string", "env SMARTCLOUDOPS_ADDR; default \":5000\"", "--require-auth [=bool]", "JWT_SECRET_FILE", "Examples:"}},
		{name: "leading -h is help", args: []string{"-h", "--addr", ":1"}, stdout: []string{"Commands:"}},
		{name: "migrate --help", args: []string{"migrate", "--help"}, stdout: []string{"--database-url", "--log-level"},
			notStdout: []string{"--addr", "--anomaly-", "--redis-url"}},
		{name: "migrate refuses serve flag", args: []string{"migrate", "--addr", ":1"}, want: exitUsage,
			stderr: "flag provided but not defined: -addr (see smartcloudops migrate --help)", stderrLine: true},
		{name: "detect --help", args: []string{"detect", "--help"}, stdout: []string{"-input", "-train-rows"}, notStdout: []string{"addr"}},
		{name: "check-config --help", args: []string{"check-config", "-h"}, stdout: []string{"check-config", "without opening"}},
		{name: "--version", args: []string{"--version"}, stdout: []string{"smartcloudops ", "revision "}},
		{name: "version", args: []string{"version"}, stdout: []string{"smartcloudops ", "revision "}},
		{name: "unknown flag", args: []string{"--nope"}, want: exitUsage,
			stderr: "smartcloudops serve: flag provided but not defined: -nope (see smartcloudops serve --help)", stderrLine: true},
		{name: "flag without value", args: []string{"serve", "--addr"}, want: exitUsage, stderr: "-addr (see smartcloudops serve --help)", stderrLine: true},
		{name: "boolean takes no separate value", args: []string{"serve", "--require-auth", "true"}, want: exitUsage,
			stderr: "no positional arguments are accepted: true (see smartcloudops serve --help)", stderrLine: true},
		{name: "unknown command", args: []string{"frobnicate"}, want: exitUsage, stderr: `unknown command "frobnicate" (see smartcloudops --help)`, stderrLine: true},
		{name: "require-auth alone", args: []string{"check-config", "--require-auth", "--admin-token", "0123456789abcdef0123"},
			stdout: []string{"SMARTCLOUDOPS_REQUIRE_AUTH", "configuration OK"}, notStdout: []string{"0123456789abcdef0123"}},
		{name: "require-auth alone needs a credential", args: []string{"check-config", "--require-auth"}, want: exitUsage,
			stderr: "SMARTCLOUDOPS_REQUIRE_AUTH", stderrLine: true},
		{name: "require-auth=false", args: []string{"check-config", "--require-auth=false"}, stdout: []string{"configuration OK"}},
		{name: "bool env keeps its forms", args: []string{"check-config"}, env: map[string]string{"ENABLE_CACHE": "off"}, stdout: []string{"configuration OK"}},
		{name: "check-config shows sources, masks secrets", args: []string{"check-config", "--addr", ":7000"},
			env:       map[string]string{"DATABASE_URL": "postgres://app:hunter2@db:5432/x", "LOG_LEVEL": "debug", "JWT_SECRET_FILE": secret},
			stdout:    []string{"SMARTCLOUDOPS_ADDR", ":7000", "flag", "LOG_LEVEL", "env", "default", "JWT_SECRET", "file", "postgres://app:********@db:5432/x"},
			notStdout: []string{"hunter2", "s3cr3t"}},
		{name: "check-config bad database url", args: []string{"check-config"}, env: map[string]string{"DATABASE_URL": "ftp://x"}, want: exitUsage, stderr: "DATABASE_URL", stderrLine: true},
		{name: "check-config bad selector", args: []string{"check-config"}, env: map[string]string{"PROMWRITE_SELECT": "up{job=}"}, want: exitUsage, stderr: "PROMWRITE_SELECT", stderrLine: true},
		{name: "secret file and value both set", args: []string{"check-config"}, env: map[string]string{"JWT_SECRET": "x", "JWT_SECRET_FILE": secret},
			want: exitUsage, stderr: "JWT_SECRET_FILE", stderrLine: true},
		{name: "secret file unreadable", args: []string{"check-config"}, env: map[string]string{"SMARTCLOUDOPS_ADMIN_TOKEN_FILE": filepath.Join(t.TempDir(), "missing")},
			want: exitUsage, stderr: "SMARTCLOUDOPS_ADMIN_TOKEN_FILE", stderrLine: true},
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
				t.Fatalf("exit %d; want %d\nstdout %s\nstderr %s", code, tc.want, stdout.String(), stderr.String())
			}
			for _, s := range tc.stdout {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout.String())
				}
			}
			for _, s := range tc.notStdout {
				if strings.Contains(stdout.String(), s) {
					t.Errorf("stdout has %q:\n%s", s, stdout.String())
				}
			}
			if tc.stderr == "" && stderr.Len() > 0 {
				t.Errorf("stderr not empty: %q", stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tc.stderr)
			}
			if tc.stderrLine && strings.Count(strings.TrimRight(stderr.String(), "\n"), "\n") != 0 {
				t.Errorf("stderr is not one line: %q", stderr.String())
			}
		})
	}
}

func TestBuildInfoFrom(t *testing.T) {
	settings := func(kv ...string) []debug.BuildSetting {
		var out []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			out = append(out, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return out
	}
	cases := []struct {
		name           string
		bi             *debug.BuildInfo
		ldVer, ldRev   string
		wantV, wantRev string
	}{
		{"no build info", nil, "", "", "dev", "unknown"},
		{"go install", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}}, "", "", "v1.4.0", "unknown"},
		{"checkout build", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: settings("vcs.revision", "abc123", "vcs.modified", "false")}, "", "", "dev", "abc123"},
		{"dirty checkout", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: settings("vcs.revision", "abc123", "vcs.modified", "true")}, "", "", "dev", "abc123-dirty"},
		{"ldflags win", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}, Settings: settings("vcs.revision", "abc123", "vcs.modified", "true")}, "v2.0.0", "def456", "v2.0.0", "def456"},
		{"ldflags version only", &debug.BuildInfo{Settings: settings("vcs.revision", "abc123")}, "v2.0.0", "", "v2.0.0", "abc123"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := buildInfoFrom(tc.bi, tc.ldVer, tc.ldRev)
			if b.Version != tc.wantV || b.Revision != tc.wantRev {
				t.Errorf("got %s/%s; want %s/%s", b.Version, b.Revision, tc.wantV, tc.wantRev)
			}
		})
	}
}

func TestStartLine(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		addr    string
		cacheOn bool
		want    []string
		not     []string
	}{
		{"defaults", nil, "[::]:5000", true,
			[]string{"listening on [::]:5000", "database sqlite:///./smartcloudops.db", "cache memory", "auth auto, no credential", "dashboard http://localhost:5000/"}, nil},
		{"postgres and redis", map[string]string{"DATABASE_URL": "postgres://app:hunter2@db:5432/x", "REDIS_URL": "redis://:pw123@r:6379/0",
			"SMARTCLOUDOPS_REQUIRE_AUTH": "true", "SMARTCLOUDOPS_ADMIN_TOKEN": "0123456789abcdef0123"}, "127.0.0.1:8080", true,
			[]string{"postgres://app:********@db:5432/x", "cache redis redis://:********@r:6379/0", "auth required", "dashboard http://127.0.0.1:8080/"},
			[]string{"hunter2", "pw123", "0123456789abcdef0123"}},
		{"cache off, external url", map[string]string{"ENABLE_CACHE": "false", "SMARTCLOUDOPS_EXTERNAL_URL": "https://ops.example.com/"}, "0.0.0.0:5000", false,
			[]string{"cache off", "dashboard https://ops.example.com/"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.env
			if env == nil {
				env = map[string]string{}
			}
			cfg, err := loadConfig("serve", nil, envOf(env), nil)
			if err != nil {
				t.Fatal(err)
			}
			line := startLine(cfg, tc.addr, tc.cacheOn)
			if strings.Contains(line, "\n") {
				t.Errorf("not one line: %q", line)
			}
			for _, s := range tc.want {
				if !strings.Contains(line, s) {
					t.Errorf("%q lacks %q", line, s)
				}
			}
			for _, s := range tc.not {
				if strings.Contains(line, s) {
					t.Errorf("%q shows %q", line, s)
				}
			}
		})
	}
}

// TestServeTerminal checks what an operator sees on the terminal: the
// start-up line, and no access line for a client's 404 (which the log file
// keeps) unless LOG_STDERR_CLIENT_ERRORS asks for it.
func TestServeTerminal(t *testing.T) {
	for _, show := range []bool{false, true} {
		t.Run(map[bool]string{false: "default", true: "client errors shown"}[show], func(t *testing.T) {
			env := map[string]string{"DATABASE_URL": "sqlite:///" + filepath.Join(t.TempDir(), "t.db"), "ENABLE_CACHE": "false"}
			if show {
				env["LOG_STDERR_CLIENT_ERRORS"] = "true"
			}
			r := start(t, env, nil)
			resp, err := http.Get(r.base + "/favicon.ico")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode < 400 || resp.StatusCode >= 500 {
				t.Fatalf("favicon: %d; want a 4xx", resp.StatusCode)
			}
			if code := r.stop(t); code != exitOK {
				t.Fatalf("exit %d: %s", code, r.stderr)
			}
			out := r.stderr.String()
			if !strings.Contains(out, "smartcloudops listening on 127.0.0.1:") || !strings.Contains(out, "dashboard http://127.0.0.1:") {
				t.Errorf("no start-up line on stderr: %s", out)
			}
			if got := strings.Contains(out, `"path":"/favicon.ico"`); got != show {
				t.Errorf("favicon access line on stderr = %v; want %v: %s", got, show, out)
			}
			data, err := os.ReadFile(filepath.Join(r.logDir, "smartcloudops.log"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(data, []byte(`"path":"/favicon.ico"`)) {
				t.Errorf("log file lacks the favicon access line")
			}
		})
	}
}
