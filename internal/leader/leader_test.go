package leader

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

// testDatabase is this package's own database on the test server: advisory
// locks are per database, and the shared one (test) belongs to everyone.
const testDatabase = "h7_leader_test"

// databaseURL creates testDatabase when missing and returns its URL.
func databaseURL(t *testing.T) string {
	t.Helper()
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		base = storetest.DefaultPostgresURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("PostgreSQL is not reachable at TEST_DATABASE_URL (%s): %v", base, err)
	}
	defer conn.Close(ctx)
	var pe *pgconn.PgError
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+testDatabase); err != nil && !(errors.As(err, &pe) && (pe.Code == "42P04" || pe.Code == "23505")) {
		t.Fatalf("create database %s: %v", testDatabase, err)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + testDatabase
	return u.String()
}

// replica is one simulated replica: its own pool, as a process has.
func replica(t *testing.T, dbURL, id string, key int64) (*Elector, *prometheus.Registry) {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	reg := prometheus.NewRegistry()
	e, err := New(pool, Options{Duty: "test", Key: key, ReplicaID: id, RetryInterval: 100 * time.Millisecond,
		CheckInterval: 100 * time.Millisecond, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e, reg
}

// randomKey keeps concurrent runs of these tests out of each other's way.
func randomKey() int64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return int64(binary.LittleEndian.Uint64(b[:]))
}

// eventually polls cond for up to d; generous, for a slow, shared machine.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// twoReplicas starts a and b on one key and waits for one of them to lead;
// it returns the leader first.
func twoReplicas(t *testing.T) (lead, follow *Elector) {
	t.Helper()
	dbURL := databaseURL(t)
	key := randomKey()
	a, _ := replica(t, dbURL, "replica-a", key)
	b, _ := replica(t, dbURL, "replica-b", key)
	eventually(t, 10*time.Second, "a leader", func() bool { return a.IsLeader() || b.IsLeader() })
	if a.IsLeader() {
		return a, b
	}
	return b, a
}

func TestExactlyOneLeader(t *testing.T) {
	lead, follow := twoReplicas(t)
	// Several of the follower's tries must all fail while the leader lives.
	for range 10 {
		if !lead.IsLeader() || follow.IsLeader() {
			t.Fatalf("leaders: %s=%v %s=%v; want exactly %s", lead.ReplicaID(), lead.IsLeader(), follow.ReplicaID(), follow.IsLeader(), lead.ReplicaID())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestHandOver(t *testing.T) {
	cases := []struct {
		name string
		kill func(t *testing.T, lead *Elector)
	}{
		{"leader connection terminated", func(t *testing.T, lead *Elector) {
			var ok bool
			err := lead.pool.QueryRow(context.Background(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
				announce(lead.sinceForTest(), lead.ReplicaID())).Scan(&ok)
			if err != nil || !ok {
				t.Fatalf("terminate the leader's lock session: %v %v", ok, err)
			}
		}},
		{"leader closed", func(t *testing.T, lead *Elector) { lead.Close() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lead, follow := twoReplicas(t)
			start := time.Now()
			tc.kill(t, lead)
			eventually(t, 5*time.Second, "the follower takes over", follow.IsLeader)
			t.Logf("handed over in %s", time.Since(start).Round(time.Millisecond))
			// The old leader stepped down (a terminated session fails its
			// next ping) and does not get the lock back while follow holds it.
			eventually(t, 5*time.Second, "the old leader steps down", func() bool { return !lead.IsLeader() })
			time.Sleep(300 * time.Millisecond)
			if lead.IsLeader() || !follow.IsLeader() {
				t.Fatalf("after hand-over: old=%v new=%v; want only the new one", lead.IsLeader(), follow.IsLeader())
			}
		})
	}
}

// A periodic duty gated on IsLeader runs on the leader only, and on the
// other replica once the leader is gone.
func TestGatedDutyRunsOnLeaderOnly(t *testing.T) {
	lead, follow := twoReplicas(t)
	var leadRuns, followRuns atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	duty := func(e *Elector, runs *atomic.Int64) {
		tk := time.NewTicker(10 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
			if e.IsLeader() {
				runs.Add(1)
			}
		}
	}
	go duty(lead, &leadRuns)
	go duty(follow, &followRuns)
	eventually(t, 5*time.Second, "the leader runs its duty", func() bool { return leadRuns.Load() >= 10 })
	if n := followRuns.Load(); n != 0 {
		t.Fatalf("follower ran the duty %d times while the other led", n)
	}
	lead.Close()
	eventually(t, 5*time.Second, "the new leader runs the duty", func() bool { return followRuns.Load() >= 10 })
	before := leadRuns.Load()
	time.Sleep(100 * time.Millisecond)
	if n := leadRuns.Load(); n != before {
		t.Fatalf("the closed leader kept running: %d → %d", before, n)
	}
}

func TestStatusNamesHolder(t *testing.T) {
	lead, follow := twoReplicas(t)
	ctx := context.Background()
	eventually(t, 5*time.Second, "the holder announced", func() bool {
		st, err := follow.Status(ctx)
		return err == nil && st.Holder == lead.ReplicaID()
	})
	st, err := follow.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Leader || st.Replica != follow.ReplicaID() || st.HolderSince == nil || time.Since(*st.HolderSince) > time.Minute {
		t.Fatalf("follower's status = %+v", st)
	}
	ls, err := lead.Status(ctx)
	if err != nil || !ls.Leader || ls.Holder != lead.ReplicaID() || ls.Transitions != 1 {
		t.Fatalf("leader's status = %+v, %v", ls, err)
	}
}

func TestMetrics(t *testing.T) {
	dbURL := databaseURL(t)
	key := randomKey()
	a, ra := replica(t, dbURL, "replica-a", key)
	eventually(t, 5*time.Second, "a leads", a.IsLeader)
	b, _ := replica(t, dbURL, "replica-b", key)
	if got := testutil.ToFloat64(a.m.leader); got != 1 {
		t.Fatalf("smartcloudops_leader of the leader = %v, want 1", got)
	}
	if got := testutil.ToFloat64(b.m.leader); got != 0 {
		t.Fatalf("smartcloudops_leader of the follower = %v, want 0", got)
	}
	a.Close()
	eventually(t, 5*time.Second, "b leads", b.IsLeader)
	for dir, want := range map[string]float64{"acquired": 1, "lost": 1} {
		if got := testutil.ToFloat64(a.m.transitions.WithLabelValues(dir)); got != want {
			t.Errorf("a's transitions{%s} = %v, want %v", dir, got, want)
		}
	}
	if n, err := testutil.GatherAndCount(ra, "smartcloudops_leader", "smartcloudops_leader_transitions_total", "smartcloudops_leader_errors_total"); err != nil || n != 6 {
		t.Fatalf("registered series = %d, %v; want 6", n, err)
	}
}

func TestSQLiteAlwaysLeader(t *testing.T) {
	var changes []bool
	e, err := New(nil, Options{ReplicaID: "solo"})
	if err != nil {
		t.Fatal(err)
	}
	e.OnChange(func(v bool) { changes = append(changes, v) })
	if !e.IsLeader() {
		t.Fatal("without PostgreSQL the process must lead")
	}
	st, err := e.Status(context.Background())
	if err != nil || !st.Leader || st.Holder != "solo" || st.HolderSince == nil {
		t.Fatalf("status = %+v, %v", st, err)
	}
	e.Close()
	e.Close()
	if len(changes) != 0 {
		t.Fatalf("changes = %v; want none", changes)
	}
}

func TestOnChange(t *testing.T) {
	lead, follow := twoReplicas(t)
	got := make(chan bool, 4)
	follow.OnChange(func(v bool) { got <- v })
	lead.Close()
	select {
	case v := <-got:
		if !v {
			t.Fatal("OnChange(false); want true on take-over")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no OnChange after the leader closed")
	}
}

func TestNegativeIntervals(t *testing.T) {
	if _, err := New(nil, Options{RetryInterval: -time.Second}); err == nil {
		t.Fatal("negative retry interval accepted")
	}
}

// The default key is scoped to the schema: replicas of one deployment
// exclude each other, deployments in other schemas of one database do not.
func TestDefaultKeyPerSchema(t *testing.T) {
	one, other := storetest.PostgresURL(t), storetest.PostgresURL(t)
	a, _ := replica(t, one, "a", 0)
	b, _ := replica(t, other, "b", 0)
	c, _ := replica(t, one, "c", 0)
	eventually(t, 10*time.Second, "each schema has its leader", func() bool { return (a.IsLeader() || c.IsLeader()) && b.IsLeader() })
	time.Sleep(300 * time.Millisecond)
	if a.IsLeader() == c.IsLeader() {
		t.Fatalf("replicas of one schema: a=%v c=%v; want exactly one", a.IsLeader(), c.IsLeader())
	}
	if a.key.Load() == b.key.Load() || a.key.Load() != c.key.Load() {
		t.Fatalf("keys a=%d b=%d c=%d", a.key.Load(), b.key.Load(), c.key.Load())
	}
}

// sinceForTest is when this replica took the duty (zero when it does not hold it).
func (e *Elector) sinceForTest() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.since
}
