package store

import (
	"math"
	"sort"
	"sync"
	"time"
)

// QueryStat is what the store has measured for one fingerprint, modelled on a
// pg_stat_statements row. Times are in milliseconds, as an operator reads them.
type QueryStat struct {
	QueryID string `json:"query_id"`
	Query   string `json:"query"`
	// Calls counts executions against the database; results served from the
	// query cache are counted in CacheHits instead.
	Calls    int64   `json:"calls"`
	Rows     int64   `json:"rows"`
	Errors   int64   `json:"errors"`
	TotalMS  float64 `json:"total_time_ms"`
	MeanMS   float64 `json:"mean_time_ms"`
	MinMS    float64 `json:"min_time_ms"`
	MaxMS    float64 `json:"max_time_ms"`
	StddevMS float64 `json:"stddev_time_ms"`
	// CacheHits and CacheSavedMS: results served from the query cache, and the
	// execution time they saved (the mean execution time at each hit).
	CacheHits    int64     `json:"cache_hits"`
	CacheMisses  int64     `json:"cache_misses"`
	CacheSavedMS float64   `json:"cache_saved_ms"`
	FirstSeen    time.Time `json:"first_seen"`
	LastSeen     time.Time `json:"last_seen"`
}

// entry is the mutable state behind a QueryStat. mean and m2 follow Welford's
// online algorithm, so the standard deviation needs no stored samples and does
// not lose precision over millions of calls.
type entry struct {
	QueryStat
	m2 float64
	// sample is the last executed statement text and arguments of a read,
	// which the index advisor needs to ask the planner; never shown.
	sample     string
	sampleArgs []any
	read       bool
}

// statsBook keeps per-fingerprint statistics for at most capacity
// fingerprints. When a new one arrives at capacity, the entry with the least
// total time is evicted and counted: what is kept is always the top N by total
// time among those still being seen, which is the list an operator tunes from.
type statsBook struct {
	mu       sync.Mutex
	capacity int
	entries  map[string]*entry
	evicted  int64
	now      func() time.Time
}

func newStatsBook(capacity int, now func() time.Time) *statsBook {
	return &statsBook{capacity: capacity, entries: make(map[string]*entry, capacity), now: now}
}

// get returns the entry of fingerprint id, creating it (and evicting) when
// needed. Call with mu held.
func (b *statsBook) get(id, normalized string, read bool, at time.Time) *entry {
	e := b.entries[id]
	if e != nil {
		return e
	}
	if len(b.entries) >= b.capacity {
		var victim string
		least := math.Inf(1)
		for id, e := range b.entries {
			if e.TotalMS < least {
				victim, least = id, e.TotalMS
			}
		}
		delete(b.entries, victim)
		b.evicted++
	}
	e = &entry{QueryStat: QueryStat{QueryID: id, Query: normalized, FirstSeen: at.UTC()}, read: read}
	b.entries[id] = e
	return e
}

// record adds one execution. The sample arguments are kept only for reads,
// because only reads are handed to the advisor's EXPLAIN.
// end is when the execution finished, read once by the caller so that the
// store's clock is consulted exactly twice per statement.
func (b *statsBook) record(fp *queryInfo, d time.Duration, end time.Time, rows int64, failed bool, args []any) {
	ms := float64(d.Nanoseconds()) / 1e6
	b.mu.Lock()
	e := b.get(fp.fp.ID, fp.fp.Normalized, !fp.write, end)
	e.Calls++
	e.Rows += rows
	if failed {
		e.Errors++
	}
	e.TotalMS += ms
	if e.Calls == 1 || ms < e.MinMS {
		e.MinMS = ms
	}
	if ms > e.MaxMS {
		e.MaxMS = ms
	}
	delta := ms - e.MeanMS
	e.MeanMS += delta / float64(e.Calls)
	e.m2 += delta * (ms - e.MeanMS)
	e.LastSeen = end.UTC()
	if e.read && !failed {
		e.sample = fp.text
		e.sampleArgs = args
	}
	b.mu.Unlock()
}

// cacheHit counts a result served from the query cache and returns the
// execution time it saved: the fingerprint's mean time so far. Only reads
// are cached.
func (b *statsBook) cacheHit(id, normalized string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	e := b.get(id, normalized, true, now)
	e.CacheHits++
	e.CacheSavedMS += e.MeanMS
	e.LastSeen = now.UTC()
	return time.Duration(e.MeanMS * 1e6)
}

func (b *statsBook) cacheMiss(id, normalized string) {
	b.mu.Lock()
	b.get(id, normalized, true, b.now()).CacheMisses++
	b.mu.Unlock()
}

// Sort orders for Top.
const (
	SortTotalTime = "total_time"
	SortMeanTime  = "mean_time"
	SortMaxTime   = "max_time"
	SortCalls     = "calls"
	SortRows      = "rows"
	SortErrors    = "errors"
	SortCacheHits = "cache_hits"
)

// SortKeys are the accepted sort orders of the statistics endpoint.
var SortKeys = []string{SortTotalTime, SortMeanTime, SortMaxTime, SortCalls, SortRows, SortErrors, SortCacheHits}

// top returns copies of up to limit entries in the given order, the number of
// fingerprints tracked and the number evicted so far.
func (b *statsBook) top(by string, limit int) ([]QueryStat, int, int64) {
	b.mu.Lock()
	out := make([]QueryStat, 0, len(b.entries))
	for _, e := range b.entries {
		q := e.QueryStat
		if q.Calls > 1 {
			q.StddevMS = math.Sqrt(e.m2 / float64(q.Calls)) // population stddev, as pg_stat_statements
		}
		out = append(out, q)
	}
	tracked, evicted := len(b.entries), b.evicted
	b.mu.Unlock()
	key := func(q QueryStat) float64 {
		switch by {
		case SortMeanTime:
			return q.MeanMS
		case SortMaxTime:
			return q.MaxMS
		case SortCalls:
			return float64(q.Calls)
		case SortRows:
			return float64(q.Rows)
		case SortErrors:
			return float64(q.Errors)
		case SortCacheHits:
			return float64(q.CacheHits)
		}
		return q.TotalMS
	}
	sort.Slice(out, func(i, j int) bool {
		ki, kj := key(out[i]), key(out[j])
		if ki != kj {
			return ki > kj
		}
		return out[i].QueryID < out[j].QueryID
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, tracked, evicted
}

// Candidate is a read fingerprint with a sample the index advisor can
// EXPLAIN and time.
type Candidate struct {
	Stat QueryStat
	// Text and Args are the last successful execution: the statement as
	// sent (placeholders rebound) and its arguments. They may be personal
	// data; they go to the planner, never to a log or an answer.
	Text string
	Args []any
}

// candidates returns reads seen at least minCalls times or slower than slow on
// average, most total time first.
func (b *statsBook) candidates(minCalls int64, slow time.Duration, limit int) []Candidate {
	b.mu.Lock()
	var out []Candidate
	for _, e := range b.entries {
		if !e.read || e.sample == "" {
			continue
		}
		if e.Calls >= minCalls || (slow > 0 && e.MeanMS >= float64(slow.Nanoseconds())/1e6) {
			out = append(out, Candidate{Stat: e.QueryStat, Text: e.sample, Args: e.sampleArgs})
		}
	}
	b.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Stat.TotalMS > out[j].Stat.TotalMS })
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

// reset forgets every fingerprint (tests and operators starting a measurement).
func (b *statsBook) reset() {
	b.mu.Lock()
	b.entries = make(map[string]*entry, b.capacity)
	b.evicted = 0
	b.mu.Unlock()
}
