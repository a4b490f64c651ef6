package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/dbadmin"
)

// Database is what the /performance/database/* handlers need: a
// dbadmin.Admin over the store.
type Database interface {
	Optimize(ctx context.Context, o dbadmin.OptimizeOptions) (dbadmin.OptimizeReport, error)
	Stats(ctx context.Context, o dbadmin.StatsOptions) (dbadmin.DatabaseStats, error)
	Indexes(ctx context.Context) (dbadmin.IndexReport, error)
	CreateIndex(ctx context.Context, req dbadmin.IndexRequest) (dbadmin.CreatedIndex, error)
	// Go runs a job that outlives its request, owned (cancelled on
	// shutdown, and waited for) by the Database, not by the handler.
	Go(ctx context.Context, job func(ctx context.Context)) error
	// Headline is the database part of GET /performance/summary.
	Headline(ctx context.Context) (dbadmin.Headline, error)
}

// SharedJobs is a Database that records its jobs where every replica
// sharing the database reads them (dbadmin.Admin): the status URL of a job
// started on one replica then answers on all.
type SharedJobs interface {
	GoJob(ctx context.Context, j dbadmin.JobSpec) error
	Job(ctx context.Context, id string) (dbadmin.Job, error)
}

// Job limits: how long a request waits for its job before answering 202, the
// longest a job may run, and how many finished jobs stay visible.
const (
	defaultJobWait = 2 * time.Second
	maxJobWait     = 30 * time.Second
	jobTimeout     = time.Hour
	keepJobs       = 50
)

// databaseAPI holds the state of the database endpoints: the jobs that
// outlive their request.
type databaseAPI struct {
	s *Server

	mu   sync.Mutex
	jobs map[string]*job
	ids  []string // in creation order, for retention
}

func newDatabaseAPI(s *Server) *databaseAPI {
	return &databaseAPI{s: s, jobs: map[string]*job{}}
}

