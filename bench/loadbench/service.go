package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// service is the SmartCloudOps process under test.
type service struct {
	cmd     *exec.Cmd
	base    string
	token   string
	logPath string
	exited  chan error
}

// moduleRoot finds the repository from the working directory, so the
// benchmark builds the tree it is run in.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run loadbench inside the smartcloudops module (go run ./bench/loadbench)")
	}
	return filepath.Dir(gomod), nil
}

// build compiles the service as users run it: a plain go build, no race
// detector, no test binary.
func build(ctx context.Context, dir string) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "smartcloudops")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/smartcloudops")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/smartcloudops: %w\n%s", err, out)
	}
	return bin, nil
}

// freeLoopbackAddr asks the kernel for a free port. The port is released
// before the service binds it; on a machine this quiet the gap is harmless,
// and a lost race shows up as the service failing to listen.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// redisReachable reports whether a TCP connection to the Redis of rawURL
// opens; the service itself would start without it (memory-only cache), but
// the benchmark should say which cache it measured.
func redisReachable(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return false
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "6379")
	}
	c, err := net.DialTimeout("tcp", host, 500*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// startService runs the binary on a free loopback port with a temporary
// SQLite file and log directory. The environment is built from scratch so
// settings exported in the caller's shell (REQUIRE_AUTH, a production
// DATABASE_URL) cannot leak into the run.
func startService(ctx context.Context, bin, dir, redisURL, token, keyPrefix string) (*service, error) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"SMARTCLOUDOPS_ADDR=" + addr,
		"DATABASE_URL=sqlite://" + filepath.Join(dir, "bench.db"),
		"LOG_DIR=" + filepath.Join(dir, "logs"),
		"SMARTCLOUDOPS_ADMIN_TOKEN=" + token,
		"CACHE_KEY_PREFIX=" + keyPrefix,
		// One client sends every request: the per-client write limit would
		// measure itself, not the service.
		"SMARTCLOUDOPS_WRITE_RATE_LIMIT=0",
	}
	if redisURL != "" {
		env = append(env, "REDIS_URL="+redisURL)
	}
	if v := os.Getenv("GOMAXPROCS"); v != "" {
		env = append(env, "GOMAXPROCS="+v)
	}
	logPath := filepath.Join(dir, "service.stderr")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	s := &service{cmd: cmd, base: "http://" + addr, token: token, logPath: logPath, exited: make(chan error, 1)}
	go func() {
		s.exited <- cmd.Wait()
		logf.Close()
	}()
	if err := s.waitReady(ctx, 60*time.Second); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// waitReady polls /readyz until it answers 200.
func (s *service) waitReady(ctx context.Context, limit time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(limit)
	for {
		resp, err := client.Get(s.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-s.exited:
			s.exited <- err
			return fmt.Errorf("the service exited before it was ready (%v): %s", err, s.stderrTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the service was not ready within %s: %s", limit, s.stderrTail())
		}
	}
}

func (s *service) stderrTail() string {
	data, _ := os.ReadFile(s.logPath)
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	return string(bytes.TrimSpace(data))
}

// stop sends SIGTERM (a graceful shutdown that flushes the logs) and kills
// the process only if it does not exit in time.
func (s *service) stop() error {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		return err
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		return fmt.Errorf("the service did not stop within 30s after SIGTERM; killed: %w", <-s.exited)
	}
}
