package store_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
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

// TestInsertMetricsKeepsFirstCopy compares bulk inserts with row-by-row
// merges (mergeOne, written in Go) on batches that take each PostgreSQL
// path: fresh samples (straight COPY); copies of one key inside the batch,
// one of them adding an extra key, and one that differs only below a
// microsecond (PostgreSQL's resolution, so the same key there); a batch
// whose time range overlaps stored rows without repeating one, and one
// that repeats stored keys with new metrics (staged, merged). The first
// copy of a value must win, the missing ones must be filled, and the count
// must be the samples that added something, as row by row.
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
			{ // the rest of stored scrapes: fill, extend, or add nothing
				{Host: "a", Timestamp: base.Add(time.Hour), CPUUsage: f(10), MemoryUsage: f(11)},
				{Host: "a", Timestamp: base, Extra: map[string]float64{"late": 2, "new": 3}},
				{Host: "b", Timestamp: base, CPUUsage: f(12)},
				{Host: "a", Timestamp: base.Add(time.Hour), ErrorRate: f(13), Extra: map[string]float64{"x": 1}},
			},
		}
		for i, batch := range batches {
			var want int64
			if err := rowByRow.InTx(ctx, func(tx *store.Tx) error {
				for _, m := range batch {
					added, err := mergeOne(ctx, tx, m)
					if err != nil {
						return err
					}
					if added {
						want++
					}
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

// mergeOne is the reference merge, row by row in Go: read the stored row of
// the key, fill what it lacks, write it back; added says it changed.
func mergeOne(ctx context.Context, tx *store.Tx, m domain.MetricSample) (bool, error) {
	var (
		cols  [9]*float64
		extra string
	)
	err := tx.QueryRow(ctx, "SELECT cpu_usage, memory_usage, disk_usage, network_in, network_out, load_average, response_time_ms, error_rate, request_rate, extra FROM system_metrics WHERE host = ? AND ts = ?",
		m.Host, m.Timestamp.UTC()).Scan(&cols[0], &cols[1], &cols[2], &cols[3], &cols[4], &cols[5], &cols[6], &cols[7], &cols[8], &extra)
	if errors.Is(err, sql.ErrNoRows) {
		return true, insertOne(ctx, tx, m)
	}
	if err != nil {
		return false, err
	}
	stored := map[string]float64{}
	if err := json.Unmarshal([]byte(extra), &stored); err != nil {
		return false, err
	}
	added := false
	for i, v := range []*float64{m.CPUUsage, m.MemoryUsage, m.DiskUsage, m.NetworkIn, m.NetworkOut, m.LoadAverage, m.ResponseTimeMS, m.ErrorRate, m.RequestRate} {
		if cols[i] == nil && v != nil {
			cols[i], added = v, true
		}
	}
	for k, v := range m.Extra {
		if _, ok := stored[k]; !ok {
			stored[k], added = v, true
		}
	}
	if !added {
		return false, nil
	}
	raw, _ := json.Marshal(stored)
	_, err = tx.Exec(ctx, "UPDATE system_metrics SET cpu_usage = ?, memory_usage = ?, disk_usage = ?, network_in = ?, network_out = ?, load_average = ?, response_time_ms = ?, error_rate = ?, request_rate = ?, extra = ? WHERE host = ? AND ts = ?",
		cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7], cols[8], string(raw), m.Host, m.Timestamp.UTC())
	return true, err
}

// TestInsertMetricsMergesSplitScrape stores one scrape of a host sent in
// three parts, as Prometheus's remote write shards it, then a re-send of a
// part: one row holds everything, each part counts as stored and the
// re-send as a duplicate.
func TestInsertMetricsMergesSplitScrape(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := openWith(t, url, nil).s
		f := func(v float64) *float64 { return &v }
		ts := time.Date(2026, 12, 8, 2, 0, 0, 0, time.UTC)
		parts := []domain.MetricSample{
			{Host: "acme/web-1", Timestamp: ts, LoadAverage: f(0.5), Extra: map[string]float64{"app_queue": 3}},
			{Host: "acme/web-1", Timestamp: ts, CPUUsage: f(42), MemoryUsage: f(61)},
			{Host: "acme/web-1", Timestamp: ts, NetworkIn: f(1000), Extra: map[string]float64{"app_queue": 99, "temp": 40}},
		}
		for i, p := range parts {
			n, err := s.InsertMetrics(ctx, []domain.MetricSample{p})
			if err != nil || n != 1 {
				t.Fatalf("part %d: InsertMetrics = %d, %v; want 1", i, n, err)
			}
		}
		n, err := s.InsertMetrics(ctx, parts[1:2])
		if err != nil || n != 0 {
			t.Fatalf("re-sent part: %d, %v; want 0", n, err)
		}
		var (
			cpu, mem, load, netIn float64
			extra                 string
		)
		if err := s.QueryRow(ctx, "SELECT cpu_usage, memory_usage, load_average, network_in, extra FROM system_metrics WHERE host = ?", "acme/web-1").
			Scan(&cpu, &mem, &load, &netIn, &extra); err != nil {
			t.Fatal(err)
		}
		var ex map[string]float64
		_ = json.Unmarshal([]byte(extra), &ex)
		if cpu != 42 || mem != 61 || load != 0.5 || netIn != 1000 || ex["app_queue"] != 3 || ex["temp"] != 40 || len(ex) != 2 {
			t.Fatalf("merged row cpu %v mem %v load %v net %v extra %v", cpu, mem, load, netIn, ex)
		}
	})
}

// TestInsertMetricsConcurrentConflict has another transaction insert one of
// the batch's keys after the bulk insert checked for stored rows: the
// straight COPY then fails on the unique index, and the batch must still be
// stored the staged way, with the other transaction's values kept and the
// batch's merged into the row where it had none.
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
	// The contested row had only cpu_usage: the sample fills its other
	// columns, so it counts as stored too.
	if r.err != nil || r.n != 1000 {
		t.Fatalf("InsertMetrics = %d, %v; want 1000 samples stored", r.n, r.err)
	}
	var cpu float64
	if err := s.QueryRow(ctx, "SELECT cpu_usage FROM system_metrics WHERE host = ? AND ts = ?", samples[500].Host, samples[500].Timestamp).Scan(&cpu); err != nil || cpu != 99 {
		t.Fatalf("contested row cpu = %v, %v; want the other transaction's 99", cpu, err)
	}
	var mem float64
	if err := s.QueryRow(ctx, "SELECT memory_usage FROM system_metrics WHERE host = ? AND ts = ?", samples[500].Host, samples[500].Timestamp).Scan(&mem); err != nil || mem != *samples[500].MemoryUsage {
		t.Fatalf("contested row memory = %v, %v; want the batch's %v merged in", mem, err, *samples[500].MemoryUsage)
	}
}

