package leader

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// announcePrefix marks a lock session's application_name; PostgreSQL keeps
// at most 63 bytes of it, so the replica id is cut to fit.
const (
	announcePrefix = "sco-leader "
	maxAppName     = 63
)

// announce is the application_name a leader sets on its lock session:
// "sco-leader <unix seconds> <replica id>".
func announce(since time.Time, replica string) string {
	s := announcePrefix + strconv.FormatInt(since.Unix(), 10) + " " + replica
	if len(s) > maxAppName {
		s = s[:maxAppName]
	}
	return s
}

// parseAnnounce reads announce's form back; ok is false for anything else,
// such as a session that has not announced yet.
func parseAnnounce(s string) (since time.Time, replica string, ok bool) {
	rest, found := strings.CutPrefix(s, announcePrefix)
	if !found {
		return time.Time{}, "", false
	}
	ts, replica, found := strings.Cut(rest, " ")
	if !found || replica == "" {
		return time.Time{}, "", false
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sec < 0 {
		return time.Time{}, "", false
	}
	return time.Unix(sec, 0).UTC(), replica, true
}

// holderQuery finds the session holding the advisory lock on a bigint key in
// this database: PostgreSQL splits the key into classid (high 32 bits) and
// objid (low 32 bits), with objsubid 1 for the one-bigint form.
const holderQuery = `SELECT a.application_name
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid::bigint = $1 AND l.objid::bigint = $2`

// Status reports this replica's part and, asking the database, which replica
// holds the duty. A database that does not answer leaves Holder empty and
// returns the error with the rest filled in.
func (e *Elector) Status(ctx context.Context) (Status, error) {
	e.mu.Lock()
	st := Status{Duty: e.o.Duty, Replica: e.o.ReplicaID, Leader: e.leader, Transitions: e.transitions}
	since := e.since
	e.mu.Unlock()
	if e.pool == nil {
		if st.Leader {
			st.Holder, st.HolderSince = st.Replica, &since
		}
		return st, nil
	}
	key := e.key.Load()
	if key == 0 {
		// Not connected yet: nobody is known to hold the duty.
		return st, nil
	}
	hi, lo := uint32(uint64(key)>>32), uint32(uint64(key))
	var app string
	err := e.pool.QueryRow(ctx, holderQuery, int64(hi), int64(lo)).Scan(&app)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return st, nil
	case err != nil:
		return st, fmt.Errorf("leader: find holder of %s: %w", e.o.Duty, err)
	}
	if t, id, ok := parseAnnounce(app); ok {
		st.Holder, st.HolderSince = id, &t
	} else {
		// Held by a session that has not announced yet (it is about to).
		st.Holder = "unknown"
	}
	return st, nil
}

// metrics are one duty's series.
type metrics struct {
	leader      prometheus.Gauge
	transitions *prometheus.CounterVec
	errors      *prometheus.CounterVec
}

func newMetrics(duty string) *metrics {
	l := prometheus.Labels{"duty": duty}
	m := &metrics{
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "smartcloudops_leader", ConstLabels: l,
			Help: "1 while this replica holds the duty's advisory lock and runs its periodic work, else 0.",
		}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartcloudops_leader_transitions_total", ConstLabels: l,
			Help: "Changes of this replica's leadership of the duty, by direction (acquired, lost).",
		}, []string{"direction"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartcloudops_leader_errors_total", ConstLabels: l,
			Help: "Leadership faults: acquire (could not connect or try the lock), check (the leader's lock connection failed its ping; it stepped down), announce (could not name itself on the lock session).",
		}, []string{"step"}),
	}
	for _, d := range []string{"acquired", "lost"} {
		m.transitions.WithLabelValues(d)
	}
	for _, s := range []string{"acquire", "check", "announce"} {
		m.errors.WithLabelValues(s)
	}
	return m
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.leader, m.transitions, m.errors} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (m *metrics) set(leader bool) {
	if leader {
		m.leader.Set(1)
		m.transitions.WithLabelValues("acquired").Inc()
		return
	}
	m.leader.Set(0)
	m.transitions.WithLabelValues("lost").Inc()
}
