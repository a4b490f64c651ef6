package cache

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/smartcloudops/smartcloudops/internal/health"
)

// privateRedis is a throw-away redis-server on its own loopback port; the
// shared one is never touched.
type privateRedis struct {
	t    *testing.T
	bin  string
	port int
	dir  string
	cmd  *exec.Cmd
}

func startPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed (apt-get install -y redis-server): skipping the fault test")
	}
	r := &privateRedis{t: t, bin: bin, port: freePort(t), dir: t.TempDir()}
	r.start()
	t.Cleanup(r.kill)
	return r
}

func (r *privateRedis) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

func (r *privateRedis) start() {
	r.t.Helper()
	r.cmd = exec.Command(r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir)
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	eventually(r.t, "private redis-server to answer PING", func() bool {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)), time.Second)
		if err != nil {
			return false
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(time.Second))
		if _, err := conn.Write([]byte("PING\r\n")); err != nil {
			return false
		}
		line, err := bufio.NewReader(conn).ReadString('\n')
		return err == nil && line == "+PONG\r\n"
	})
}

func (r *privateRedis) kill() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGCONT) // a stopped process must run to die
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

func (r *privateRedis) signal(s syscall.Signal) {
	if err := r.cmd.Process.Signal(s); err != nil {
		r.t.Fatalf("signal %v: %v", s, err)
	}
}

// load keeps reading and writing from several goroutines and records what
// a caller would see: errors and the slowest answer.
type load struct {
	stop    chan struct{}
	wg      sync.WaitGroup
	ops     atomic.Int64
	errs    atomic.Int64
	slowest atomic.Int64
	lastErr atomic.Value
}

