package cache

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/sony/gobreaker/v2"
)

// Durability says whether an acknowledged write outlives a Redis outage;
// the HTTP layer sends it as X-Cache-Durability.
type Durability string

// The durabilities.
const (
	// DurabilityRedis: Redis took the write.
	DurabilityRedis Durability = "redis"
	// DurabilityReplay: Redis was unreachable; the in-process tier serves
	// the write and the replay journal holds it until Redis is back, when
	// it is written to Redis (with the TTL it has left) before this
	// replica reads from Redis again.
	DurabilityReplay Durability = "replay"
	// DurabilityMemory: only this process holds the write. In Redis mode the
	// journal was full: the write is served from memory during the outage
	// and is gone once Redis is back. In memory-only mode every write is
	// this.
	DurabilityMemory Durability = "memory"
)

// WriteResult is what a write reports: the tier that took it and whether
// it will outlive a Redis outage.
type WriteResult struct {
	Tier       Tier
	Durability Durability
}

// Journal outcomes, the values of the "result" label of
// smartcloudops_cache_journal_operations_total.
const (
	jrJournaled  = iota // a write or delete accepted during fallback
	jrReplayed          // written to Redis after recovery
	jrExpired           // its TTL ran out before Redis came back: skipped
	jrSuperseded        // another replica wrote the key after Redis came back: skipped
	jrDropped           // journal full: answered DurabilityMemory, not replayed
	jrError             // Redis refused the replayed command (an error reply)
	numJournalResults
)

var journalResultLabel = [numJournalResults]string{"journaled", "replayed", "expired", "superseded", "dropped", "error"}

// journalOverhead approximates the bookkeeping bytes of one journal entry.
const journalOverhead = 96

// replayBatch is how many journal entries one pipelined round trip replays.
const replayBatch = 256

// journalOp is one write (or delete) made while Redis was unreachable.
// Only the latest op per key is kept: it is the only one Redis must see.
type journalOp struct {
	fk   string
	del  bool
	env  envelope // puts only; env.expireAtMs is the absolute expiry
	seq  uint64
	size int64
}

// journal holds the writes and deletes the in-process tier accepted during
// fallback, bounded by entries and bytes, so Redis can be brought up to
// date when it returns. mu also orders journal appends against the end of
// fallback (see finishFallback): no write can slip in after the last
// replay and be lost.
type journal struct {
	mu         sync.Mutex
	maxBytes   int64
	maxEntries int
	ops        map[string]*journalOp
	bytes      int64
	seq        uint64
	counts     [numJournalResults]atomic.Uint64
	kick       chan struct{}
}

func newJournal(maxBytes int64, maxEntries int) *journal {
	return &journal{maxBytes: maxBytes, maxEntries: maxEntries, ops: make(map[string]*journalOp), kick: make(chan struct{}, 1)}
}

func (j *journal) count(r int, n uint64) { j.counts[r].Add(n) }

// removeLocked forgets fk's op; it reports whether there was one.
func (j *journal) removeLocked(fk string) bool {
	old, ok := j.ops[fk]
	if ok {
		delete(j.ops, fk)
		j.bytes -= old.size
	}
	return ok
}

// pruneExpiredLocked drops ops whose value has expired: Redis would never
// have served them anyway.
func (j *journal) pruneExpiredLocked(nowMs int64) {
	for fk, op := range j.ops {
		if !op.del && op.env.expireAtMs > 0 && op.env.expireAtMs <= nowMs {
			j.removeLocked(fk)
			j.count(jrExpired, 1)
		}
	}
}

// addLocked records op, replacing an older op on the same key. When the
// journal is full the older op is dropped too: replaying it would bring
// back a value the caller has since overwritten or deleted.
func (j *journal) addLocked(op *journalOp, nowMs int64) bool {
	old := j.removeLocked(op.fk)
	fits := func() bool { return len(j.ops) < j.maxEntries && j.bytes+op.size <= j.maxBytes }
	if !fits() {
		j.pruneExpiredLocked(nowMs)
	}
	if !fits() {
		if old {
			j.count(jrDropped, 1)
		}
		j.count(jrDropped, 1)
		return false
	}
	j.seq++
	op.seq = j.seq
	j.ops[op.fk] = op
	j.bytes += op.size
	j.count(jrJournaled, 1)
	return true
}

