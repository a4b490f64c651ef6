// Package nab scores anomaly detections by the rules of the Numenta Anomaly
// Benchmark: a window around each labelled anomaly, a probation period at the
// start of every series that is not scored, a sigmoid reward for the first
// detection inside a window (earlier is worth more), a cost for every
// detection outside one (less just after a window) and for every missed
// window, and a score normalised so that a detector that flags nothing gets 0
// and a perfect one 100.
//
// A Set holds the scored rows of any group of series, so the same code scores
// the whole corpus, one category, or every category but one.
package nab

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
)

// Profile is one of NAB's application profiles: the weight of a detected
// window, of a false positive and of a missed window.
type Profile struct {
	Name       string
	TP, FP, FN float64
}

// Profiles returns NAB's three published profiles, standard first.
func Profiles() []Profile {
	return []Profile{
		{Name: "standard", TP: 1, FP: 0.11, FN: 1},
		{Name: "reward_low_FP_rate", TP: 1, FP: 0.22, FN: 1},
		{Name: "reward_low_FN_rate", TP: 1, FP: 0.11, FN: 2},
	}
}

// Standard is NAB's standard profile, the one every headline figure uses.
func Standard() Profile { return Profiles()[0] }

// The first probationShare of a series, at most probationShare*probationBase
// rows, is where a detector learns; nothing there is scored.
const (
	probationShare = 0.15
	probationBase  = 5000
)

// Probation is the number of unscored rows at the start of an n-row series.
func Probation(n int) int {
	p := math.Floor(probationShare * float64(n))
	return int(math.Min(p, probationShare*probationBase))
}

// Window is a labelled anomaly window as row indices, both ends included.
type Window struct{ Start, End int }

// Series is one file's detector output with its labelled windows. Scores are
// in [0, 1], one per row in the data's order; for own decisions they are 0 or 1.
type Series struct {
	Name    string
	Scores  []float64
	Windows []Window
}

// Labels maps "<category>/<file>.csv" to its windows as [start, end]
// timestamps, as in NAB's labels/combined_windows.json.
type Labels map[string][][2]string

// ReadLabels reads a combined_windows.json file.
func ReadLabels(path string) (Labels, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("nab: read labels: %w", err)
	}
	var l Labels
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("nab: labels %s: %w", path, err)
	}
	return l, nil
}

// stamp is the part of a timestamp that labels and data are matched on:
// NAB writes labels with microseconds and data without.
func stamp(s string) string {
	if len(s) > 19 {
		return s[:19]
	}
	return s
}

// Locate turns windows given as timestamps into row indices of ts.
func Locate(ts []string, wins [][2]string) ([]Window, error) {
	at := make(map[string]int, len(ts))
	for i, t := range ts {
		if _, dup := at[stamp(t)]; !dup {
			at[stamp(t)] = i
		}
	}
	out := make([]Window, 0, len(wins))
	for _, w := range wins {
		a, okA := at[stamp(w[0])]
		b, okB := at[stamp(w[1])]
		if !okA || !okB {
			return nil, fmt.Errorf("nab: window %s..%s: timestamp not in the series", w[0], w[1])
		}
		if b < a {
			return nil, fmt.Errorf("nab: window %s..%s ends before it starts", w[0], w[1])
		}
		out = append(out, Window{Start: a, End: b})
	}
	return out, nil
}

// point is one scored (post-probation) row. unit is its reward or cost before
// the profile's weight: in a window, the sigmoid reward of detecting there
// (1 at the window's start); outside, a value in [-1, 0) that the FP weight
// scales (closer to 0 just after a window ends).
type point struct {
	score float64
	win   int // index into Set's windows, -1 outside every window
	unit  float64
}

// Set is a group of series ready to score under any profile and threshold.
type Set struct {
	pts     []point // sorted by score, highest first
	windows int     // labelled windows, including any inside probation
	scored  int     // windows with at least one scored row
}

// sigmoidReward is NAB's scaled sigmoid of a relative position: positive
// inside a window (pos in [-1, 0)), negative after it, -1 far away.
func sigmoidReward(pos float64) float64 {
	if pos > 3 {
		return -1
	}
	return 2/(1+math.Exp(5*pos)) - 1
}

