package anomaly

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartcloudops/smartcloudops/internal/domain"
)

// Incident events (docs/alerting.md, "Alerts to Alertmanager"). An incident
// is one metric of one host from the point that alerts on it (the point's
// Result.IsAnomaly) to the first recorded point where it is no longer in an
// anomalous state, or the host model's verdict on a host from the point it
// alerts to the first point it scores under the threshold. The service tells
// a Notifier when each opens and when it closes, on the ingest path only:
// detect reads the incidents through its private overlay and tells nobody.

// Incident is one incident as a Notifier sees it.
type Incident struct {
	Host string
	// Metric is the metric in the incident, or "" for the host model's
	// incident, which judges the host as a whole.
	Metric string
	// Source is the component that alerted: stream, threshold, or the
	// model's type (iforest, pca).
	Source string
	// StartsAt is the timestamp of the point that opened the incident.
	StartsAt time.Time
	// EndsAt is the timestamp of the point that closed it; zero on Opened.
	EndsAt time.Time
	// Score is the metric's own score on the result's scale at the alert
	// point (the model's score for a model incident); Severity grades it.
	Score    float64
	Severity domain.Severity
	// Reasons are the component's words for this metric at the alert point;
	// Explanation is the whole point's (Result.Explanation).
	Reasons     []string
	Explanation string
	// Untracked says the host did not fit the incident table
	// (ANOMALY_MAX_SERIES hosts with something open): no resolution will
	// follow, so a notifier should let the alert expire on its own.
	Untracked bool
}

// Notifier hears about incidents from the ingest path. Each incident the
// service opens gets exactly one Opened and, unless it was Untracked, exactly
// one Resolved, in that order, per host in the order of the points. The
// methods are called with the host's incident lock held, so they must not
// block (hand the event to a bounded queue and count what does not fit) and
// must not call back into the Service.
type Notifier interface {
	Opened(Incident)
	Resolved(Incident)
}

// DefaultMaxScoreSeries bounds smartcloudops_anomaly_score's series when
// Options.MaxScoreSeries is 0.
const DefaultMaxScoreSeries = 1000

// scoreGauge is smartcloudops_anomaly_score{host,metric}: the score of each
// series in an open incident, and nothing else, so its cardinality is what
// is broken now, capped at max; a series past the cap is counted in dropped
// and left out until a slot frees.
type scoreGauge struct {
	vec     *prometheus.GaugeVec
	dropped prometheus.Counter
	max     int
	mu      sync.Mutex
	keys    map[seriesKey]struct{}
}

func newScoreGauge(reg prometheus.Registerer, maxSeries int) (*scoreGauge, error) {
	const ns = "smartcloudops_anomaly_"
	g := &scoreGauge{
		vec: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + "score",
			Help: "Score (0-1) of each series in an open anomaly incident, by host and metric (no metric label for the host model's incident); a series leaves when its incident resolves. Capped by ANOMALY_MAX_SCORE_SERIES."},
			[]string{"host", "metric"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "score_series_dropped_total",
			Help: "Updates of smartcloudops_anomaly_score left out because it already held ANOMALY_MAX_SCORE_SERIES series."}),
		max:  maxSeries,
		keys: make(map[seriesKey]struct{}),
	}
	for _, c := range []prometheus.Collector{g.vec, g.dropped} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("anomaly: register metrics: %w", err)
		}
	}
	return g, nil
}

func (g *scoreGauge) set(host, metric string, v float64) {
	k := seriesKey{host, metric}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.keys[k]; !ok {
		if len(g.keys) >= g.max {
			g.dropped.Inc()
			return
		}
		g.keys[k] = struct{}{}
	}
	g.vec.WithLabelValues(host, metric).Set(v)
}

func (g *scoreGauge) remove(host, metric string) {
	k := seriesKey{host, metric}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.keys[k]; ok {
		delete(g.keys, k)
		g.vec.DeleteLabelValues(host, metric)
	}
}

// incidentStep is what combine knows of a recorded point when it moves the
// host's incidents: enough to word the events of the incidents it opens and
// to score the series of those that stay open.
type incidentStep struct {
	p           *prepared
	limits      Thresholds
	contribs    []Contributor // every contributor, before the top three are kept
	alerted     []string      // metrics a component alerts on at this point
	modelScore  float64       // NaN when the model did not score the point
	modelType   string
	explanation func(alerting bool) string
}

