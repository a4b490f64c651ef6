package dbadmin

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/store"
)

// Go runs job in the background, owned by the Admin rather than by the
// caller, and returns at once. job's context keeps ctx's values (its trace
// span, request id) but not its cancellation or deadline: a client hanging
// up must not abort a VACUUM half-way. It is cancelled instead when Close
// begins, and Close waits for job to return, so a job never runs against a
// closed store. Once Close has begun, Go refuses with an error wrapping
// store.ErrUnavailable.
func (ad *Admin) Go(ctx context.Context, job func(ctx context.Context)) error {
	ad.jobsMu.Lock()
	defer ad.jobsMu.Unlock()
	if ad.closed {
		return fmt.Errorf("store: database administration is shutting down: %w", store.ErrUnavailable)
	}
	jctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	unlink := context.AfterFunc(ad.life, cancel)
	ad.bg.Go(func() {
		defer cancel()
		defer unlink()
		job(jctx)
	})
	return nil
}

// Job states, as admin_jobs.state holds them.
const (
	JobRunning   = "running"
	JobSucceeded = "succeeded"
	JobFailed    = "failed"
)

// ErrJobNotFound is wrapped by Job's error when no row has the id.
var ErrJobNotFound = errors.New("store: no such job")

// Job is a database job's row: what any replica answers for its status URL.
type Job struct {
	ID          string
	Kind        string
	State       string
	Replica     string
	StartedAt   time.Time
	HeartbeatAt time.Time
	FinishedAt  *time.Time
	Error       string
	Result      json.RawMessage
}

// JobSpec is a job for GoJob.
type JobSpec struct {
	ID, Kind string
	// Run does the work; its result is stored as JSON.
	Run func(ctx context.Context) (any, error)
	// Describe turns Run's error into the text stored for every replica to
	// show (safe for clients: no statements, no connection strings).
	Describe func(error) string
	// Done, when set, is called with the outcome, before it is stored.
	Done func(result any, err error)
}

// GoJob records a running job in admin_jobs, owned by this replica, runs it
// as Go does, touching its heartbeat while it runs, and stores its outcome,
// so that its status reads the same on every replica sharing the database.
// When the row cannot be written the job runs all the same (the database
// may be what it repairs, and the replica that started it still answers
// its status); the failure is counted and the outcome written if it can be.
// It fails only as Go does.
func (ad *Admin) GoJob(ctx context.Context, j JobSpec) error {
	now := ad.now().UTC()
	if _, err := ad.st.Exec(ctx, "INSERT INTO admin_jobs (id, kind, state, replica, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?)",
		j.ID, j.Kind, JobRunning, ad.replica, now, now); err != nil {
		ad.jobRecordErrors.Inc()
		ad.log.Warn("store: recording a job failed; running it unrecorded", "job", j.ID, "error", err.Error())
	}
	// Finished rows are kept a week for their status URLs, then dropped.
	if _, err := ad.st.Exec(ctx, "DELETE FROM admin_jobs WHERE state <> ? AND started_at < ?", JobRunning, now.Add(-7*24*time.Hour)); err != nil {
		ad.jobRecordErrors.Inc()
	}
	return ad.Go(ctx, func(ctx context.Context) {
		hbCtx, stopHB := context.WithCancel(ctx)
		hbDone := make(chan struct{})
		go func() {
			defer close(hbDone)
			ad.heartbeatLoop(hbCtx, j.ID)
		}()
		res, err := j.Run(ctx)
		stopHB()
		<-hbDone
		// The caller answers first: its replica knows the outcome now, and
		// an outage must not hold its answer for the retries below.
		if j.Done != nil {
			j.Done(res, err)
		}
		ad.finishJob(ctx, j, now, res, err)
	})
}

func (ad *Admin) heartbeatLoop(ctx context.Context, id string) {
	t := time.NewTicker(ad.heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := ad.st.Exec(ctx, "UPDATE admin_jobs SET heartbeat_at = ? WHERE id = ? AND state = ?", ad.now().UTC(), id, JobRunning); err != nil && ctx.Err() == nil {
			ad.jobRecordErrors.Inc()
		}
	}
}

// finishJob stores the outcome, trying a few times: a job that ran to its
// end must not read "owner gone" because one write failed. It runs even
// when the job was cancelled by Close, so the row says what happened.
func (ad *Admin) finishJob(ctx context.Context, j JobSpec, started time.Time, res any, runErr error) {
	state, text := JobSucceeded, ""
	if runErr != nil {
		state = JobFailed
		text = "the operation failed; see the service log"
		if j.Describe != nil {
			text = j.Describe(runErr)
		}
	}
	var result any
	if res != nil {
		if b, err := json.Marshal(res); err == nil {
			result = string(b)
		}
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for attempt := range 3 {
		now := ad.now().UTC()
		_, err := ad.st.Exec(wctx, "INSERT INTO admin_jobs (id, kind, state, replica, started_at, heartbeat_at, finished_at, error, result) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "+
			"ON CONFLICT (id) DO UPDATE SET state = excluded.state, heartbeat_at = excluded.heartbeat_at, finished_at = excluded.finished_at, error = excluded.error, result = excluded.result",
			j.ID, j.Kind, state, ad.replica, started, now, now, text, result)
		if err == nil {
			return
		}
		ad.jobRecordErrors.Inc()
		ad.log.Warn("store: recording a job's outcome failed", "job", j.ID, "attempt", attempt+1, "error", err.Error())
		select {
		case <-wctx.Done():
			return
		case <-ad.life.Done(): // shutting down: one attempt is all Close waits for
			return
		case <-time.After(time.Duration(attempt+1) * 500 * time.Millisecond):
		}
	}
}

// Job reads a job's row. A running job whose heartbeat is older than six
// heartbeats lost its owner (the replica died or was cut off): it is marked
// failed with "owner gone" first, once, by whichever replica reads it.
func (ad *Admin) Job(ctx context.Context, id string) (Job, error) {
	now := ad.now().UTC()
	if _, err := ad.st.Exec(ctx, "UPDATE admin_jobs SET state = ?, error = ?, finished_at = ? WHERE id = ? AND state = ? AND heartbeat_at < ?",
		JobFailed, "owner gone", now, id, JobRunning, now.Add(-6*ad.heartbeat)); err != nil {
		return Job{}, fmt.Errorf("store: job %s: %w", id, err)
	}
	var (
		j        Job
		finished sql.NullTime
		result   sql.NullString
	)
	err := ad.st.QueryRow(ctx, "SELECT id, kind, state, replica, started_at, heartbeat_at, finished_at, error, result FROM admin_jobs WHERE id = ?", id).
		Scan(&j.ID, &j.Kind, &j.State, &j.Replica, &j.StartedAt, &j.HeartbeatAt, &finished, &j.Error, &result)
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, fmt.Errorf("store: job %q: %w", id, ErrJobNotFound)
	}
	if err != nil {
		return Job{}, fmt.Errorf("store: job %s: %w", id, err)
	}
	j.StartedAt, j.HeartbeatAt = j.StartedAt.UTC(), j.HeartbeatAt.UTC()
	if finished.Valid {
		t := finished.Time.UTC()
		j.FinishedAt = &t
	}
	if result.Valid {
		j.Result = json.RawMessage(result.String)
	}
	return j, nil
}
