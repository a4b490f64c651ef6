package anomaly

import (
	"context"
	"log/slog"
	"math"
	"sort"
	"time"

	"go.opentelemetry.io/otel/trace"
)

func (s *Service) observeFlush(n int, r flushReason) {
	s.flushes[r].Add(1)
	s.metrics.flushes.WithLabelValues([...]string{"idle", "size", "timeout", "close"}[r]).Inc()
}

// scoreBatch is the workers' job: one ScoreBatch per model in the batch
// (normally one; two only across a swap).
func (s *Service) scoreBatch(batch []*job) {
	if s.tracer != nil {
		sp := s.startBatch(batch)
		defer sp.End()
	}
	s.metrics.batch.Observe(float64(len(batch)))
	i := sort.SearchInts(batchBuckets[:], len(batch))
	s.batchSizes[i].Add(1)
	for start := 0; start < len(batch); {
		m := batch[start].host
		end := start + 1
		for end < len(batch) && batch[end].host == m {
			end++
		}
		rows := make([][]float64, end-start)
		for k := range rows {
			rows[k] = batch[start+k].row
		}
		out := make([]float64, len(rows))
		if err := m.scoreRows(rows, out); err != nil {
			// Rows are built from the model's own columns with finite
			// values, so this is a bug; score them as unknown rather than
			// failing the requests.
			s.log.Error("anomaly: model batch scoring", slog.String("error", err.Error()))
			for k := range out {
				out[k] = math.NaN()
			}
		}
		for k, v := range out {
			batch[start+k].score = v
		}
		start = end
	}
}

// prepared is one sample between the streaming step and the combination.
type prepared struct {
	sample Sample
	obs    []observation
	feats  map[string]float64
	row    []float64
	sub    *hostModel // the model that scores row: the host's or the fleet's
	raw    float64    // the model's calibrated score, NaN when none
	cached bool
	key    string
}

func (s *Service) prepare(smp Sample, m *activeModel, observe func(Sample, map[string]float64) []observation, latest latestFunc) prepared {
	p := prepared{sample: smp, feats: make(map[string]float64, 4*len(smp.Metrics)), raw: math.NaN()}
	p.obs = observe(smp, p.feats)
	if m != nil {
		p.sub, p.row = m.row(smp)
		if p.row != nil && !completeRow(smp, m.columns, p.row, latest) {
			p.row = nil
		}
	}
	return p
}

// latestFunc reads the newest value a series learned and its time.
type latestFunc func(host, metric string) (float64, time.Time, bool)

// partialWindow is how recently a host must have reported a metric for a
// row without it to be a part of a row rather than a row of a host that
// does not report it: Prometheus's staleness period, after which it too
// reads a series as gone.
const partialWindow = 5 * time.Minute

// completeRow fills, in row, the model columns smp lacks that the host
// reported at the same instant (another part of the same scrape: remote
// write shards one scrape's series over parallel requests, so a host's row
// arrives in parts), and reports whether the row is whole. A row is not
// whole when it lacks a column the host reported within partialWindow but
// not at this instant: the model does not score such a part, because
// imputing the column's median next to the metrics present can make a
// normal host look unusual (a busy cpu beside a typical request rate).
// The part that completes the instant is scored on the whole row, with
// the values of its other parts. A column the host does not report keeps
// the model's imputed value, as before.
func completeRow(smp Sample, columns []string, row []float64, latest latestFunc) bool {
	for i, c := range columns {
		if _, ok := smp.Metrics[c]; ok {
			continue
		}
		v, at, ok := latest(smp.Host, c)
		switch {
		case !ok || at.After(smp.Timestamp) || smp.Timestamp.Sub(at) > partialWindow:
		case at.Equal(smp.Timestamp):
			row[i] = v
		default:
			return false
		}
	}
	return true
}

// scoreForest fills raw for every prepared sample with a forest row: from the
// cache when allowed, else through the batcher (or inline).
func (s *Service) scoreForest(ctx context.Context, m *activeModel, preps []prepared, useCache bool, reserved *int) error {
	var jobs []*job
	var misses []int
	// The request's span, which the batch that scores its jobs links to.
	var span trace.Span
	if s.tracer != nil {
		span = trace.SpanFromContext(ctx)
	}
	for i := range preps {
		p := &preps[i]
		if p.row == nil {
			continue
		}
		if useCache && s.opt.Cache != nil {
			p.key = cacheKey(p.sub.scope, p.row)
			b, ok, err := s.opt.Cache.Get(ctx, p.key)
			switch {
			case err != nil:
				s.cacheErrors.Add(1)
				s.metrics.cache.WithLabelValues("error").Inc()
			case ok:
				if v, valid := decodeScore(b); valid {
					p.raw, p.cached = v, true
					s.cacheHits.Add(1)
					s.metrics.cache.WithLabelValues("hit").Inc()
					continue
				}
				fallthrough
			default:
				s.cacheMisses.Add(1)
				s.metrics.cache.WithLabelValues("miss").Inc()
			}
		}
		misses = append(misses, i)
		jobs = append(jobs, &job{model: m, host: p.sub, row: p.row, span: span})
	}
	if s.batch != nil {
		s.batch.release(*reserved - len(jobs))
		*reserved = 0
		if len(jobs) > 0 {
			if err := s.batch.submit(ctx, jobs); err != nil {
				return err
			}
		}
	} else if len(jobs) > 0 {
		s.scoreBatch(jobs)
	}
	for k, i := range misses {
		p := &preps[i]
		p.raw = jobs[k].score
		if p.key != "" && !math.IsNaN(p.raw) {
			if err := s.opt.Cache.Set(ctx, p.key, encodeScore(p.raw), s.opt.CacheTTL); err != nil {
				s.cacheErrors.Add(1)
				s.metrics.cache.WithLabelValues("error").Inc()
			}
		}
	}
	return nil
}