// track carries the host's notified incidents from prev into n and returns
// which metrics open and close at this point (modelOpened and modelClosed
// for the host model's incident). An incident is notified when a metric
// alerts that was not open (the alert point), and closes when the metric
// leaves the open set; a metric that entered the open set without alerting
// was never announced, so it closes silently too.
func track(prev openIncident, n *openIncident, alerted []string, modelOpens bool) (opened, closed []string, modelOpened, modelClosed bool) {
	for _, name := range prev.alerted {
		if n.isOpen(name) {
			n.alerted = append(n.alerted, name)
		} else {
			closed = append(closed, name)
		}
	}
	for _, name := range alerted {
		if !prev.isOpen(name) && !slices.Contains(opened, name) {
			opened = append(opened, name)
			n.alerted = append(n.alerted, name)
		}
	}
	slices.Sort(n.alerted)
	n.alerted = slices.Compact(n.alerted)
	modelOpened = modelOpens
	modelClosed = prev.modelAlerted && !n.model
	n.modelAlerted = modelOpened || (prev.modelAlerted && n.model)
	return opened, closed, modelOpened, modelClosed
}

// notify tells the Notifier and the score gauge what changed on host at
// time t. It runs inside the incident table's lock for the host, so two
// requests for one host report in the order their points were recorded.
func (s *Service) notify(host string, t time.Time, n openIncident, st incidentStep, tracked bool,
	opened, closed []string, modelOpened, modelClosed bool) {
	if len(opened) == 0 && len(closed) == 0 && !modelOpened && !modelClosed && len(n.alerted) == 0 && !n.modelAlerted {
		return
	}
	note := s.opt.Notifier
	for _, name := range closed {
		s.scores.remove(host, name)
		if note != nil {
			note.Resolved(Incident{Host: host, Metric: name, EndsAt: t})
		}
	}
	if modelClosed {
		s.scores.remove(host, "")
		if note != nil {
			note.Resolved(Incident{Host: host, EndsAt: t, Source: st.modelType})
		}
	}
	if len(opened) > 0 || modelOpened {
		expl := st.explanation(true)
		for _, name := range opened {
			sc, _ := st.metricScore(name)
			inc := Incident{Host: host, Metric: name, Source: st.source(name), StartsAt: t, Score: sc,
				Severity: domain.SeverityOf(sc), Reasons: st.reasons(name), Explanation: expl, Untracked: !tracked}
			if note != nil {
				note.Opened(inc)
			}
		}
		if modelOpened && note != nil {
			note.Opened(Incident{Host: host, Source: st.modelType, StartsAt: t, Score: st.modelScore,
				Severity: domain.SeverityOf(st.modelScore), Reasons: st.reasons(""), Explanation: expl, Untracked: !tracked})
		}
	}
	if !tracked {
		// No resolution will come to delete its series.
		return
	}
	for _, name := range n.alerted {
		if sc, ok := st.metricScore(name); ok {
			s.scores.set(host, name, sc)
		}
	}
	if n.modelAlerted && st.modelScore == st.modelScore { // not NaN
		s.scores.set(host, "", clamp01(st.modelScore))
	}
}

// metricScore is the metric's own score at this point: the stream's score
// or state, or its limit's score when past it; false when the point did not
// report the metric.
func (st incidentStep) metricScore(name string) (float64, bool) {
	i, ok := slices.BinarySearchFunc(st.p.obs, name, func(o observation, n string) int { return strings.Compare(o.metric, n) })
	if !ok {
		return 0, false
	}
	o := st.p.obs[i]
	v := 0.0
	if o.scored {
		v = max(o.res.Score, o.res.State)
	}
	if sc, over, ok := st.limits.score(name, o.value); ok && over {
		v = max(v, sc)
	}
	return clamp01(v), true
}

// source names the component that alerted on name: the stream when it did,
// else the static limit.
func (st incidentStep) source(name string) string {
	i, ok := slices.BinarySearchFunc(st.p.obs, name, func(o observation, n string) int { return strings.Compare(o.metric, n) })
	if ok && st.p.obs[i].scored && st.p.obs[i].res.IsAnomaly {
		return "stream"
	}
	return "threshold"
}

// reasons are the contributors' words for name ("" for the model's).
func (st incidentStep) reasons(name string) []string {
	var out []string
	for _, c := range st.contribs {
		model := c.Source != "stream" && c.Source != "threshold"
		if (name == "" && model) || (name != "" && !model && c.Metric == name) {
			out = append(out, c.Reason)
		}
	}
	return out
}
