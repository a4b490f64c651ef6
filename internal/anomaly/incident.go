package anomaly

import (
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Alert and state (docs/alerting.md). A result carries two verdicts: the
// alert (Result.IsAnomaly), raised once when an incident opens, and the state
// (Result.State, Result.Sustained), which stays high for as long as the
// incident lasts. The streaming detector keeps both for its series itself
// (stream.Result.IsAnomaly and State). The static limits and the
// multivariate model have no memory of their own: a value past its limit or
// a row the model finds unusual is anomalous state on every point, and only
// the first point of such a run is an alert. incidents is that memory: for
// each host, which of those verdicts were already open at its previous
// point.

// openIncident is what is open on one host besides its streams' own state.
type openIncident struct {
	// model: the multivariate model scored the host's previous point at or
	// above the threshold.
	model bool
	// open lists, sorted, the metrics in an incident at the host's previous
	// point: in an anomalous state by the stream or past their static limit,
	// or held by the stream.
	open []string
	// alerted lists, sorted, the metrics of open whose incident was
	// announced (an alert opened it), and modelAlerted says the model's was:
	// those, and only those, get a resolution when they close (events.go).
	alerted      []string
	modelAlerted bool
	// at is the timestamp of the newest point recorded: an older one is
	// late and neither moves the incidents nor alerts, whatever order
	// concurrent requests reach the table in.
	at time.Time
}

func (o openIncident) empty() bool { return !o.model && len(o.open) == 0 }

func (o openIncident) isOpen(metric string) bool {
	_, ok := slices.BinarySearch(o.open, metric)
	return ok
}

// incidentView is where combine reads and records a host's open incidents:
// the service's table on ingest, a request's private overlay on detect.
type incidentView interface {
	// advance returns what was open on host and, when record is set and t
	// is not older than the newest point recorded, records next(prev) in
	// its place and reports recorded; in one step, so two requests for one
	// host cannot both open the same incident. next learns whether what it
	// returns will be kept (tracked): a host that does not fit the table is
	// not.
	advance(host string, t time.Time, record bool, next func(prev openIncident, tracked bool) openIncident) (prev openIncident, recorded bool)
}

// incidentShards spreads the hosts over independently locked maps.
const incidentShards = 16

// incidents holds the hosts with an open incident. A host whose incidents
// have all closed is removed, so the table holds only what is open now; it
// is bounded all the same (by Options.MaxSeries), and a host that does not
// fit is counted in untracked and alerts again on its next anomalous point,
// which is the safe side to err on.
type incidents struct {
	seed      maphash.Seed
	perShard  int
	shards    [incidentShards]incidentShard
	untracked atomic.Uint64
	onDrop    func()
}

type incidentShard struct {
	mu sync.Mutex
	m  map[string]openIncident
}

func newIncidents(maxHosts int, onDrop func()) *incidents {
	in := &incidents{seed: maphash.MakeSeed(), perShard: max(1, maxHosts/incidentShards), onDrop: onDrop}
	for i := range in.shards {
		in.shards[i].m = make(map[string]openIncident)
	}
	return in
}

func (in *incidents) shard(host string) *incidentShard {
	return &in.shards[maphash.String(in.seed, host)%incidentShards]
}

func (in *incidents) advance(host string, t time.Time, record bool, next func(prev openIncident, tracked bool) openIncident) (openIncident, bool) {
	sh := in.shard(host)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	prev, had := sh.m[host]
	// The same instant again is another part of the host's row (a sample
	// that repeats one already learned is late and does not record).
	if !record || (had && t.Before(prev.at)) {
		return prev, false
	}
	fits := had || len(sh.m) < in.perShard
	n := next(prev, fits)
	n.at = t
	switch {
	case n.empty():
		delete(sh.m, host)
	case fits:
		sh.m[host] = n
	default:
		in.untracked.Add(1)
		if in.onDrop != nil {
			in.onDrop()
		}
	}
	return prev, true
}

// overlay is a detect request's view: it reads the table and records in a
// private map, so a request's later samples see its earlier ones (as ingest
// would) while nothing it sends changes the table.
type overlay struct {
	base  *incidents
	local map[string]openIncident
}

func (o *overlay) advance(host string, t time.Time, record bool, next func(prev openIncident, tracked bool) openIncident) (openIncident, bool) {
	prev, ok := o.local[host]
	if !ok {
		prev, _ = o.base.advance(host, t, false, nil)
	}
	if !record || (!prev.at.IsZero() && t.Before(prev.at)) {
		return prev, false
	}
	if o.local == nil {
		o.local = make(map[string]openIncident)
	}
	n := next(prev, true)
	n.at = t
	o.local[host] = n
	return prev, true
}
