package main

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/smartcloudops/smartcloudops/bench/detecteval/nab"
)

// memoriser builds a corpus on which a detector "knows" each category's
// labels: in category c its score is exactly secret[c] at every window's
// first row and secret[c]-0.01 everywhere else, so secret[c] is the one
// threshold that scores c perfectly, and any lower one floods c with false
// positives. A harness that let c's files into c's tuning would pick
// secret[c] and report 100 for c.
func memoriser(secret map[string]float64) []File {
	var files []File
	for _, cat := range []string{"A", "B", "C"} {
		for j := range 2 {
			const n = 200
			w := nab.Window{Start: 100 + 10*j, End: 119 + 10*j}
			sc := make([]float64, n)
			for i := range sc {
				sc[i] = secret[cat] - 0.01
			}
			sc[w.Start] = secret[cat]
			own := make([]float64, n)
			own[w.Start] = 1
			files = append(files, File{
				Name: cat + "/f" + string(rune('0'+j)) + ".csv", Category: cat,
				Windows: []nab.Window{w}, Runs: []Run{{Scores: sc, Own: own}},
			})
		}
	}
	return files
}

func TestFoldsNeverTuneOnTheirOwnCategory(t *testing.T) {
	secret := map[string]float64{"A": 0.3, "B": 0.6, "C": 0.9}
	files := memoriser(secret)
	p := nab.Standard()
	// The detector does memorise: tuned on its own category it is perfect.
	for _, cat := range Categories(files) {
		var own []File
		for _, f := range files {
			if f.Category == cat {
				own = append(own, f)
			}
		}
		_, thr, err := choose(own, 1, p)
		if err != nil {
			t.Fatal(err)
		}
		if s, _, _ := score(own, 0, false, p, thr); thr != secret[cat] || math.Abs(s-100) > 1e-9 {
			t.Fatalf("%s tuned on itself: threshold %v score %.1f, want %v and 100", cat, thr, s, secret[cat])
		}
	}
	folds, err := LeaveOneOut(files, 1, p)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range folds {
		if f.Threshold == secret[f.Category] {
			t.Errorf("fold %s chose its own secret threshold %v: its files were in its tuning", f.Category, f.Threshold)
		}
		if f.Tuned > 50 {
			t.Errorf("fold %s scored %.1f with a threshold chosen elsewhere; a memoriser must not do well", f.Category, f.Tuned)
		}
		if math.Abs(f.Own-100) > 1e-9 {
			t.Errorf("fold %s own decisions %.1f, want 100 (they need no tuning)", f.Category, f.Own)
		}
	}
}

// TestFoldChoiceIgnoresHeldOutScores changes one category's scores at random
// and checks that the threshold and candidate its fold chose did not move.
func TestFoldChoiceIgnoresHeldOutScores(t *testing.T) {
	files := memoriser(map[string]float64{"A": 0.3, "B": 0.6, "C": 0.9})
	// A second candidate, so the candidate choice is exercised too.
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range files {
		sc := make([]float64, len(files[i].Runs[0].Scores))
		for j := range sc {
			sc[j] = rng.Float64()
		}
		files[i].Runs = append(files[i].Runs, Run{Scores: sc, Own: files[i].Runs[0].Own})
	}
	p := nab.Standard()
	before, err := LeaveOneOut(files, 2, p)
	if err != nil {
		t.Fatal(err)
	}
	for k, cat := range Categories(files) {
		changed := make([]File, len(files))
		copy(changed, files)
		for i, f := range changed {
			if f.Category != cat {
				continue
			}
			runs := make([]Run, len(f.Runs))
			for r := range runs {
				sc := make([]float64, len(f.Runs[r].Scores))
				for j := range sc {
					sc[j] = rng.Float64()
				}
				runs[r] = Run{Scores: sc, Own: f.Runs[r].Own}
			}
			changed[i].Runs = runs
		}
		after, err := LeaveOneOut(changed, 2, p)
		if err != nil {
			t.Fatal(err)
		}
		if after[k].Threshold != before[k].Threshold || after[k].Candidate != before[k].Candidate {
			t.Errorf("fold %s: choice moved from (%d, %v) to (%d, %v) when only its own scores changed",
				cat, before[k].Candidate, before[k].Threshold, after[k].Candidate, after[k].Threshold)
		}
	}
}

func TestParseGrid(t *testing.T) {
	for _, tc := range []struct {
		spec string
		n    int
		bad  bool
	}{
		{"", 1, false},
		{"Refractory=25,50", 2, false},
		{"Refractory=25,50 Short=10,20,30", 6, false},
		{"NoSeasonality=true,false", 2, false},
		{"Threshold=0.4", 0, true},
		{"Refractory=x", 0, true},
		{"Short=5000", 0, true}, // Short must stay below History
		{"Refractory", 0, true},
		{"Corroboration=0.15,0.3 LikMin=50", 2, false}, // Tuning fields too
		{"Corroboration=2", 0, true},                   // out of range
		{"Period=1h", 0, true},                         // a duration: not a grid option
		{"Tuning=1", 0, true},
		{"Bogus=1", 0, true},
	} {
		c, err := ParseGrid(tc.spec)
		if (err != nil) != tc.bad || (!tc.bad && len(c) != tc.n) {
			t.Errorf("ParseGrid(%q) = %d candidates, %v; want %d, error %v", tc.spec, len(c), err, tc.n, tc.bad)
		}
	}
}

// TestNABTwoFiles runs the real detector through the harness on two small
// NAB files, so the in-process path (the detect runner, label lookup) is
// exercised; the full run belongs to the command.
func TestNABTwoFiles(t *testing.T) {
	root, _ := filepath.Abs("../../../shared/data/nab")
	if _, err := os.Stat(filepath.Join(root, "labels", "combined_windows.json")); err != nil {
		t.Skipf("NAB data absent (%s): the real-data path is not checked", root)
	}
	files, err := LoadNAB(context.Background(), root, []Candidate{{Name: "default"}}, 2, "art_daily_jumps")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("%d files match art_daily_jumps, want 2", len(files))
	}
	for _, f := range files {
		if len(f.Windows) != 1 || len(f.Runs[0].Scores) != 4032 {
			t.Errorf("%s: %d windows, %d rows; want 1 and 4032", f.Name, len(f.Windows), len(f.Runs[0].Scores))
		}
	}
	pl, err := Pool(files, 1, nab.Standard())
	if err != nil {
		t.Fatal(err)
	}
	if pl.Tuned < 0 || pl.Tuned > 100 {
		t.Errorf("pooled score %.1f outside [0, 100] on two files the detector finds", pl.Tuned)
	}
	t.Logf("two jump files: pooled %.1f at %.6f, own decisions %.1f", pl.Tuned, pl.Threshold, pl.Own)
}
