package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

// TestMigrationDedupesAnomalies upgrades a database that already holds
// duplicate anomalies (as the count-then-insert left them) to the unique
// (host, detected_at) key: the earliest row of each sample stays, the others
// go, and the index then refuses a new duplicate.
func TestMigrationDedupesAnomalies(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s, err := Open(ctx, Options{URL: url, PoolSize: 2})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		p, err := provider(s.kind, s.write, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.UpTo(ctx, 1); err != nil {
			t.Fatalf("migrate to 1: %v", err)
		}
		base := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
		ins := s.Rebind(`INSERT INTO anomalies (host, detected_at, score, confidence, severity, model_version, status) VALUES (?, ?, ?, ?, ?, ?, ?)`)
		rows := []struct {
			host    string
			at      time.Time
			version string
			status  string
		}{
			{"web-1", base, "v1", "acknowledged"}, // kept: the earliest of three
			{"web-1", base, "v1", "open"},
			{"web-1", base, "v2", "open"},
			{"web-1", base.Add(time.Second), "v1", "open"}, // kept: alone
			{"web-2", base, "v2", "resolved"},              // kept: the earliest of two
			{"web-2", base, "v1", "open"},
		}
		for _, r := range rows {
			if _, err := s.Writer().ExecContext(ctx, ins, r.host, r.at, 0.9, 0.9, "high", r.version, r.status); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Migrate(ctx, nil); err != nil {
			t.Fatalf("migrate up: %v", err)
		}
		got, err := s.Reader().QueryContext(ctx, "SELECT host, model_version, status FROM anomalies ORDER BY id")
		if err != nil {
			t.Fatal(err)
		}
		defer got.Close()
		var kept []string
		for got.Next() {
			var h, v, st string
			if err := got.Scan(&h, &v, &st); err != nil {
				t.Fatal(err)
			}
			kept = append(kept, h+"/"+v+"/"+st)
		}
		want := fmt.Sprint([]string{"web-1/v1/acknowledged", "web-1/v1/open", "web-2/v2/resolved"})
		if fmt.Sprint(kept) != want {
			t.Fatalf("after the migration: %v; want %s", kept, want)
		}
		if _, err := s.Writer().ExecContext(ctx, ins, "web-2", base, 0.5, 0.5, "low", "v3", "open"); err == nil {
			t.Fatal("a second anomaly for one sample was accepted after the migration")
		}
	})
}

// TestMarkUnavailable checks which driver errors wrap ErrUnavailable: those
// a retry after the database is back can cure, not a statement's own fault.
func TestMarkUnavailable(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"admin shutdown", &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}, true},
		{"crash shutdown", &pgconn.PgError{Code: "57P02"}, true},
		{"cannot connect now", &pgconn.PgError{Code: "57P03", Message: "the database system is starting up"}, true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"too many connections", &pgconn.PgError{Code: "53300"}, true},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"broken connection", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"syntax error", &pgconn.PgError{Code: "42601"}, false},
		{"canceled", context.Canceled, false},
		{"plain", errors.New("sqlite: constraint failed"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := markUnavailable(wrapQueryErr("exec", c.err))
			if got := errors.Is(err, ErrUnavailable); got != c.want {
				t.Fatalf("errors.Is(%v, ErrUnavailable) = %v; want %v", err, got, c.want)
			}
			if !errors.Is(err, c.err) {
				t.Fatalf("the driver error is lost from the chain: %v", err)
			}
			if err.Error() != "store: exec: "+c.err.Error() {
				t.Fatalf("message changed: %q", err)
			}
		})
	}
	if markUnavailable(nil) != nil {
		t.Fatal("markUnavailable(nil) != nil")
	}
}
