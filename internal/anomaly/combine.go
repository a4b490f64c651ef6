package anomaly

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/anomaly/stream"
	"github.com/smartcloudops/smartcloudops/internal/domain"
)

// Contributor is one metric's part in a result, worded for an operator.
type Contributor struct {
	Metric string  `json:"metric"`
	Value  float64 `json:"value"`
	// Score is this metric's own score on the result's scale.
	Score float64 `json:"score"`
	// State is this metric's anomaly state, when its component keeps one
	// (the stream): it stays high while the series is held away from its
	// baseline.
	State float64 `json:"state,omitempty"`
	// Source is the component that judged it: stream, iforest or threshold.
	Source string `json:"source"`
	// Expected is what the component expected, when it has such a figure.
	Expected *float64 `json:"expected,omitempty"`
	Reason   string   `json:"reason"`
}

// Result is the verdict on one sample.
type Result struct {
	Host      string    `json:"host"`
	Timestamp time.Time `json:"timestamp"`
	// IsAnomaly is the alert: true on the point that opens an incident, once
	// per incident, however long it lasts (docs/alerting.md). Only alerts
	// are stored as anomalies.
	IsAnomaly bool `json:"is_anomaly"`
	// AnomalyScore is how unusual this point is, in [0,1].
	AnomalyScore float64 `json:"anomaly_score"`
	// State is the anomaly state in [0,1] on AnomalyScore's scale: how far
	// the host stands from its accepted normal now. It stays high for as
	// long as a fault lasts (a series held away from its baseline, a value
	// past its static limit, a row the model finds unusual), while the
	// alert fires only at its start.
	State float64 `json:"state"`
	// Sustained says the host is in an anomalous state at this point, from
	// an incident's first point (the alert) to its last: a series' state at
	// or above the threshold, a value past its static limit or a row the
	// model scores at or above the threshold.
	Sustained bool `json:"sustained"`
	// SustainedMetrics names the metrics in an anomalous state, sorted. A
	// series held away from its baseline stays there until it comes back or
	// an operator accepts its level (POST /performance/anomaly/series/rebaseline);
	// a value past its static limit stays there until it is back within it.
	SustainedMetrics []string `json:"sustained_metrics,omitempty"`
	// Confidence is the confidence in the state verdict (Sustained).
	Confidence float64 `json:"confidence"`
	// Severity grades the worse of AnomalyScore and State, so a sustained
	// fault keeps its severity after its alert.
	Severity     domain.Severity `json:"severity"`
	ModelVersion string          `json:"model_version"`
	// Components holds each component's own score (stream, iforest, threshold).
	Components map[string]float64 `json:"components"`
	// Features are the sample's values with their series context
	// (<metric>_delta, _mean, _std, taken before this sample).
	Features map[string]float64 `json:"features"`
	// Contributors are the metrics that contributed most, highest first (at most 3).
	Contributors []Contributor `json:"contributors"`
	Explanation  string        `json:"explanation"`
	// Cached says the forest's prediction came from the prediction cache.
	Cached bool `json:"cached"`
	// Late marks a sample no newer than its series' newest: scored, but not learned from.
	Late             bool    `json:"late,omitempty"`
	ProcessingTimeMS float64 `json:"processing_time_ms"`
}

// DetectOptions tune one Detect call.
type DetectOptions struct {
	// NoCache bypasses the prediction cache (use_cache=false).
	NoCache bool
}

