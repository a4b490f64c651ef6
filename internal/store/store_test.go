package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/health"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

func open(t *testing.T, url string) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, store.Options{URL: url, PoolSize: 4})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// migrated opens a fresh database (see open) and applies the migrations.
func migrated(t *testing.T, url string) *store.Store {
	t.Helper()
	s := open(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Migrate(ctx, nil); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s
}

func TestMigrateUpOnBothDatabases(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		applied, err := s.Migrate(ctx, nil)
		if err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		if len(applied) == 0 {
			t.Fatal("Migrate applied nothing on a fresh database")
		}
		v, err := s.SchemaVersion(ctx)
		if err != nil || v != applied[len(applied)-1].Version {
			t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, applied[len(applied)-1].Version)
		}
		// A second run is a no-op, as it is when a restarted replica migrates.
		again, err := s.Migrate(ctx, nil)
		if err != nil || len(again) != 0 {
			t.Fatalf("second Migrate = %v, %v; want nothing applied", again, err)
		}

		// The schema takes the rows the later parts write, with the same SQL on both.
		ts := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
		w := s.Writer()
		if _, err := w.ExecContext(ctx, rebind(s, `INSERT INTO system_metrics (host, ts, cpu_usage, memory_usage, extra) VALUES (?, ?, ?, ?, ?)`),
			"web-1", ts, 93.5, 71.0, `{"gc_pause_ms": 3.5}`); err != nil {
			t.Fatalf("insert metric: %v", err)
		}
		if _, err := w.ExecContext(ctx, rebind(s, `INSERT INTO system_metrics (host, ts, cpu_usage) VALUES (?, ?, ?)`), "web-1", ts, 1.0); err == nil {
			t.Fatal("duplicate (host, ts) was accepted; the unique index is missing")
		}
		if _, err := w.ExecContext(ctx, rebind(s, `INSERT INTO anomalies (host, detected_at, score, confidence, severity, model_version) VALUES (?, ?, ?, ?, ?, ?)`),
			"web-1", ts, 0.91, 0.8, "critical", "threshold-v1"); err != nil {
			t.Fatalf("insert anomaly: %v", err)
		}
		if _, err := w.ExecContext(ctx, rebind(s, `INSERT INTO anomalies (host, detected_at, score, confidence, severity, model_version) VALUES (?, ?, ?, ?, ?, ?)`),
			"web-1", ts, 0.5, 0.8, "apocalyptic", "threshold-v1"); err == nil {
			t.Fatal("unknown severity was accepted")
		}
		for i, v := range []string{"m1", "m2"} {
			if _, err := w.ExecContext(ctx, rebind(s, `INSERT INTO models (version, kind, trained_at, training_rows, artifact, active) VALUES (?, ?, ?, ?, ?, ?)`),
				v, "iforest", ts, 1000, []byte{1, 2, 3}, i == 0); err != nil {
				t.Fatalf("insert model %s: %v", v, err)
			}
		}
		if _, err := w.ExecContext(ctx, rebind(s, `INSERT INTO models (version, kind, trained_at, active) VALUES (?, ?, ?, ?)`), "m3", "iforest", ts, true); err == nil {
			t.Fatal("a second active model of one kind was accepted")
		}

		var (
			host string
			got  time.Time
			cpu  float64
		)
		if err := s.Reader().QueryRowContext(ctx, rebind(s, `SELECT host, ts, cpu_usage FROM system_metrics WHERE host = ?`), "web-1").Scan(&host, &got, &cpu); err != nil {
			t.Fatalf("read metric: %v", err)
		}
		if !got.Equal(ts) || cpu != 93.5 {
			t.Fatalf("read back ts=%v cpu=%v; want %v 93.5", got, cpu, ts)
		}
		if c := s.Check(ctx); c.Status != health.StatusUp || c.Details["driver"] != string(s.Kind()) {
			t.Fatalf("Check = %+v; want UP with driver %s", c, s.Kind())
		}
	})
}

func TestSQLiteReaderRefusesWrites(t *testing.T) {
	s := open(t, storetest.SQLiteURL(t))
	ctx := context.Background()
	if _, err := s.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reader().ExecContext(ctx, `DELETE FROM system_metrics`); err == nil {
		t.Fatal("the SQLite read pool accepted a write")
	}
}

func TestOpenRejectsBadURLs(t *testing.T) {
	for _, url := range []string{"", "ftp://x", "sqlite://relative.db", "postgres://"} {
		if _, err := store.Open(context.Background(), store.Options{URL: url}); err == nil {
			t.Errorf("Open(%q) succeeded; want an error", url)
		}
	}
}

func TestCheckReportsDownAfterClose(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		s := open(t, url)
		s.Close()
		if c := s.Check(context.Background()); c.Status != health.StatusDown {
			t.Fatalf("Check after Close = %s; want DOWN", c.Status)
		}
	})
}

// rebind turns ? placeholders into PostgreSQL's $n.
func rebind(s *store.Store, q string) string { return s.Rebind(q) }

// TestOpenErrorsHideThePassword: a DATABASE_URL's password never reaches an
// error (they end up in logs and on stderr), whether the URL does not parse,
// names no database kind, or names a server that does not answer.
func TestOpenErrorsHideThePassword(t *testing.T) {
	for _, url := range []string{
		"postgres://sco:s3kr1t@127.0.0.1:1/x?connect_timeout=1",
		"postgres://sco:s3kr1t@127.0.0.1:notaport/x",
		"ftp://sco:s3kr1t@host/x",
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, err := store.Open(ctx, store.Options{URL: url, PoolSize: 1})
		cancel()
		if err == nil {
			st.Close()
			t.Fatalf("Open(%q) succeeded", url)
		}
		if strings.Contains(err.Error(), "s3kr1t") {
			t.Errorf("Open error shows the password: %v", err)
		}
	}
}
