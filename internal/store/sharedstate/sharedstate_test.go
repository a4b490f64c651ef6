package sharedstate_test

import (
	"context"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/anomaly"
	"github.com/smartcloudops/smartcloudops/internal/domain"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/sharedstate"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
	"github.com/smartcloudops/smartcloudops/internal/tuning"
)

// replica is one service stack: store, anomaly service, runtime settings
// and the hub that keeps them in step with the others.
type replica struct {
	id    string
	st    *store.Store
	an    *anomaly.Service
	reg   *tuning.Registry
	hub   *sharedstate.Hub
	value atomic.Int64 // the one runtime setting, "test.limit"
}

func newReplica(t *testing.T, dbURL, id string, ho sharedstate.Options) *replica {
	t.Helper()
	ctx := context.Background()
	r := &replica{id: id}
	var err error
	if r.st, err = store.Open(ctx, store.Options{URL: dbURL, PoolSize: 4}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.st.Close() })
	if _, err := r.st.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if r.an, err = anomaly.New(ctx, anomaly.Options{Store: r.st, DisableBatching: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.an.Close(context.Background()) })
	r.value.Store(10)
	r.reg = tuning.New(nil, nil)
	r.reg.Add(tuning.Integer("test.limit", "a limit", 0, 1000, r.value.Load, r.value.Store, nil))
	ho.Replica = id
	if r.hub, err = sharedstate.New(r.st, ho); err != nil {
		t.Fatal(err)
	}
	sharedstate.NewConfig(r.st, r.hub, r.reg, id)
	sharedstate.HandleModel(r.hub, r.st, anomaly.ModelKind, r.an)
	if err := r.hub.SyncAll(ctx); err != nil {
		t.Fatal(err)
	}
	r.hub.Start()
	t.Cleanup(r.hub.Close)
	return r
}

func (r *replica) put(t *testing.T, key string, v any) {
	t.Helper()
	raw, _ := json.Marshal(v)
	if _, err := r.reg.ApplyContext(context.Background(), map[string]json.RawMessage{key: raw}, "ops@"+r.id); err != nil {
		t.Fatalf("%s: put %s: %v", r.id, key, err)
	}
}

// within polls cond until it holds or d passes, and says how long it took.
func within(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func waitListening(t *testing.T, rs ...*replica) {
	t.Helper()
	for _, r := range rs {
		within(t, 10*time.Second, r.id+" listening", r.hub.Listening)
	}
}

func seed(t *testing.T, st *store.Store, end time.Time) {
	t.Helper()
	rng := mrand.New(mrand.NewPCG(3, 4))
	var rows []domain.MetricSample
	for i := range 300 {
		for h := range 3 {
			load := 0.5 + 0.1*rng.NormFloat64()
			rows = append(rows, anomaly.ToStore(anomaly.Sample{Host: fmt.Sprintf("web-%d", h), Timestamp: end.Add(-time.Duration(300-i) * time.Minute),
				Metrics: map[string]float64{anomaly.MetricCPU: 40 + 20*load + 2*rng.NormFloat64(), anomaly.MetricMemory: 55 + 5*load + rng.NormFloat64(),
					anomaly.MetricDisk: 60 + 0.1*rng.NormFloat64(), anomaly.MetricRequestRate: 200 + 150*load + 5*rng.NormFloat64()}}))
		}
	}
	if _, err := st.InsertMetrics(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
}

func detectVersion(t *testing.T, an *anomaly.Service) string {
	t.Helper()
	n, err := anomaly.Normalize(anomaly.Sample{Host: "web-0", Timestamp: time.Now().UTC(),
		Metrics: map[string]float64{anomaly.MetricCPU: 50, anomaly.MetricMemory: 57, anomaly.MetricDisk: 60, anomaly.MetricRequestRate: 270}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := an.Detect(context.Background(), []anomaly.Sample{n}, anomaly.DetectOptions{NoCache: true})
	if err != nil {
		t.Fatal(err)
	}
	return res[0].ModelVersion
}

// TestTwoReplicasOnPostgres runs two stacks on one database: a model
// activated on A is what B's detection uses within a second, a runtime
// setting put on A is in force on B within a second (marked as applied from
// A, not audited again), and after B's listening session is killed a change
// made while it was down reaches B through the re-read that follows the
// reconnection.
func TestTwoReplicasOnPostgres(t *testing.T) {
	db := storetest.PostgresDatabaseURL(t)
	ctx := context.Background()
	a := newReplica(t, db, "replica-a", sharedstate.Options{})
	b := newReplica(t, db, "replica-b", sharedstate.Options{MinBackoff: 700 * time.Millisecond})
	waitListening(t, a, b)

	seed(t, a.st, time.Now().UTC())
	m1, err := a.an.Train(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := a.an.Train(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{m1.Version, m2.Version, m1.Version} {
		if _, err := a.an.Activate(ctx, v); err != nil {
			t.Fatal(err)
		}
		took := within(t, time.Second, "B detects with "+v, func() bool { return strings.Contains(detectVersion(t, b.an), v) })
		t.Logf("activation of %s reached B in %s", v, took)
	}

	a.put(t, "test.limit", 42)
	took := within(t, time.Second, "B holds test.limit=42", func() bool { return b.value.Load() == 42 })
	t.Logf("config change reached B in %s", took)
	var eb tuning.Entry
	for _, e := range b.reg.Entries() {
		if e.Key == "test.limit" {
			eb = e
		}
	}
	if eb.AppliedFrom != "replica-a" || eb.ChangedBy != "ops@replica-a" {
		t.Fatalf("B's entry %+v; want applied from replica-a, changed by ops@replica-a", eb)
	}
	// The reverse way, and one audit row per accepted change: B's syncs
	// are not changes.
	b.put(t, "test.limit", 7)
	within(t, time.Second, "A holds test.limit=7", func() bool { return a.value.Load() == 7 })
	audit, err := sharedstate.NewConfig(a.st, nil, tuning.New(nil, nil), "x").Audit(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(audit) != 2 || audit[0].Replica != "replica-b" || string(audit[0].New) != "7" || string(audit[1].Old) != "10" {
		t.Fatalf("audit %+v", audit)
	}

	// Kill B's listening session; change the setting while B is not listening.
	var killed int
	if err := a.st.QueryRow(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = ?",
		sharedstate.ListenerName("replica-b")).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminate B's listener: %d, %v", killed, err)
	}
	within(t, 5*time.Second, "B notices the lost session", func() bool { return !b.hub.Listening() })
	a.put(t, "test.limit", 99)
	time.Sleep(100 * time.Millisecond)
	if b.value.Load() == 99 {
		t.Fatal("B got the change while not listening; the test does not test the re-read")
	}
	waitListening(t, b)
	within(t, 2*time.Second, "B holds test.limit=99 after reconnecting", func() bool { return b.value.Load() == 99 })
}

// TestRuntimeConfigSurvivesRestartSQLite: on SQLite (one process) the
// database is the store of record, so a new stack on the same file starts
// with the value put before.
func TestRuntimeConfigSurvivesRestartSQLite(t *testing.T) {
	db := storetest.SQLiteURL(t)
	first := newReplica(t, db, "one", sharedstate.Options{})
	first.put(t, "test.limit", 123)
	if first.hub.Listening() {
		t.Fatal("a SQLite hub listens")
	}
	first.hub.Close()
	first.an.Close(context.Background())
	first.st.Close()
	second := newReplica(t, db, "two", sharedstate.Options{})
	if got := second.value.Load(); got != 123 {
		t.Fatalf("after restart test.limit = %d; want 123", got)
	}
}
