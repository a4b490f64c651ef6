package querycache

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Backend is what the query cache needs from the cache part. A Get error
// is treated as a miss and a Set error is ignored (both counted): the cache
// speeds queries up, it never decides whether they succeed. Set may keep val;
// the query cache does not touch it afterwards.
type Backend interface {
	Get(ctx context.Context, key string) ([]byte, bool, error)
	Set(ctx context.Context, key string, val []byte, ttl time.Duration) error
}

// SharedBackend is a Backend that every replica of the service reaches (the
// Redis tier), which the query cache detects with a type assertion. With it, the
// table versions live in the cache too, so a write through one replica makes
// every replica's next cached read of that table miss, not only its own.
//
// The versions are opaque random tokens stored with Set, one key per table; a
// write replaces its tables' tokens, and a cached result carries the tokens
// it was computed under and is served only while they are all unchanged. A
// token is never reused, so a version key that is evicted, expires or is lost
// in a Redis restart can only cause misses: an absent token is never a match,
// unlike a counter, which would start again at values old entries carry. That
// also means no atomic increment is needed, only Set.
//
// GetMulti returns the values stored by Set under keys, in order, with nil
// for a key that is absent or expired, and must read them in one round trip
// (Redis: MGET), which is what keeps a shared hit at one round trip: the
// tokens and the entry come back together. It must read what other replicas
// Set — the shared tier, or a client-side cache that the server invalidates
// (RESP3 tracking) — never a local copy that another replica's Set does not
// reach. When the shared tier is unreachable, GetMulti and Set must return an
// error rather than fall back to a local tier: the query cache then falls back to
// its own local versions (see Options.Backend for the staleness that leaves).
type SharedBackend interface {
	Backend
	GetMulti(ctx context.Context, keys []string) ([][]byte, error)
}

// Result is a query result as the query cache stores it: the driver's values
// (int64, float64, bool, []byte, string, time.Time or nil) by row.
type Result struct {
	Columns []string
	Rows    [][]any
}

// Statement is a read as the cache sees it. The store derives every field
// from the statement once and hands them over, so the cache needs no SQL
// knowledge of its own.
type Statement struct {
	// ID is the statement's fingerprint id: it starts the entry's key, and
	// the statistics count hits and misses per it.
	ID string
	// Normalized is the fingerprint's text, for the statistics.
	Normalized string
	// Text is the statement exactly as sent to the database. It is hashed
	// into the key, not only the fingerprint: two statements differing only
	// in an inlined literal share a fingerprint but not a result.
	Text string
	// Query is the statement as the caller wrote it, handed back to
	// Source.Load on a miss.
	Query string
}

// Source runs what the cache misses and keeps the per-statement figures:
// the store, which owns both the connections and the statement statistics.
type Source interface {
	// Load runs the read and returns its whole result.
	Load(ctx context.Context, query string, args []any) (*Result, error)
	// CacheHit counts a result served from the cache and returns the
	// execution time it saved.
	CacheHit(st Statement) time.Duration
	// CacheMiss counts a lookup that found nothing usable.
	CacheMiss(st Statement)
}

// ErrInvalid marks a lookup the cache refuses because of its input (an
// argument that cannot be part of a key); the store adds its own ErrInvalid.
var ErrInvalid = errors.New("invalid request")

