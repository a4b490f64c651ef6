package store_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/domain"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

var rollupBase = time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)

// aggKey names one rollup row.
type aggKey struct {
	host, metric string
	bucket       time.Time
}

// agg is one rollup row's figures.
type agg struct {
	n             int64
	sum, min, max float64
}

func (a agg) add(v float64) agg {
	if a.n == 0 {
		return agg{1, v, v, v}
	}
	return agg{a.n + 1, a.sum + v, math.Min(a.min, v), math.Max(a.max, v)}
}

// rollupSamples makes perMinute samples a minute for minutes minutes and
// each host: cpu_usage always, memory_usage on every other sample, an extra
// metric "queue_depth" on hosts but the first, and timestamps that include
// the last microsecond of a minute, which must stay in that minute.
func rollupSamples(rng *rand.Rand, start time.Time, minutes, perMinute int, hosts ...string) []domain.MetricSample {
	var out []domain.MetricSample
	for hi, h := range hosts {
		for m := range minutes {
			for k := range perMinute {
				off := time.Duration(k) * time.Minute / time.Duration(perMinute)
				if k == perMinute-1 {
					off = time.Minute - time.Microsecond
				}
				s := domain.MetricSample{Host: h, Timestamp: start.Add(time.Duration(m)*time.Minute + off), CPUUsage: f64(rng.Float64() * 100)}
				if k%2 == 0 {
					s.MemoryUsage = f64(rng.NormFloat64()*10 + 50)
				}
				if hi > 0 {
					s.Extra = map[string]float64{"queue_depth": float64(rng.IntN(1000))}
				}
				out = append(out, s)
			}
		}
	}
	return out
}

// expectedRollups aggregates samples the way the rollup job must, for the
// minutes before end.
func expectedRollups(samples []domain.MetricSample, end time.Time) map[aggKey]agg {
	out := map[aggKey]agg{}
	for _, s := range samples {
		if !s.Timestamp.Before(end) {
			continue
		}
		b := s.Timestamp.Truncate(time.Minute)
		add := func(metric string, v float64) {
			k := aggKey{s.Host, metric, b}
			out[k] = out[k].add(v)
		}
		if s.CPUUsage != nil {
			add("cpu_usage", *s.CPUUsage)
		}
		if s.MemoryUsage != nil {
			add("memory_usage", *s.MemoryUsage)
		}
		for k, v := range s.Extra {
			add(k, v)
		}
	}
	return out
}

// storedRollups reads every rollup row.
func storedRollups(t *testing.T, s *store.Store) map[aggKey]agg {
	t.Helper()
	rows, err := s.Reader().QueryContext(context.Background(), "SELECT host, metric, bucket, sample_count, value_sum, value_min, value_max FROM metric_rollups")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[aggKey]agg{}
	for rows.Next() {
		var (
			k aggKey
			a agg
		)
		if err := rows.Scan(&k.host, &k.metric, &k.bucket, &a.n, &a.sum, &a.min, &a.max); err != nil {
			t.Fatal(err)
		}
		k.bucket = k.bucket.UTC()
		out[k] = a
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// sameRollups compares stored rollups with the expected ones: counts, minima
// and maxima exactly, sums to a relative 1e-12 (summation order differs).
func sameRollups(t *testing.T, what string, got, want map[aggKey]agg) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d rollup rows, want %d", what, len(got), len(want))
	}
	bad := 0
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("%s: missing rollup %v", what, k)
		case g.n != w.n || g.min != w.min || g.max != w.max || math.Abs(g.sum-w.sum) > 1e-12*math.Max(1, math.Abs(w.sum)):
			t.Errorf("%s: rollup %v = %+v, want %+v", what, k, g, w)
		default:
			continue
		}
		if bad++; bad > 5 {
			t.Fatalf("%s: too many differences", what)
		}
	}
}

func TestRollupMatchesRaw(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := migrated(t, url)
		samples := rollupSamples(rand.New(rand.NewPCG(1, 2)), rollupBase, 30, 6, "web-1", "web-2", "db-1")
		if _, err := s.InsertMetrics(ctx, samples); err != nil {
			t.Fatal(err)
		}
		// 30 minutes stored; now is 1.5 minutes after the last one ends, so with
		// the default lag of 2 minutes the last minute is still open.
		now := rollupBase.Add(31*time.Minute + 30*time.Second)
		res, err := s.RollupMetrics(ctx, store.RollupOptions{Now: now, ChunkMinutes: 7})
		if err != nil {
			t.Fatal(err)
		}
		end := rollupBase.Add(29 * time.Minute)
		if !res.Watermark.Equal(end) || res.Minutes != 29 || res.LateMinutes != 0 {
			t.Fatalf("first run = %+v; want the watermark at %v after 29 minutes", res, end)
		}
		want := expectedRollups(samples, end)
		sameRollups(t, "first run", storedRollups(t, s), want)
		if res.Rows != int64(len(want)) {
			t.Errorf("first run wrote %d rows, want %d", res.Rows, len(want))
		}

		// Nothing new: a second run writes nothing.
		res, err = s.RollupMetrics(ctx, store.RollupOptions{Now: now})
		if err != nil || res.Rows != 0 || res.Minutes != 0 {
			t.Fatalf("second run = %+v, %v; want nothing done", res, err)
		}

		// Idempotence: move the watermark back as if a run had crashed after
		// its chunk but before recording it; the minutes are rolled again and
		// replace, not add to, what is stored.
		if _, err := s.Writer().ExecContext(ctx, s.Rebind("UPDATE metric_rollup_state SET watermark = ?"), rollupBase.UTC()); err != nil {
			t.Fatal(err)
		}
		later := now.Add(10 * time.Minute)
		if res, err = s.RollupMetrics(ctx, store.RollupOptions{Now: later}); err != nil || res.Minutes != 39 || !res.Watermark.Equal(later.Add(-2*time.Minute).Truncate(time.Minute)) {
			t.Fatalf("re-run = %+v, %v", res, err)
		}
		sameRollups(t, "re-run", storedRollups(t, s), expectedRollups(samples, rollupBase.Add(30*time.Minute)))
	})
}

