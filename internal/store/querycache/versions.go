package querycache

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// tokenLen is the size of a shared version token.
const tokenLen = 8

func newToken() []byte {
	return binary.LittleEndian.AppendUint64(make([]byte, 0, tokenLen), mrand.Uint64())
}

// tableVersions counts writes per table, in this process. A cache key embeds
// the versions of the tables its query reads; a write bumps them, so later
// lookups build a different key and an entry made before the write is never
// found again. The epoch, random per Cache, keeps keys from a previous process
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

// sharedVersions keeps the table tokens in a SharedBackend. A token write that
// fails is remembered and retried before the shared versions are used again:
// until it lands, other replicas could still serve results that predate the
// write, so this replica uses its local versions meanwhile.
type sharedVersions struct {
	c      SharedBackend
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

func newSharedVersions(c SharedBackend, prefix string, cacheTTL time.Duration, local *tableVersions) *sharedVersions {
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
