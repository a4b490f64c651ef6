// Package sharedstate keeps the state that replicas sharing one database must
// agree on — the active model, the runtime settings — in step: the database
// is the store of record, PostgreSQL's LISTEN/NOTIFY tells every replica of a
// change at commit (triggers in the migrations raise it, whatever wrote the
// row), and a periodic re-read catches what a lost listening connection
// missed. A notification carries no value: the replica re-reads the tables,
// so applying one twice, late or out of order changes nothing.
//
// On SQLite there is one process: the hub does not listen, and the tables
// only keep the state across restarts.
package sharedstate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartcloudops/smartcloudops/internal/store"
)

// Channel is the NOTIFY channel the migrations' triggers raise.
const Channel = "smartcloudops_shared"

// Options configure New.
type Options struct {
	// Resync is how often every topic is re-read even without a
	// notification, the safety net for one lost with the listening
	// connection. Default 30s; negative turns it off.
	Resync time.Duration
	// Retry is how soon a topic whose sync failed is tried again. Default 1s.
	Retry time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts to listen
	// again after the connection was lost; the wait starts at MinBackoff and
	// doubles. Defaults 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// Replica names this process in the listening session's
	// application_name, so pg_stat_activity shows whose it is.
	Replica string
	// Ping is how long the listening connection may stay silent before it is
	// checked with a round trip, so a connection dropped without a word is
	// found. Default 30s.
	Ping time.Duration
	// Logger receives reconnects and sync failures. Default: discard.
	Logger *slog.Logger
	// Registerer takes the smartcloudops_shared_state_* metrics; nil registers none.
	Registerer prometheus.Registerer
}

