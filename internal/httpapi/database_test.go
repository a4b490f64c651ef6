package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/smartcloudops/smartcloudops/internal/health"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/dbadmin"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

func TestDatabaseEndpointsOnRealDatabases(t *testing.T) {
	admin := "Bearer " + adminToken
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		st, err := store.Open(ctx, store.Options{URL: url, PoolSize: 2})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if _, err := st.Migrate(ctx, nil); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if err := st.QueryRow(ctx, "SELECT count(*) FROM system_metrics WHERE host = ?", "h").Scan(new(int)); err != nil {
				t.Fatal(err)
			}
		}
		f := newFixture(t, func(d *Deps) { d.Database, d.Series = adminOf(t, st), st; d.MaxBodyBytes = 1 << 10 })

		w := f.do(t, http.MethodGet, "/performance/database/stats?sort=calls&limit=5", "", "", "")
		var ds dbadmin.DatabaseStats
		if err := json.Unmarshal(w.Body.Bytes(), &ds); err != nil || w.Code != http.StatusOK || ds.Driver != string(st.Kind()) ||
			len(ds.Queries) == 0 || ds.Queries[0].Calls != 3 || len(ds.Tables) == 0 || len(ds.Pools) == 0 {
			t.Fatalf("stats: %d %v %s", w.Code, err, w.Body)
		}
		for _, bad := range []string{"?sort=nope", "?limit=0", "?limit=x"} {
			if w := f.do(t, http.MethodGet, "/performance/database/stats"+bad, "", "", ""); w.Code != http.StatusBadRequest {
				t.Errorf("stats%s: %d; want 400", bad, w.Code)
			} else {
				decodeProblem(t, w)
			}
		}
		if w := f.do(t, http.MethodGet, "/performance/database/indexes", "", "", ""); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"suggestions"`) {
			t.Fatalf("indexes: %d %s", w.Code, w.Body)
		}
		// Index creation is admin-only and validates its input.
		if w := f.do(t, http.MethodPost, "/performance/database/indexes", "", "application/json", `{"table":"system_metrics","columns":["cpu_usage"]}`); w.Code != http.StatusUnauthorized {
			t.Errorf("anonymous index creation: %d", w.Code)
		}
		if w := f.do(t, http.MethodPost, "/performance/database/indexes", admin, "application/json", `{"table":"nope","columns":["x"]}`); w.Code != http.StatusBadRequest {
			t.Errorf("index on a missing table: %d %s", w.Code, w.Body)
		}
		if w := f.do(t, http.MethodPost, "/performance/database/indexes", admin, "application/json", `{"table":"system_metrics","columns":["host"]}`); w.Code != http.StatusBadRequest {
			t.Errorf("covered index: %d %s", w.Code, w.Body)
		}
		w = f.do(t, http.MethodPost, "/performance/database/indexes", admin, "application/json", `{"table":"system_metrics","columns":["cpu_usage"]}`)
		var ci dbadmin.CreatedIndex
		if err := json.Unmarshal(w.Body.Bytes(), &ci); err != nil || w.Code != http.StatusCreated || !ci.OK {
			t.Fatalf("create index: %d %s", w.Code, w.Body)
		}

		// wait=0 makes maintenance a job at once: 202, Location, then the result.
		w = f.do(t, http.MethodPost, "/performance/database/optimize?wait=0", admin, "application/json", `{}`)
		loc := w.Header().Get("Location")
		if w.Code != http.StatusAccepted || !strings.HasPrefix(loc, "/performance/database/jobs/") {
			t.Fatalf("optimize as a job: %d %q %s", w.Code, loc, w.Body)
		}
		var j struct {
			Status string                 `json:"status"`
			Result dbadmin.OptimizeReport `json:"result"`
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			w = f.do(t, http.MethodGet, loc, "", "", "")
			if err := json.Unmarshal(w.Body.Bytes(), &j); err != nil || w.Code != http.StatusOK {
				t.Fatalf("job status: %d %s", w.Code, w.Body)
			}
			if j.Status != "running" || time.Now().After(deadline) {
				break
			}
		}
		if j.Status != "succeeded" || !j.Result.OK || len(j.Result.Steps) == 0 {
			t.Fatalf("job = %+v", j)
		}
		if w := f.do(t, http.MethodGet, "/performance/database/jobs/nope", "", "", ""); w.Code != http.StatusNotFound {
			t.Errorf("unknown job: %d", w.Code)
		}
	})
}

// TestPostgresRestartUnderLoad stops a private PostgreSQL under load: requests
// fail with 503 problems while it is down, health goes DOWN then UP, the pool
// recovers by itself, and nothing leaks.
func TestPostgresRestartUnderLoad(t *testing.T) {
	pg := storetest.StartPrivatePostgres(t)
	url, start, stop := pg.URL, pg.Start, pg.Stop
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx := context.Background()
	const pool = 4
	st, err := store.Open(ctx, store.Options{URL: url, PoolSize: pool, HealthCheckPeriod: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(d *Deps) {
		d.Database, d.Series = adminOf(t, st), st
		d.Components = map[string]health.Checker{"database": st}
	})

	var (
		stopLoad atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		statuses = map[int]int{}
		badBody  atomic.Int64
	)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stopLoad.Load() {
				w := f.do(t, http.MethodGet, "/performance/database/stats?limit=5", "", "", "")
				if w.Code != http.StatusOK && w.Header().Get("Content-Type") != "application/problem+json" {
					badBody.Add(1)
				}
				mu.Lock()
				statuses[w.Code]++
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	stop()

	// While it is down: 503 problem+json, and health DOWN.
	began := time.Now()
	w := f.do(t, http.MethodGet, "/performance/database/stats", "", "", "")
	t.Logf("request while down answered %d in %s", w.Code, time.Since(began))
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("while down: %d %s; want 503", w.Code, w.Body)
	}
	if p := decodeProblem(t, w); p.Type != problemType(CodeUnavailable) {
		t.Fatalf("problem %+v", p)
	}
	var rep HealthReport
	w = f.do(t, http.MethodGet, "/performance/health", "", "", "")
	if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil || rep.Components["database"].Status != health.StatusDown {
		t.Fatalf("health while down: %d %s", w.Code, w.Body)
	}

	start()
	up := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if st.Check(ctx).Status == health.StatusUp {
			up = true
			break
		}
	}
	if !up {
		t.Fatal("health did not come back UP after the restart")
	}
	if w := f.do(t, http.MethodGet, "/performance/database/stats", "", "", ""); w.Code != http.StatusOK {
		t.Fatalf("after restart: %d %s", w.Code, w.Body)
	}
	stopLoad.Store(true)
	wg.Wait()
	mu.Lock()
	t.Logf("statuses under load: %v", statuses)
	if statuses[http.StatusOK] == 0 || statuses[http.StatusServiceUnavailable] == 0 || len(statuses) != 2 {
		t.Errorf("statuses %v; want only 200 and 503", statuses)
	}
	mu.Unlock()
	if badBody.Load() != 0 {
		t.Errorf("%d failures were not problem+json", badBody.Load())
	}

	// The pool holds at most its size on the server.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	var backends int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()").Scan(&backends); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if backends > pool {
		t.Errorf("%d connections on the server; the pool allows %d", backends, pool)
	}
	if ps := st.Diagnostics().PoolStats()[0]; ps.Open > pool || ps.InUse != 0 {
		t.Errorf("pool after load: %+v", ps)
	}
	st.Close()
}

// adminOf administers st for the database endpoints, as the service does.
func adminOf(tb testing.TB, st *store.Store) *dbadmin.Admin {
	tb.Helper()
	ad, err := dbadmin.New(st, dbadmin.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(ad.Close)
	return ad
}
