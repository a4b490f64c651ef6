package main

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/smartcloudops/smartcloudops/bench/internal/svcrun"
)

// kind is one request type of the mixed load.
type kind int

const (
	kindIngest kind = iota
	kindCachePut
	kindCacheGet
	kindDetect
	numKinds
)

func (k kind) String() string {
	return [...]string{"ingest", "cache-put", "cache-get", "detect"}[k]
}

// sampleKey names one stored metric sample: system_metrics is unique on it.
type sampleKey struct {
	host string
	ts   int64
}

// putRecord is one acknowledged cache PUT.
type putRecord struct {
	key   string
	value string
	// tier is the X-Cache answer (L1, L2, FALLBACK), with the durability
	// header's value after a slash when there is one, kept to say where
	// lost writes went.
	tier string
	// durable is false when the answer said the write may not survive a
	// Redis outage (the durability header with a value of -non-durable).
	durable bool
	sentAt  time.Time
}

// outcome is what one request of the load got.
type outcome struct {
	kind       kind
	status     int // 0 when no answer came (refused, reset, timed out)
	retryAfter bool
	err        string // transport error or the problem's detail, for notes
	sentAt     time.Time
	took       time.Duration // send to the answer's last byte; 0 without one
	// samples are the ingest request's samples; put is the PUT's record.
	samples []sampleKey
	put     *putRecord
}

// class sorts an answer into the table's columns.
type class int

const (
	classOK class = iota
	classDegraded
	classUnavailable
	classServerError
	classOther
	classNoAnswer
	numClasses
)

// classify says which column an answer counts in. A 503 with Retry-After
// is the documented degraded answer (the client knows to come back); a 503
// without it is counted apart, as every 500 is. A cache GET's 404 is a
// miss, an answer the API promises, not a failure.
func classify(k kind, status int, retryAfter bool) class {
	switch {
	case status == 0:
		return classNoAnswer
	case status/100 == 2:
		return classOK
	case k == kindCacheGet && status == http.StatusNotFound:
		return classOK
	case status == http.StatusServiceUnavailable && retryAfter:
		return classDegraded
	case status == http.StatusServiceUnavailable:
		return classUnavailable
	case status == http.StatusInternalServerError:
		return classServerError
	default:
		return classOther
	}
}

// phase is everything the load saw while one fault was in place, from its
// lead-in to the end of its recovery tail.
type phase struct {
	name string

	mu       sync.Mutex
	requests int
	classes  [numClasses]int
	// byKind counts the answers that were not OK, per request kind and
	// status, for the notes.
	byKind    map[string]int
	firstErrs map[class]string
	samples   []sampleKey
	puts      []putRecord
	took      []time.Duration
	// injectedAt is when the fault went in; writes sent before it in a
	// phase whose fault wipes the cache server are not the service's loss.
	injectedAt time.Time
}

func newPhase(name string) *phase {
	return &phase{name: name, byKind: map[string]int{}, firstErrs: map[class]string{}}
}

// record adds one request's outcome. Only 2xx answers are acknowledgements:
// their data must be found later.
func (p *phase) record(o outcome) {
	c := classify(o.kind, o.status, o.retryAfter)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests++
	p.classes[c]++
	if c != classOK {
		label := fmt.Sprintf("%s %d", o.kind, o.status)
		if o.status == 0 {
			label = o.kind.String() + " no answer (" + netCause(o.err) + ")"
		}
		p.byKind[label]++
		if _, ok := p.firstErrs[c]; !ok && o.err != "" {
			p.firstErrs[c] = fmt.Sprintf("%s: %s", label, o.err)
		}
	}
	if o.status != 0 {
		p.took = append(p.took, o.took)
	}
	if o.status/100 != 2 {
		return
	}
	p.samples = append(p.samples, o.samples...)
	if o.put != nil {
		p.puts = append(p.puts, *o.put)
	}
}

// netCause names the kind of transport failure, so a report can tell a
// refused connection (nothing listening) from one cut in the middle of a
// request (EOF, reset) and from a timeout.
func netCause(err string) string {
	switch {
	case strings.Contains(err, "connection refused"):
		return "refused"
	case strings.Contains(err, "connection reset"):
		return "reset"
	case strings.Contains(err, "EOF"):
		return "EOF"
	case strings.Contains(err, "Timeout") || strings.Contains(err, "deadline exceeded"):
		return "timeout"
	default:
		return "other"
	}
}