// snapshot returns the ops, oldest first. They stay in the journal until
// replayed (see done), so the bound holds during a replay and supersede
// still reaches an op that is waiting for its turn.
func (j *journal) snapshot() []*journalOp {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]*journalOp, 0, len(j.ops))
	for _, op := range j.ops {
		out = append(out, op)
	}
	slices.SortFunc(out, func(a, b *journalOp) int { return cmp.Compare(a.seq, b.seq) })
	return out
}

// current keeps the ops that are still the journal's latest for their key:
// not replaced by a newer write, superseded or dropped since the snapshot.
func (j *journal) current(ops []*journalOp) []*journalOp {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := ops[:0:0]
	for _, op := range ops {
		if j.ops[op.fk] == op {
			out = append(out, op)
		}
	}
	return out
}

// done removes ops that replay has dealt with, unless a newer op on the
// same key arrived meanwhile: that one still has to be replayed.
func (j *journal) done(ops []*journalOp) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, op := range ops {
		if j.ops[op.fk] == op {
			j.removeLocked(op.fk)
		}
	}
}

// supersede forgets fk's op: another replica wrote or deleted the key after
// Redis came back, so replaying ours would put an older value over a newer.
func (j *journal) supersede(fk string) {
	j.mu.Lock()
	if j.removeLocked(fk) {
		j.count(jrSuperseded, 1)
	}
	j.mu.Unlock()
}

// drop forgets fk's op, counted as dropped: its write was answered as
// not durable after all.
func (j *journal) drop(fk string) {
	j.mu.Lock()
	if j.removeLocked(fk) {
		j.count(jrDropped, 1)
	}
	j.mu.Unlock()
}

// supersedePrefix is supersede for every key under prefix.
func (j *journal) supersedePrefix(prefix string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for fk := range j.ops {
		if strings.HasPrefix(fk, prefix) {
			j.removeLocked(fk)
			j.count(jrSuperseded, 1)
		}
	}
}

func (j *journal) size() (entries int, bytes int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.ops), j.bytes
}

// journalWrite records a write (or, with del, a delete) that only the
// in-process tier took. retry is true when fallback ended meanwhile: the
// caller must then write to Redis instead, or the write would sit in a
// journal that is no longer replayed.
func (c *Cache) journalWrite(fk string, del bool, env envelope) (d Durability, retry bool) {
	j := c.journal
	j.mu.Lock()
	defer j.mu.Unlock()
	if !c.degraded.Load() {
		return "", true
	}
	op := &journalOp{fk: fk, del: del, size: int64(len(fk)) + journalOverhead}
	if !del {
		op.env = env
		op.size += int64(len(env.payload) + len(env.contentType))
	}
	if !j.addLocked(op, c.opts.Now().UnixMilli()) {
		return DurabilityMemory, false
	}
	return DurabilityReplay, false
}

// kickReplay asks the replay loop to drain the journal.
func (c *Cache) kickReplay() {
	select {
	case c.journal.kick <- struct{}{}:
	default:
	}
}

// replayLoop brings Redis up to date after an outage and only then ends
// fallback. It runs for the Cache's life in Redis mode; leaveFallback and
// the probe loop kick it.
func (c *Cache) replayLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.closeCtx.Done():
			return
		case <-c.journal.kick:
		}
		c.replayAll()
	}
}

// replayAll drains the journal while the breaker stays closed; when it is
// empty, fallback ends. A failed round trip leaves the rest in the journal
// and waits for the next kick (the breaker closing again, or the probe
// loop).
func (c *Cache) replayAll() {
	for c.replayable() {
		ops := c.journal.snapshot()
		if len(ops) == 0 {
			if c.finishFallback() {
				return
			}
			continue // a write arrived after the snapshot: replay it too
		}
		for len(ops) > 0 && c.replayable() {
			n := min(replayBatch, len(ops))
			batch := c.journal.current(ops[:n])
			ops = ops[n:]
			handled, err := c.replay(c.closeCtx, batch)
			c.journal.done(handled)
			if err != nil {
				c.log.Warn("cache: replay to redis interrupted; will retry", "err", err, "pending", len(batch)-len(handled)+len(ops))
				return
			}
		}
	}
}

func (c *Cache) replayable() bool {
	return c.closeCtx.Err() == nil && c.client.Load() != nil && c.breaker.State() == gobreaker.StateClosed
}

