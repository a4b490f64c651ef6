package dbadmin_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartcloudops/smartcloudops/internal/leader"
	"github.com/smartcloudops/smartcloudops/internal/store/dbadmin"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

// runs is how many rollup and retention runs the Admin behind reg has made.
func runs(t *testing.T, reg *prometheus.Registry) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "smartcloudops_db_retention_run_duration_seconds" {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatal("no run duration histogram")
	return 0
}

// TestRetentionJobRunsOnLeaderOnly: two replicas' Admins on one PostgreSQL
// schema, each gated on its own Elector; only the leader's job runs, and
// after the leader steps down only the other's does. The summary's
// headline names the holder on both.
func TestRetentionJobRunsOnLeaderOnly(t *testing.T) {
	url := storetest.PostgresURL(t)
	var b [8]byte
	_, _ = rand.Read(b[:])
	key := int64(binary.LittleEndian.Uint64(b[:])) // the test database is shared
	type replica struct {
		el  *leader.Elector
		ad  *dbadmin.Admin
		reg *prometheus.Registry
	}
	start := func(id string) replica {
		s, _ := open(t, url)
		el, err := leader.New(s.Pool(), leader.Options{Key: key, ReplicaID: id, RetryInterval: 50 * time.Millisecond, CheckInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(el.Close)
		reg := prometheus.NewRegistry()
		ad, err := dbadmin.New(s, dbadmin.Options{Registerer: reg, Leader: el, Retention: dbadmin.RetentionOptions{Interval: 20 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(ad.Close)
		return replica{el, ad, reg}
	}
	a := start("replica-a")
	wait := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal(what)
			}
		}
	}
	wait("replica-a never led", a.el.IsLeader)
	bb := start("replica-b")
	wait("the leader's job does not run", func() bool { return runs(t, a.reg) >= 5 })
	if n := runs(t, bb.reg); n != 0 {
		t.Fatalf("the follower ran the job %d times", n)
	}
	h, err := bb.ad.Headline(context.Background())
	if err != nil || h.Leader == nil || h.Leader.Holder != "replica-a" || h.Leader.Leader {
		t.Fatalf("follower's headline leader = %+v, %v; want holder replica-a", h.Leader, err)
	}

	a.el.Close()
	wait("the new leader's job does not run", func() bool { return runs(t, bb.reg) >= 5 })
	before := runs(t, a.reg)
	time.Sleep(100 * time.Millisecond)
	if n := runs(t, a.reg); n != before {
		t.Fatalf("the old leader kept running the job: %d → %d", before, n)
	}
	if h, err := a.ad.Headline(context.Background()); err != nil || h.Leader == nil || h.Leader.Holder != "replica-b" {
		t.Fatalf("old leader's headline leader = %+v, %v; want holder replica-b", h.Leader, err)
	}
}