func TestRollupLateSamples(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := migrated(t, url)
		rng := rand.New(rand.NewPCG(3, 4))
		samples := rollupSamples(rng, rollupBase, 60, 4, "web-1", "web-2")
		if _, err := s.InsertMetrics(ctx, samples); err != nil {
			t.Fatal(err)
		}
		now := rollupBase.Add(63 * time.Minute)
		if _, err := s.RollupMetrics(ctx, store.RollupOptions{Now: now}); err != nil {
			t.Fatal(err)
		}
		// Retention: keep 40 minutes of raw rows, so minutes before 0:23 go.
		ret, err := s.DeleteExpired(ctx, store.RetentionOptions{Now: now, Raw: 40 * time.Minute, BatchSize: 50, Pause: -1})
		if err != nil {
			t.Fatal(err)
		}
		rawFrom := rollupBase.Add(23 * time.Minute)
		if !ret.RawFrom.Equal(rawFrom) || ret.RawDeleted != 2*23*4 {
			t.Fatalf("retention = %+v; want raw_from %v and %d rows deleted", ret, rawFrom, 2*23*4)
		}

		// Late samples: one into a rolled minute inside the raw window, one for
		// a new host in a rolled minute, one before the raw window.
		late := []domain.MetricSample{
			{Host: "web-1", Timestamp: rollupBase.Add(30*time.Minute + 7*time.Second), CPUUsage: f64(1000), Extra: map[string]float64{"late_only": 1}},
			{Host: "web-3", Timestamp: rollupBase.Add(45*time.Minute + 30*time.Second), CPUUsage: f64(5)},
			{Host: "web-2", Timestamp: rollupBase.Add(5 * time.Minute), CPUUsage: f64(-1)},
		}
		if _, err := s.InsertMetrics(ctx, late); err != nil {
			t.Fatal(err)
		}
		res, err := s.RollupMetrics(ctx, store.RollupOptions{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if res.LateMinutes != 2 || res.ExpiredMinutes != 1 {
			t.Fatalf("late run = %+v; want 2 minutes rolled again and 1 expired", res)
		}
		got := storedRollups(t, s)
		want := expectedRollups(append(samples, late[:2]...), rollupBase.Add(61*time.Minute))
		sameRollups(t, "after late samples", got, want)

		// The ids are scanned on two runs (for out-of-order commits); the
		// second rolls the same minutes again without changing them.
		res, err = s.RollupMetrics(ctx, store.RollupOptions{Now: now})
		if err != nil || res.LateMinutes != 2 {
			t.Fatalf("second late run = %+v, %v", res, err)
		}
		sameRollups(t, "second late run", storedRollups(t, s), want)
		// Third run: the late rows are behind both scans.
		if res, err = s.RollupMetrics(ctx, store.RollupOptions{Now: now}); err != nil || res.LateMinutes != 0 || res.ExpiredMinutes != 0 {
			t.Fatalf("third run = %+v, %v", res, err)
		}
		// The expired late sample is deleted by retention, never rolled.
		if ret, err = s.DeleteExpired(ctx, store.RetentionOptions{Now: now, Raw: 40 * time.Minute}); err != nil || ret.RawDeleted != 1 {
			t.Fatalf("retention after late = %+v, %v", ret, err)
		}
	})
}