// combine applies the documented score combination (see the package
// comment) and splits alert from state (docs/alerting.md): the stream keeps
// its own; the thresholds and the model are state on every point past their
// line and alert only on the first, which view remembers. notify tells the
// Notifier and the score gauge of the incidents the point opens and closes
// (ingest only).
func (s *Service) combine(p *prepared, m *activeModel, view incidentView, notify bool) Result {
	thr := s.opt.Threshold
	limits := *s.thresholds.Load()
	r := Result{Host: p.sample.Host, Timestamp: p.sample.Timestamp, Features: p.feats, Components: map[string]float64{}, Cached: p.cached}
	var (
		contribs  []Contributor
		decisions []bool
		versions  []string
	)
	streamScore, streamState, streamInState, streamUsed := 0.0, 0.0, false, false
	// thUsed: the thresholds stood in for the stream (fallback); thFloor:
	// a value passed its limit while the stream scored it.
	thScore, thUsed, thFloor, over := 0.0, false, false, false
	// sustained lists the metrics in an anomalous state, open those whose
	// incident stays open (sustained, or held by the stream), alerted those
	// a component alerts on at this point (the stream's alert, a limit
	// crossed or not), all sorted as p.obs is.
	var sustained, open, alerted []string
	// With a host model scoring the row, the model judges the state of the
	// metrics it was fitted on: one limit for the whole row, set on the
	// host's normal rows at a stated false-alarm share, rather than that
	// limit or-ed with each covered series' own hold, which adds the false
	// alarms of every series (docs/anomaly-models.md, "State with a model").
	// The stream still alerts on them, and its alert point is state.
	modelJudges := m != nil && !math.IsNaN(p.raw)
	for _, o := range p.obs {
		r.Late = r.Late || o.late
		if o.scored {
			streamUsed = true
			streamScore = max(streamScore, o.res.Score)
			// The stream's own verdict on its state: its threshold may be
			// raised above thr for a fast series (stream.Result.Threshold).
			// On a metric the model judges, only its alert point counts.
			judged := modelJudges && slices.Contains(m.columns, o.metric)
			inState := o.res.IsAnomaly || o.res.Anomalous && !judged
			if !judged || o.res.IsAnomaly {
				streamState = max(streamState, o.res.State)
			}
			streamInState = streamInState || inState
			if o.res.IsAnomaly {
				alerted = append(alerted, o.metric)
			}
			if o.res.Score > 0 || inState {
				contribs = append(contribs, streamContributor(o))
			}
			// The static limits stay a floor while the stream speaks: a
			// host pinned at 99% cpu is not healthy because the stream has
			// grown used to it. Within its limit the threshold stays silent,
			// since the stream knows the series better than a fixed line.
			sc, isOver, ok := limits.score(o.metric, o.value)
			if ok && isOver {
				thFloor = true
				thScore = max(thScore, sc)
				over = true
				contribs = append(contribs, thresholdContributor(o, sc, isOver, limits[o.metric]))
			}
			if inState || isOver {
				sustained = append(sustained, o.metric)
			}
			if inState || o.res.Anomalous || isOver || o.res.Holding {
				open = append(open, o.metric)
			}
			if isOver && !o.res.IsAnomaly {
				alerted = append(alerted, o.metric)
			}
			continue
		}
		if sc, isOver, ok := limits.score(o.metric, o.value); ok {
			thUsed = true
			thScore = max(thScore, sc)
			if isOver {
				over = true
				sustained = append(sustained, o.metric)
				open = append(open, o.metric)
				alerted = append(alerted, o.metric)
			}
			contribs = append(contribs, thresholdContributor(o, sc, isOver, limits[o.metric]))
		}
	}
	if streamUsed {
		versions = append(versions, StreamVersion)
		decisions = append(decisions, streamInState)
		r.Components["stream"] = streamScore
	}
	forestScore, forestUsed := 0.0, false
	if m != nil && !math.IsNaN(p.raw) {
		forestUsed = true
		forestScore = p.raw
		versions = append(versions, m.info.Version)
		decisions = append(decisions, forestScore >= thr)
		r.Components[p.sub.typ] = forestScore
		contribs = append(contribs, modelContributors(m, p.sub, p.row, forestScore, thr)...)
	}
	if thUsed || thFloor {
		versions = append(versions, ThresholdVersion)
		decisions = append(decisions, over)
		r.Components["threshold"] = thScore
	}
	// One alert per incident: a metric alerts only when it opens one (it
	// was not in an anomalous state at the host's previous point), whichever
	// component saw it first, so a limit crossed at one point and the
	// stream's alert at the next page once; the thresholds and the model
	// alert when their line is crossed, not on every point past it. The
	// model judges the host as a whole, so it opens an incident only on a
	// host with none open. A late point (older than its series' newest, or
	// than the host's newest recorded) reads the open incidents but neither
	// moves them nor opens one: it teaches no series, and the incident it
	// belongs to was decided by the points around it.
	forestOver := forestUsed && forestScore >= thr
	sustainedNow := len(sustained) > 0 || forestOver
	sort.SliceStable(contribs, func(i, j int) bool { return contribs[i].weight() > contribs[j].weight() })
	all := contribs
	if len(contribs) > 3 {
		contribs = contribs[:3]
	}
	warming := len(p.obs) > 0 && !streamUsed && !forestUsed && !thUsed
	explain := func(alerting bool) string { return explanation(contribs, alerting || sustainedNow, warming, thr) }
	prev, fresh := view.advance(r.Host, r.Timestamp, !r.Late, func(prev openIncident, tracked bool) openIncident {
		n := openIncident{model: prev.model}
		if forestUsed {
			n.model = forestOver
		}
		// A metric this sample does not report keeps its verdict.
		for _, name := range prev.open {
			if _, reported := p.sample.Metrics[name]; !reported {
				n.open = append(n.open, name)
			}
		}
		n.open = append(n.open, open...)
		slices.Sort(n.open)
		// The events of the incidents this point opens and closes, told
		// here, under the host's lock, so they reach the notifier in the
		// order of the points (events.go). Only ingest tells anyone.
		modelOpens := forestOver && !prev.model && len(prev.open) == 0
		opened, closed, mo, mc := track(prev, &n, alerted, modelOpens)
		if notify {
			st := incidentStep{p: p, limits: limits, contribs: all, alerted: alerted, modelScore: math.NaN(), explanation: explain}
			if forestUsed {
				st.modelScore, st.modelType = forestScore, p.sub.typ
			}
			s.notify(r.Host, r.Timestamp, n, st, tracked, opened, closed, mo, mc)
		}
		return n
	})
	opens := fresh && forestOver && !prev.model && len(prev.open) == 0
	for _, name := range alerted {
		opens = opens || (fresh && !prev.isOpen(name))
	}
	if thUsed {
		s.fallbacks.Add(1)
		s.metrics.fallback.Inc()
	}
	if len(versions) == 0 {
		// No component could speak (a warming series of a metric without a
		// threshold): say so, on the fallback's version.
		versions = append(versions, ThresholdVersion)
		s.fallbacks.Add(1)
		s.metrics.fallback.Inc()
	}
	sort.Strings(versions)
	r.ModelVersion = strings.Join(versions, "+")
	r.AnomalyScore = clamp01(max(streamScore, forestScore, thScore))
	r.State = clamp01(max(streamState, forestScore, thScore))
	r.IsAnomaly = opens
	r.Sustained = sustainedNow
	r.SustainedMetrics = sustained
	r.Severity = domain.SeverityOf(max(r.AnomalyScore, r.State))
	r.Confidence = confidence(max(r.AnomalyScore, r.State), thr, r.Sustained, decisions, !streamUsed && !forestUsed)
	r.Contributors = contribs
	r.Explanation = explain(r.IsAnomaly)
	if r.Contributors == nil {
		r.Contributors = []Contributor{}
	}
	return r
}

