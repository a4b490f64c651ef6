package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/exp/api/remote"
)

// writePath is the receiver's path; the client appends it to the base URL.
const writePath = "/api/v1/write"

// attempts records every HTTP attempt the client makes: the library's
// Write retries inside itself, so only the transport sees each attempt's
// status and latency.
type attempts struct {
	next http.RoundTripper
	// header is added to every request (the bearer token).
	header http.Header

	mu       sync.Mutex
	lat      []time.Duration // latencies of 2xx attempts
	byStatus map[string]int64
	firstErr string
}

func newAttempts(next http.RoundTripper, header http.Header) *attempts {
	return &attempts{next: next, header: header, byStatus: map[string]int64{}}
}

// RoundTrip times an attempt from send to the close of its answer's body
// (the library reads the whole body before it closes it).
func (a *attempts) RoundTrip(req *http.Request) (*http.Response, error) {
	for k, v := range a.header {
		req.Header[k] = v
	}
	t0 := time.Now()
	resp, err := a.next.RoundTrip(req)
	if err != nil {
		// A request whose context ended was cut off by the end of the
		// run, not refused by the target.
		if req.Context().Err() == nil {
			a.record("transport error", err.Error())
		}
		return nil, err
	}
	tb := &timedBody{ReadCloser: resp.Body}
	tb.done = func() {
		d := time.Since(t0)
		if resp.StatusCode/100 == 2 {
			a.mu.Lock()
			a.lat = append(a.lat, d)
			a.byStatus[strconv.Itoa(resp.StatusCode)]++
			a.mu.Unlock()
			return
		}
		// A retried attempt's answer is seen nowhere else: keep the first
		// one's status and body for the report.
		a.record(strconv.Itoa(resp.StatusCode), fmt.Sprintf("%s %s: %s", req.Method, resp.Status, bytes.TrimSpace(tb.head)))
	}
	resp.Body = tb
	return resp, nil
}

func (a *attempts) record(key, msg string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.byStatus[key]++
	if a.firstErr == "" && msg != "" {
		a.firstErr = msg
	}
}

// noteError keeps the first failure's text, which the library builds
// from the answer's status and body.
func (a *attempts) noteError(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.firstErr == "" {
		a.firstErr = err.Error()
	}
}

// timedBody calls done once, when the body is closed, and keeps the
// first bytes read for an error's report.
type timedBody struct {
	io.ReadCloser
	once sync.Once
	done func()
	head []byte
}

func (b *timedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if room := 300 - len(b.head); room > 0 {
		b.head = append(b.head, p[:min(n, room)]...)
	}
	return n, err
}

func (b *timedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}

// result is one measured run against one target.
type result struct {
	elapsed time.Duration
	// requests and samples count Write calls that ended in a 2xx, after
	// the library's retries; failed counts those that did not.
	requests, samples, failed int64
	// lat holds every 2xx attempt's latency, sorted.
	lat      []time.Duration
	byStatus map[string]int64
	firstErr string
	// simEnd is the furthest simulated time a shard reached.
	simEnd time.Time
}

func (r result) samplesPerSec() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.samples) / r.elapsed.Seconds()
}

// quantile is the q-quantile (nearest rank) of the 2xx latencies.
func (r result) quantile(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(q*float64(len(r.lat))+0.5) - 1
	return r.lat[min(max(i, 0), len(r.lat)-1)]
}

// sender is one target's client and its shards' generators, kept across
// runs so per-series timestamps keep increasing from one run to the next.
type sender struct {
	api    *remote.API
	rec    *attempts
	shards []*shardGen
	// skew is how many scrapes a shard may run ahead of the slowest one;
	// 0 is no bound.
	skew  int64
	batch int
	// limit is the latest simulated time a shard may reach: the service
	// refuses samples too far in the future.
	limit time.Time
}

// senderConfig says how to build a sender.
type senderConfig struct {
	base      string
	transport http.RoundTripper
	header    http.Header
	universe  *universe
	shards    int
	batch     int
	start     time.Time
	interval  time.Duration
	retries   int
	limit     time.Time
	// capacity is Prometheus's queue_config.capacity, the samples a shard's
	// queue holds: its WAL reader blocks when a queue is full, so no shard
	// gets further ahead of the slowest than capacity samples of the
	// slowest's series. 0 lets shards drift apart without bound.
	capacity int
}

func newSender(c senderConfig) (*sender, error) {
	rec := newAttempts(c.transport, c.header)
	// The library's MaxRetries 0 means retry for ever; -retries 0 means
	// none, which a negative bound gives (its loop stops while the count
	// is not below the bound). The backoff is Prometheus's default
	// queue_config (min_backoff 30ms, max_backoff 5s).
	maxRetries := c.retries
	if maxRetries == 0 {
		maxRetries = -1
	}
	api, err := remote.NewAPI(c.base,
		remote.WithAPIHTTPClient(&http.Client{Transport: rec, Timeout: time.Minute}),
		remote.WithAPIPath(writePath),
		remote.WithAPIBackoff(remote.BackoffConfig{Min: 30 * time.Millisecond, Max: 5 * time.Second, MaxRetries: maxRetries}),
	)
	if err != nil {
		return nil, fmt.Errorf("remote write client for %s: %w", c.base, err)
	}
	s := &sender{api: api, rec: rec, batch: c.batch, limit: c.limit}
	most := 1
	for i, part := range c.universe.partition(c.shards) {
		s.shards = append(s.shards, newShardGen(part, i, c.start, c.interval, c.batch))
		most = max(most, len(part))
	}
	if c.capacity > 0 {
		// At least one request's worth, or a shard could never send a full one.
		s.skew = int64(max(c.capacity, c.batch)/most) + 1
	}
	return s, nil
}

