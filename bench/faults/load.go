package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smartcloudops/smartcloudops/bench/internal/svcrun"
)

// samplesPerIngest is how many samples one ingest request carries.
const samplesPerIngest = 3

// loadGen drives the fixed-rate mixed load and files every answer under
// the phase that was current when the request was sent.
type loadGen struct {
	base   string
	token  string
	client *http.Client
	// run makes host names and cache keys unique to this run, so the
	// ledger never confuses them with an earlier run's rows.
	run string
	// sampleBase is the first sample time; each sample is one second
	// after the previous one, so (host, ts) never repeats.
	sampleBase       int64
	durabilityHeader string
	// nonDurable are the header's values (lower case) that say a write
	// may not outlive an outage.
	nonDurable map[string]bool

	seq      atomic.Int64
	putSeq   atomic.Int64
	sampleNo atomic.Int64
	cur      atomic.Pointer[phase]
	pacer    *svcrun.Pacer

	mu     sync.Mutex
	recent []string // keys of the latest acknowledged PUTs, for GETs
}

func newLoadGen(base, token, run, durabilityHeader, nonDurable string, rate, workers int, timeout time.Duration) *loadGen {
	nd := map[string]bool{}
	for _, v := range strings.Split(nonDurable, ",") {
		if v = strings.ToLower(strings.TrimSpace(v)); v != "" {
			nd[v] = true
		}
	}
	return &loadGen{
		base:             base,
		token:            token,
		client:           &http.Client{Transport: svcrun.LoopbackTransport(workers), Timeout: timeout},
		run:              run,
		sampleBase:       time.Now().Add(-40 * time.Hour).Unix(),
		durabilityHeader: durabilityHeader,
		nonDurable:       nd,
		pacer:            svcrun.NewPacer(rate, workers),
	}
}

// drive sends rate requests a second while a phase is current, until ctx
// ends. Between phases it sends nothing.
func (g *loadGen) drive(ctx context.Context) {
	g.pacer.Run(ctx, func(int64) {
		// The phase is read when the request is sent: its answer counts
		// there even when it comes after the phase ended.
		if ph := g.cur.Load(); ph != nil {
			i := g.seq.Add(1)
			ph.record(g.one(ctx, kind(i%int64(numKinds))))
		}
	})
}

// quiesce stops sending and waits up to limit for the requests in flight.
func (g *loadGen) quiesce(limit time.Duration) {
	g.cur.Store(nil)
	deadline := time.Now().Add(limit)
	for g.pacer.Inflight() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// one sends a request of kind k and says what came of it.
func (g *loadGen) one(ctx context.Context, k kind) outcome {
	o := outcome{kind: k, sentAt: time.Now()}
	h := http.Header{"Authorization": {"Bearer " + g.token}}
	var method, path string
	var body []byte
	switch k {
	case kindIngest:
		method, path = http.MethodPost, "/api/v1/metrics"
		body, o.samples = g.ingestBody()
		h.Set("Content-Type", "application/json")
	case kindCachePut:
		n := g.putSeq.Add(1)
		key := g.run + "-" + strconv.FormatInt(n, 10)
		value := `{"run":"` + g.run + `","n":` + strconv.FormatInt(n, 10) + `}`
		method, path, body = http.MethodPut, "/performance/cache/faults/"+key+"?ttl=3600", []byte(value)
		h.Set("Content-Type", "application/json")
		o.put = &putRecord{key: key, value: value, sentAt: o.sentAt, durable: true}
	case kindCacheGet:
		method, path = http.MethodGet, "/performance/cache/faults/"+g.recentKey()
	case kindDetect:
		method, path = http.MethodPost, "/performance/anomaly/detect"
		body = svcrun.AppendSample(nil, "faults-detect-"+strconv.FormatInt(g.seq.Load()%8, 10), time.Now().Unix(), g.seq.Load())
		h.Set("Content-Type", "application/json")
	}
	req, err := http.NewRequestWithContext(ctx, method, g.base+path, bytes.NewReader(body))
	if err != nil {
		o.err = err.Error()
		return o
	}
	req.Header = h
	resp, err := g.client.Do(req)
	if err != nil {
		o.err = err.Error()
		return o
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	o.took = time.Since(o.sentAt)
	if err != nil {
		// An answer cut short acknowledges nothing.
		o.err = "reading the answer: " + err.Error()
		return o
	}
	o.status = resp.StatusCode
	o.retryAfter = resp.Header.Get("Retry-After") != ""
	if o.status/100 != 2 {
		o.err = svcrun.ProblemDetail(data)
		o.samples, o.put = nil, nil
		return o
	}
	if o.put != nil {
		o.put.tier = resp.Header.Get("X-Cache")
		if v := resp.Header.Get(g.durabilityHeader); v != "" {
			o.put.tier += "/" + v
			o.put.durable = !g.nonDurable[strings.ToLower(v)]
		}
		g.remember(o.put.key)
	}
	return o
}

// ingestBody is a batch of samples, each of a fresh (host, ts) pair.
func (g *loadGen) ingestBody() ([]byte, []sampleKey) {
	keys := make([]sampleKey, samplesPerIngest)
	b := append(make([]byte, 0, 512), `{"samples":[`...)
	for j := range keys {
		n := g.sampleNo.Add(1)
		keys[j] = sampleKey{host: "faults-" + g.run + "-h" + strconv.FormatInt(n%8, 10), ts: g.sampleBase + n}
		if j > 0 {
			b = append(b, ',')
		}
		b = svcrun.AppendSample(b, keys[j].host, keys[j].ts, n)
	}
	return append(b, `]}`...), keys
}

func (g *loadGen) remember(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.recent) < 256 {
		g.recent = append(g.recent, key)
		return
	}
	g.recent[g.putSeq.Load()%256] = key
}

// recentKey is one of the latest acknowledged keys, or a key never written
// (a miss) before the first PUT was acknowledged.
func (g *loadGen) recentKey() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.recent) == 0 {
		return g.run + "-none"
	}
	return g.recent[g.seq.Load()%int64(len(g.recent))]
}
