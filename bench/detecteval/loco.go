package main

import (
	"fmt"
	"math"
	"sort"

	"github.com/smartcloudops/smartcloudops/bench/detecteval/nab"
)

// Run is one detector configuration's output on one file.
type Run struct {
	// Scores are anomaly_score per row, in [0, 1].
	Scores []float64
	// Own are the detector's own decisions (is_anomaly) per row, 0 or 1.
	Own []float64
}

// File is one labelled series with the output of every candidate
// configuration, computed once and reused by every fold.
type File struct {
	Name     string // "<category>/<file>.csv"
	Category string
	Windows  []nab.Window
	Runs     []Run // one per candidate, in candidate order
}

// Fold is the result for one held-out category.
type Fold struct {
	Category string
	Files    int
	Windows  int
	// Candidate and Threshold were chosen on the other categories only.
	Candidate int
	Threshold float64
	// Tuned is the category's normalised score at that threshold; Own with the
	// chosen candidate's own decisions. Both NaN when it has no windows.
	Tuned, Own float64
	// TunedFlags and OwnFlags count detections in the scored rows, the only
	// figure for a category without windows.
	TunedFlags, OwnFlags int
}

// Pooled is NAB's usual figure: one candidate and one threshold chosen on
// every file, then every file scored with them.
type Pooled struct {
	Candidate  int
	Threshold  float64
	Tuned, Own float64
}

// set builds a scorer over files for candidate k, with the scores or the own
// decisions.
func set(files []File, k int, own bool) (*nab.Set, error) {
	ss := make([]nab.Series, len(files))
	for i, f := range files {
		ss[i] = nab.Series{Name: f.Name, Windows: f.Windows, Scores: f.Runs[k].Scores}
		if own {
			ss[i].Scores = f.Runs[k].Own
		}
	}
	return nab.NewSet(ss)
}

// choose picks the candidate and threshold with the best raw score over
// files (all candidates share the windows, so raw scores compare).
func choose(files []File, cands int, p nab.Profile) (int, float64, error) {
	bestK, bestThr, bestRaw := 0, 1.1, math.Inf(-1)
	for k := 0; k < cands; k++ {
		s, err := set(files, k, false)
		if err != nil {
			return 0, 0, err
		}
		raw, thr := s.Optimise(p)
		if raw > bestRaw {
			bestK, bestThr, bestRaw = k, thr, raw
		}
	}
	return bestK, bestThr, nil
}

// Categories lists the files' categories, sorted.
func Categories(files []File) []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range files {
		if !seen[f.Category] {
			seen[f.Category] = true
			out = append(out, f.Category)
		}
	}
	sort.Strings(out)
	return out
}

// LeaveOneOut scores every category with a candidate and threshold chosen on
// the other categories' files only: a held-out file is never passed to
// choose. cands is the number of candidates (len of every File's Runs).
func LeaveOneOut(files []File, cands int, p nab.Profile) ([]Fold, error) {
	var folds []Fold
	for _, cat := range Categories(files) {
		var in, out []File
		for _, f := range files {
			if f.Category == cat {
				out = append(out, f)
			} else {
				in = append(in, f)
			}
		}
		k, thr, err := choose(in, cands, p)
		if err != nil {
			return nil, fmt.Errorf("fold %s: %w", cat, err)
		}
		fd := Fold{Category: cat, Files: len(out), Candidate: k, Threshold: thr}
		if fd.Tuned, fd.TunedFlags, err = score(out, k, false, p, thr); err != nil {
			return nil, fmt.Errorf("fold %s: %w", cat, err)
		}
		if fd.Own, fd.OwnFlags, err = score(out, k, true, p, 0.5); err != nil {
			return nil, fmt.Errorf("fold %s: %w", cat, err)
		}
		for _, f := range out {
			fd.Windows += len(f.Windows)
		}
		folds = append(folds, fd)
	}
	return folds, nil
}

// score is the normalised score of files at thr (NaN without windows) and
// the number of scored rows flagged.
func score(files []File, k int, own bool, p nab.Profile, thr float64) (float64, int, error) {
	s, err := set(files, k, own)
	if err != nil {
		return 0, 0, err
	}
	flags := 0
	for _, f := range files {
		sc := f.Runs[k].Scores
		if own {
			sc = f.Runs[k].Own
		}
		for _, v := range sc[nab.Probation(len(sc)):] {
			if v >= thr {
				flags++
			}
		}
	}
	n, err := s.Normalise(p, s.Fixed(p, thr))
	if err != nil {
		return math.NaN(), flags, nil
	}
	return n, flags, nil
}

// Pool chooses on every file and scores every file: the figure nab-eval
// prints, which flatters whatever was tuned on these files.
func Pool(files []File, cands int, p nab.Profile) (Pooled, error) {
	k, thr, err := choose(files, cands, p)
	if err != nil {
		return Pooled{}, err
	}
	pl := Pooled{Candidate: k, Threshold: thr}
	if pl.Tuned, _, err = score(files, k, false, p, thr); err != nil {
		return pl, err
	}
	if pl.Own, _, err = score(files, k, true, p, 0.5); err != nil {
		return pl, err
	}
	return pl, nil
}

// Summary is the mean and the worst over the folds that have windows.
func Summary(folds []Fold, own bool) (mean, worst float64, worstCat string) {
	worst = math.Inf(1)
	n := 0
	for _, f := range folds {
		v := f.Tuned
		if own {
			v = f.Own
		}
		if math.IsNaN(v) {
			continue
		}
		mean += v
		n++
		if v < worst {
			worst, worstCat = v, f.Category
		}
	}
	if n == 0 {
		return math.NaN(), math.NaN(), ""
	}
	return mean / float64(n), worst, worstCat
}
