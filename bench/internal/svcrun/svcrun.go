// Package svcrun is what the bench commands share: build the service from the
// working tree, run it as a child process on a loopback port from a clean
// environment, and talk to it over loopback-only HTTP connections.
package svcrun

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// moduleRoot finds the repository from the working directory, so a command
// builds the tree it is run in.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run the bench commands inside the smartcloudops module (go run ./bench/...)")
	}
	return filepath.Dir(gomod), nil
}

// Build compiles the service as users run it: a plain go build, no race
// detector, no test binary. The binary lands in dir.
func Build(ctx context.Context, dir string) (string, error) {
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

// Version is the binary's own version line, for a report's head.
func Version(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		return "(version unknown: " + err.Error() + ")"
	}
	return strings.TrimSpace(string(out))
}

// Workdir makes the command's temporary directory and, unless binary names
// one, builds the service into it. cleanup removes the directory, or with
// keep says where it is and leaves it for a post-mortem.
func Workdir(ctx context.Context, name, binary string, keep bool, stderr io.Writer) (dir, bin string, cleanup func(), err error) {
	dir, err = os.MkdirTemp("", "smartcloudops-"+name+"-")
	if err != nil {
		return "", "", nil, err
	}
	cleanup = func() {
		if keep {
			fmt.Fprintf(stderr, "%s: kept %s\n", name, dir)
			return
		}
		os.RemoveAll(dir)
	}
	bin = binary
	if bin == "" {
		fmt.Fprintf(stderr, "%s: building ./cmd/smartcloudops …\n", name)
		if bin, err = Build(ctx, dir); err != nil {
			cleanup()
			return "", "", nil, err
		}
	}
	return dir, bin, cleanup, nil
}

// UsableRedis returns rawURL when a Redis answers there and "" otherwise
// (saying so on stderr), with a note for the report's head.
func UsableRedis(name, rawURL string, stderr io.Writer) (string, string) {
	switch {
	case rawURL == "":
		return "", "none (memory-only cache)"
	case !RedisReachable(rawURL):
		fmt.Fprintf(stderr, "%s: Redis at %s is not reachable; the service runs with its in-process tier only\n", name, Redacted(rawURL))
		return "", "none (memory-only cache)"
	}
	return rawURL, Redacted(rawURL)
}

// Machine describes where a run happened, for a report's head: the
// platform, CPUs, Go version and, where /proc has it, the load average at
// the start (on a shared machine it explains slow recoveries and latencies).
func Machine() string {
	m := fmt.Sprintf("%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m += fmt.Sprintf(", load average %s %s %s at the start", f[0], f[1], f[2])
		}
	}
	return m
}