func (o *Options) defaults() {
	if o.Resync == 0 {
		o.Resync = 30 * time.Second
	}
	if o.Retry == 0 {
		o.Retry = time.Second
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.Ping == 0 {
		o.Ping = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// SyncFunc re-reads one topic's state from the database and applies it
// where it differs from what this replica holds. It must be idempotent.
type SyncFunc func(ctx context.Context) error

// Hub listens for changes and runs each topic's SyncFunc when one is
// notified, after every (re)connection and every Resync. It is safe for
// concurrent use.
type Hub struct {
	st  *store.Store
	o   Options
	log *slog.Logger
	m   *metrics

	mu      sync.Mutex
	topics  map[string]SyncFunc
	pending map[string]bool
	kick    chan struct{}

	listening atomic.Bool
	schema    atomic.Pointer[string]

	stop    context.CancelFunc
	wg      sync.WaitGroup
	started bool
}

// New makes a hub over st; Handle the topics, then Start it.
func New(st *store.Store, o Options) (*Hub, error) {
	o.defaults()
	if o.Retry < 0 || o.MinBackoff < 0 || o.MaxBackoff < 0 || o.Ping < 0 {
		return nil, errors.New("sharedstate: durations must not be negative")
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	return &Hub{st: st, o: o, log: o.Logger, m: m, topics: map[string]SyncFunc{}, pending: map[string]bool{},
		kick: make(chan struct{}, 1)}, nil
}

// Handle registers topic's sync ("model", "config": the names the
// triggers send). Call it before Start.
func (h *Hub) Handle(topic string, fn SyncFunc) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.topics[topic] = fn
}

// SyncAll runs every topic's sync once, now, and returns their errors
// joined: at start-up, before serving, so a restarted replica holds the
// shared state from its first request.
func (h *Hub) SyncAll(ctx context.Context) error {
	var errs []error
	for _, t := range h.topicNames() {
		if err := h.sync(ctx, t); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Listening reports whether the LISTEN connection is up (always false on SQLite).
func (h *Hub) Listening() bool { return h.listening.Load() }

// Start begins listening (PostgreSQL only), the periodic re-read and the
// worker that runs the syncs. Close stops them.
func (h *Hub) Start() {
	if h.st.PgPool() == nil {
		return // SQLite: one process, nothing to hear from
	}
	ctx, stop := context.WithCancel(context.Background())
	h.stop, h.started = stop, true
	h.wg.Add(3)
	go func() { defer h.wg.Done(); h.listenLoop(ctx) }()
	go func() { defer h.wg.Done(); h.resyncLoop(ctx) }()
	go func() { defer h.wg.Done(); h.worker(ctx) }()
}

// Close stops the hub and waits for its goroutines. Call it before the store is closed.
func (h *Hub) Close() {
	if !h.started {
		return
	}
	h.stop()
	h.wg.Wait()
}

func (h *Hub) topicNames() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.topics))
	for t := range h.topics {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// mark queues topics for the worker; "" queues every topic.
func (h *Hub) mark(topics ...string) {
	h.mu.Lock()
	for _, t := range topics {
		if t == "" {
			for name := range h.topics {
				h.pending[name] = true
			}
			continue
		}
		if _, ok := h.topics[t]; ok {
			h.pending[t] = true
		}
	}
	h.mu.Unlock()
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

func (h *Hub) sync(ctx context.Context, topic string) error {
	h.mu.Lock()
	fn := h.topics[topic]
	h.mu.Unlock()
	if fn == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := fn(ctx); err != nil {
		h.m.syncs.WithLabelValues(topic, "error").Inc()
		return fmt.Errorf("sharedstate: sync %s: %w", topic, err)
	}
	h.m.syncs.WithLabelValues(topic, "ok").Inc()
	return nil
}

// worker runs the queued syncs one at a time; a failed one is queued again
// after Retry.
func (h *Hub) worker(ctx context.Context) {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	for {
		select {
		case <-ctx.Done():
			retry.Stop()
			return
		case <-h.kick:
		case <-retry.C:
		}
		h.mu.Lock()
		todo := make([]string, 0, len(h.pending))
		for t := range h.pending {
			todo = append(todo, t)
		}
		clear(h.pending)
		h.mu.Unlock()
		sort.Strings(todo)
		var failed []string
		for _, t := range todo {
			if err := h.sync(ctx, t); err != nil && ctx.Err() == nil {
				h.log.Warn("sharedstate: sync failed; retrying", slog.String("topic", t), slog.String("error", err.Error()))
				failed = append(failed, t)
			}
		}
		if len(failed) > 0 {
			h.mu.Lock()
			for _, t := range failed {
				h.pending[t] = true
			}
			h.mu.Unlock()
			retry.Reset(h.o.Retry)
		}
	}
}

func (h *Hub) resyncLoop(ctx context.Context) {
	if h.o.Resync <= 0 {
		return
	}
	t := time.NewTicker(h.o.Resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.m.resyncs.Inc()
			h.mark("")
		}
	}
}

// listenLoop keeps one connection listening, reconnecting with a doubling
// backoff (reset once a connection has lasted a minute).
func (h *Hub) listenLoop(ctx context.Context) {
	backoff := h.o.MinBackoff
	for ctx.Err() == nil {
		began := time.Now()
		err := h.listen(ctx)
		h.listening.Store(false)
		h.m.listening.Set(0)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > time.Minute {
			backoff = h.o.MinBackoff
		}
		h.m.reconnects.Inc()
		h.log.Warn("sharedstate: listening connection lost; reconnecting", slog.String("error", err.Error()),
			slog.Duration("backoff", backoff))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, h.o.MaxBackoff)
	}
}

// notice is the payload the triggers send.
type notice struct {
	Topic  string `json:"topic"`
	Schema string `json:"schema"`
}

// listen takes a connection out of the store's pool for good (a LISTEN
// session must not go back to other users), listens, queues every topic (a
// change may have been missed while not listening) and waits for
// notifications until the connection fails or ctx ends.
func (h *Hub) listen(ctx context.Context) error {
	pc, err := h.st.PgPool().Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire: %w", err)
	}
	conn := pc.Hijack()
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "SELECT set_config('application_name', $1, false)", ListenerName(h.o.Replica)); err != nil {
		return fmt.Errorf("name the session: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{Channel}.Sanitize()); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	var schema string
	if err := conn.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return fmt.Errorf("current schema: %w", err)
	}
	h.schema.Store(&schema)
	h.listening.Store(true)
	h.m.listening.Set(1)
	h.mark("")
	for {
		wctx, cancel := context.WithTimeout(ctx, h.o.Ping)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed() {
				pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
				err = conn.Ping(pctx)
				pcancel()
				if err == nil {
					continue
				}
			}
			return fmt.Errorf("wait: %w", err)
		}
		var nt notice
		if err := json.Unmarshal([]byte(n.Payload), &nt); err != nil || nt.Topic == "" {
			h.m.notifications.WithLabelValues("malformed").Inc()
			continue
		}
		if nt.Schema != schema {
			h.m.notifications.WithLabelValues("other_schema").Inc()
			continue
		}
		h.m.notifications.WithLabelValues(nt.Topic).Inc()
		h.mark(nt.Topic)
	}
}

// ListenerName is the application_name of replica's listening session.
func ListenerName(replica string) string {
	n := "smartcloudops-listen " + replica
	if len(n) > 63 { // PostgreSQL truncates names to 63 bytes
		n = n[:63]
	}
	return n
}

// ReplicaID is this process's name among the replicas: configured (the
// SMARTCLOUDOPS_REPLICA_ID setting) or, when that is empty, the host name,
// the process id and a random suffix, so two processes never share one,
// even in containers that all run as pid 1.
func ReplicaID(configured string) string {
	if configured != "" {
		return configured
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "host"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}
