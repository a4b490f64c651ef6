package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/config"
)

// ResultCache is what the query cache needs from the cache part. A Get error
// is treated as a miss and a Set error is ignored (both counted): the cache
// speeds queries up, it never decides whether they succeed. Set may keep val;
// the store does not touch it afterwards.
type ResultCache interface {
	Get(ctx context.Context, key string) ([]byte, bool, error)
	Set(ctx context.Context, key string, val []byte, ttl time.Duration) error
}

// SharedCache is a ResultCache that every replica of the service reaches (the
// Redis tier), which the store detects with a type assertion. With it, the
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
// error rather than fall back to a local tier: the store then falls back to
// its own local versions (see Options.Cache for the staleness that leaves).
type SharedCache interface {
	ResultCache
	GetMulti(ctx context.Context, keys []string) ([][]byte, error)
}

// tokenLen is the size of a shared version token.
const tokenLen = 8

func newToken() []byte {
	return binary.LittleEndian.AppendUint64(make([]byte, 0, tokenLen), mrand.Uint64())
}

// tableVersions counts writes per table, in this process. A cache key embeds
// the versions of the tables its query reads; a write bumps them, so later
// lookups build a different key and an entry made before the write is never
// found again. The epoch, random per Store, keeps keys from a previous process
// (whose counters started at the same numbers) from matching; gen changes each
// time the shared versions become unreachable, so entries cached during one
// outage are not served in a later one.
type tableVersions struct {
	epoch string
	gen   atomic.Uint64
	mu    sync.RWMutex
	v     map[string]*atomic.Uint64
}

func newTableVersions() *tableVersions {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &tableVersions{epoch: hex.EncodeToString(b[:]), v: map[string]*atomic.Uint64{}}
}

func (t *tableVersions) counter(table string) *atomic.Uint64 {
	table = strings.ToLower(table)
	t.mu.RLock()
	c := t.v[table]
	t.mu.RUnlock()
	if c != nil {
		return c
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if c = t.v[table]; c == nil {
		c = new(atomic.Uint64)
		t.v[table] = c
	}
	return c
}

func (t *tableVersions) bump(tables ...string) {
	for _, tb := range tables {
		t.counter(tb).Add(1)
	}
}

func (t *tableVersions) get(table string) uint64 { return t.counter(table).Load() }

// sharedVersions keeps the table tokens in a SharedCache. A token write that
// fails is remembered and retried before the shared versions are used again:
// until it lands, other replicas could still serve results that predate the
// write, so this replica uses its local versions meanwhile.
type sharedVersions struct {
	c      SharedCache
	prefix string
	ttl    time.Duration
	local  *tableVersions

	mu       sync.Mutex // serialises retries of pending tokens
	pending  map[string]struct{}
	npending atomic.Int32
	up       atomic.Bool
}

// sharedBumpTimeout bounds a token write after a commit. It does not use the
// caller's context alone: a caller that gives up right after its write
// committed must not leave other replicas' entries valid.
const sharedBumpTimeout = 2 * time.Second

func newSharedVersions(c SharedCache, prefix string, cacheTTL time.Duration, local *tableVersions) *sharedVersions {
	sv := &sharedVersions{c: c, prefix: prefix, ttl: max(24*time.Hour, 2*cacheTTL), local: local, pending: map[string]struct{}{}}
	sv.up.Store(true)
	return sv
}

func (sv *sharedVersions) key(table string) string { return sv.prefix + "v:" + table }

func (sv *sharedVersions) ok() { sv.up.Store(true) }

func (sv *sharedVersions) failed() {
	if sv.up.CompareAndSwap(true, false) {
		sv.local.gen.Add(1)
	}
}

// bump gives each table a new token.
func (sv *sharedVersions) bump(ctx context.Context, tables []string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedBumpTimeout)
	defer cancel()
	sv.flush(ctx)
	var lost []string
	for _, t := range tables {
		t = strings.ToLower(t)
		if err := sv.c.Set(ctx, sv.key(t), newToken(), sv.ttl); err != nil {
			lost = append(lost, t)
		}
	}
	if len(lost) == 0 {
		return
	}
	sv.failed()
	sv.mu.Lock()
	for _, t := range lost {
		sv.pending[t] = struct{}{}
	}
	sv.npending.Store(int32(len(sv.pending)))
	sv.mu.Unlock()
}

