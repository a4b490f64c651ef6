package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/cache"
	"github.com/smartcloudops/smartcloudops/internal/health"
)

// startPrivateRedis runs a throw-away redis-server on a free loopback port
// (the shared one is never stopped) and returns it with its URL.
func startPrivateRedis(t *testing.T) (*exec.Cmd, string) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed (apt-get install -y redis-server): skipping the outage test")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	waitFor(t, "private redis-server to listen", func() bool {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
	return cmd, fmt.Sprintf("redis://127.0.0.1:%d/0", port)
}

// waitFor polls cond with a generous deadline: only the outcome is
// asserted, never how fast it came.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The loss over HTTP: PUTs answered X-Cache: FALLBACK during a
// Redis outage were all 404 once Redis was back. Now each is readable after
// recovery, or was answered X-Cache-Durability: memory; and a DELETE during
// the outage does not let the old value come back.
func TestCacheOutageWritesSurviveRecovery(t *testing.T) {
	srv, url := startPrivateRedis(t)
	const journalEntries = 30
	c, err := cache.New(context.Background(), cache.Options{
		RedisURL: url, ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond, DialTimeout: 500 * time.Millisecond,
		BreakerFailures: 1, BreakerOpenTimeout: 200 * time.Millisecond, HealthCheckInterval: 50 * time.Millisecond,
		FallbackJournalEntries: journalEntries,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	f := newFixture(t, func(d *Deps) { d.Cache = c })
	admin := "Bearer " + adminToken
	status := func() health.Status {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return c.Check(ctx).Status
	}

	if w := f.do(t, http.MethodPut, "/performance/cache/team-a/old", admin, "text/plain", "before"); w.Code != http.StatusOK || w.Header().Get("X-Cache-Durability") != "redis" {
		t.Fatalf("PUT before the outage: %d %q", w.Code, w.Header().Get("X-Cache-Durability"))
	}
	// A hung Redis keeps its data: a DELETE that is not replayed would
	// bring the old value back.
	if err := srv.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "fallback", func() bool {
		return status() == health.StatusDegraded && c.Stats(context.Background()).Breaker.FallbackActive
	})

	if w := f.do(t, http.MethodDelete, "/performance/cache/team-a/old", admin, "", ""); w.Code != http.StatusNoContent || w.Header().Get("X-Cache-Durability") != "replay" {
		t.Fatalf("DELETE during the outage: %d %q", w.Code, w.Header().Get("X-Cache-Durability"))
	}
	// A clear is not journaled, and says so.
	if w := f.do(t, http.MethodPost, "/performance/cache/clear", admin, "application/json", `{"namespace":"team-b"}`); w.Code != http.StatusOK || w.Header().Get("X-Cache-Durability") != "memory" {
		t.Fatalf("clear during the outage: %d %q %s", w.Code, w.Header().Get("X-Cache-Durability"), w.Body)
	}
	durability := map[string]string{}
	for i := range journalEntries + 10 {
		key := "k" + strconv.Itoa(i)
		w := f.do(t, http.MethodPut, "/performance/cache/team-a/"+key+"?ttl=600", admin, "text/plain", "v"+strconv.Itoa(i))
		var resp cachePutResponse
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || w.Code != http.StatusOK || w.Header().Get("X-Cache") != "FALLBACK" {
			t.Fatalf("PUT %s during the outage: %d %s", key, w.Code, w.Body)
		}
		if resp.Durability != w.Header().Get("X-Cache-Durability") {
			t.Fatalf("body says %q, header %q", resp.Durability, w.Header().Get("X-Cache-Durability"))
		}
		durability[key] = resp.Durability
	}

	if err := srv.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "UP again", func() bool { return status() == health.StatusUp })

	counts := map[string]int{}
	for key, d := range durability {
		counts[d]++
		w := f.do(t, http.MethodGet, "/performance/cache/team-a/"+key, admin, "", "")
		switch d {
		case "replay":
			if w.Code != http.StatusOK || w.Body.String() != "v"+key[1:] {
				t.Errorf("%s, answered durable, after recovery: %d %q", key, w.Code, w.Body)
			}
		case "memory":
			if w.Code != http.StatusNotFound {
				t.Errorf("%s, answered memory-only, after recovery: %d", key, w.Code)
			}
		default:
			t.Errorf("%s: durability %q", key, d)
		}
	}
	// The DELETE took one journal entry.
	if counts["replay"] != journalEntries-1 || counts["memory"] != 11 {
		t.Errorf("durabilities %v", counts)
	}
	if w := f.do(t, http.MethodGet, "/performance/cache/team-a/old", admin, "", ""); w.Code != http.StatusNotFound {
		t.Errorf("deleted during the outage, after recovery: %d %q", w.Code, w.Body)
	}
	w := f.do(t, http.MethodGet, "/performance/cache/stats", admin, "", "")
	var st cache.Stats
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil || st.Journal == nil {
		t.Fatalf("stats: %d %s", w.Code, w.Body)
	}
	if st.Journal.Replayed != journalEntries || st.Journal.Dropped != 11 || st.Journal.Entries != 0 {
		t.Errorf("journal stats %+v", *st.Journal)
	}
}
