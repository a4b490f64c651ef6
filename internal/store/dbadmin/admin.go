package dbadmin

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartcloudops/smartcloudops/internal/dburl"
	"github.com/smartcloudops/smartcloudops/internal/latency"
	"github.com/smartcloudops/smartcloudops/internal/leader"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/querycache"
)

// Options configure New.
type Options struct {
	// AutoIndex (DB_AUTO_INDEX) lets the advisor create the indexes it
	// suggests, every AdvisorInterval; otherwise only an admin call creates them.
	AutoIndex bool
	// AdvisorInterval is how often the automatic advisor runs. Default 10m.
	AdvisorInterval time.Duration
	// Logger receives the automatic advisor's outcomes. Default: discard.
	Logger *slog.Logger
	// Registerer takes smartcloudops_db_indexes_created_total; nil registers none.
	Registerer prometheus.Registerer
	// Now is the clock of reports and index records. Default time.Now.
	Now func() time.Time
	// Retention configures the rollup and retention job; its zero Interval
	// leaves the job off.
	Retention RetentionOptions
	// Replica names this process in the admin_jobs rows it owns.
	Replica string
	// JobHeartbeat is how often a running job's row is touched; a running
	// row untouched for six of these lost its owner and reads as failed.
	// Default 5s.
	JobHeartbeat time.Duration
	// Leader gates the periodic jobs (automatic advisor, rollup and
	// retention) when several replicas share the database: a tick runs
	// only while Leader.IsLeader, and the summary names the holder. nil:
	// this process always runs them. Calls made on purpose (Optimize,
	// RunRetention, CreateIndex) run regardless.
	Leader Leader
}

// Leader is the leadership of the periodic jobs (*leader.Elector).
type Leader interface {
	IsLeader() bool
	Status(ctx context.Context) (leader.Status, error)
}

// Admin administers one store's database: statistics report, index advice
// and creation, maintenance. It is safe for concurrent use.
type Admin struct {
	st              *store.Store
	diag            *store.Diagnostics
	kind            dburl.Kind
	read, write     *sql.DB
	log             *slog.Logger
	now             func() time.Time
	autoIndex       bool
	replica         string
	heartbeat       time.Duration
	jobRecordErrors prometheus.Counter

	indexesCreated prometheus.Counter
	retention      RetentionOptions
	rm             *retentionMetrics
	leader         Leader

	create  sync.Mutex // one index build at a time
	mu      sync.Mutex
	created []CreatedIndex

	// life ends when Close begins: the automatic advisor and every job
	// started by Go run under it, and bg counts them so Close can wait.
	life      context.Context
	stop      context.CancelFunc
	bg        sync.WaitGroup
	closeOnce sync.Once
	// jobsMu orders Go's bg.Add before Close's bg.Wait; closed refuses new
	// jobs once Close has begun.
	jobsMu sync.Mutex
	closed bool
}

// New administers st's database and, with AutoIndex, starts the automatic
// advisor, and with a Retention interval the rollup and retention job; Close
// stops them, and must run before st is closed. st must be migrated.
func New(st *store.Store, o Options) (*Admin, error) {
	if o.AdvisorInterval == 0 {
		o.AdvisorInterval = 10 * time.Minute
	}
	if o.AdvisorInterval < 0 {
		return nil, fmt.Errorf("store: advisor interval %s: must not be negative", o.AdvisorInterval)
	}
	if err := o.Retention.validate(); err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.JobHeartbeat <= 0 {
		o.JobHeartbeat = 5 * time.Second
	}
	ad := &Admin{
		replica: o.Replica, heartbeat: o.JobHeartbeat,
		jobRecordErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smartcloudops_db_job_record_errors_total",
			Help: "Writes of a database job's row (start, heartbeat, outcome) that failed; the job itself went on.",
		}),
		st: st, diag: st.Diagnostics(), kind: st.Kind(), read: st.Reader(), write: st.Writer(),
		log: o.Logger, now: o.Now, autoIndex: o.AutoIndex,
		indexesCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smartcloudops_db_indexes_created_total",
			Help: "Indexes created by the index advisor.",
		}),
		retention: o.Retention, rm: newRetentionMetrics(), leader: o.Leader,
	}
	if o.Registerer != nil {
		for _, c := range append([]prometheus.Collector{ad.indexesCreated, ad.jobRecordErrors}, ad.rm.collectors()...) {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("store: register metrics: %w", err)
			}
		}
	}
	ad.life, ad.stop = context.WithCancel(context.Background())
	if o.AutoIndex {
		ad.bg.Go(func() { ad.autoIndexLoop(ad.life, o.AdvisorInterval) })
	}
	if o.Retention.Interval > 0 {
		ad.bg.Go(func() { ad.retentionLoop(ad.life, o.Retention.Interval) })
	}
	return ad, nil
}

// Close stops the automatic advisor and the rollup and retention job, cancels the jobs started by Go, and
// waits for all of them, so that none outlives the Admin and the store can
// be closed next. A job ends as soon as its statement observes the
// cancellation, which both drivers pass to the database. It is safe to call
// more than once.
func (ad *Admin) Close() {
	ad.closeOnce.Do(func() {
		ad.jobsMu.Lock()
		ad.closed = true
		ad.jobsMu.Unlock()
		ad.stop()
		ad.bg.Wait()
	})
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Headline is the database part's figures for the service summary: what the
// store has measured since it opened.
type Headline struct {
	Driver string
	// Statements are every statement run, in seconds (store.Diagnostics.StatementLatency).
	Statements latency.HistogramSummary
	// Cache is the query cache's hits and the execution time they saved.
	Cache querycache.Stats
	// Leader is who runs the periodic jobs; nil without Options.Leader, or
	// when the database could not say.
	Leader *leader.Status
}

// Headline reports the database part's summary figures, from the store's
// own counters. It fails when the database does not answer a ping (the
// summary leaves the part out then); the ping runs on the raw handle, so it
// does not count among the statements it reports.
func (ad *Admin) Headline(ctx context.Context) (Headline, error) {
	if err := ad.read.PingContext(ctx); err != nil {
		return Headline{}, fmt.Errorf("store: headline: %w", err)
	}
	h := Headline{Driver: string(ad.kind), Statements: ad.diag.StatementLatency(), Cache: ad.diag.CacheStats()}
	if ad.leader != nil {
		// The ping passed, so a failure here is rare; the summary then
		// shows the database without the holder rather than nothing.
		if st, err := ad.leader.Status(ctx); err == nil {
			h.Leader = &st
		} else {
			ad.log.WarnContext(ctx, "leadership status", slog.String("error", err.Error()))
		}
	}
	return h, nil
}

// leads says whether this replica runs the periodic jobs now.
func (ad *Admin) leads() bool { return ad.leader == nil || ad.leader.IsLeader() }