// flush retries the token writes that failed; it reports whether none is left.
func (sv *sharedVersions) flush(ctx context.Context) bool {
	if sv.npending.Load() == 0 {
		return true
	}
	sv.mu.Lock()
	defer sv.mu.Unlock()
	for t := range sv.pending {
		if err := sv.c.Set(ctx, sv.key(t), newToken(), sv.ttl); err != nil {
			sv.failed()
			return false
		}
		delete(sv.pending, t)
		sv.npending.Store(int32(len(sv.pending)))
	}
	return true
}

// retryLoop re-sends failed token writes every period until ctx ends, so a
// replica that stops reading and writing after an outage still lets the
// others see its last writes once the cache is back.
func (sv *sharedVersions) retryLoop(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if sv.npending.Load() > 0 {
				fctx, cancel := context.WithTimeout(ctx, sharedBumpTimeout)
				sv.flush(fctx)
				cancel()
			}
		}
	}
}

// invalidate records that tables changed: in this process, and in the shared
// cache when there is one.
func (s *Store) invalidate(ctx context.Context, tables ...string) {
	if len(tables) == 0 {
		return
	}
	s.versions.bump(tables...)
	if s.shared != nil {
		s.shared.bump(ctx, tables)
	}
}

// databaseID names the database in shared cache keys, so that replicas share
// results only when they read the same database: the host name and absolute
// path of a SQLite file, the URL (without its password) of a PostgreSQL one.
// Replicas that name one database differently merely share fewer results;
// the version keys, which invalidate, are per table and not per database.
func databaseID(kind config.DatabaseKind, rawURL, addr string) string {
	id := string(kind) + "|"
	if kind == config.DatabaseSQLite {
		host, _ := os.Hostname()
		abs, err := filepath.Abs(addr)
		if err != nil {
			abs = addr
		}
		id += host + "|" + abs
	} else {
		id += config.RedactURL(rawURL)
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:6])
}

// Result is a query result as the query cache stores it: the driver's values
// (int64, float64, bool, []byte, string, time.Time or nil) by row.
type Result struct {
	Columns []string
	Rows    [][]any
}

// QueryCached runs a read through the query cache. tables names every table
// the query reads: the key includes their current versions, so any write to
// one of them through the store makes the next call miss. Without a cache it
// runs the query. Statements use ? placeholders.
func (s *Store) QueryCached(ctx context.Context, tables []string, q string, args ...any) (*Result, error) {
	qi := s.info(q)
	if qi.write {
		return nil, fmt.Errorf("store: query cache: %w: only reads can be cached", ErrInvalid)
	}
	if s.cache == nil {
		return s.queryResult(ctx, q, args)
	}
	if len(tables) == 0 {
		return nil, fmt.Errorf("store: query cache: %w: the tables the query reads are required", ErrInvalid)
	}
	sorted := make([]string, len(tables))
	for i, t := range tables {
		sorted[i] = strings.ToLower(t)
	}
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	sum, err := querySum(qi, sorted, args)
	if err != nil {
		return nil, err
	}
	if s.shared != nil {
		if res, served, err := s.querySharedCache(ctx, qi, sorted, sum, q, args); served {
			return res, err
		}
	}
	return s.queryLocalCache(ctx, qi, sorted, sum, q, args)
}