func startLoad(c *Cache, workers int) *load {
	l := &load{stop: make(chan struct{})}
	for w := range workers {
		l.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				key := "load:" + strconv.Itoa((w*7+i)%20)
				t0 := time.Now()
				var err error
				if i%3 == 0 {
					err = c.Set(context.Background(), "fault", key, i, time.Minute)
				} else {
					var v int
					_, err = c.Get(context.Background(), "fault", key, &v)
				}
				if d := int64(time.Since(t0)); d > l.slowest.Load() {
					l.slowest.Store(d)
				}
				l.ops.Add(1)
				if err != nil {
					l.errs.Add(1)
					l.lastErr.Store(err)
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	return l
}

func (l *load) finish(t *testing.T, phase string, bound time.Duration) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	if n := l.errs.Load(); n > 0 {
		t.Errorf("%s: callers saw %d errors in %d calls, last: %v", phase, n, l.ops.Load(), l.lastErr.Load())
	}
	if s := time.Duration(l.slowest.Load()); s > bound {
		t.Errorf("%s: slowest call took %s, bound %s", phase, s, bound)
	}
	if l.ops.Load() == 0 {
		t.Errorf("%s: no calls made", phase)
	}
}

func status(c *Cache) health.Status {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return c.Check(ctx).Status
}

// The fault test: Redis killed, then hung, mid-load.
func TestFaultKillAndHangMidLoad(t *testing.T) {
	srv := startPrivateRedis(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	const readTimeout = 200 * time.Millisecond
	c, err := New(ctx, Options{
		RedisURL: srv.url(), Registerer: reg,
		ReadTimeout: readTimeout, WriteTimeout: readTimeout, DialTimeout: 500 * time.Millisecond,
		BreakerFailures: 2, BreakerOpenTimeout: 200 * time.Millisecond, HealthCheckInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if status(c) != health.StatusUp {
		t.Fatal("not UP at start")
	}
	// Generous: a call waits at most one ReadTimeout, plus a slow machine.
	bound := readTimeout + 3*time.Second

	phases := []struct {
		name    string
		break_  func()
		restore func()
	}{
		{"kill", srv.kill, srv.start},
		{"hang", func() { srv.signal(syscall.SIGSTOP) }, func() { srv.signal(syscall.SIGCONT) }},
	}
	for _, ph := range phases {
		fallbackHits := requests(t, reg, "fallback", "hit")
		l := startLoad(c, 4)
		time.Sleep(150 * time.Millisecond)
		ph.break_()
		eventually(t, ph.name+": health DEGRADED", func() bool { return status(c) == health.StatusDegraded })
		// A failed ping is enough for DEGRADED; the breaker needs
		// BreakerFailures of them to switch to fallback.
		eventually(t, ph.name+": fallback active", func() bool {
			return gauge(t, reg, "smartcloudops_cache_fallback_active") == 1
		})
		// Writes and reads during the outage are served in-process.
		if err := c.Set(ctx, "fault", "during-"+ph.name, "kept in memory", time.Minute); err != nil {
			t.Fatalf("%s: Set during outage: %v", ph.name, err)
		}
		e, ok, err := c.GetRaw(ctx, "fault", "during-"+ph.name)
		if err != nil || !ok || e.Tier != TierFallback {
			t.Fatalf("%s: read during outage = %+v %v %v", ph.name, e, ok, err)
		}
		time.Sleep(300 * time.Millisecond)
		l.finish(t, ph.name, bound)
		if requests(t, reg, "fallback", "hit") <= fallbackHits || requests(t, reg, "fallback", "set") == 0 {
			t.Fatalf("%s: fallback metrics did not move", ph.name)
		}
		if st := c.Stats(ctx); !st.Breaker.FallbackActive || st.Breaker.FallbackSeconds <= 0 {
			t.Fatalf("%s: stats during outage %+v", ph.name, st.Breaker)
		}

		ph.restore()
		eventually(t, ph.name+": health UP again", func() bool { return status(c) == health.StatusUp })
		if st := c.Stats(ctx); st.Breaker.State != "closed" || st.Breaker.FallbackActive {
			t.Fatalf("%s: breaker after recovery %+v", ph.name, st.Breaker)
		}
		// The in-process tier was flushed, and the outage write was
		// replayed to Redis first: the read finds it there.
		e, ok, err = c.GetRaw(ctx, "fault", "during-"+ph.name)
		if err != nil || !ok || e.Tier != TierL2 || string(e.Body) != `"kept in memory"` {
			t.Fatalf("%s: outage write after recovery = %+v %v %v, want an L2 hit", ph.name, e, ok, err)
		}
		if gauge(t, reg, "smartcloudops_cache_fallback_active") != 0 || gauge(t, reg, "smartcloudops_cache_fallback_seconds_total") <= 0 {
			t.Fatalf("%s: fallback metrics after recovery", ph.name)
		}
		// And Redis serves again.
		if err := c.Set(ctx, "fault", "after", ph.name, 0); err != nil {
			t.Fatal(err)
		}
		if tier, _ := c.PutRaw(ctx, "fault", "after-raw", "", []byte("x"), 0); tier != TierL2 {
			t.Fatalf("%s: write after recovery went to %s", ph.name, tier)
		}
	}
}

// Redis down when the service starts: DEGRADED, serving, and UP once it
// appears.
func TestStartsWithoutRedis(t *testing.T) {
	srv := startPrivateRedis(t)
	srv.kill()
	ctx := context.Background()
	c, err := New(ctx, Options{RedisURL: srv.url(), HealthCheckInterval: 50 * time.Millisecond, DialTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatalf("New with Redis down: %v", err)
	}
	defer c.Close()
	if status(c) != health.StatusDegraded {
		t.Fatal("not DEGRADED")
	}
	if err := c.Set(ctx, "ns", "k", 1, 0); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(ctx); st.Breaker.State != "disconnected" {
		t.Fatalf("breaker = %q", st.Breaker.State)
	}
	srv.start()
	eventually(t, "UP after Redis starts", func() bool { return status(c) == health.StatusUp })
	if tier, err := c.PutRaw(ctx, "ns", "k2", "", []byte("x"), 0); err != nil || tier != TierL2 {
		t.Fatalf("PutRaw after connect = %v %v", tier, err)
	}
}

// A caller whose own deadline comes before ReadTimeout is bounded by it
// (redisDo then adds no timer of its own), and its giving up does not
// count against Redis: the breaker stays closed.
func TestCallerDeadlineBoundsHungRedis(t *testing.T) {
	srv := startPrivateRedis(t)
	c, err := New(context.Background(), Options{
		RedisURL: srv.url(), Registerer: prometheus.NewRegistry(),
		ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, DialTimeout: 500 * time.Millisecond,
		BreakerFailures: 1, HealthCheckInterval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv.signal(syscall.SIGSTOP)
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		start := time.Now()
		_, _, err := c.GetRaw(ctx, "deadline", "k")
		took := time.Since(start)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("read %d on a hung Redis: err %v, want the caller's deadline", i, err)
		}
		if took > 2*time.Second {
			t.Fatalf("read %d took %v: the caller's 100ms deadline did not bound it", i, took)
		}
	}
	// Stats asks Redis too: let it answer first.
	srv.signal(syscall.SIGCONT)
	if st := c.Stats(context.Background()); st.Breaker.State != "closed" || st.Breaker.FallbackActive {
		t.Fatalf("callers giving up tripped the breaker: %+v", st.Breaker)
	}
}