// errSimulatedPresent stops a shard whose simulated time reached the limit.
var errSimulatedPresent = errors.New("simulated time reached the present: shorten the runs, lengthen -history or shorten -interval")

// run drives every shard in a closed loop for dur (each sends its next
// request when the previous Write returned), as Prometheus's shards do when
// they are behind: a full batch is always waiting. The run's time ends
// when the last request sent within dur is answered.
func (s *sender) run(ctx context.Context, dur time.Duration) result {
	s.rec.mu.Lock()
	s.rec.lat, s.rec.byStatus, s.rec.firstErr = nil, map[string]int64{}, ""
	s.rec.mu.Unlock()
	// stop ends the sending after dur; requests in flight then finish (with
	// their retries) under ctx alone, so what the target acknowledged is
	// counted and the service's counters can be compared with it. A
	// request still unanswered a minute later is cut off.
	stop, cancelStop := context.WithTimeout(ctx, dur)
	defer cancelStop()
	wctx, cancelWrites := context.WithTimeout(ctx, dur+time.Minute)
	defer cancelWrites()
	var requests, samples, failed atomic.Int64
	var simErr atomic.Bool
	var wg sync.WaitGroup
	start := time.Now()
	for _, g := range s.shards {
		if len(g.series) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for stop.Err() == nil {
				if !s.mayAdvance(stop, g) {
					return
				}
				if g.now().After(s.limit) {
					simErr.Store(true)
					return
				}
				req, n := g.nextRequest(s.batch)
				_, err := s.api.Write(wctx, remote.WriteV1MessageType, req)
				switch {
				case err == nil:
					requests.Add(1)
					samples.Add(int64(n))
				case wctx.Err() != nil:
					// Cut off: the target did not answer in time.
				default:
					failed.Add(1)
					s.rec.noteError(err)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cancelWrites()
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	lat := slices.Clone(s.rec.lat)
	slices.Sort(lat)
	r := result{elapsed: elapsed, requests: requests.Load(), samples: samples.Load(), failed: failed.Load(),
		lat: lat, byStatus: s.rec.byStatus, firstErr: s.rec.firstErr}
	for _, g := range s.shards {
		if t := g.now(); t.After(r.simEnd) {
			r.simEnd = t
		}
	}
	if simErr.Load() && r.firstErr == "" {
		r.firstErr = errSimulatedPresent.Error()
	}
	return r
}

// mayAdvance waits while g is more than skew scrapes ahead of the
// slowest shard with series, and reports false when stop ends first.
func (s *sender) mayAdvance(stop context.Context, g *shardGen) bool {
	if s.skew <= 0 {
		return true
	}
	for {
		lowest := int64(math.MaxInt64)
		for _, o := range s.shards {
			if len(o.series) > 0 {
				lowest = min(lowest, o.progress.Load())
			}
		}
		if g.progress.Load() <= lowest+s.skew {
			return true
		}
		select {
		case <-stop.Done():
			return false
		case <-time.After(time.Millisecond):
		}
	}
}

// probe sends one request of a separate, tiny generator (its own host, far
// from the measured ones) and says what the target answered. A 404 means
// the receiver is not there.
func probe(ctx context.Context, base string, transport http.RoundTripper, header http.Header, start time.Time) error {
	u, err := newUniverse(minPerHost(), minPerHost())
	if err != nil {
		return err
	}
	for _, s := range u.all {
		for i := range s.labels {
			if s.labels[i].Name == "instance" {
				s.labels[i].Value = "rwbench-probe:9100"
			}
		}
	}
	snd, err := newSender(senderConfig{base: base, transport: transport, header: header, universe: u, shards: 1,
		batch: minPerHost(), start: start, interval: time.Second, retries: 0, limit: time.Now()})
	if err != nil {
		return err
	}
	req, _ := snd.shards[0].nextRequest(minPerHost())
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := snd.api.Write(pctx, remote.WriteV1MessageType, req); err != nil {
		snd.rec.mu.Lock()
		notFound := snd.rec.byStatus["404"] > 0
		snd.rec.mu.Unlock()
		if notFound {
			return fmt.Errorf("POST %s%s answers 404: this build of the service has no remote_write receiver "+
				"(merge the branch that adds it, or run -floor-only to measure the decode floor alone): %w", base, writePath, err)
		}
		return fmt.Errorf("probe POST %s%s: %w", base, writePath, err)
	}
	return nil
}