// explanation words a result from its top contributors: their reasons when
// the point alerts or the host is in an anomalous state (inIncident).
func explanation(contribs []Contributor, inIncident, warming bool, thr float64) string {
	switch {
	case inIncident && len(contribs) > 0:
		reasons := make([]string, 0, len(contribs))
		for _, c := range contribs {
			if c.weight() >= thr/2 {
				reasons = append(reasons, c.Reason)
			}
		}
		if len(reasons) == 0 {
			reasons = append(reasons, contribs[0].Reason)
		}
		return strings.Join(reasons, "; ")
	case warming:
		return "series still warming up and no threshold applies; no verdict yet"
	default:
		return "no metric is unusual"
	}
}

func clamp01(v float64) float64 { return min(1, max(0, v)) }

// weight ranks contributors: a held series whose point score has fallen
// still counts by its state.
func (c Contributor) weight() float64 { return max(c.Score, c.State) }

// thresholdContributor words a static limit's verdict on one metric.
func thresholdContributor(o observation, score float64, over bool, limit float64) Contributor {
	c := Contributor{Metric: o.metric, Value: o.value, Score: score, Source: "threshold", Expected: &limit}
	if over {
		c.Reason = fmt.Sprintf("%s is %.4g, above its limit of %.4g", o.metric, o.value, limit)
	} else {
		c.Reason = fmt.Sprintf("%s is %.4g, within its limit of %.4g", o.metric, o.value, limit)
	}
	return c
}

