package main

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/smartcloudops/smartcloudops/bench/internal/svcrun"
)

// route is one endpoint of the soak's mix.
type route struct {
	name   string
	method string
	// path and body give the i-th request's target and body (nil: none).
	path func(i int64) string
	body func(i int64) []byte
	// weight is how many slots of each cycle of the mix the route takes;
	// every > 1 sends it only on every every-th cycle, for the heavy
	// administrative calls.
	weight, every int
	admin         bool
	// expect is a non-2xx status that is a normal answer here (a cache
	// miss, an unknown job), counted as OK.
	expect int
}

func fixed(p string) func(int64) string { return func(int64) string { return p } }

// mix is the soak's request mix over every route of the API except the
// three that change the schema or the active model on demand (index
// creation, model activation by version): running those in a loop would
// measure the change, not the steady state.
type mix struct {
	routes []route
	slots  []int // route index of each slot of one cycle
	// sampleNo makes every ingested (host, ts) pair new.
	sampleNo   atomic.Int64
	sampleBase int64
}

const soakHosts = 16

func newMix() *mix {
	m := &mix{sampleBase: time.Now().Add(-48 * time.Hour).Unix()}
	cacheKey := func(i int64) string { return "/performance/cache/soak/k" + strconv.FormatInt(i%512, 10) }
	m.routes = []route{
		{name: "livez", method: http.MethodGet, path: fixed("/livez"), weight: 1},
		{name: "readyz", method: http.MethodGet, path: fixed("/readyz"), weight: 1},
		{name: "health", method: http.MethodGet, path: fixed("/performance/health"), weight: 2},
		{name: "config", method: http.MethodGet, path: fixed("/performance/config"), weight: 1},
		{name: "config-put", method: http.MethodPut, path: fixed("/performance/config"), weight: 1, every: 10, admin: true,
			body: func(int64) []byte { return []byte(`{"logs.level":"info"}`) }},
		{name: "summary", method: http.MethodGet, path: fixed("/performance/summary"), weight: 1},
		{name: "metrics", method: http.MethodGet, path: fixed("/performance/metrics"), weight: 1},
		{name: "openapi", method: http.MethodGet, path: fixed("/performance/openapi.json"), weight: 1},
		{name: "ingest", method: http.MethodPost, path: fixed("/api/v1/metrics"), weight: 6, admin: true, body: m.ingestBody},
		{name: "detect", method: http.MethodPost, path: fixed("/performance/anomaly/detect"), weight: 4, body: func(i int64) []byte {
			return svcrun.AppendSample(nil, "soak-d"+strconv.FormatInt(i%8, 10), time.Now().Unix(), i)
		}},
		{name: "anomaly-stats", method: http.MethodGet, path: fixed("/performance/anomaly/stats"), weight: 1},
		{name: "models", method: http.MethodGet, path: fixed("/performance/anomaly/models"), weight: 1},
		// Training needs stored history; until there is enough it answers a
		// 4xx, which is counted apart from errors.
		{name: "train", method: http.MethodPost, path: fixed("/performance/anomaly/models"), weight: 1, every: 50, admin: true,
			body: func(int64) []byte { return []byte(`{}`) }},
		{name: "db-stats", method: http.MethodGet, path: fixed("/performance/database/stats"), weight: 1},
		{name: "db-indexes", method: http.MethodGet, path: fixed("/performance/database/indexes"), weight: 1},
		{name: "db-optimize", method: http.MethodPost, path: fixed("/performance/database/optimize"), weight: 1, every: 100, admin: true,
			body: func(int64) []byte { return []byte(`{}`) }},
		{name: "db-job", method: http.MethodGet, path: fixed("/performance/database/jobs/soak-unknown"), weight: 1, expect: http.StatusNotFound},
		{name: "cache-stats", method: http.MethodGet, path: fixed("/performance/cache/stats"), weight: 1},
		{name: "cache-put", method: http.MethodPut, path: func(i int64) string { return cacheKey(i) + "?ttl=600" }, weight: 4, admin: true,
			body: func(i int64) []byte { return []byte(`{"n":` + strconv.FormatInt(i, 10) + `}`) }},
		{name: "cache-get", method: http.MethodGet, path: cacheKey, weight: 6, admin: true, expect: http.StatusNotFound},
		{name: "cache-delete", method: http.MethodDelete, path: cacheKey, weight: 1, admin: true, expect: http.StatusNotFound},
		{name: "cache-clear", method: http.MethodPost, path: fixed("/performance/cache/clear"), weight: 1, every: 20, admin: true,
			body: func(int64) []byte { return []byte(`{"namespace":"soak"}`) }},
		{name: "logs-stats", method: http.MethodGet, path: fixed("/performance/logs/stats"), weight: 1},
		{name: "hosts", method: http.MethodGet, path: fixed("/api/v1/hosts"), weight: 1},
		{name: "host-series", method: http.MethodGet, path: func(i int64) string {
			return "/api/v1/hosts/soak-h" + strconv.FormatInt(i%soakHosts, 10) + "/metrics?limit=100"
		}, weight: 1},
		{name: "anomalies", method: http.MethodGet, path: fixed("/api/v1/anomalies?limit=50"), weight: 1},
		{name: "dashboard", method: http.MethodGet, path: fixed("/"), weight: 1},
		{name: "ui-asset", method: http.MethodGet, path: fixed("/ui/dashboard.js"), weight: 1},
	}
	for ri, r := range m.routes {
		for range r.weight {
			m.slots = append(m.slots, ri)
		}
	}
	return m
}

// pick is the route of the i-th request: slots in turn, a rare route's
// slot falling back to the cycle's first route on the cycles it skips.
func (m *mix) pick(i int64) *route {
	n := int64(len(m.slots))
	r := &m.routes[m.slots[i%n]]
	if r.every > 1 && (i/n)%int64(r.every) != 0 {
		return &m.routes[m.slots[0]]
	}
	return r
}

// ingestBody is five samples, each of a new (host, ts) pair: the host
// cycles, and the time moves a second every full cycle of hosts, so even a
// long soak stays far from the future the API refuses.
func (m *mix) ingestBody(int64) []byte {
	b := append(make([]byte, 0, 1024), `{"samples":[`...)
	for j := range 5 {
		n := m.sampleNo.Add(1)
		if j > 0 {
			b = append(b, ',')
		}
		b = svcrun.AppendSample(b, "soak-h"+strconv.FormatInt(n%soakHosts, 10), m.sampleBase+n/soakHosts, n)
	}
	return append(b, `]}`...)
}
