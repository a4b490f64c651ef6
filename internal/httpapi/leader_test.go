package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"net/http"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/leader"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/dbadmin"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

// leaderAdminOf administers st with the periodic jobs under an election, as
// cmd wires it: on PostgreSQL an advisory lock (on a random key: the test
// database is shared), on SQLite always this process.
func leaderAdminOf(tb testing.TB, st *store.Store) *dbadmin.Admin {
	tb.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:])
	el, err := leader.New(st.Pool(), leader.Options{ReplicaID: "replica-under-test", Key: int64(binary.LittleEndian.Uint64(b[:])),
		RetryInterval: 50 * time.Millisecond, CheckInterval: 50 * time.Millisecond})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(el.Close)
	ad, err := dbadmin.New(st, dbadmin.Options{Leader: el})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(ad.Close)
	return ad
}

// TestSummaryNamesLeader: the summary's database part says who runs the
// periodic jobs, on both databases.
func TestSummaryNamesLeader(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		st, err := store.Open(ctx, store.Options{URL: url, PoolSize: 2})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if _, err := st.Migrate(ctx, nil); err != nil {
			t.Fatal(err)
		}
		f := newFixture(t, func(d *Deps) { d.Database = leaderAdminOf(t, st) })
		var l *leader.Status
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			s := decodeBody[Summary](t, f.do(t, http.MethodGet, "/performance/summary", "", "", ""))
			if s.Database != nil {
				l = s.Database.Leader
			}
			if l != nil && l.Leader || time.Now().After(deadline) {
				break
			}
		}
		if l == nil || !l.Leader || l.Holder != "replica-under-test" || l.Replica != "replica-under-test" || l.HolderSince == nil || l.Duty != "periodic" {
			t.Fatalf("summary's leader = %+v", l)
		}
	})
}