// confidence is 0.5·margin + 0.5·agreement (see the package comment).
func confidence(score, thr float64, decided bool, decisions []bool, thresholdsOnly bool) float64 {
	var margin float64
	if score >= thr {
		margin = (score - thr) / (1 - thr)
	} else {
		margin = (thr - score) / thr
	}
	margin = clamp01(margin)
	if thresholdsOnly || len(decisions) == 0 {
		return clamp01(0.25 + 0.5*margin)
	}
	agree := 0
	for _, d := range decisions {
		if d == decided {
			agree++
		}
	}
	return clamp01(0.5*margin + 0.5*float64(agree)/float64(len(decisions)))
}

func streamContributor(o observation) Contributor {
	c := Contributor{Metric: o.metric, Value: o.value, Score: o.res.Score, State: o.res.State, Source: "stream"}
	if len(o.res.Reasons) == 0 {
		if o.res.Anomalous {
			// The point itself is unremarkable next to the last ones (the
			// alert is behind it), but the series has not come back.
			c.Reason = fmt.Sprintf("%s is %.4g, still away from its accepted normal (state %.2f)", o.metric, o.value, o.res.State)
		} else {
			c.Reason = fmt.Sprintf("%s is %.4g, in line with its recent behaviour", o.metric, o.value)
		}
	} else {
		top := o.res.Reasons[0]
		exp := top.Expected
		c.Expected = &exp
		switch top.View {
		case stream.ViewChange:
			c.Reason = fmt.Sprintf("%s jumped to %.4g from %.4g", o.metric, o.value, top.Expected)
		case stream.ViewSpread:
			c.Reason = fmt.Sprintf("%s became unusually erratic (typical step %.4g, now %.4g)", o.metric, top.Expected, top.Observed)
		case stream.ViewSeasonal:
			c.Reason = fmt.Sprintf("%s is %.4g where this time of day usually shows %.4g", o.metric, o.value, top.Expected)
		case stream.ViewLevel:
			c.Reason = fmt.Sprintf("%s is %.4g against a recent level of %.4g", o.metric, o.value, top.Expected)
		default:
			// Views the stream part adds later are named, not worded.
			c.Reason = fmt.Sprintf("%s is %.4g; its %s view expected %.4g, saw %.4g", o.metric, o.value, top.View, top.Expected, top.Observed)
		}
	}
	if o.res.Holding {
		c.Reason += "; its baseline is held until it returns or an operator re-baselines it"
	}
	return c
}

func (s *Service) count(r *Result) {
	s.scored.Add(1)
	s.metrics.samples.Inc()
	if r.IsAnomaly {
		s.severities[severityIndex(r.Severity)].Add(1)
		s.metrics.anomalies.WithLabelValues(string(r.Severity)).Inc()
	}
}