// Remote write splits one scrape over shards, so concurrent batches merge
// into the same rows, each in its own order. They must not deadlock: the
// merge takes the rows in (host, ts) order, and PostgreSQL's abort of a
// remaining conflict is run again.
func TestConcurrentMergesDoNotDeadlock(t *testing.T) {
	url := storetest.PostgresURL(t)
	s := openWith(t, url, nil).s
	ctx := context.Background()
	base := makeSamples(2000, 50)
	for i := range base {
		base[i].MemoryUsage, base[i].ErrorRate, base[i].Extra = nil, nil, nil
	}
	if _, err := s.InsertMetrics(ctx, base); err != nil {
		t.Fatal(err)
	}
	f := func(v float64) *float64 { return &v }
	const writers = 4
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			part := make([]domain.MetricSample, len(base))
			for i := range part {
				// Each writer walks the keys in another order: forwards,
				// backwards, and two interleavings.
				j := i
				switch w {
				case 1:
					j = len(base) - 1 - i
				case 2:
					j = (i * 7) % len(base)
				case 3:
					j = (len(base) - 1 - i*11%len(base) + len(base)) % len(base)
				}
				part[i] = domain.MetricSample{Host: base[j].Host, Timestamp: base[j].Timestamp,
					Extra: map[string]float64{"writer_" + string(rune('a'+w)): float64(w)}}
				if w == 0 {
					part[i].MemoryUsage = f(50)
				}
			}
			var err error
			for round := 0; round < 5 && err == nil; round++ {
				_, err = s.InsertMetrics(ctx, part)
			}
			errs <- err
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent merge: %v", err)
		}
	}
	var merged int
	if err := s.QueryRow(ctx, "SELECT count(*) FROM system_metrics WHERE memory_usage = 50 AND extra->>'writer_a' IS NOT NULL AND extra->>'writer_b' IS NOT NULL AND extra->>'writer_c' IS NOT NULL AND extra->>'writer_d' IS NOT NULL").Scan(&merged); err != nil {
		t.Fatal(err)
	}
	if merged != len(base) {
		t.Fatalf("%d rows hold every writer's part, want %d", merged, len(base))
	}
}
