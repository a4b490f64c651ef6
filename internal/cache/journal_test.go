package cache

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/smartcloudops/smartcloudops/internal/health"
)

// journalFaultCache is a cache on a private Redis that trips and recovers
// quickly.
func journalFaultCache(t *testing.T, srv *privateRedis, entries int) (*Cache, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	c, err := New(context.Background(), Options{
		RedisURL: srv.url(), Registerer: reg,
		ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond, DialTimeout: 500 * time.Millisecond,
		BreakerFailures: 1, BreakerOpenTimeout: 200 * time.Millisecond, HealthCheckInterval: 50 * time.Millisecond,
		FallbackJournalEntries: entries,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, reg
}

// The loss: writes acknowledged during an outage were all gone
// once Redis was back. Now every one is readable after recovery, a delete
// during the outage stays a delete, an expired one is skipped, and each is
// counted.
func TestFaultOutageWritesReplayed(t *testing.T) {
	srv := startPrivateRedis(t)
	ctx := context.Background()
	c, reg := journalFaultCache(t, srv, 0)
	for _, k := range []string{"deleted", "overwritten"} {
		if r, err := c.PutRawWithDurability(ctx, "j", k, "text/plain", []byte("before"), time.Minute); err != nil || r.Durability != DurabilityRedis {
			t.Fatalf("put %s before the outage: %+v %v", k, r, err)
		}
	}
	// A hung Redis keeps its data, so a delete that is not replayed would
	// bring the old value back.
	srv.signal(syscall.SIGSTOP)
	eventually(t, "fallback active", func() bool { return status(c) == health.StatusDegraded && c.fallbackActive() })

	const n = 300
	for i := range n {
		r, err := c.PutRawWithDurability(ctx, "j", "k"+strconv.Itoa(i), "text/plain", []byte("v"+strconv.Itoa(i)), time.Minute)
		if err != nil || r.Tier != TierFallback || r.Durability != DurabilityReplay {
			t.Fatalf("put %d during the outage: %+v %v", i, r, err)
		}
	}
	if _, d, err := c.DeleteWithDurability(ctx, "j", "deleted"); err != nil || d != DurabilityReplay {
		t.Fatalf("delete during the outage: %v %v", d, err)
	}
	if r, _ := c.PutRawWithDurability(ctx, "j", "overwritten", "text/plain", []byte("during"), time.Minute); r.Durability != DurabilityReplay {
		t.Fatalf("overwrite during the outage: %+v", r)
	}
	if r, _ := c.PutRawWithDurability(ctx, "j", "short", "text/plain", []byte("x"), 50*time.Millisecond); r.Durability != DurabilityReplay {
		t.Fatalf("short-lived put during the outage: %+v", r)
	}
	if err := c.Set(ctx, "j", "go-value", map[string]int{"a": 1}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(ctx); st.Journal == nil || st.Journal.Entries != n+4 {
		t.Fatalf("journal during the outage: %+v", st.Journal)
	}
	time.Sleep(100 * time.Millisecond) // "short" expires before Redis returns

	srv.signal(syscall.SIGCONT)
	eventually(t, "UP again", func() bool { return status(c) == health.StatusUp })

	for i := range n {
		e, ok, err := c.GetRaw(ctx, "j", "k"+strconv.Itoa(i))
		if err != nil || !ok || string(e.Body) != "v"+strconv.Itoa(i) || e.Tier == TierFallback {
			t.Fatalf("k%d after recovery: %+v %v %v", i, e, ok, err)
		}
	}
	for k, want := range map[string]string{"overwritten": "during", "deleted": "", "short": ""} {
		e, ok, err := c.GetRaw(ctx, "j", k)
		if err != nil || ok != (want != "") || string(e.Body) != want {
			t.Errorf("%s after recovery: %q found=%v %v; want %q", k, e.Body, ok, err, want)
		}
	}
	var m map[string]int
	if ok, err := c.Get(ctx, "j", "go-value", &m); err != nil || !ok || m["a"] != 1 {
		t.Errorf("Set during the outage, after recovery: %v %v %v", m, ok, err)
	}
	// Another replica, which never saw the outage, reads them from Redis.
	other, _ := journalFaultCache(t, srv, 0)
	if e, ok, _ := other.GetRaw(ctx, "j", "k7"); !ok || string(e.Body) != "v7" || e.Tier != TierL2 {
		t.Errorf("another replica reads k7: %+v %v", e, ok)
	}
	if ttl, ok, _ := other.TTL(ctx, "j", "k7"); !ok || ttl <= 0 || ttl > time.Minute {
		t.Errorf("replayed TTL %v %v; want what was left of a minute", ttl, ok)
	}
	st := c.Stats(ctx).Journal
	if st.Entries != 0 || st.Bytes != 0 || st.Replayed != n+3 || st.Expired != 1 || st.Journaled != n+4 || st.Dropped != 0 {
		t.Errorf("journal after recovery: %+v", st)
	}
	txt := metricsText(t, reg)
	for _, want := range []string{"smartcloudops_cache_journal_operations_total", "smartcloudops_cache_journal_entries"} {
		if !strings.Contains(txt, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// A full journal still serves the write from memory but says it is not
// durable, counts it, and forgets an older journaled write of the same key
// (replaying that would bring back a value the caller overwrote).
func TestFaultJournalFull(t *testing.T) {
	srv := startPrivateRedis(t)
	ctx := context.Background()
	c, _ := journalFaultCache(t, srv, 3)
	srv.signal(syscall.SIGSTOP)
	eventually(t, "fallback active", func() bool { return status(c) == health.StatusDegraded && c.fallbackActive() })
	want := []Durability{DurabilityReplay, DurabilityReplay, DurabilityReplay, DurabilityMemory, DurabilityMemory}
	for i, w := range want {
		r, err := c.PutRawWithDurability(ctx, "full", "k"+strconv.Itoa(i), "", []byte("v"), time.Minute)
		if err != nil || r.Durability != w || r.Tier != TierFallback {
			t.Fatalf("put %d: %+v %v; want %s", i, r, err, w)
		}
		// Still served from memory during the outage.
		if _, ok, _ := c.GetRaw(ctx, "full", "k"+strconv.Itoa(i)); !ok {
			t.Fatalf("put %d not readable during the outage", i)
		}
	}
	// Overwriting a journaled key replaces its entry: still room.
	if r, _ := c.PutRawWithDurability(ctx, "full", "k0", "", []byte("v2"), time.Minute); r.Durability != DurabilityReplay {
		t.Fatalf("overwrite of a journaled key: %+v", r)
	}
	srv.signal(syscall.SIGCONT)
	eventually(t, "UP again", func() bool { return status(c) == health.StatusUp })
	for i, w := range want {
		e, ok, _ := c.GetRaw(ctx, "full", "k"+strconv.Itoa(i))
		if ok != (w == DurabilityReplay) {
			t.Errorf("k%d after recovery: found=%v, answered %s", i, ok, w)
		}
		if i == 0 && string(e.Body) != "v2" {
			t.Errorf("k0 = %q; want the later write", e.Body)
		}
	}
	if st := c.Stats(ctx).Journal; st.Dropped != 2 || st.Replayed != 3 || st.MaxEntries != 3 {
		t.Errorf("journal: %+v", st)
	}
}

func TestJournalBounds(t *testing.T) {
	op := func(k string, size int64, exp int64) *journalOp {
		return &journalOp{fk: k, size: size, env: envelope{expireAtMs: exp}}
	}
	j := newJournal(100, 10)
	if !j.addLocked(op("a", 60, 0), 0) || j.addLocked(op("b", 60, 0), 0) {
		t.Fatal("byte bound not applied")
	}
	// A write that no longer fits also forgets the older op on its key.
	j.addLocked(op("c", 30, 0), 0)
	if j.addLocked(op("c", 90, 0), 0) || len(j.ops) != 1 || j.bytes != 60 {
		t.Fatalf("ops %d bytes %d after a refused overwrite", len(j.ops), j.bytes)
	}
	// Expired ops make room.
	j = newJournal(100, 2)
	j.addLocked(op("x", 10, 5), 0)
	j.addLocked(op("y", 10, 0), 0)
	if !j.addLocked(op("z", 10, 0), 10) || j.counts[jrExpired].Load() != 1 {
		t.Fatalf("expired op did not make room: %d ops", len(j.ops))
	}
	j.supersede("y")
	j.supersedePrefix("z")
	if len(j.ops) != 0 || j.bytes != 0 || j.counts[jrSuperseded].Load() != 2 {
		t.Fatalf("supersede left %d ops, %d bytes", len(j.ops), j.bytes)
	}

	// A replay works on a snapshot in write order; an op replaced after
	// the snapshot is skipped, and its replacement stays for the next round.
	j = newJournal(1000, 10)
	for _, k := range []string{"b", "a", "c"} {
		j.addLocked(op(k, 10, 0), 0)
	}
	snap := j.snapshot()
	if snap[0].fk != "b" || snap[1].fk != "a" || snap[2].fk != "c" {
		t.Fatalf("snapshot out of write order: %s %s %s", snap[0].fk, snap[1].fk, snap[2].fk)
	}
	newer := op("a", 10, 0)
	j.addLocked(newer, 0)
	cur := j.current(snap)
	if len(cur) != 2 || cur[0].fk != "b" || cur[1].fk != "c" {
		t.Fatalf("current kept %d ops", len(cur))
	}
	j.done(snap)
	if len(j.ops) != 1 || j.ops["a"] != newer || j.bytes != 10 {
		t.Fatalf("after done: %d ops, %d bytes", len(j.ops), j.bytes)
	}
}

// A PutShared that reports failure must not reach Redis later through the
// journal: its caller was told the write did not happen.
func TestFaultPutSharedNotReplayed(t *testing.T) {
	srv := startPrivateRedis(t)
	ctx := context.Background()
	c, _ := journalFaultCache(t, srv, 0)
	// Killed, not hung: a hung Redis may still apply a write that timed
	// out, which says nothing about the journal.
	srv.kill()
	// The first failed write trips the breaker (BreakerFailures 1) and
	// lands in fallback.
	eventually(t, "PutShared fails as not shared", func() bool {
		return errors.Is(c.PutShared(ctx, "shared", "v", "", []byte("1"), time.Minute), ErrNotShared)
	})
	if st := c.Stats(ctx).Journal; st.Entries != 0 || st.Dropped != 1 {
		t.Fatalf("journal holds the failed PutShared: %+v", st)
	}
	srv.start()
	eventually(t, "UP again", func() bool { return status(c) == health.StatusUp })
	if _, ok, _ := c.GetRaw(ctx, "shared", "v"); ok {
		t.Fatal("a PutShared answered ErrNotShared was replayed to Redis")
	}
}

// Writes keep coming while Redis returns and the journal is replayed:
// whatever tier took each, the last acknowledged value of every key is the
// one readable afterwards (a replay never puts an older value over a newer
// one written by this replica).
func TestFaultWritesDuringReplay(t *testing.T) {
	srv := startPrivateRedis(t)
	ctx := context.Background()
	c, _ := journalFaultCache(t, srv, 0)
	srv.signal(syscall.SIGSTOP)
	eventually(t, "fallback active", func() bool { return status(c) == health.StatusDegraded && c.fallbackActive() })

	const keys = 50
	last := make([]string, keys)
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			k, v := i%keys, strconv.Itoa(i)
			r, err := c.PutRawWithDurability(ctx, "race", "k"+strconv.Itoa(k), "", []byte(v), time.Minute)
			if err != nil {
				done <- err
				return
			}
			if r.Durability == DurabilityMemory {
				done <- errors.New("a write was answered memory-only with room in the journal")
				return
			}
			last[k] = v
		}
	}()
	time.Sleep(100 * time.Millisecond)
	srv.signal(syscall.SIGCONT)
	eventually(t, "UP again", func() bool { return status(c) == health.StatusUp })
	time.Sleep(100 * time.Millisecond)
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	other, _ := journalFaultCache(t, srv, 0) // reads Redis, not this replica's memory
	for k, want := range last {
		if want == "" {
			continue
		}
		e, ok, err := other.GetRaw(ctx, "race", "k"+strconv.Itoa(k))
		if err != nil || !ok || string(e.Body) != want {
			t.Errorf("k%d in Redis = %q %v %v; last acknowledged %q", k, e.Body, ok, err, want)
		}
	}
	if st := c.Stats(ctx).Journal; st.Replayed == 0 || st.Entries != 0 {
		t.Errorf("journal %+v", st)
	}
}
