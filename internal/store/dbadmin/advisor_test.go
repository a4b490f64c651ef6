package dbadmin_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/dbadmin"
	"github.com/smartcloudops/smartcloudops/internal/store/fingerprint"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

// open opens and migrates a store on url and administers it; both are
// closed when t ends.
func open(t *testing.T, url string) (*store.Store, *dbadmin.Admin) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, store.Options{URL: url, PoolSize: 4})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(ctx, nil); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	ad, err := dbadmin.New(s, dbadmin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ad.Close)
	return s, ad
}

// insertMetrics stores n rows spread over hosts web-00… one per second each.
func insertMetrics(t *testing.T, s *store.Store, n, hosts int) {
	t.Helper()
	ctx := context.Background()
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	if err := s.InTx(ctx, func(tx *store.Tx) error {
		for i := range n {
			if _, err := tx.Exec(ctx, "INSERT INTO system_metrics (host, ts, cpu_usage, memory_usage) VALUES (?, ?, ?, ?)",
				fmt.Sprintf("web-%02d", i%hosts), base.Add(time.Duration(i/hosts)*time.Second), float64(i%1000)/10, float64(i%97)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestIndexAdvisor(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		s, ad := open(t, url)
		ctx := context.Background()
		if _, err := s.Exec(ctx, "CREATE TABLE events (id BIGINT PRIMARY KEY, kind TEXT NOT NULL, payload TEXT)"); err != nil {
			t.Fatal(err)
		}
		if err := s.InTx(ctx, func(tx *store.Tx) error {
			for i := range 20_000 {
				if _, err := tx.Exec(ctx, "INSERT INTO events (id, kind, payload) VALUES (?, ?, ?)", i, fmt.Sprintf("k%d", i%200), strings.Repeat("x", 40)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := ad.Optimize(ctx, dbadmin.OptimizeOptions{}); err != nil { // fresh planner statistics
			t.Fatal(err)
		}
		scan := "SELECT id, payload FROM events WHERE kind = ?"
		indexed := "SELECT cpu_usage FROM system_metrics WHERE host = ? ORDER BY ts"
		for i := range 12 {
			for _, q := range []string{scan, indexed} {
				rows, err := s.Query(ctx, q, fmt.Sprintf("k%d", i))
				if err != nil {
					t.Fatal(err)
				}
				for rows.Next() {
				}
				rows.Close()
			}
		}
		sugs, err := ad.Advise(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(sugs) != 1 || sugs[0].Table != "events" || !slices.Equal(sugs[0].Columns, []string{"kind"}) ||
			sugs[0].QueryID != fingerprint.Normalize(scan).ID || len(sugs[0].Evidence) == 0 {
			t.Fatalf("suggestions = %+v; want one on events(kind) for the scanning query, none for the indexed one", sugs)
		}
		t.Logf("suggestion: %s evidence %q", sugs[0].SQL, sugs[0].Evidence)

		ci, err := ad.CreateIndex(ctx, dbadmin.IndexRequest{SuggestionID: sugs[0].ID})
		if err != nil {
			t.Fatal(err)
		}
		if !ci.OK || !ci.UsesIndex || ci.BeforeMS == nil || ci.AfterMS == nil || !strings.Contains(ci.PlanAfter, ci.Name) {
			t.Fatalf("created %+v; want the plan to use the new index", ci)
		}
		if strings.Contains(ci.PlanBefore+ci.PlanAfter, "k0") || strings.Contains(ci.PlanBefore+ci.PlanAfter, "k11") {
			t.Errorf("plans show bound values: %s %s", ci.PlanBefore, ci.PlanAfter)
		}
		t.Logf("created %s: %.3f ms → %.3f ms", ci.Name, *ci.BeforeMS, *ci.AfterMS)
		if sugs, err := ad.Advise(ctx); err != nil || len(sugs) != 0 {
			t.Fatalf("after creation: %+v, %v; want no suggestion", sugs, err)
		}
		rep, err := ad.Indexes(ctx)
		if err != nil || len(rep.Created) != 1 || rep.Created[0].Name != ci.Name {
			t.Fatalf("index report %+v, %v", rep, err)
		}
		// A covered or nonsensical request is refused, not built.
		for _, req := range []dbadmin.IndexRequest{{Table: "events", Columns: []string{"kind"}}, {Table: "nope", Columns: []string{"x"}},
			{Table: "events", Columns: []string{"nope"}}, {SuggestionID: "ffff"}, {}} {
			if _, err := ad.CreateIndex(ctx, req); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("CreateIndex(%+v) = %v; want ErrInvalid", req, err)
			}
		}
	})
}

func TestOptimizeAndTableStats(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		s, ad := open(t, url)
		ctx := context.Background()
		insertMetrics(t, s, 500, 5)
		if _, err := s.Exec(ctx, "DELETE FROM system_metrics WHERE host = ?", "web-01"); err != nil {
			t.Fatal(err)
		}
		rep, err := ad.Optimize(ctx, dbadmin.OptimizeOptions{Vacuum: true})
		if err != nil || !rep.OK || len(rep.Steps) == 0 {
			t.Fatalf("Optimize = %+v, %v", rep, err)
		}
		ds, err := ad.Stats(ctx, dbadmin.StatsOptions{Sort: store.SortCalls, Limit: 5})
		if err != nil {
			t.Fatal(err)
		}
		var sm *dbadmin.TableStat
		for i := range ds.Tables {
			if ds.Tables[i].Name == "system_metrics" {
				sm = &ds.Tables[i]
			}
		}
		if sm == nil || sm.Rows != 400 || !sm.RowsExact || sm.TableBytes == nil || *sm.TableBytes <= 0 {
			t.Fatalf("system_metrics stats %+v", sm)
		}
		if strings.HasPrefix(url, "postgres") && (sm.DeadTuples == nil || sm.LastVacuum == nil) {
			t.Errorf("PostgreSQL table stats lack dead tuples / last vacuum: %+v", sm)
		}
		if len(ds.Pools) == 0 || ds.Pools[0].Max == 0 || ds.Pools[0].Acquires == 0 {
			t.Errorf("pool stats %+v", ds.Pools)
		}
		// A failure is reported as one: maintenance on a closed store.
		s.Close()
		rep, err = ad.Optimize(ctx, dbadmin.OptimizeOptions{})
		if err == nil || rep.OK || rep.Steps[0].OK || rep.Steps[0].Error == "" {
			t.Fatalf("Optimize on a closed store = %+v, %v; want a reported failure", rep, err)
		}
	})
}

func TestStatsRejectsUnknownSort(t *testing.T) {
	_, ad := open(t, storetest.SQLiteURL(t))
	if _, err := ad.Stats(context.Background(), dbadmin.StatsOptions{Sort: "bogus"}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("unknown sort: %v; want ErrInvalid", err)
	}
}