// p99 is the nearest-rank 99th percentile of the answered requests'
// latencies, 0 without any.
func (p *phase) p99() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.took) == 0 {
		return 0
	}
	s := slices.Clone(p.took)
	slices.Sort(s)
	i := int(0.99*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// loss is the result of checking a phase's acknowledgements.
type loss struct {
	samplesAcked, samplesLost int
	putsAcked, putsLost       int
	// nonDurable are PUTs answered as not durable; nonDurableGone of them
	// were indeed gone. Neither counts as lost.
	nonDurable, nonDurableGone int
	// serverWiped are PUTs sent before the cache server itself was killed:
	// a Redis that keeps nothing on disk loses them whatever the service
	// does, so they are reported, not counted.
	serverWiped, serverWipedGone int
	// lostByTier says where the lost PUTs were answered from.
	lostByTier map[string]int
	examples   []string
}

// lost is the acknowledged data the service did not keep.
func (l loss) lost() int { return l.samplesLost + l.putsLost }

// account compares a phase's acknowledgements with what was found: stored
// says whether a sample is in system_metrics, readable whether a key reads
// back its value. wipedServer is true for a fault that kills the cache
// server, whose earlier writes are not the service's to keep.
func (p *phase) account(stored func(sampleKey) bool, readable func(putRecord) bool, wipedServer bool) loss {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := loss{lostByTier: map[string]int{}}
	for _, s := range p.samples {
		l.samplesAcked++
		if !stored(s) {
			l.samplesLost++
			if len(l.examples) < 3 {
				l.examples = append(l.examples, fmt.Sprintf("sample %s@%d not in system_metrics", s.host, s.ts))
			}
		}
	}
	for _, w := range p.puts {
		ok := readable(w)
		switch {
		case !w.durable:
			l.nonDurable++
			if !ok {
				l.nonDurableGone++
			}
		case wipedServer && w.sentAt.Before(p.injectedAt):
			l.serverWiped++
			if !ok {
				l.serverWipedGone++
			}
		default:
			l.putsAcked++
			if !ok {
				l.putsLost++
				l.lostByTier[w.tier]++
				if len(l.examples) < 3 {
					l.examples = append(l.examples, fmt.Sprintf("cache key %s (answered X-Cache %s) not readable", w.key, w.tier))
				}
			}
		}
	}
	return l
}

// result is one row of the table.
type result struct {
	name     string
	skipped  string // why the fault was not run; empty when it ran
	requests int
	classes  [numClasses]int
	p99      time.Duration
	loss     loss
	// recovery is from removing the fault to health UP; negative when the
	// service did not recover within the limit.
	recovery time.Duration
	notes    []string
}

// writeTable prints the matrix: one row a fault.
func writeTable(w io.Writer, rows []result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "fault\trequests\tok\t503+Retry-After\t503 other\t500\tother\tno answer\tp99\tacked lost\tnon-durable\trecovery\t")
	var skipped []string
	for _, r := range rows {
		if r.skipped != "" {
			fmt.Fprintf(tw, "%s\tskipped\t\t\t\t\t\t\t\t\t\t\t\n", r.name)
			skipped = append(skipped, fmt.Sprintf("%s skipped: %s", r.name, r.skipped))
			continue
		}
		c := r.classes
		rec := svcrun.FmtDuration(r.recovery)
		if r.recovery < 0 {
			rec = "not recovered"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%d\t%s\t\n", r.name, r.requests,
			c[classOK], c[classDegraded], c[classUnavailable], c[classServerError], c[classOther], c[classNoAnswer],
			svcrun.FmtDuration(r.p99), lostCell(r.loss), r.loss.nonDurable, rec)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range skipped {
		if _, err := fmt.Fprintln(w, s); err != nil {
			return err
		}
	}
	return nil
}

// lostCell shows lost over acknowledged, split by store.
func lostCell(l loss) string {
	return fmt.Sprintf("%d/%d ingest, %d/%d cache", l.samplesLost, l.samplesAcked, l.putsLost, l.putsAcked)
}

// phaseNotes says, under the table, what the counts hide: the non-OK
// answers by request kind, the first error of each class, and where lost
// writes went.
func phaseNotes(p *phase, l loss) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var notes []string
	if len(p.byKind) > 0 {
		labels := make([]string, 0, len(p.byKind))
		for k := range p.byKind {
			labels = append(labels, k)
		}
		sort.Strings(labels)
		parts := make([]string, len(labels))
		for i, k := range labels {
			parts[i] = fmt.Sprintf("%s ×%d", k, p.byKind[k])
		}
		notes = append(notes, "not OK: "+strings.Join(parts, ", "))
	}
	for c := range numClasses {
		if e, ok := p.firstErrs[c]; ok {
			notes = append(notes, "first "+e)
		}
	}
	if l.putsLost > 0 {
		tiers := make([]string, 0, len(l.lostByTier))
		for t, n := range l.lostByTier {
			tiers = append(tiers, fmt.Sprintf("%s ×%d", t, n))
		}
		sort.Strings(tiers)
		notes = append(notes, "lost cache writes had been answered X-Cache "+strings.Join(tiers, ", "))
	}
	if l.nonDurable > 0 {
		notes = append(notes, fmt.Sprintf("%d cache writes answered as not durable, %d of them gone afterwards (not counted as lost)", l.nonDurable, l.nonDurableGone))
	}
	if l.serverWiped > 0 {
		notes = append(notes, fmt.Sprintf("%d cache writes sent before Redis was killed, %d of them gone with it (Redis keeps nothing on disk; not counted)", l.serverWiped, l.serverWipedGone))
	}
	notes = append(notes, l.examples...)
	return notes
}
