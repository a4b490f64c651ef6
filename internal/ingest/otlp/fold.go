package otlp

import (
	"cmp"
	"slices"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/ingest"
)

// accum folds the points that give one feature of one host's row.
type accum struct {
	target
	num, den float64
	max      float64
	n        int
	// points are the data points accounted to this feature, by outcome
	// (kept, repeat), moved to another outcome if the feature is dropped.
	points map[string]int
}

func (a *accum) add(v float64, num, den bool) {
	switch a.agg {
	case aggRatio:
		if num {
			a.num += v
		}
		if den {
			a.den += v
		}
	case aggMax:
		if a.n == 0 || v > a.max {
			a.max = v
		}
	default:
		a.num += v
		a.den++
	}
	a.n++
}

// value is the folded value, false when undefined (a ratio over zero).
func (a *accum) value() (float64, bool) {
	switch a.agg {
	case aggSum:
		return a.num * a.scale, true
	case aggMax:
		return a.max * a.scale, a.n > 0
	default:
		if a.den == 0 {
			return 0, false
		}
		return a.num / a.den * a.scale, true
	}
}

// observe runs the records through the Tracker in time order (a request
// may carry several collections of one series) and folds what it keeps
// into the hosts' rows.
func (b *batch) observe(tr *ingest.Tracker) {
	slices.SortStableFunc(b.recs, func(x, y record) int { return cmp.Compare(x.t, y.t) })
	for i := range b.recs {
		r := &b.recs[i]
		ts := time.Unix(0, r.t)
		if r.kind == obsForget {
			tr.Forget(b.tenant, r.id)
			if r.has2 {
				tr.Forget(b.tenant, r.id2)
			}
			b.count(outNoRecordedValue, 1)
			continue
		}
		v, outcome, ok := b.track(tr, r.kind, r.id, r.start, ts, r.v)
		// A histogram's sum is tracked whatever became of its count, so
		// the two series stay in step.
		var sum float64
		hasSum := false
		if r.has2 {
			sum, _, hasSum = b.track(tr, r.kind, r.id2, r.start, ts, r.v2)
		}
		if !ok {
			b.count(outcome.String(), 1)
			continue
		}
		if !r.selected {
			b.count(outNotSelected, 1)
			continue
		}
		label := outcome.String()
		if !b.fold(rowKey{r.host, r.t}, r.tgt, v, label) {
			continue
		}
		if r.avg != nil && hasSum {
			// The mean's points are accounted to the rate's feature.
			a := b.accum(rowKey{r.host, r.t}, *r.avg, "")
			if a != nil {
				a.num += sum
				a.den += v
				a.n++
			}
		}
	}
}

func (b *batch) track(tr *ingest.Tracker, kind obsKind, id uint64, start int64, ts time.Time, v float64) (float64, ingest.Outcome, bool) {
	if kind == obsCounter {
		var st time.Time
		if start > 0 {
			st = time.Unix(0, start)
		}
		return tr.ObserveSince(b.tenant, id, st, ts, v)
	}
	return tr.Observe(b.tenant, id, ingest.Gauge, ts, v)
}

// fold adds v to its feature's fold, accounting the point under label; it
// reports false when the feature belongs to another metric (the point is
// then counted as a collision).
func (b *batch) fold(k rowKey, tg target, v float64, label string) bool {
	a := b.accum(k, tg, label)
	if a == nil {
		return false
	}
	a.add(v, tg.num, tg.den)
	a.points[label]++
	return true
}

// accum is the fold of tg's feature in row k, made if new. When another
// metric already gives that feature, the lower prio keeps it (the first
// on a tie): the loser's points are counted as collisions, and nil is
// returned when the loser is tg. label is the caller's point's outcome,
// counted as a collision when it loses ("" for none).
func (b *batch) accum(k rowKey, tg target, label string) *accum {
	row := b.rows[k]
	if row == nil {
		row = map[string]*accum{}
		b.rows[k] = row
	}
	a := row[tg.feature]
	if a != nil && a.source != tg.source {
		if tg.prio >= a.prio {
			if label != "" {
				b.count(outCollision, 1)
			}
			return nil
		}
		for _, n := range a.points {
			b.count(outCollision, n)
		}
		a = nil
	}
	if a == nil {
		a = &accum{target: tg, points: map[string]int{}}
		row[tg.feature] = a
	}
	return a
}
