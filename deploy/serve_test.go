package deploy_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestImageDefaultsServe starts the statically built binary with the
// Dockerfile's ENV only (its /data moved to a temporary directory, as the
// volume would be), waits for /livez and /readyz, checks the SQLite file and
// the logs landed on the volume, then stops it with SIGTERM as an
// orchestrator does: the image's defaults must be enough to run.
func TestImageDefaultsServe(t *testing.T) {
	bin := staticBinary(t)
	b, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + data}
	for _, kv := range dockerfileEnv(string(b)) {
		kv = strings.ReplaceAll(kv, "/data", data)
		if strings.HasPrefix(kv, "SMARTCLOUDOPS_ADDR=") {
			kv = "SMARTCLOUDOPS_ADDR=" + addr
		}
		env = append(env, kv)
	}
	check := exec.Command(bin, "check-config")
	check.Env, check.Dir = env, data
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("check-config with the image's ENV: %v\n%s", err, out)
	}

	cmd := exec.Command(bin, "serve")
	cmd.Env = env
	cmd.Dir = data
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ready := false
	for !ready {
		select {
		case err := <-done:
			t.Fatalf("service exited before ready: %v\n%s", err, out.String())
		case <-ctx.Done():
			t.Fatalf("not ready within 2 minutes\n%s", out.String())
		case <-time.After(200 * time.Millisecond):
		}
		for _, path := range []string{"/livez", "/readyz"} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				ready = false
				break
			}
			resp.Body.Close()
			ready = resp.StatusCode == http.StatusOK
			if !ready {
				break
			}
		}
	}
	if _, err := os.Stat(filepath.Join(data, "smartcloudops.db")); err != nil {
		t.Errorf("SQLite file not on the data volume: %v", err)
	}
	if entries, err := os.ReadDir(filepath.Join(data, "logs")); err != nil || len(entries) == 0 {
		t.Errorf("no log file on the data volume (%v)", err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, out.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("still running a minute after SIGTERM\n%s", out.String())
	}
}

// dockerfileEnv returns the KEY=value pairs of the Dockerfile's ENV lines
// (with their backslash continuations), the runtime stage's last.
func dockerfileEnv(df string) []string {
	var kvs []string
	lines := strings.Split(strings.ReplaceAll(df, "\\\n", " "), "\n")
	for _, line := range lines {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "ENV ")
		if !ok {
			continue
		}
		for _, f := range strings.Fields(rest) {
			if strings.Contains(f, "=") {
				kvs = append(kvs, f)
			}
		}
	}
	return kvs
}
