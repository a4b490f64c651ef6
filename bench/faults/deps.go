package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartcloudops/smartcloudops/bench/internal/svcrun"
)

// redisProc is a throw-away redis-server on a loopback port that keeps
// nothing on disk, so killing it loses its data as a cache server would.
type redisProc struct {
	addr   string
	dir    string
	cmd    *exec.Cmd
	exited chan error
}

func startRedis(ctx context.Context, dir, addr string) (*redisProc, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	// DEBUG SLEEP is how the slow fault stalls it; "local" allows it from
	// loopback connections only.
	cmd := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"), "--enable-debug-command", "local")
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("redis-server: %w", err)
	}
	r := &redisProc{addr: addr, dir: dir, cmd: cmd, exited: make(chan error, 1)}
	go func() { r.exited <- cmd.Wait() }()
	if err := r.waitPing(ctx, 10*time.Second); err != nil {
		r.kill()
		return nil, err
	}
	return r, nil
}

func (r *redisProc) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: r.addr, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: 5 * time.Second})
}

func (r *redisProc) waitPing(ctx context.Context, limit time.Duration) error {
	c := r.client()
	defer c.Close()
	deadline := time.Now().Add(limit)
	for {
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		err := c.Ping(pctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			log, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			return fmt.Errorf("redis-server at %s does not answer PING: %w\n%s", r.addr, err, tail(log))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill ends the process with SIGKILL (which also ends a stopped one) and
// reaps it.
func (r *redisProc) kill() {
	_ = r.cmd.Process.Kill()
	select {
	case err := <-r.exited:
		r.exited <- err // for a second kill, which then returns at once
	case <-time.After(10 * time.Second):
	}
}

func (r *redisProc) signal(sig syscall.Signal) error { return r.cmd.Process.Signal(sig) }

// stall keeps Redis busy with DEBUG SLEEP d every d+gap until ctx ends:
// every command the service sends in that time waits behind a sleep.
func (r *redisProc) stall(ctx context.Context, d, gap time.Duration) error {
	c := r.client()
	defer c.Close()
	for ctx.Err() == nil {
		if err := c.Do(context.Background(), "DEBUG", "SLEEP", strconv.FormatFloat(d.Seconds(), 'f', 3, 64)).Err(); err != nil {
			return fmt.Errorf("DEBUG SLEEP: %w", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(gap):
		}
	}
	return nil
}

// pgCluster is a throw-away PostgreSQL cluster made with initdb. The server
// refuses to run as root, so as root every pg command runs as the postgres
// user through runuser, in a directory that user owns.
type pgCluster struct {
	bin  string
	dir  string
	data string
	port string
	asPG bool
}

const pgBinDir = "/usr/lib/postgresql/15/bin"

// pgAvailable says why a private cluster cannot be made, or "".
func pgAvailable() string {
	if _, err := os.Stat(filepath.Join(pgBinDir, "initdb")); err != nil {
		return "no " + filepath.Join(pgBinDir, "initdb") + " (apt-get install postgresql)"
	}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			return "running as root and there is no postgres user to run the server as"
		}
		if _, err := exec.LookPath("runuser"); err != nil {
			return "running as root and runuser is missing"
		}
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		return "no redis-server (apt-get install redis-server)"
	}
	return ""
}

func newPGCluster(ctx context.Context, port string) (*pgCluster, error) {
	dir, err := os.MkdirTemp("", "smartcloudops-faults-pg-")
	if err != nil {
		return nil, err
	}
	c := &pgCluster{bin: pgBinDir, dir: dir, data: filepath.Join(dir, "data"), port: port, asPG: os.Geteuid() == 0}
	if c.asPG {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	// --no-sync only skips fsync of initdb's own files; the server keeps
	// fsync on, so committed rows survive the kill as they would anywhere.
	if out, err := c.run(ctx, "initdb", "-D", c.data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	if err := c.start(ctx); err != nil {
		c.remove()
		return nil, err
	}
	return c, nil
}

func (c *pgCluster) url() string {
	return "postgres://postgres@127.0.0.1:" + c.port + "/postgres?sslmode=disable"
}

func (c *pgCluster) run(ctx context.Context, tool string, args ...string) ([]byte, error) {
	path := filepath.Join(c.bin, tool)
	var cmd *exec.Cmd
	if c.asPG {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = c.dir
	return cmd.CombinedOutput()
}

// start runs pg_ctl start and waits for the server. After the postmaster
// was killed its orphaned backends may hold the shared memory for a moment,
// so a refused start is retried for up to 30 s.
func (c *pgCluster) start(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := c.run(ctx, "pg_ctl", "-D", c.data, "-l", filepath.Join(c.dir, "server.log"), "-w", "-t", "30",
			"-o", "-p "+c.port+" -k "+c.dir+" -c listen_addresses=127.0.0.1", "start")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			log, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
			return fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, tail(log))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// stop is pg_ctl stop in the given mode (fast: roll back open
// transactions and disconnect clients; immediate: for clean-up).
func (c *pgCluster) stop(ctx context.Context, mode string) error {
	if out, err := c.run(ctx, "pg_ctl", "-D", c.data, "-m", mode, "-w", "-t", "30", "stop"); err != nil {
		return fmt.Errorf("pg_ctl stop -m %s: %w\n%s", mode, err, out)
	}
	return nil
}

// killPostmaster sends SIGKILL to the postmaster alone, as an OOM killer
// would: the backends notice their parent is gone and exit.
func (c *pgCluster) killPostmaster() error {
	data, err := os.ReadFile(filepath.Join(c.data, "postmaster.pid"))
	if err != nil {
		return err
	}
	first, _, _ := bytes.Cut(data, []byte("\n"))
	pid, err := strconv.Atoi(strings.TrimSpace(string(first)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("postmaster.pid: unexpected first line %q", first)
	}
	return syscall.Kill(pid, syscall.SIGKILL)
}

// remove stops the server (immediate mode: nothing in it is worth keeping)
// and deletes the cluster.
func (c *pgCluster) remove() {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	if _, err := os.Stat(filepath.Join(c.data, "postmaster.pid")); err == nil {
		// A killed postmaster leaves its pid file behind and pg_ctl then
		// finds nothing to stop; either way the directory goes next.
		_ = c.stop(ctx, "immediate")
	}
	os.RemoveAll(c.dir)
}

// freePort is a free loopback port number, as a string.
func freePort() (string, error) {
	addr, err := svcrun.FreeLoopbackAddr()
	if err != nil {
		return "", err
	}
	_, port, err := net.SplitHostPort(addr)
	return port, err
}

func tail(b []byte) string {
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	return string(bytes.TrimSpace(b))
}