// querySharedCache is the lookup under shared versions: one GetMulti brings
// the tables' tokens and the entry, which is served when it carries the same
// tokens. served is false when the shared cache failed and the caller should
// use the local versions instead.
func (s *Store) querySharedCache(ctx context.Context, qi *queryInfo, tables []string, sum [16]byte, q string, args []any) (res *Result, served bool, err error) {
	sv := s.shared
	if !sv.flush(ctx) {
		s.metrics.cacheErr.Inc()
		return nil, false, nil
	}
	keys := make([]string, len(tables)+1)
	for i, t := range tables {
		keys[i] = sv.key(t)
	}
	key := s.cachePrefix + "q:" + s.dbID + ":" + qi.fp.ID + ":" + hex.EncodeToString(sum[:])
	keys[len(tables)] = key
	vals, err := sv.c.GetMulti(ctx, keys)
	if err != nil || len(vals) != len(keys) {
		sv.failed()
		s.metrics.cacheErr.Inc()
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
				s.metrics.cacheErr.Inc()
				return nil, false, nil
			}
		}
		tokens = append(tokens, v...)
	}
	if entry := vals[len(tables)]; entry != nil {
		if len(entry) >= len(tokens) && bytes.Equal(entry[:len(tokens)], tokens) {
			if res, ok := s.decodeHit(qi, entry[len(tokens):]); ok {
				return res, true, nil
			}
		} else {
			s.cacheMissed(qi) // computed under versions since replaced
		}
	} else {
		s.cacheMissed(qi)
	}
	res, err = s.queryResult(ctx, q, args)
	if err != nil {
		return nil, true, err
	}
	// The tokens were read before the query ran, so a write that commits in
	// between replaces them and this entry is never served.
	s.cacheStore(ctx, key, tokens, res)
	return res, true, nil
}

// queryLocalCache is the lookup under this process's versions, which are in
// the key: prefix l: epoch.gen : query id : table=version… : hash.
func (s *Store) queryLocalCache(ctx context.Context, qi *queryInfo, tables []string, sum [16]byte, q string, args []any) (*Result, error) {
	b := make([]byte, 0, 96)
	b = append(b, s.cachePrefix...)
	b = append(b, "l:"...)
	b = append(b, s.versions.epoch...)
	b = append(b, '.')
	b = strconv.AppendUint(b, s.versions.gen.Load(), 36)
	b = append(b, ':')
	b = append(b, qi.fp.ID...)
	for _, t := range tables {
		b = append(b, ':')
		b = append(b, t...)
		b = append(b, '=')
		b = strconv.AppendUint(b, s.versions.get(t), 36)
	}
	b = append(b, ':')
	b = hex.AppendEncode(b, sum[:])
	key := string(b)
	raw, ok, err := s.cache.Get(ctx, key)
	switch {
	case err != nil:
		s.metrics.cacheErr.Inc()
	case ok:
		if res, ok := s.decodeHit(qi, raw); ok {
			return res, nil
		}
	default:
		s.cacheMissed(qi)
	}
	res, err := s.queryResult(ctx, q, args)
	if err != nil {
		return nil, err
	}
	s.cacheStore(ctx, key, nil, res)
	return res, nil
}

// decodeHit decodes a cached entry. An entry that does not decode (written by
// another release, truncated, foreign) is a miss, counted as corrupt; the
// caller's Set replaces it.
func (s *Store) decodeHit(qi *queryInfo, raw []byte) (*Result, bool) {
	res, err := decodeResult(raw)
	if err != nil {
		s.metrics.cacheCorrupt.Inc()
		s.stats.cacheMiss(qi)
		return nil, false
	}
	s.metrics.cacheHit.Inc()
	s.metrics.cacheSaved.Add(s.stats.cacheHit(qi).Seconds())
	return res, true
}

func (s *Store) cacheMissed(qi *queryInfo) {
	s.metrics.cacheMiss.Inc()
	s.stats.cacheMiss(qi)
}

// cacheStore encodes res after head and stores it. A result the codec cannot
// represent is returned uncached.
func (s *Store) cacheStore(ctx context.Context, key string, head []byte, res *Result) {
	val, err := appendResult(head, res)
	if err != nil {
		s.metrics.cacheErr.Inc()
		return
	}
	if err := s.cache.Set(ctx, key, val, s.cacheTTL); err != nil {
		s.metrics.cacheErr.Inc()
	}
}

