package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"
)

// repoRoot is the module root: tests run in deploy/.
const repoRoot = ".."

// yamlDocs reads every document of a YAML file into generic maps.
func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var docs []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("parse %s: %v", path, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

// dig walks nested maps and lists: a string key indexes a map, an int a list.
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

// str is dig for a string leaf ("" when absent or not a string).
func str(v any, path ...any) string {
	s, _ := dig(v, path...).(string)
	return s
}

var routeRE = regexp.MustCompile(`s\.handle\("GET (/[^"]*)"`)

// getRoutes reads the GET patterns of httpapi's route table, the one place
// that lists every endpoint, so a probe or scrape path cannot drift from it.
func getRoutes(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "internal", "httpapi", "server.go"))
	if err != nil {
		t.Fatalf("read route table: %v", err)
	}
	routes := map[string]bool{}
	for _, m := range routeRE.FindAllSubmatch(b, -1) {
		routes[string(m[1])] = true
	}
	if !routes["/livez"] {
		t.Fatalf("route table parse found no /livez among %v", routes)
	}
	return routes
}

var settingRE = regexp.MustCompile("^\\| `([A-Z][A-Z0-9_]+)`")

// knownSettings reads the variable names of README's configuration table, so
// a manifest that sets a misspelt or removed variable fails here instead of
// being ignored by the service.
func knownSettings(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatalf("open README: %v", err)
	}
	defer f.Close()
	known := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if m := settingRE.FindStringSubmatch(sc.Text()); m != nil {
			known[m[1]] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read README: %v", err)
	}
	if !known["DATABASE_URL"] {
		t.Fatalf("README configuration table not found")
	}
	// Secrets may come from files (X_FILE); README lists which.
	for _, k := range []string{"DATABASE_URL", "REDIS_PASSWORD", "REDIS_URL", "SMARTCLOUDOPS_ADMIN_TOKEN", "JWT_SECRET", "SMARTCLOUDOPS_ALERTMANAGER_URL"} {
		known[k+"_FILE"] = true
	}
	return known
}

// needTool skips the test when an outside tool is not installed.
func needTool(t *testing.T, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (%s); skipping", name, install)
	}
	return p
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
	buildOut  []byte
)

// staticBinary builds the service the way the Dockerfile does
// (CGO_ENABLED=0, -trimpath), once per test run.
func staticBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the service binary; skipped in -short")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "deploy-test-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "smartcloudops")
		goBin, err := exec.LookPath("go")
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command(goBin, "build", "-trimpath", "-o", buildPath, "./cmd/smartcloudops")
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("CGO_ENABLED=0 go build -trimpath ./cmd/smartcloudops: %v\n%s", buildErr, buildOut)
	}
	return buildPath
}

// envKeys lists the KEY of KEY=value lines, skipping comments and blanks.
func envKeys(text string) []string {
	var keys []string
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, _, ok := strings.Cut(line, "="); ok {
			keys = append(keys, k)
		}
	}
	return keys
}
