package detectcli

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sensors is a three-metric CSV at 1 s steps: flow and pressure move together,
// temp is independent. From row faultAt on, for faultLen rows, fault is
// applied to each row's values.
func sensors(n, faultAt, faultLen int, fault func(v []float64)) string {
	r := rand.New(rand.NewPCG(3, 4))
	var b strings.Builder
	b.WriteString("timestamp,flow,pressure,temp\n")
	t := time.Date(2020, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		f := 100 + 5*r.NormFloat64()
		v := []float64{f, 0.5*f + 0.3*r.NormFloat64(), 20 + r.NormFloat64()}
		if fault != nil && i >= faultAt && i < faultAt+faultLen {
			fault(v)
		}
		fmt.Fprintf(&b, "%s,%.4f,%.4f,%.4f\n", t.Add(time.Duration(i)*time.Second).Format(time.RFC3339), v[0], v[1], v[2])
	}
	return b.String()
}

func col(t *testing.T, recs [][]string, name string) []float64 {
	t.Helper()
	j := slices.Index(recs[0], name)
	if j < 0 {
		t.Fatalf("no column %q in %v", name, recs[0])
	}
	out := make([]float64, len(recs)-1)
	for i, r := range recs[1:] {
		v, err := strconv.ParseFloat(r[j], 64)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = v
	}
	return out
}

func TestTrainRowsCatchesWhatStreamingAbsorbs(t *testing.T) {
	const n, at, length = 1500, 800, 500
	tests := []struct {
		name  string
		fault func(v []float64)
	}{
		// A sustained shift of one metric: streaming adapts to it.
		{"sustained level shift", func(v []float64) { v[2] += 6 }},
		// Pressure stays in its own range but stops following flow.
		{"correlation break", func(v []float64) { v[1] = 50 + (v[1]-50)*0.1 - 0.3*(v[0]-100) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := sensors(n, at, length, tc.fault)
			recs, err := runCLI(t, in, "--train-rows", "400")
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != n+1 {
				t.Fatalf("%d output rows for %d input rows", len(recs)-1, n)
			}
			score, pcaScore, flag := col(t, recs, "anomaly_score"), col(t, recs, "model_score"), col(t, recs, "is_anomaly")
			// The second half of the fault, long after any streaming
			// detector has absorbed it, is still flagged nearly everywhere.
			late := 0
			for i := at + length/2; i < at+length; i++ {
				if flag[i] == 1 {
					late++
				}
				if score[i] < pcaScore[i] {
					t.Fatalf("row %d: anomaly_score %g below model_score %g", i, score[i], pcaScore[i])
				}
			}
			// Per row, unsmoothed, as the service scores a sample: a row of a
			// broken correlation can fall inside the limits by chance.
			if late < length/2*4/5 {
				t.Errorf("%d of %d late fault rows flagged", late, length/2)
			}
			over := 0
			for i := 0; i < at; i++ {
				if pcaScore[i] >= 0.5 {
					over++
				}
			}
			if over > at/20 {
				t.Errorf("%d of %d normal rows over the PCA limit", over, at)
			}
			plain, err := runCLI(t, in)
			if err != nil {
				t.Fatal(err)
			}
			sflag := col(t, plain, "is_anomaly")
			slate := 0
			for i := at + length/2; i < at+length; i++ {
				if sflag[i] == 1 {
					slate++
				}
			}
			if slate >= late {
				t.Errorf("streaming alone flags %d late rows, with --train-rows %d: the test no longer shows the point", slate, late)
			}
		})
	}
}

func TestTrainRowsDeterministicAndExplained(t *testing.T) {
	in := sensors(600, 450, 100, func(v []float64) { v[1] = 50 + (v[1]-50)*0.1 - 0.3*(v[0]-100) })
	a, err := runCLI(t, in, "--train-rows", "300", "--explain")
	if err != nil {
		t.Fatal(err)
	}
	b, err := runCLI(t, in, "--train-rows", "300", "--explain")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(a, b, slices.Equal[[]string]) {
		t.Fatal("two runs differ")
	}
	want := "timestamp,value,anomaly_score,is_anomaly,anomaly_metric,flow_score,pressure_score,temp_score,model_score,reasons"
	if got := strings.Join(a[0], ","); got != want {
		t.Fatalf("header %q, want %q", got, want)
	}
	// Late in the fault the PCA model names the broken relation (Q) and a
	// metric of the pair, never the independent one.
	r := a[1+540]
	if !strings.Contains(r[9], "pca:Q") || r[4] == "temp" {
		t.Errorf("row in fault: metric %q, reasons %q", r[4], r[9])
	}
}

func TestTrainRowsRefused(t *testing.T) {
	wide := "timestamp,a,b,c\n2020-01-01T00:00:00Z,1,2,3\n2020-01-01T00:00:01Z,2,3,4\n2020-01-01T00:00:02Z,3,4,6\n"
	tests := []struct {
		name string
		in   string
		args []string
		want string
	}{
		{"negative", synth(10), []string{"--train-rows", "-1"}, "--train-rows -1"},
		{"too many", synth(10), []string{"--train-rows", "99999999"}, "--train-rows 99999999"},
		{"longer than input", synth(10), []string{"--train-rows", "50"}, "only 10 rows"},
		{"too few rows before the holdout", wide, []string{"--train-rows", "2"}, "not enough training data"},
		{"both training flags", synth(10), []string{"--train-rows", "5", "--train", "x.csv"}, "give one"},
		{"training file absent", synth(10), []string{"--train", "/nonexistent/x.csv"}, "x.csv"},
		{"not a number", synth(10), []string{"--train-rows", "x"}, "train-rows"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runCLI(t, tc.in, tc.args...)
			if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrUsage naming %q", err, tc.want)
			}
		})
	}
}

// TestTrainRowsExtremeValues: values at the input bound, in training and
// after it, with constant columns, still give scores in [0,1] for every row.
func TestTrainRowsExtremeValues(t *testing.T) {
	vals := []string{"1e30", "-1e30", "1e-300", "0", "42", "-7.5"}
	tests := []struct {
		name       string
		train, row func(i int) string
	}{
		{"extremes everywhere", func(i int) string { return vals[i%len(vals)] + "," + vals[(i+1)%len(vals)] + ",3" },
			func(i int) string {
				return vals[(i*7)%len(vals)] + "," + vals[(i*5)%len(vals)] + "," + vals[i%len(vals)]
			}},
		{"constant training, extreme later", func(i int) string { return "1,2,3" },
			func(i int) string { return vals[i%len(vals)] + ",2," + vals[(i+3)%len(vals)] }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			b.WriteString("timestamp,a,b,c\n")
			for i := 0; i < 100; i++ {
				line := tc.row(i)
				if i < 40 {
					line = tc.train(i)
				}
				fmt.Fprintf(&b, "%d,%s\n", 1600000000+i, line)
			}
			recs, err := runCLI(t, b.String(), "--train-rows", "40", "--explain")
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 101 {
				t.Fatalf("%d output rows", len(recs)-1)
			}
			for _, name := range []string{"anomaly_score", "model_score"} {
				for i, s := range col(t, recs, name) {
					if !(s >= 0 && s <= 1) {
						t.Fatalf("row %d: %s %g", i, name, s)
					}
				}
			}
		})
	}
}