// querySum hashes what, besides the table versions, decides a result: the
// statement text (not only the fingerprint: two statements differing only in
// an inlined literal share a fingerprint but not a result), the tables the
// caller named, and the arguments.
func querySum(qi *queryInfo, tables []string, args []any) ([16]byte, error) {
	h := sha256.New()
	var tmp [8]byte
	binary.LittleEndian.PutUint64(tmp[:], uint64(len(qi.text)))
	h.Write(tmp[:])
	h.Write([]byte(qi.text))
	for _, t := range tables {
		binary.LittleEndian.PutUint64(tmp[:], uint64(len(t)))
		h.Write(tmp[:])
		h.Write([]byte(t))
	}
	h.Write([]byte{0xff})
	for _, a := range args {
		if err := hashArg(h, a, tmp[:]); err != nil {
			return [16]byte{}, err
		}
	}
	var sum [16]byte
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// CacheStats are the query cache's totals.
type CacheStats struct {
	Enabled bool    `json:"enabled"`
	Hits    int64   `json:"hits"`
	Misses  int64   `json:"misses"`
	HitRate float64 `json:"hit_rate"`
	SavedMS float64 `json:"saved_ms"`
	TTL     string  `json:"ttl,omitempty"`
}

func (s *Store) cacheStats() CacheStats {
	cs := CacheStats{Enabled: s.cache != nil}
	if s.cache != nil {
		cs.TTL = s.cacheTTL.String()
	}
	s.stats.mu.Lock()
	for _, e := range s.stats.entries {
		cs.Hits += e.CacheHits
		cs.Misses += e.CacheMisses
		cs.SavedMS += e.CacheSavedMS
	}
	s.stats.mu.Unlock()
	if n := cs.Hits + cs.Misses; n > 0 {
		cs.HitRate = float64(cs.Hits) / float64(n)
	}
	return cs
}

func (s *Store) queryResult(ctx context.Context, q string, args []any) (*Result, error) {
	rows, err := s.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, fmt.Errorf("store: query columns: %w", err)
	}
	res := &Result{Columns: cols}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("store: query scan: %w", err)
		}
		res.Rows = append(res.Rows, vals)
	}
	if err := rows.Err(); err != nil {
		return nil, wrapQueryErr("query", err)
	}
	return res, nil
}

type hashWriter interface{ Write([]byte) (int, error) }

// hashArg writes a type tag and the value, so 1 (int) and "1" differ.
func hashArg(h hashWriter, a any, tmp []byte) error {
	putU := func(tag byte, u uint64) {
		binary.LittleEndian.PutUint64(tmp, u)
		h.Write([]byte{tag})
		h.Write(tmp)
	}
	putS := func(tag byte, s string) {
		putU(tag, uint64(len(s)))
		h.Write([]byte(s))
	}
	switch v := a.(type) {
	case nil:
		h.Write([]byte{0})
	case int:
		putU(1, uint64(v))
	case int32:
		putU(1, uint64(v))
	case int64:
		putU(1, uint64(v))
	case uint64:
		putU(1, v)
	case float64:
		putU(2, math.Float64bits(v))
	case float32:
		putU(2, math.Float64bits(float64(v)))
	case bool:
		if v {
			putU(3, 1)
		} else {
			putU(3, 0)
		}
	case string:
		putS(4, v)
	case []byte:
		putS(5, string(v))
	case time.Time:
		putS(6, v.UTC().Format(time.RFC3339Nano))
	case *float64:
		if v == nil {
			h.Write([]byte{0})
		} else {
			putU(2, math.Float64bits(*v))
		}
	case *string:
		if v == nil {
			h.Write([]byte{0})
		} else {
			putS(4, *v)
		}
	default:
		return fmt.Errorf("store: query cache: %w: argument of type %T cannot be part of a cache key", ErrInvalid, a)
	}
	return nil
}