// Options configure New.
type Options struct {
	// Backend holds the entries; nil disables caching (Query always loads).
	//
	// A plain Backend keys results on table versions kept in this
	// process: a write through this process invalidates at once, but a write
	// through another replica reaches this one's cached results only when
	// they expire (TTL). A SharedBackend keeps the versions in the cache
	// as well, so a write through any replica invalidates every replica's
	// results when it returns. While the shared cache is unreachable the
	// query cache falls back to its local versions; then a replica serves only
	// results it cached itself during that outage, which can miss writes
	// made through other replicas meanwhile for at most TTL, and a
	// write whose shared invalidation failed is re-sent before the shared
	// versions are used again, so other replicas may serve results older than
	// it until then, again for at most TTL.
	Backend Backend
	// TTL bounds how long a cached result lives; it must be positive.
	TTL time.Duration
	// Prefix starts every key. Replicas that share a cache and a database
	// must use the same prefix.
	Prefix string
	// DatabaseID names the database in shared result keys, so that replicas
	// share results only when they read the same database.
	DatabaseID string
	// Source runs misses and counts hits and misses per statement; required.
	Source Source
	// Registerer takes the smartcloudops_db_query_cache_* metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Cache is the query-result cache. It is safe for concurrent use.
type Cache struct {
	backend  Backend
	shared   *sharedVersions // nil unless backend is a SharedBackend
	versions *tableVersions
	ttl      time.Duration
	prefix   string
	dbID     string
	src      Source
	metrics  metrics
}

// metrics are the cache's Prometheus series.
type metrics struct {
	hit, miss, err, corrupt prometheus.Counter
	saved                   prometheus.Counter
}

// New makes a query cache; it registers its metrics with o.Registerer.
func New(o Options) (*Cache, error) {
	if o.Source == nil {
		return nil, errors.New("store: query cache: a source is required")
	}
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "smartcloudops_db_query_cache_requests_total",
		Help: "Query-result cache lookups by result (hit, miss, error, corrupt: a cached value that did not decode, served as a miss).",
	}, []string{"result"})
	c := &Cache{
		backend: o.Backend, versions: newTableVersions(), ttl: o.TTL, prefix: o.Prefix, dbID: o.DatabaseID, src: o.Source,
		metrics: metrics{
			hit: reqs.WithLabelValues("hit"), miss: reqs.WithLabelValues("miss"), err: reqs.WithLabelValues("error"), corrupt: reqs.WithLabelValues("corrupt"),
			saved: prometheus.NewCounter(prometheus.CounterOpts{
				Name: "smartcloudops_db_query_cache_saved_seconds_total",
				Help: "Database time saved by query-cache hits (each hit counts its statement's mean time).",
			}),
		},
	}
	if sc, ok := o.Backend.(SharedBackend); ok {
		c.shared = newSharedVersions(sc, o.Prefix, o.TTL, c.versions)
	}
	if o.Registerer != nil {
		for _, m := range []prometheus.Collector{reqs, c.metrics.saved} {
			if err := o.Registerer.Register(m); err != nil {
				return nil, fmt.Errorf("store: register metrics: %w", err)
			}
		}
	}
	return c, nil
}

// Enabled reports whether results are cached at all.
func (c *Cache) Enabled() bool { return c.backend != nil }

// TTL is how long a cached result lives.
func (c *Cache) TTL() time.Duration { return c.ttl }

// Run re-sends failed shared version writes every second until ctx ends,
// so a replica that stops reading and writing after an outage still lets
// the others see its last writes once the cache is back. Without shared
// versions it returns at once.
func (c *Cache) Run(ctx context.Context) {
	if c.shared != nil {
		c.shared.retryLoop(ctx, time.Second)
	}
}

// Invalidate records that tables changed: in this process, and in the shared
// cache when there is one.
func (c *Cache) Invalidate(ctx context.Context, tables ...string) {
	if len(tables) == 0 {
		return
	}
	c.versions.bump(tables...)
	if c.shared != nil {
		c.shared.bump(ctx, tables)
	}
}

// Query serves st from the cache, or loads it through the Source and caches
// the result. tables names every table the read reads, at least one: the
// key includes their current versions, so a write to any of them makes the
// next call miss. Without a backend it loads.
func (c *Cache) Query(ctx context.Context, st Statement, tables []string, args []any) (*Result, error) {
	if c.backend == nil {
		return c.src.Load(ctx, st.Query, args)
	}
	sorted := make([]string, len(tables))
	for i, t := range tables {
		sorted[i] = strings.ToLower(t)
	}
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	sum, err := querySum(st.Text, sorted, args)
	if err != nil {
		return nil, err
	}
	if c.shared != nil {
		if res, served, err := c.querySharedCache(ctx, st, sorted, sum, args); served {
			return res, err
		}
	}
	return c.queryLocalCache(ctx, st, sorted, sum, args)
}