// NewSet checks the series and precomputes every scored row's reward.
func NewSet(series []Series) (*Set, error) {
	s := &Set{}
	maxTP := sigmoidReward(-1)
	for _, se := range series {
		n := len(se.Scores)
		winOf := make([]int, n)
		for i := range winOf {
			winOf[i] = -1
		}
		for k, w := range se.Windows {
			if w.Start < 0 || w.End >= n || w.End < w.Start {
				return nil, fmt.Errorf("nab: %s: window %d [%d, %d] outside %d rows", se.Name, k, w.Start, w.End, n)
			}
			// A later window overrides an overlapping earlier one, as NAB's labeller never produces.
			for i := w.Start; i <= w.End; i++ {
				winOf[i] = s.windows + k
			}
		}
		prob := Probation(n)
		seen := make(map[int]bool)
		prevEnd, prevWidth := -1, 0
		for i, v := range se.Scores {
			if math.IsNaN(v) || v < 0 || v > 1 {
				return nil, fmt.Errorf("nab: %s: row %d: score %v is not in [0, 1]", se.Name, i, v)
			}
			var unit float64
			if k := winOf[i]; k >= 0 {
				w := se.Windows[k-s.windows]
				width := float64(w.End - w.Start + 1)
				unit = sigmoidReward(-float64(w.End-i+1)/width) / maxTP
				if i == w.End {
					prevEnd, prevWidth = i, w.End-w.Start+1
				}
			} else if prevEnd < 0 {
				unit = -1
			} else {
				// A one-row window would divide by zero; treat it as two rows wide.
				unit = sigmoidReward(float64(i-prevEnd) / float64(max(prevWidth-1, 1)))
			}
			if i < prob {
				continue
			}
			if winOf[i] >= 0 {
				seen[winOf[i]] = true
			}
			s.pts = append(s.pts, point{score: v, win: winOf[i], unit: unit})
		}
		s.windows += len(se.Windows)
		s.scored += len(seen)
	}
	sort.SliceStable(s.pts, func(i, j int) bool { return s.pts[i].score > s.pts[j].score })
	return s, nil
}

// ErrNoWindows is returned by Normalise for a set without labelled windows,
// where a null and a perfect detector score the same.
var ErrNoWindows = errors.New("nab: no labelled windows to normalise by")

// Normalise maps a raw score to NAB's scale: 0 for flagging nothing, 100 for
// flagging exactly the start of every window.
func (s *Set) Normalise(p Profile, raw float64) (float64, error) {
	if s.windows == 0 {
		return math.NaN(), ErrNoWindows
	}
	null := -p.FN * float64(s.windows)
	perfect := p.TP * float64(s.windows)
	return 100 * (raw - null) / (perfect - null), nil
}

// value is a point's reward or cost under p.
func (pt point) value(p Profile) float64 {
	if pt.win >= 0 {
		return pt.unit * p.TP
	}
	return pt.unit * p.FP
}

// Fixed is the raw score when every row whose score is at least thr is a
// detection: the best detection in each window counts once, a window without
// one costs FN, every detection outside a window costs.
func (s *Set) Fixed(p Profile, thr float64) float64 {
	best := make(map[int]float64, s.scored)
	var fp float64
	for _, pt := range s.pts {
		if pt.score < thr {
			break // sorted: nothing below is flagged
		}
		if pt.win < 0 {
			fp += pt.value(p)
		} else if v, ok := best[pt.win]; !ok || pt.value(p) > v {
			best[pt.win] = pt.value(p)
		}
	}
	total := fp - p.FN*float64(s.scored-len(best))
	for _, v := range best {
		total += math.Max(v, -p.FN)
	}
	return total
}

// Optimise finds the single threshold that maximises the raw score over the
// whole set (NAB's global threshold) and returns both. Rows with equal scores
// are flagged together, so every candidate threshold is a score that occurs.
// Flagging nothing (threshold 1.1) is the starting point.
func (s *Set) Optimise(p Profile) (raw, thr float64) {
	best := make(map[int]float64, s.scored)
	total := -p.FN * float64(s.scored)
	raw, thr = total, 1.1
	for i := 0; i < len(s.pts); {
		cut := s.pts[i].score
		for ; i < len(s.pts) && s.pts[i].score == cut; i++ {
			pt := s.pts[i]
			v := pt.value(p)
			if pt.win < 0 {
				total += v
				continue
			}
			old, ok := best[pt.win]
			if !ok {
				old = -p.FN
			}
			if v > old {
				total += v - old
				best[pt.win] = v
			}
		}
		if total > raw {
			raw, thr = total, cut
		}
	}
	return raw, thr
}
