package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smartcloudops/smartcloudops/internal/domain"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

func TestInsertMetricsSkipsDuplicates(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		if _, err := s.Migrate(ctx, nil); err != nil {
			t.Fatal(err)
		}
		f := func(v float64) *float64 { return &v }
		base := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
		var batch []domain.MetricSample
		for i := range 2500 { // spans several INSERT statements
			batch = append(batch, domain.MetricSample{Host: "web-1", Timestamp: base.Add(time.Duration(i) * time.Minute), CPUUsage: f(float64(i % 100)),
				Extra: map[string]float64{"gc_ms": 1.5}})
		}
		n, err := s.InsertMetrics(ctx, batch)
		if err != nil || n != 2500 {
			t.Fatalf("InsertMetrics = %d, %v; want 2500", n, err)
		}
		n, err = s.InsertMetrics(ctx, batch[:10])
		if err != nil || n != 0 {
			t.Fatalf("re-sent samples: %d, %v; want 0 new rows", n, err)
		}
		var count int
		if err := s.Reader().QueryRowContext(ctx, "SELECT count(*) FROM system_metrics").Scan(&count); err != nil || count != 2500 {
			t.Fatalf("rows = %d, %v", count, err)
		}
	})
}

// TestInsertMetricsKeepsFirstCopy compares bulk inserts with row-by-row ones
// on batches that take each PostgreSQL path: fresh samples (straight COPY),
// with copies of one sample inside the batch, including one that differs
// only below a microsecond (PostgreSQL's resolution, so a duplicate there);
// and a batch whose time range overlaps stored rows without repeating one
// (staged COPY). The first copy must win, as it does row by row.
func TestInsertMetricsKeepsFirstCopy(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		bulk := openWith(t, url, nil).s
		other := storetest.SQLiteURL(t)
		if strings.HasPrefix(url, "postgres") {
			other = storetest.PostgresURL(t)
		}
		rowByRow := openWith(t, other, nil).s
		f := func(v float64) *float64 { return &v }
		base := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
		batches := [][]domain.MetricSample{
			{
				{Host: "a", Timestamp: base, CPUUsage: f(1)},
				{Host: "b", Timestamp: base, CPUUsage: f(2)},
				{Host: "a", Timestamp: base, CPUUsage: f(3), Extra: map[string]float64{"late": 1}},
				{Host: "a", Timestamp: base.Add(time.Minute), CPUUsage: f(4)},
				{Host: "a", Timestamp: base.Add(time.Minute + 500*time.Nanosecond), CPUUsage: f(5)},
			},
			{ // inside a's stored range, no stored key repeated
				{Host: "a", Timestamp: base.Add(30 * time.Second), CPUUsage: f(6)},
				{Host: "c", Timestamp: base, CPUUsage: f(7)},
				{Host: "c", Timestamp: base, CPUUsage: f(8)},
			},
			{ // fresh again, after a
				{Host: "a", Timestamp: base.Add(time.Hour), CPUUsage: f(9)},
			},
		}
		for i, batch := range batches {
			var want int64
			if err := rowByRow.InTx(ctx, func(tx *store.Tx) error {
				for _, m := range batch {
					before := countRows(t, tx)
					if err := insertOne(ctx, tx, m); err != nil {
						return err
					}
					want += countRows(t, tx) - before
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			n, err := bulk.InsertMetrics(ctx, batch)
			if err != nil || n != want {
				t.Fatalf("batch %d: InsertMetrics = %d, %v; want %d new rows", i, n, err, want)
			}
		}
		if a, b := dump(t, bulk), dump(t, rowByRow); a != b {
			t.Fatalf("bulk:\n%s\nrow by row:\n%s", a, b)
		}
	})
}

func countRows(t *testing.T, tx *store.Tx) int64 {
	t.Helper()
	var n int64
	if err := tx.QueryRow(context.Background(), "SELECT count(*) FROM system_metrics").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestInsertMetricsConcurrentConflict has another transaction insert one of
// the batch's keys after the bulk insert checked for stored rows: the
// straight COPY then fails on the unique index, and the batch must still be
// stored the staged way, with the other transaction's row kept.
func TestInsertMetricsConcurrentConflict(t *testing.T) {
	url := storetest.PostgresURL(t)
	s := openWith(t, url, nil).s
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	samples := makeSamples(1000, 10)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO system_metrics (host, ts, cpu_usage) VALUES ($1, $2, 99)", samples[500].Host, samples[500].Timestamp); err != nil {
		t.Fatal(err)
	}
	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := s.InsertMetrics(ctx, samples)
		done <- result{n, err}
	}()
	// Commit once the COPY waits for the uncommitted key (or after a while:
	// the outcome must be the same, only the path differs).
	probe, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close(ctx)
	for range 200 {
		var waiting int
		if err := probe.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE 'copy%system_metrics%'").Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.n != 999 {
		t.Fatalf("InsertMetrics = %d, %v; want 999 new rows", r.n, r.err)
	}
	var cpu float64
	if err := s.QueryRow(ctx, "SELECT cpu_usage FROM system_metrics WHERE host = ? AND ts = ?", samples[500].Host, samples[500].Timestamp).Scan(&cpu); err != nil || cpu != 99 {
		t.Fatalf("contested row cpu = %v, %v; want the other transaction's 99", cpu, err)
	}
}
