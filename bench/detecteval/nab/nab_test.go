package nab

import (
	"bufio"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// fixture is the tiny corpus in testdata: its labels and data timestamps.
type fixture struct {
	names []string
	ts    map[string][]string
	wins  map[string][]Window
}

func loadFixture(t *testing.T, root string) fixture {
	t.Helper()
	labels, err := ReadLabels(filepath.Join(root, "labels", "combined_windows.json"))
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{ts: map[string][]string{}, wins: map[string][]Window{}}
	for name, w := range labels {
		fh, err := os.Open(filepath.Join(root, "data", name))
		if err != nil {
			t.Fatal(err)
		}
		ts, _, err := ReadResult(fh, "value")
		fh.Close()
		if err != nil {
			t.Fatal(err)
		}
		if f.wins[name], err = Locate(ts, w); err != nil {
			t.Fatal(err)
		}
		f.ts[name] = ts
		f.names = append(f.names, name)
	}
	sort.Strings(f.names)
	return f
}

// series builds one Series per file with scores from fn(file, row).
func (f fixture) series(fn func(name string, i int) float64) []Series {
	var out []Series
	for _, n := range f.names {
		s := Series{Name: n, Windows: f.wins[n], Scores: make([]float64, len(f.ts[n]))}
		for i := range s.Scores {
			s.Scores[i] = fn(n, i)
		}
		out = append(out, s)
	}
	return out
}

func TestNullZeroPerfectHundred(t *testing.T) {
	f := loadFixture(t, "testdata")
	null := f.series(func(string, int) float64 { return 0 })
	perfect := f.series(func(n string, i int) float64 {
		for _, w := range f.wins[n] {
			if i == w.Start {
				return 1
			}
		}
		return 0
	})
	for _, tc := range []struct {
		name   string
		series []Series
		want   float64
	}{
		{"null", null, 0},
		{"perfect", perfect, 100},
	} {
		set, err := NewSet(tc.series)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range Profiles() {
			raw, _ := set.Optimise(p)
			opt, err := set.Normalise(p, raw)
			if err != nil {
				t.Fatal(err)
			}
			own, _ := set.Normalise(p, set.Fixed(p, 0.5))
			if math.Abs(opt-tc.want) > 1e-9 || math.Abs(own-tc.want) > 1e-9 {
				t.Errorf("%s %s: optimised %.4f, own decisions %.4f, want %v", tc.name, p.Name, opt, own, tc.want)
			}
		}
	}
}

func TestProbation(t *testing.T) {
	for _, tc := range []struct{ n, want int }{{100, 15}, {4000, 600}, {5000, 750}, {22000, 750}, {6, 0}} {
		if got := Probation(tc.n); got != tc.want {
			t.Errorf("Probation(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}

func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Series
	}{
		{"score above 1", Series{Name: "x", Scores: []float64{0, 2}}},
		{"NaN score", Series{Name: "x", Scores: []float64{math.NaN()}}},
		{"window past the end", Series{Name: "x", Scores: []float64{0, 0}, Windows: []Window{{1, 2}}}},
	} {
		if _, err := NewSet([]Series{tc.s}); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if _, err := Locate([]string{"2024-01-01 00:00:00"}, [][2]string{{"2024-01-02 00:00:00", "2024-01-02 00:00:00"}}); err == nil {
		t.Error("Locate: a window outside the series gave no error")
	}
}

// TestAgreesWithNabscore scores the same results directory with the Go scorer
// and with the project's reference nabscore.py, for every profile, with the
// optimised threshold and with own decisions.
func TestAgreesWithNabscore(t *testing.T) {
	script, _ := filepath.Abs("../../../../shared/tools/nabscore.py")
	if _, err := os.Stat(script); err != nil {
		t.Skipf("reference scorer absent (%s): agreement not checked", script)
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not on PATH: agreement with nabscore.py not checked")
	}
	f := loadFixture(t, "testdata")
	rng := rand.New(rand.NewPCG(14, 1))
	// Scores on a coarse grid so that ties occur, with a bias inside windows
	// so that the optimised threshold is neither extreme.
	scores := f.series(func(n string, i int) float64 {
		v := float64(rng.IntN(40)) / 50
		for _, w := range f.wins[n] {
			if i >= w.Start && i <= w.End && rng.IntN(4) == 0 {
				v = math.Min(1, v+0.4)
			}
		}
		return v
	})
	own := make([]Series, len(scores))
	res := t.TempDir()
	res = filepath.Join(res, "det")
	for k, s := range scores {
		own[k] = Series{Name: s.Name, Windows: s.Windows, Scores: make([]float64, len(s.Scores))}
		if err := os.MkdirAll(filepath.Join(res, filepath.Dir(s.Name)), 0o755); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		b.WriteString("timestamp,anomaly_score,is_anomaly\n")
		for i, v := range s.Scores {
			d := 0
			if v >= 0.7 {
				d = 1
			}
			own[k].Scores[i] = float64(d)
			fmt.Fprintf(&b, "%s,%s,%d\n", f.ts[s.Name][i], strconv.FormatFloat(v, 'f', 6, 64), d)
		}
		if err := os.WriteFile(filepath.Join(res, s.Name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	line := regexp.MustCompile(`^det (\S+) raw=\S+ thr=\S+ normalized=(\S+)$`)
	for _, tc := range []struct {
		column string
		series []Series
		tuned  bool
	}{
		{"anomaly_score", scores, true},
		{"is_anomaly", own, false},
	} {
		out, err := exec.Command(py, script, "testdata", res, "--column", tc.column).CombinedOutput()
		if err != nil {
			t.Fatalf("nabscore.py %s: %v\n%s", tc.column, err, out)
		}
		want := map[string]float64{}
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		for sc.Scan() {
			if m := line.FindStringSubmatch(sc.Text()); m != nil {
				want[m[1]], _ = strconv.ParseFloat(m[2], 64)
			}
		}
		set, err := NewSet(tc.series)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range Profiles() {
			w, ok := want[p.Name]
			if !ok {
				t.Fatalf("nabscore.py printed no %s line:\n%s", p.Name, out)
			}
			raw := set.Fixed(p, 0.5)
			if tc.tuned {
				raw, _ = set.Optimise(p)
			}
			got, _ := set.Normalise(p, raw)
			if math.Abs(got-w) > 0.01 {
				t.Errorf("%s %s: Go %.4f, nabscore.py %.2f", tc.column, p.Name, got, w)
			} else {
				t.Logf("%s %s: Go %.4f, nabscore.py %.2f", tc.column, p.Name, got, w)
			}
		}
	}
}
