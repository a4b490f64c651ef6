package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/gob"
	"encoding/hex"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ResultCache is what the query cache needs from the cache part. A Get error
// is treated as a miss and a Set error is ignored (both counted): the cache
// speeds queries up, it never decides whether they succeed.
type ResultCache interface {
	Get(ctx context.Context, key string) ([]byte, bool, error)
	Set(ctx context.Context, key string, val []byte, ttl time.Duration) error
}

func init() {
	// database/sql hands scanned values over as these driver types; gob needs
	// the non-basic ones registered to carry them inside []any.
	gob.Register(time.Time{})
}

// tableVersions counts writes per table. A cache key embeds the versions of
// the tables its query reads; a write bumps them, so later lookups build a
// different key and an entry made before the write is never found again.
// The epoch, random per Store, keeps keys from a previous process (whose
// counters started at the same numbers) from matching.
type tableVersions struct {
	epoch string
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
	key, err := s.cacheKey(qi, tables, args)
	if err != nil {
		return nil, err
	}
	raw, ok, err := s.cache.Get(ctx, key)
	switch {
	case err != nil:
		s.metrics.cacheErr.Inc()
	case ok:
		var res Result
		if derr := gob.NewDecoder(bytes.NewReader(raw)).Decode(&res); derr == nil {
			s.metrics.cacheHit.Inc()
			s.metrics.cacheSaved.Add(s.stats.cacheHit(qi).Seconds())
			return &res, nil
		}
		s.metrics.cacheErr.Inc() // an undecodable entry is replaced below
	default:
		s.metrics.cacheMiss.Inc()
		s.stats.cacheMiss(qi)
	}
	res, err := s.queryResult(ctx, q, args)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(res); err != nil {
		return nil, fmt.Errorf("store: query cache: encode: %w", err)
	}
	if err := s.cache.Set(ctx, key, buf.Bytes(), s.cacheTTL); err != nil {
		s.metrics.cacheErr.Inc()
	}
	return res, nil
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

// cacheKey is prefix:epoch:query id:table versions:hash of the arguments.
func (s *Store) cacheKey(qi *queryInfo, tables []string, args []any) (string, error) {
	if len(tables) == 0 {
		return "", fmt.Errorf("store: query cache: %w: the tables the query reads are required", ErrInvalid)
	}
	sorted := append([]string(nil), tables...)
	sort.Strings(sorted)
	b := make([]byte, 0, 96)
	b = append(b, s.cachePrefix...)
	b = append(b, s.versions.epoch...)
	b = append(b, ':')
	b = append(b, qi.fp.ID...)
	for _, t := range sorted {
		b = append(b, ':')
		b = append(b, strings.ToLower(t)...)
		b = append(b, '=')
		b = strconv.AppendUint(b, s.versions.get(t), 36)
	}
	h := sha256.New()
	// The text, not only the fingerprint, goes into the hash: two statements
	// differing only in an inlined literal share a fingerprint but not a result.
	h.Write([]byte(qi.text))
	var tmp [8]byte
	for _, a := range args {
		if err := hashArg(h, a, tmp[:]); err != nil {
			return "", err
		}
	}
	b = append(b, ':')
	b = hex.AppendEncode(b, h.Sum(nil)[:16])
	return string(b), nil
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