// querySharedCache is the lookup under shared versions: one GetMulti brings
// the tables' tokens and the entry, which is served when it carries the same
// tokens. served is false when the shared cache failed and the caller should
// use the local versions instead.
func (c *Cache) querySharedCache(ctx context.Context, st Statement, tables []string, sum [16]byte, args []any) (res *Result, served bool, err error) {
	sv := c.shared
	if !sv.flush(ctx) {
		c.metrics.err.Inc()
		return nil, false, nil
	}
	keys := make([]string, len(tables)+1)
	for i, t := range tables {
		keys[i] = sv.key(t)
	}
	key := c.prefix + "q:" + c.dbID + ":" + st.ID + ":" + hex.EncodeToString(sum[:])
	keys[len(tables)] = key
	vals, err := sv.c.GetMulti(ctx, keys)
	if err != nil || len(vals) != len(keys) {
		sv.failed()
		c.metrics.err.Inc()
		return nil, false, nil
	}
	sv.ok()
	tokens := make([]byte, 0, tokenLen*len(tables))
	for i, v := range vals[:len(tables)] {
		if len(v) != tokenLen {
			// Never written, expired or evicted: start a new version. Entries
			// carrying any earlier token of this table can then never match.
			v = newToken()
			if err := sv.c.Set(ctx, keys[i], v, sv.ttl); err != nil {
				sv.failed()
				c.metrics.err.Inc()
				return nil, false, nil
			}
		}
		tokens = append(tokens, v...)
	}
	if entry := vals[len(tables)]; entry != nil {
		if len(entry) >= len(tokens) && bytes.Equal(entry[:len(tokens)], tokens) {
			if res, ok := c.decodeHit(st, entry[len(tokens):]); ok {
				return res, true, nil
			}
		} else {
			c.cacheMissed(st) // computed under versions since replaced
		}
	} else {
		c.cacheMissed(st)
	}
	res, err = c.src.Load(ctx, st.Query, args)
	if err != nil {
		return nil, true, err
	}
	// The tokens were read before the query ran, so a write that commits in
	// between replaces them and this entry is never served.
	c.cacheStore(ctx, key, tokens, res)
	return res, true, nil
}

// queryLocalCache is the lookup under this process's versions, which are in
// the key: prefix l: epoch.gen : query id : table=version… : hash.
func (c *Cache) queryLocalCache(ctx context.Context, st Statement, tables []string, sum [16]byte, args []any) (*Result, error) {
	b := make([]byte, 0, 96)
	b = append(b, c.prefix...)
	b = append(b, "l:"...)
	b = append(b, c.versions.epoch...)
	b = append(b, '.')
	b = strconv.AppendUint(b, c.versions.gen.Load(), 36)
	b = append(b, ':')
	b = append(b, st.ID...)
	for _, t := range tables {
		b = append(b, ':')
		b = append(b, t...)
		b = append(b, '=')
		b = strconv.AppendUint(b, c.versions.get(t), 36)
	}
	b = append(b, ':')
	b = hex.AppendEncode(b, sum[:])
	key := string(b)
	raw, ok, err := c.backend.Get(ctx, key)
	switch {
	case err != nil:
		c.metrics.err.Inc()
	case ok:
		if res, ok := c.decodeHit(st, raw); ok {
			return res, nil
		}
	default:
		c.cacheMissed(st)
	}
	res, err := c.src.Load(ctx, st.Query, args)
	if err != nil {
		return nil, err
	}
	c.cacheStore(ctx, key, nil, res)
	return res, nil
}

// decodeHit decodes a cached entry. An entry that does not decode (written by
// another release, truncated, foreign) is a miss, counted as corrupt; the
// caller's Set replaces it.
func (c *Cache) decodeHit(st Statement, raw []byte) (*Result, bool) {
	res, err := decodeResult(raw)
	if err != nil {
		c.metrics.corrupt.Inc()
		c.src.CacheMiss(st)
		return nil, false
	}
	c.metrics.hit.Inc()
	c.metrics.saved.Add(c.src.CacheHit(st).Seconds())
	return res, true
}

func (c *Cache) cacheMissed(st Statement) {
	c.metrics.miss.Inc()
	c.src.CacheMiss(st)
}

// cacheStore encodes res after head and stores it. A result the codec cannot
// represent is returned uncached.
func (c *Cache) cacheStore(ctx context.Context, key string, head []byte, res *Result) {
	val, err := appendResult(head, res)
	if err != nil {
		c.metrics.err.Inc()
		return
	}
	if err := c.backend.Set(ctx, key, val, c.ttl); err != nil {
		c.metrics.err.Inc()
	}
}

// Stats are the query cache's totals, as the statistics endpoint shows them.
type Stats struct {
	Enabled bool    `json:"enabled"`
	Hits    int64   `json:"hits"`
	Misses  int64   `json:"misses"`
	HitRate float64 `json:"hit_rate"`
	SavedMS float64 `json:"saved_ms"`
	TTL     string  `json:"ttl,omitempty"`
}