// FreeLoopbackAddr asks the kernel for a free port. The port is released
// before the child binds it; on a machine this quiet the gap is harmless,
// and a lost race shows up as the child failing to listen.
func FreeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// RedisReachable reports whether a TCP connection to the Redis of rawURL
// opens; the service would start without it (memory-only cache), but a
// command should say which cache it ran against.
func RedisReachable(rawURL string) bool {
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

// DefaultRedisURL is REDIS_URL, or the local Redis when it is unset.
func DefaultRedisURL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// Redacted hides a password in a URL before it is printed.
func Redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// Config says how to run the service.
type Config struct {
	// Bin is the smartcloudops binary.
	Bin string
	// Addr is the loopback host:port to listen on; empty picks a free one.
	// A restart passes the previous address so clients keep their target.
	Addr string
	// Env holds KEY=VALUE settings on top of the minimal environment
	// (PATH, HOME, GOMAXPROCS and the listen address).
	Env []string
	// StderrPath receives the service's stdout and stderr, appended so a
	// restarted service keeps the earlier output beside its own.
	StderrPath string
	// ReadyWithin bounds the wait for /readyz; zero means a minute.
	ReadyWithin time.Duration
}

// Service is a running SmartCloudOps process.
type Service struct {
	// Base is the service's URL, http://127.0.0.1:PORT.
	Base string
	// Addr is the host:port it listens on.
	Addr   string
	cmd    *exec.Cmd
	cfg    Config
	exited chan error
}

// Start runs the binary with an environment built from scratch, so
// settings exported in the caller's shell (REQUIRE_AUTH, a production
// DATABASE_URL) cannot leak into the run, and waits until /readyz answers.
func Start(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Addr == "" {
		addr, err := FreeLoopbackAddr()
		if err != nil {
			return nil, err
		}
		cfg.Addr = addr
	}
	if cfg.ReadyWithin <= 0 {
		cfg.ReadyWithin = time.Minute
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"SMARTCLOUDOPS_ADDR=" + cfg.Addr,
	}
	if v := os.Getenv("GOMAXPROCS"); v != "" {
		env = append(env, "GOMAXPROCS="+v)
	}
	env = append(env, cfg.Env...)
	logf, err := os.OpenFile(cfg.StderrPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(cfg.Bin, "serve")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	s := &Service{Base: "http://" + cfg.Addr, Addr: cfg.Addr, cmd: cmd, cfg: cfg, exited: make(chan error, 1)}
	go func() {
		s.exited <- cmd.Wait()
		logf.Close()
	}()
	if err := s.waitReady(ctx); err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

// PID is the service's process id.
func (s *Service) PID() int { return s.cmd.Process.Pid }

// waitReady polls /readyz until it answers 200.
func (s *Service) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: LoopbackTransport(1)}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(s.cfg.ReadyWithin)
	for {
		resp, err := client.Get(s.Base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-s.exited:
			s.exited <- err
			return fmt.Errorf("the service exited before it was ready (%v): %s", err, s.StderrTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the service was not ready within %s: %s", s.cfg.ReadyWithin, s.StderrTail())
		}
	}
}

// StderrTail is the end of the service's output, for error messages.
func (s *Service) StderrTail() string {
	data, _ := os.ReadFile(s.cfg.StderrPath)
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	return string(bytes.TrimSpace(data))
}

// Exited reports whether the process has ended, without waiting.
func (s *Service) Exited() bool {
	select {
	case err := <-s.exited:
		s.exited <- err
		return true
	default:
		return false
	}
}

// Signal sends sig to the process.
func (s *Service) Signal(sig os.Signal) error { return s.cmd.Process.Signal(sig) }

// Wait waits up to limit for the process to end; when it did, err is how
// it ended.
func (s *Service) Wait(limit time.Duration) (exited bool, err error) {
	select {
	case err := <-s.exited:
		s.exited <- err
		return true, err
	case <-time.After(limit):
		return false, nil
	}
}

// Stop sends SIGTERM (a graceful shutdown that flushes the logs) and kills
// the process only if it does not exit within 30 s. Stopping a process
// that already ended returns how it ended.
func (s *Service) Stop() error {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	if ok, err := s.Wait(30 * time.Second); ok {
		return err
	}
	_ = s.cmd.Process.Kill()
	_, err := s.Wait(10 * time.Second)
	return fmt.Errorf("the service did not stop within 30s after SIGTERM; killed: %w", err)
}

// LoopbackTransport gives a client its own connections: conns of them, kept
// alive, loopback only (the bench commands load this machine's own
// processes and nothing else), and no gzip so the bytes moved are the bodies.
func LoopbackTransport(conns int) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				return nil, fmt.Errorf("bench: refusing to load non-loopback address %s", addr)
			}
			return d.DialContext(ctx, network, addr)
		},
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
}

// Fetch sends one request and returns the status, headers and body (at
// most 4 MiB of it).
func Fetch(ctx context.Context, client *http.Client, method, url string, header http.Header, body []byte) (int, http.Header, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, data, nil
}

// FmtDuration prints three significant digits in the unit that fits.
func FmtDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

// ProblemDetail pulls title and detail out of a problem+json answer for a
// one-line report, or quotes the start of any other body.
func ProblemDetail(body []byte) string {
	var p struct {
		Title  string `json:"title"`
		Detail string `json:"detail"`
	}
	if json.Unmarshal(body, &p) == nil && (p.Title != "" || p.Detail != "") {
		return fmt.Sprintf("(%s: %s)", p.Title, p.Detail)
	}
	if len(body) > 120 {
		body = body[:120]
	}
	return strconv.Quote(string(body))
}

// AppendSample appends one metric sample as the ingest and detect
// endpoints take it, with plausible values that vary with n.
func AppendSample(dst []byte, host string, ts, n int64) []byte {
	v := float64(n%97) / 97
	dst = append(dst, `{"host":"`...)
	dst = append(dst, host...)
	dst = append(dst, `","timestamp":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, `,"metrics":{"cpu_usage":`...)
	dst = strconv.AppendFloat(dst, 35+10*v, 'f', 2, 64)
	dst = append(dst, `,"memory_usage":`...)
	dst = strconv.AppendFloat(dst, 60+5*v, 'f', 2, 64)
	dst = append(dst, `,"response_time_ms":`...)
	dst = strconv.AppendFloat(dst, 90+30*v, 'f', 1, 64)
	return append(dst, `}}`...)
}
