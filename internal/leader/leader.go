// Package leader elects one replica, among those sharing a PostgreSQL
// database, to run a periodic duty (retraining, the index advisor, the
// rollup and retention job). It uses a PostgreSQL session advisory lock held
// on a dedicated connection: the lock lives exactly as long as that
// connection, so when the leader dies, or its connection does, PostgreSQL
// releases the lock and the next replica that tries takes it. There is no
// consensus of our own and no lease table to expire.
//
// On SQLite (one process owns the file) there is nobody to compete with: an
// Elector built without a pool is always the leader.
package leader

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// defaultReplicaID is hostname-pid, which tells replicas apart both
// across hosts and on one host; cmd passes the configured id instead
// (SMARTCLOUDOPS_REPLICA_ID).
func defaultReplicaID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	return host + "-" + strconv.Itoa(os.Getpid())
}

// Options configure New.
type Options struct {
	// Duty names what the lock guards; it labels the metrics and, hashed,
	// is the advisory lock key. Default "periodic".
	Duty string
	// Key is the advisory lock key. Default: a hash of Duty and the
	// connection's current_schema(), so replicas of one deployment (one
	// schema) exclude each other and deployments in other schemas of the
	// same database do not. Advisory locks are per database already.
	Key int64
	// ReplicaID names this replica to the others. Default hostname-pid.
	ReplicaID string
	// RetryInterval is how often a follower tries to take the lock. Default 5s.
	RetryInterval time.Duration
	// CheckInterval is how often the leader pings its connection; a failed
	// ping steps down at once. Default 3s.
	CheckInterval time.Duration
	// Registerer takes smartcloudops_leader and its counters; nil registers none.
	Registerer prometheus.Registerer
	// Logger hears transitions and errors. Default: discard.
	Logger *slog.Logger
	// Now is the clock of Since. Default time.Now.
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.Duty == "" {
		o.Duty = "periodic"
	}
	if o.ReplicaID == "" {
		o.ReplicaID = defaultReplicaID()
	}
	if o.RetryInterval == 0 {
		o.RetryInterval = 5 * time.Second
	}
	if o.CheckInterval == 0 {
		o.CheckInterval = 3 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// lockKey is the default advisory lock key of duty in schema.
func lockKey(duty, schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("smartcloudops/leader/" + duty + "/" + schema))
	return int64(h.Sum64())
}

// Status is what the summary shows of one duty's leadership.
type Status struct {
	Duty string `json:"duty"`
	// Replica is this replica's id; Leader says whether it holds the duty.
	Replica string `json:"replica"`
	Leader  bool   `json:"leader"`
	// Holder is the id of the replica holding the duty, and HolderSince when
	// it took it, as the holder announced them on its lock connection; empty
	// when nobody holds it or the database could not be asked.
	Holder      string     `json:"holder,omitempty"`
	HolderSince *time.Time `json:"holder_since,omitempty"`
	// Transitions counts this replica's changes of leadership since start.
	Transitions uint64 `json:"transitions"`
}

// Elector holds or waits for one duty's lock. Its methods are safe for
// concurrent use.
type Elector struct {
	o    Options
	pool *pgxpool.Pool
	m    *metrics
	// key is the lock key, 0 until the first connection has named its
	// schema (when Options.Key is 0).
	key atomic.Int64

	mu          sync.Mutex
	leader      bool
	since       time.Time
	transitions uint64
	watchers    []func(bool)

	// conn is the dedicated lock connection, owned by the run goroutine.
	conn *pgx.Conn

	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

// New starts competing for the duty's lock on pool and returns at once; the
// first attempt runs immediately. A nil pool (SQLite: a single process) makes
// the Elector the leader from the start, for good. Close releases the lock.
func New(pool *pgxpool.Pool, o Options) (*Elector, error) {
	if o.RetryInterval < 0 || o.CheckInterval < 0 {
		return nil, fmt.Errorf("leader: intervals must not be negative: retry %s, check %s", o.RetryInterval, o.CheckInterval)
	}
	o.defaults()
	m := newMetrics(o.Duty)
	if o.Registerer != nil {
		if err := m.register(o.Registerer); err != nil {
			return nil, fmt.Errorf("leader: register metrics: %w", err)
		}
	}
	e := &Elector{o: o, pool: pool, m: m, done: make(chan struct{})}
	e.key.Store(o.Key)
	if pool == nil {
		e.setLeader(true, o.Now())
		close(e.done)
		e.stop = func() {}
		return e, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.stop = cancel
	go e.run(ctx)
	return e, nil
}

// Duty names the duty this Elector competes for.
func (e *Elector) Duty() string { return e.o.Duty }

// ReplicaID is this replica's id as the others see it.
func (e *Elector) ReplicaID() string { return e.o.ReplicaID }

// IsLeader says whether this replica holds the duty now. Periodic jobs ask
// at each tick and skip the tick when it is false.
func (e *Elector) IsLeader() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leader
}

// OnChange calls f with the new state at every change of leadership, from
// the Elector's goroutine; f must not block. It is not called for the state
// at the time of registration: read IsLeader for that.
func (e *Elector) OnChange(f func(leader bool)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.watchers = append(e.watchers, f)
}

// Close steps down, releasing the lock so another replica can take over
// within its retry interval, and waits for the Elector's goroutine. It is
// safe to call more than once.
func (e *Elector) Close() {
	e.closeOnce.Do(func() {
		e.stop()
		<-e.done
	})
}

// setLeader records a change of leadership at time at and tells the
// metrics, the log and the OnChange callbacks.
func (e *Elector) setLeader(v bool, at time.Time) {
	e.mu.Lock()
	if e.leader == v {
		e.mu.Unlock()
		return
	}
	e.leader = v
	e.since = time.Time{}
	if v {
		e.since = at
	}
	e.transitions++
	ws := append([]func(bool){}, e.watchers...)
	e.mu.Unlock()
	e.m.set(v)
	if v {
		e.o.Logger.Info("leader: took the duty", slog.String("duty", e.o.Duty), slog.String("replica", e.o.ReplicaID))
	} else {
		e.o.Logger.Warn("leader: stepped down", slog.String("duty", e.o.Duty), slog.String("replica", e.o.ReplicaID))
	}
	for _, f := range ws {
		f(v)
	}
}

// run tries for the lock while following and checks the connection while
// leading, until ctx ends.
func (e *Elector) run(ctx context.Context) {
	defer close(e.done)
	defer e.dropConn(true)
	for {
		wait := e.o.RetryInterval
		if e.IsLeader() {
			wait = e.o.CheckInterval
			if err := e.check(ctx); err != nil && ctx.Err() == nil {
				e.m.errors.WithLabelValues("check").Inc()
				e.o.Logger.Warn("leader: lock connection lost", slog.String("duty", e.o.Duty), slog.String("error", err.Error()))
				e.dropConn(false)
				e.setLeader(false, time.Time{})
				// Sit out two tries: a replica whose session died may have a
				// bad path to the database, so the others get first go.
				wait = 2 * e.o.RetryInterval
			}
		} else if err := e.try(ctx); err != nil && ctx.Err() == nil {
			e.m.errors.WithLabelValues("acquire").Inc()
			e.o.Logger.Warn("leader: could not try for the lock", slog.String("duty", e.o.Duty), slog.String("error", err.Error()))
			e.dropConn(false)
		}
		if ctx.Err() != nil {
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// try takes the lock when it is free. The follower keeps its connection
// between tries, so a try costs one round trip, not a connection.
func (e *Elector) try(ctx context.Context) error {
	if e.conn == nil {
		actx, cancel := context.WithTimeout(ctx, e.o.RetryInterval+5*time.Second)
		defer cancel()
		pc, err := e.pool.Acquire(actx)
		if err != nil {
			return fmt.Errorf("leader: acquire connection: %w", err)
		}
		// Hijacked, the connection leaves the pool and no longer counts
		// against its size: the pool's other users are not short of one,
		// and the pool will never hand our lock's session to anyone else.
		e.conn = pc.Hijack()
	}
	qctx, cancel := context.WithTimeout(ctx, e.o.RetryInterval+5*time.Second)
	defer cancel()
	if e.key.Load() == 0 {
		var schema string
		if err := e.conn.QueryRow(qctx, "SELECT coalesce(current_schema(), '')").Scan(&schema); err != nil {
			return fmt.Errorf("leader: read current schema: %w", err)
		}
		e.key.Store(lockKey(e.o.Duty, schema))
	}
	key := e.key.Load()
	var got bool
	if err := e.conn.QueryRow(qctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&got); err != nil {
		return fmt.Errorf("leader: try lock %d: %w", key, err)
	}
	if !got {
		return nil
	}
	// Announce who holds the lock and since when on the lock's own session,
	// so every replica can name the holder from pg_stat_activity; it goes
	// when the session goes, like the lock.
	since := e.o.Now()
	name := announce(since, e.o.ReplicaID)
	if _, err := e.conn.Exec(qctx, "SELECT set_config('application_name', $1, false)", name); err != nil {
		// The lock is ours all the same; only the summary loses the name.
		e.m.errors.WithLabelValues("announce").Inc()
	}
	e.setLeader(true, since)
	return nil
}

// check pings the lock connection: while the session lives, the lock is ours.
func (e *Elector) check(ctx context.Context) error {
	if e.conn == nil {
		return errors.New("leader: no lock connection")
	}
	pctx, cancel := context.WithTimeout(ctx, e.o.CheckInterval)
	defer cancel()
	if err := e.conn.Ping(pctx); err != nil {
		return fmt.Errorf("leader: ping lock connection: %w", err)
	}
	return nil
}

// dropConn closes the lock connection; closing ends the session and so
// releases the lock. On shutdown it also steps down.
func (e *Elector) dropConn(final bool) {
	if e.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		// Unlock first so the lock is free even if the close's Terminate
		// message is lost; the error is moot, the close follows.
		if final && e.IsLeader() {
			_, _ = e.conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", e.key.Load())
		}
		_ = e.conn.Close(ctx)
		cancel()
		e.conn = nil
	}
	if final {
		e.setLeader(false, time.Time{})
	}
}