// job is a long database operation (maintenance, an index build) running
// detached from the request that started it.
type job struct {
	ID         string     `json:"id"`
	Kind       string     `json:"kind"`
	Status     string     `json:"status"` // running, succeeded, failed
	StatusURL  string     `json:"status_url"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Result     any        `json:"result,omitempty"`
	Error      string     `json:"error,omitempty"`
	// Replica is the replica that runs (or ran) the job, when read from
	// the shared row.
	Replica string `json:"replica,omitempty"`

	err  error
	done chan struct{}
}

func (d *databaseAPI) db() (Database, error) {
	if d.s.deps.Database == nil {
		return nil, Errorf(CodeUnavailable, "the database endpoints are not enabled")
	}
	return d.s.deps.Database, nil
}

// dbError maps a store error to a problem: bad input is the client's, an
// unreachable database is 503 (retry later), anything else is internal.
func dbError(err error) error {
	switch {
	case errors.Is(err, store.ErrInvalid):
		msg := err.Error()
		if i := strings.LastIndex(msg, "store: "); i >= 0 {
			msg = msg[i+len("store: "):]
		}
		return Errorf(CodeValidation, "%s", msg)
	case store.Unavailable(err):
		return &Error{Code: CodeUnavailable, Detail: "the database is unavailable; retry later", Err: err, RetryAfter: 5 * time.Second}
	}
	return err
}

// stats serves GET /performance/database/stats?sort=total_time&limit=20.
func (d *databaseAPI) stats(w http.ResponseWriter, r *http.Request) error {
	db, err := d.db()
	if err != nil {
		return err
	}
	o := dbadmin.StatsOptions{Sort: r.URL.Query().Get("sort"), Limit: 20}
	if o.Sort != "" && !slices.Contains(store.SortKeys, o.Sort) {
		return Invalid(FieldError{Field: "sort", Detail: "must be one of " + strings.Join(store.SortKeys, ", ")})
	}
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			return Invalid(FieldError{Field: "limit", Detail: "must be an integer from 1 to 500"})
		}
		o.Limit = n
	}
	st, err := db.Stats(r.Context(), o)
	if err != nil {
		return dbError(err)
	}
	writeJSON(w, r, http.StatusOK, st)
	return nil
}

// indexes serves GET /performance/database/indexes.
func (d *databaseAPI) indexes(w http.ResponseWriter, r *http.Request) error {
	db, err := d.db()
	if err != nil {
		return err
	}
	rep, err := db.Indexes(r.Context())
	if err != nil {
		return dbError(err)
	}
	writeJSON(w, r, http.StatusOK, rep)
	return nil
}

// createIndex serves POST /performance/database/indexes (admin): a
// suggestion by id, or a table and columns. A long build becomes a job.
func (d *databaseAPI) createIndex(w http.ResponseWriter, r *http.Request) error {
	db, err := d.db()
	if err != nil {
		return err
	}
	var req dbadmin.IndexRequest
	if err := decodeJSON(r, &req, false); err != nil {
		return err
	}
	if req.SuggestionID == "" && (req.Table == "" || len(req.Columns) == 0) {
		return Invalid(FieldError{Field: "suggestion_id", Detail: "give a suggestion_id, or a table and columns"})
	}
	wait, err := jobWait(r)
	if err != nil {
		return err
	}
	j, err := d.start(r, db, "create_index", func(ctx context.Context) (any, error) { return db.CreateIndex(ctx, req) })
	if err != nil {
		return err
	}
	return d.answer(w, r, j, wait, http.StatusCreated)
}

// optimizeRequest is the body of POST /performance/database/optimize.
type optimizeRequest struct {
	// Vacuum also rewrites the SQLite file (slow, takes the write lock).
	Vacuum bool `json:"vacuum"`
}

// optimize serves POST /performance/database/optimize (admin). It reports
// each step as it went; a run longer than the wait becomes a job.
func (d *databaseAPI) optimize(w http.ResponseWriter, r *http.Request) error {
	db, err := d.db()
	if err != nil {
		return err
	}
	var req optimizeRequest
	if err := decodeJSON(r, &req, true); err != nil {
		return err
	}
	wait, err := jobWait(r)
	if err != nil {
		return err
	}
	j, err := d.start(r, db, "optimize", func(ctx context.Context) (any, error) {
		return db.Optimize(ctx, dbadmin.OptimizeOptions{Vacuum: req.Vacuum})
	})
	if err != nil {
		return err
	}
	return d.answer(w, r, j, wait, http.StatusOK)
}

// jobWait reads ?wait= (a duration, default 2s, at most 30s): how long the
// request waits for the result before answering 202 with a status URL.
func jobWait(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return defaultJobWait, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		if n, nerr := strconv.Atoi(v); nerr == nil {
			d, err = time.Duration(n)*time.Second, nil
		}
	}
	if err != nil || d < 0 || d > maxJobWait {
		return 0, Invalid(FieldError{Field: "wait", Detail: "must be a duration from 0s to 30s"})
	}
	return d, nil
}

// start runs fn as a job owned by db: db detaches it from the request's
// cancellation (a client hanging up must not abort a VACUUM half-way),
// cancels it on shutdown and waits for it; here it is only bounded in time
// and recorded for the status endpoint.
func (d *databaseAPI) start(r *http.Request, db Database, kind string, fn func(ctx context.Context) (any, error)) (*job, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	j := &job{ID: id, Kind: kind, Status: "running", StatusURL: "/performance/database/jobs/" + id, StartedAt: d.s.now().UTC(), done: make(chan struct{})}
	reqID := RequestID(r.Context())
	finish := func(ctx context.Context, res any, err error) {
		now := d.s.now().UTC()
		d.mu.Lock()
		j.Result, j.err, j.FinishedAt = res, err, &now
		j.Status = "succeeded"
		if err != nil {
			j.Status = "failed"
			j.Error = problemDetail(dbError(err))
			d.s.log.ErrorContext(ctx, "database job failed", slog.String("job", id), slog.String("kind", kind),
				slog.String("request_id", reqID), slog.String("error", err.Error()))
		}
		d.mu.Unlock()
		close(j.done)
	}
	var err error
	if sj, ok := db.(SharedJobs); ok {
		err = sj.GoJob(r.Context(), dbadmin.JobSpec{ID: id, Kind: kind,
			Run: func(ctx context.Context) (any, error) {
				ctx, cancel := context.WithTimeout(ctx, jobTimeout)
				defer cancel()
				return fn(ctx)
			},
			Describe: func(err error) string { return problemDetail(dbError(err)) },
			Done:     func(res any, err error) { finish(context.WithoutCancel(r.Context()), res, err) },
		})
	} else {
		err = db.Go(r.Context(), func(ctx context.Context) {
			ctx, cancel := context.WithTimeout(ctx, jobTimeout)
			defer cancel()
			res, err := fn(ctx)
			finish(ctx, res, err)
		})
	}
	if err != nil {
		return nil, dbError(err)
	}
	d.mu.Lock()
	d.jobs[id] = j
	d.ids = append(d.ids, id)
	d.trim()
	d.mu.Unlock()
	return j, nil
}

// trim drops the oldest finished jobs beyond keepJobs. Call with mu held.
func (d *databaseAPI) trim() {
	for len(d.ids) > keepJobs {
		dropped := false
		for i, id := range d.ids {
			if d.jobs[id].Status != "running" {
				delete(d.jobs, id)
				d.ids = append(d.ids[:i], d.ids[i+1:]...)
				dropped = true
				break
			}
		}
		if !dropped {
			return
		}
	}
}

func problemDetail(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Detail
	}
	return "the operation failed; see the service log"
}

// answer waits up to wait for the job: finished, it sends the result (okStatus,
// or the failure); still running, 202 with the status URL in Location.
func (d *databaseAPI) answer(w http.ResponseWriter, r *http.Request, j *job, wait time.Duration, okStatus int) error {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-j.done:
	case <-t.C:
		d.mu.Lock()
		body := *j
		d.mu.Unlock()
		w.Header().Set("Location", j.StatusURL)
		writeJSON(w, r, http.StatusAccepted, &body)
		return nil
	case <-r.Context().Done():
		return Errorf(CodeUnavailable, "the request ended; the job continues at %s", j.StatusURL)
	}
	if j.err == nil {
		writeJSON(w, r, okStatus, j.Result)
		return nil
	}
	// A report with per-step outcomes is the useful part of a failure: send
	// it, marked failed, rather than hide it behind a bare problem.
	switch res := j.Result.(type) {
	case dbadmin.OptimizeReport:
		if !errors.Is(j.err, store.ErrInvalid) {
			writeJSON(w, r, http.StatusServiceUnavailable, res)
			return nil
		}
	case dbadmin.CreatedIndex:
		if res.Name != "" && !errors.Is(j.err, store.ErrInvalid) {
			writeJSON(w, r, http.StatusServiceUnavailable, res)
			return nil
		}
	}
	return dbError(j.err)
}

// jobStatus serves GET /performance/database/jobs/{id}.
func (d *databaseAPI) jobStatus(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	d.mu.Lock()
	j, ok := d.jobs[id]
	var body job
	if ok {
		body = *j
	}
	d.mu.Unlock()
	if !ok {
		// Started on another replica (or on this one before a restart): the
		// shared row says how it went.
		if sj, shared := d.s.deps.Database.(SharedJobs); shared {
			row, err := sj.Job(r.Context(), id)
			if err == nil {
				writeJSON(w, r, http.StatusOK, jobFromRow(row))
				return nil
			}
			if !errors.Is(err, dbadmin.ErrJobNotFound) {
				return dbError(err)
			}
		}
		return Errorf(CodeNotFound, "no database job %q (finished jobs are kept for a while, then dropped)", id)
	}
	writeJSON(w, r, http.StatusOK, &body)
	return nil
}

// jobFromRow is a shared job row in the status endpoint's shape.
func jobFromRow(row dbadmin.Job) *job {
	j := &job{ID: row.ID, Kind: row.Kind, Status: row.State, StatusURL: "/performance/database/jobs/" + row.ID,
		StartedAt: row.StartedAt, FinishedAt: row.FinishedAt, Error: row.Error, Replica: row.Replica}
	if len(row.Result) > 0 {
		j.Result = row.Result
	}
	return j
}
