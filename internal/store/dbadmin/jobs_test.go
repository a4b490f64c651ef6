package dbadmin_test

import (
	"context"
	"errors"
	"testing"

	"github.com/smartcloudops/smartcloudops/internal/dburl"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

type jobKey struct{}

// TestCloseWaitsForJobs closes the Admin while a job's statement runs: the
// job observes the cancellation, the store is still open when it does, and
// Close returns only after the job has.
func TestCloseWaitsForJobs(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		s, ad := open(t, url)
		// A statement that runs far longer than the test unless cancelled, and
		// ends by itself in 30 s if a cancellation were lost, so it cannot hold
		// a snapshot that blocks other tests' CREATE INDEX CONCURRENTLY for long.
		long := "SELECT pg_sleep(30)"
		if s.Kind() == dburl.SQLite {
			long = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000000000) SELECT count(*) FROM c"
		}
		type outcome struct {
			value           any
			stmtErr, ctxErr error
			afterCancelErr  error
		}
		started, done := make(chan struct{}), make(chan outcome, 1)
		// The caller's context ends at once: the job must not follow it,
		// only carry its values.
		reqCtx, endRequest := context.WithCancel(context.WithValue(context.Background(), jobKey{}, "req-1"))
		err := ad.Go(reqCtx, func(ctx context.Context) {
			var o outcome
			o.value = ctx.Value(jobKey{})
			close(started)
			_, o.stmtErr = s.Reader().ExecContext(ctx, long)
			o.ctxErr = ctx.Err()
			// The store must still be open once the job has been told to stop.
			o.afterCancelErr = s.Reader().PingContext(context.Background())
			done <- o
		})
		if err != nil {
			t.Fatalf("Go: %v", err)
		}
		endRequest()
		<-started
		ad.Close()
		var o outcome
		select {
		case o = <-done:
		default:
			t.Fatal("Close returned while the job was still running")
		}
		if o.value != "req-1" {
			t.Errorf("job context lost the caller's values: %v", o.value)
		}
		if !errors.Is(o.ctxErr, context.Canceled) || o.stmtErr == nil {
			t.Errorf("job did not observe Close: statement error %v, context error %v", o.stmtErr, o.ctxErr)
		}
		if o.afterCancelErr != nil {
			t.Errorf("the store was closed under the job: %v", o.afterCancelErr)
		}
		// A closed Admin refuses new jobs as a passing outage, not a failure.
		if err := ad.Go(context.Background(), func(context.Context) { t.Error("job ran after Close") }); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("Go after Close: %v; want store.ErrUnavailable", err)
		}
	})
}