// replay writes ops to Redis in one pipelined round trip: each put with
// the TTL it has left, each delete as UNLINK. It returns the ops it dealt
// with: replayed, expired, or refused by Redis with an error reply (sending
// those again would fail the same way; each is counted). An op that met a
// network error is not among them and stays for the next attempt: whether
// Redis applied it is unknown, and applying it twice is harmless.
func (c *Cache) replay(ctx context.Context, ops []*journalOp) (handled []*journalOp, err error) {
	now := c.opts.Now().UnixMilli()
	live := make([]*journalOp, 0, len(ops))
	for _, op := range ops {
		if !op.del && op.env.expireAtMs > 0 && op.env.expireAtMs <= now {
			c.journal.count(jrExpired, 1)
			handled = append(handled, op)
			continue
		}
		live = append(live, op)
	}
	if len(live) == 0 {
		return handled, nil
	}
	timeout := c.opts.WriteTimeout + time.Duration(len(live))*time.Millisecond
	err = c.redisDo(ctx, timeout, func(ctx context.Context, cl rueidis.Client) error {
		cmds := make(rueidis.Commands, len(live))
		for i, op := range live {
			if op.del {
				cmds[i] = cl.B().Unlink().Key(op.fk).Build()
				continue
			}
			w := c.codecs.seal(op.env.codec, op.env.contentType, op.env.payload, op.env.expireAtMs)
			px := time.Duration(max(op.env.expireAtMs-now, 1)) * time.Millisecond
			cmds[i] = cl.B().Set().Key(op.fk).Value(rueidis.BinaryString(w.wire)).Px(px).Build()
		}
		var netErr error
		for i, r := range cl.DoMulti(ctx, cmds...) {
			err := r.Error()
			switch {
			case err == nil:
				c.journal.count(jrReplayed, 1)
				handled = append(handled, live[i])
			case isRedisErr(err):
				c.journal.count(jrError, 1)
				c.log.Warn("cache: redis refused a replayed write", "err", err)
				handled = append(handled, live[i])
			default:
				netErr = err
			}
		}
		return netErr
	})
	return handled, err
}

func isRedisErr(err error) bool {
	_, ok := rueidis.IsRedisErr(err)
	return ok
}

// finishFallback ends fallback if the journal is empty, under the journal's
// lock so no write can be journaled after the last replay. It flushes the
// in-process tier before and after: it missed invalidations while Redis
// was away. It reports whether fallback is over.
func (c *Cache) finishFallback() bool {
	j := c.journal
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.ops) > 0 {
		return false
	}
	c.local.flush()
	if c.degraded.CompareAndSwap(true, false) {
		c.fallbackTotal.Add(int64(time.Since(c.start)) - c.fallbackSince.Load())
		c.local.flush()
		c.log.Info("cache: redis back, journal replayed, in-process tier flushed")
	}
	return true
}

// JournalStats describes the replay journal of writes taken during a Redis
// outage (see Durability).
type JournalStats struct {
	Entries    int   `json:"entries"`
	Bytes      int64 `json:"bytes"`
	MaxEntries int   `json:"max_entries"`
	MaxBytes   int64 `json:"max_bytes"`
	// Journaled counts writes and deletes accepted into the journal;
	// Replayed those written to Redis after recovery; Expired those whose
	// TTL ran out first; Superseded those another replica overwrote after
	// recovery, or whose namespace was cleared; Dropped those refused
	// because the journal was full (answered X-Cache-Durability: memory)
	// or written by a PutShared that reported failure; Errors those Redis
	// refused.
	Journaled  uint64 `json:"journaled"`
	Replayed   uint64 `json:"replayed"`
	Expired    uint64 `json:"expired"`
	Superseded uint64 `json:"superseded"`
	Dropped    uint64 `json:"dropped"`
	Errors     uint64 `json:"errors"`
}

func (c *Cache) journalStats() JournalStats {
	j := c.journal
	n, b := j.size()
	return JournalStats{
		Entries: n, Bytes: b, MaxEntries: j.maxEntries, MaxBytes: j.maxBytes,
		Journaled: j.counts[jrJournaled].Load(), Replayed: j.counts[jrReplayed].Load(),
		Expired: j.counts[jrExpired].Load(), Superseded: j.counts[jrSuperseded].Load(),
		Dropped: j.counts[jrDropped].Load(), Errors: j.counts[jrError].Load(),
	}
}
