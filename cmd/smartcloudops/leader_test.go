package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

type leaderSummary struct {
	Database *struct {
		Leader *struct {
			Replica string `json:"replica"`
			Leader  bool   `json:"leader"`
			Holder  string `json:"holder"`
		} `json:"leader"`
	} `json:"database"`
}

// leaderOf reads a replica's view of the periodic jobs' leader from its summary.
func leaderOf(t *testing.T, r *running) (replica, holder string, leads bool) {
	t.Helper()
	var s leaderSummary
	if code := getJSON(t, r.base+"/performance/summary", &s); code != http.StatusOK {
		t.Fatalf("summary: %d", code)
	}
	if s.Database == nil || s.Database.Leader == nil {
		return "", "", false
	}
	l := s.Database.Leader
	return l.Replica, l.Holder, l.Leader
}

// TestServeReplicasElectOneLeader: two serve replicas on one PostgreSQL
// schema agree on one leader for the periodic jobs, both name it in their
// summary, and when the leader stops the other takes over.
func TestServeReplicasElectOneLeader(t *testing.T) {
	url := storetest.PostgresURL(t)
	env := func(id string) map[string]string {
		return map[string]string{"DATABASE_URL": url, "SMARTCLOUDOPS_REPLICA_ID": id}
	}
	a := start(t, env("replica-a"), nil)
	b := start(t, env("replica-b"), nil)
	wait := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal(what)
			}
		}
	}
	var lead, follow *running
	wait("no replica leads", func() bool {
		ra, ha, la := leaderOf(t, a)
		rb, hb, lb := leaderOf(t, b)
		if ra != "replica-a" || rb != "replica-b" || la == lb || ha == "" || ha != hb {
			return false
		}
		lead, follow = a, b
		if lb {
			lead, follow = b, a
		}
		return true
	})
	leadID, _, _ := leaderOf(t, lead)
	if code := lead.stop(t); code != exitOK {
		t.Fatalf("leader exit %d: %s", code, lead.stderr)
	}
	start := time.Now()
	wait("the follower does not take over", func() bool {
		id, holder, leads := leaderOf(t, follow)
		return leads && holder == id && holder != leadID
	})
	t.Logf("%s took over %s after the leader stopped", follow.base, time.Since(start).Round(time.Millisecond))
}
