package dbadmin_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/dbadmin"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

func adminOn(t *testing.T, url, replica string, heartbeat time.Duration) (*store.Store, *dbadmin.Admin) {
	t.Helper()
	ctx := context.Background()
	s, err := store.Open(ctx, store.Options{URL: url, PoolSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	ad, err := dbadmin.New(s, dbadmin.Options{Replica: replica, JobHeartbeat: heartbeat})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ad.Close)
	return s, ad
}

func waitJob(t *testing.T, ad *dbadmin.Admin, id string, cond func(dbadmin.Job) bool) dbadmin.Job {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, err := ad.Job(context.Background(), id)
		if err == nil && cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: last read %+v, %v", id, j, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestJobReadableFromAnotherReplica: a job started on A is read, running
// and then finished with its result, through B, a second Admin on its own
// connections to the same database; its heartbeat moves while it runs.
func TestJobReadableFromAnotherReplica(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		_, a := adminOn(t, url, "replica-a", 50*time.Millisecond)
		_, b := adminOn(t, url, "replica-b", 50*time.Millisecond)
		release, done := make(chan struct{}), make(chan struct{})
		err := a.GoJob(context.Background(), dbadmin.JobSpec{ID: "0123456789abcdef", Kind: "optimize",
			Run: func(ctx context.Context) (any, error) {
				<-release
				return map[string]int{"steps": 3}, nil
			},
			Done: func(any, error) { close(done) },
		})
		if err != nil {
			t.Fatal(err)
		}
		first := waitJob(t, b, "0123456789abcdef", func(j dbadmin.Job) bool { return j.State == dbadmin.JobRunning })
		if first.Replica != "replica-a" || first.Kind != "optimize" || first.FinishedAt != nil {
			t.Fatalf("running job read on B: %+v", first)
		}
		waitJob(t, b, "0123456789abcdef", func(j dbadmin.Job) bool { return j.HeartbeatAt.After(first.HeartbeatAt) })
		close(release)
		<-done
		j := waitJob(t, b, "0123456789abcdef", func(j dbadmin.Job) bool { return j.State != dbadmin.JobRunning })
		if j.State != dbadmin.JobSucceeded || string(j.Result) == "" || j.FinishedAt == nil || j.Error != "" {
			t.Fatalf("finished job read on B: %+v (result %s)", j, j.Result)
		}
		if _, err := b.Job(context.Background(), "ffffffffffffffff"); !errors.Is(err, dbadmin.ErrJobNotFound) {
			t.Fatalf("unknown job: %v", err)
		}
	})
}

// TestJobOfDeadOwnerFails: a replica that dies mid-job leaves its row
// running with a heartbeat that stops; once it is six heartbeats old, a
// read on another replica marks it failed, "owner gone".
func TestJobOfDeadOwnerFails(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		s, b := adminOn(t, url, "replica-b", 20*time.Millisecond)
		stale := time.Now().UTC().Add(-time.Minute)
		if _, err := s.Exec(context.Background(), "INSERT INTO admin_jobs (id, kind, state, replica, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?)",
			"00000000000000aa", "create_index", dbadmin.JobRunning, "replica-dead", stale, stale); err != nil {
			t.Fatal(err)
		}
		fresh := time.Now().UTC()
		if _, err := s.Exec(context.Background(), "INSERT INTO admin_jobs (id, kind, state, replica, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?)",
			"00000000000000bb", "create_index", dbadmin.JobRunning, "replica-alive", fresh, fresh.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		j, err := b.Job(context.Background(), "00000000000000aa")
		if err != nil || j.State != dbadmin.JobFailed || j.Error != "owner gone" || j.FinishedAt == nil {
			t.Fatalf("dead owner's job: %+v, %v", j, err)
		}
		if j, err := b.Job(context.Background(), "00000000000000bb"); err != nil || j.State != dbadmin.JobRunning {
			t.Fatalf("live owner's job: %+v, %v", j, err)
		}
	})
}