func TestRetentionDeletesOnlyRolledMinutes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := migrated(t, url)
		samples := rollupSamples(rand.New(rand.NewPCG(5, 6)), rollupBase, 20, 3, "a", "b")
		if _, err := s.InsertMetrics(ctx, samples); err != nil {
			t.Fatal(err)
		}
		now := rollupBase.Add(24 * time.Hour)
		// Before any rollup nothing is deleted, however old.
		ret, err := s.DeleteExpired(ctx, store.RetentionOptions{Now: now, Raw: time.Hour})
		if err != nil || ret.RawDeleted != 0 || !ret.RawFrom.IsZero() {
			t.Fatalf("retention before rollup = %+v, %v", ret, err)
		}
		// Roll only the first 10 minutes: the rest must survive retention.
		if _, err := s.RollupMetrics(ctx, store.RollupOptions{Now: rollupBase.Add(12 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
		var batches []int64
		ret, err = s.DeleteExpired(ctx, store.RetentionOptions{Now: now, Raw: time.Hour, BatchSize: 7, Pause: time.Millisecond,
			OnBatch: func(table string, n int64) { batches = append(batches, n) }})
		if err != nil {
			t.Fatal(err)
		}
		if ret.RawDeleted != 2*10*3 || !ret.RawFrom.Equal(rollupBase.Add(10*time.Minute)) {
			t.Fatalf("retention = %+v; want the 60 rows of the rolled 10 minutes", ret)
		}
		for i, n := range batches {
			if n > 7 || (i < len(batches)-1 && n != 7) {
				t.Fatalf("batches = %v; want full batches of 7 and a short last one", batches)
			}
		}
		var left int
		if err := s.Reader().QueryRowContext(ctx, "SELECT count(*) FROM system_metrics").Scan(&left); err != nil || left != 2*10*3 {
			t.Fatalf("raw rows left = %d, %v", left, err)
		}
		// Rollup retention: a window that ends at minute 5 drops 5 minutes of rollups.
		before := len(storedRollups(t, s))
		ret, err = s.DeleteExpired(ctx, store.RetentionOptions{Now: rollupBase.Add(24*time.Hour + 5*time.Minute), Rollup: 24 * time.Hour, BatchSize: 3, Pause: -1})
		if err != nil {
			t.Fatal(err)
		}
		if after := len(storedRollups(t, s)); ret.RollupsDeleted == 0 || int64(before-after) != ret.RollupsDeleted {
			t.Fatalf("rollup retention deleted %d, rows %d → %d", ret.RollupsDeleted, before, after)
		}
		for k := range storedRollups(t, s) {
			if k.bucket.Before(rollupBase.Add(5 * time.Minute)) {
				t.Fatalf("rollup %v outlived its window", k)
			}
		}
	})
}

// TestRetentionWhileIngesting rolls up and then deletes a large expired
// range (60k rows) while another goroutine keeps inserting fresh samples,
// and logs the insert latencies seen meanwhile next to those before: the
// chunks and batches must leave room for ingest. The figures are logged,
// not asserted, since the machine's speed is not the test's business.
func TestRetentionWhileIngesting(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 60k rows")
	}
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := migrated(t, url)
		old := rollupSamples(rand.New(rand.NewPCG(7, 8)), rollupBase, 100, 20, hostNames(30)...)
		for lo := 0; lo < len(old); lo += 10000 {
			if _, err := s.InsertMetrics(ctx, old[lo:min(lo+10000, len(old))]); err != nil {
				t.Fatal(err)
			}
		}
		now := rollupBase.Add(48 * time.Hour)
		fresh := rollupSamples(rand.New(rand.NewPCG(9, 10)), now, 1200, 1, hostNames(50)...)
		next := 0
		insert := func() time.Duration {
			batch := fresh[next : next+50]
			next += 50
			start := time.Now()
			if _, err := s.InsertMetrics(ctx, batch); err != nil {
				t.Error(err)
			}
			return time.Since(start)
		}
		// during runs job while inserting 50-row batches, and returns their latencies.
		during := func(job func() error) []time.Duration {
			done := make(chan error, 1)
			go func() { done <- job() }()
			var lat []time.Duration
			for next+50 <= len(fresh) {
				select {
				case err := <-done:
					if err != nil {
						t.Fatal(err)
					}
					return lat
				default:
					lat = append(lat, insert())
				}
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			return lat
		}
		var base []time.Duration
		for range 50 {
			base = append(base, insert())
		}
		var roll store.RollupResult
		rolling := during(func() (err error) {
			roll, err = s.RollupMetrics(ctx, store.RollupOptions{Now: rollupBase.Add(102 * time.Minute)})
			return err
		})
		var ret store.RetentionResult
		deleting := during(func() (err error) {
			ret, err = s.DeleteExpired(ctx, store.RetentionOptions{Now: now, Raw: 24 * time.Hour, BatchSize: 1000, Pause: 5 * time.Millisecond})
			return err
		})
		if roll.Minutes == 0 || ret.RawDeleted != int64(len(old)) {
			t.Fatalf("rolled %+v; deleted %d raw rows, want %d", roll, ret.RawDeleted, len(old))
		}
		t.Logf("50-row inserts alone: p50 %v max %v", quantileDur(base, 0.5), quantileDur(base, 1))
		t.Logf("during the rollup of %d rows (%d minutes): %d inserts, p50 %v max %v",
			len(old), roll.Minutes, len(rolling), quantileDur(rolling, 0.5), quantileDur(rolling, 1))
		t.Logf("during the delete of %d rows in %d batches: %d inserts, p50 %v max %v",
			ret.RawDeleted, ret.Batches, len(deleting), quantileDur(deleting, 0.5), quantileDur(deleting, 1))
	})
}

func hostNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("host-%03d", i)
	}
	return out
}

// quantileDur is the nearest-rank q-quantile of ds (0 for none).
func quantileDur(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[max(0, int(math.Ceil(q*float64(len(s))))-1)]
}
