package detectcli

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// synth is a NAB-format CSV: a daily cycle at 5-minute steps with a spike.
func synth(n int) string {
	var b strings.Builder
	b.WriteString("timestamp,value\n")
	t := time.Date(2014, 4, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		v := 50 + 20*math.Sin(2*math.Pi*float64(i)/288) + 3*math.Sin(float64(i)*1.7)
		if i == n*3/4 {
			v += 80
		}
		fmt.Fprintf(&b, "%s,%g\n", t.Add(time.Duration(i)*5*time.Minute).Format("2006-01-02 15:04:05"), v)
	}
	return b.String()
}

func runCLI(t *testing.T, in string, args ...string) ([][]string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := Run(context.Background(), args, strings.NewReader(in), &out, &errb)
	if err != nil {
		return nil, err
	}
	recs, perr := csv.NewReader(&out).ReadAll()
	if perr != nil {
		t.Fatalf("output is not CSV: %v", perr)
	}
	return recs, nil
}

func TestNABFormat(t *testing.T) {
	in := synth(3000)
	recs, err := runCLI(t, in, "--input", "-")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(recs[0], ","); got != "timestamp,value,anomaly_score,is_anomaly" {
		t.Fatalf("header %q", got)
	}
	inRecs, _ := csv.NewReader(strings.NewReader(in)).ReadAll()
	if len(recs) != len(inRecs) {
		t.Fatalf("%d output rows for %d input rows", len(recs), len(inRecs))
	}
	flagged := 0
	for i := 1; i < len(recs); i++ {
		if recs[i][0] != inRecs[i][0] || recs[i][1] != inRecs[i][1] {
			t.Fatalf("row %d: %v does not echo %v", i, recs[i][:2], inRecs[i])
		}
		if recs[i][3] == "1" {
			flagged++
		}
	}
	spike := 3000*3/4 + 1
	if recs[spike][3] != "1" {
		t.Errorf("spike row %d not flagged: %v", spike, recs[spike])
	}
	if flagged > 3 {
		t.Errorf("%d rows flagged, want the spike and little else", flagged)
	}
}

// TestCausalPrefix: scoring a prefix of a file gives the first rows of
// scoring the whole file.
func TestCausalPrefix(t *testing.T) {
	in := synth(2500)
	whole, err := runCLI(t, in)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(in, "\n")
	for _, n := range []int{10, 700, 2300} {
		part, err := runCLI(t, strings.Join(lines[:n+1], ""))
		if err != nil {
			t.Fatal(err)
		}
		for i := range part {
			if strings.Join(part[i], ",") != strings.Join(whole[i], ",") {
				t.Fatalf("prefix %d, row %d: %v vs %v", n, i, part[i], whole[i])
			}
		}
	}
}

func TestMultiMetric(t *testing.T) {
	var b strings.Builder
	b.WriteString("cpu,timestamp,mem\n")
	for i := 0; i < 600; i++ {
		cpu, mem := 30+math.Sin(float64(i)), 60+math.Cos(float64(i)*0.3)
		if i == 500 {
			mem = 99
		}
		fmt.Fprintf(&b, "%g,%d,%g\n", cpu, 1700000000+60*i, mem)
	}
	recs, err := runCLI(t, b.String(), "--explain")
	if err != nil {
		t.Fatal(err)
	}
	want := "timestamp,value,anomaly_score,is_anomaly,anomaly_metric,cpu_score,mem_score,reasons"
	if got := strings.Join(recs[0], ","); got != want {
		t.Fatalf("header %q, want %q", got, want)
	}
	r := recs[501]
	if r[3] != "1" || r[4] != "mem" || r[1] != "99" || !strings.Contains(r[7], "mem:") {
		t.Errorf("row of the memory jump: %v", r)
	}
}

func TestOutputFile(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.csv")
	out := filepath.Join(dir, "out.csv")
	if err := os.WriteFile(in, []byte(synth(300)), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := Run(context.Background(), []string{"--input", in, "--output", out}, nil, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n != 301 || stdout.Len() != 0 || stderr.Len() != 0 {
		t.Errorf("output file has %d lines, stdout %d bytes, stderr %q", n, stdout.Len(), stderr.String())
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--bogus"}, {"--threshold", "2"}, {"extra"}, {"--input", "/nonexistent/x.csv"},
	} {
		var out, errb bytes.Buffer
		err := Run(context.Background(), args, strings.NewReader(""), &out, &errb)
		if !errors.Is(err, ErrUsage) {
			t.Errorf("%v: err = %v, want ErrUsage", args, err)
		}
	}
	var out, errb bytes.Buffer
	if err := Run(context.Background(), []string{"-h"}, nil, &out, &errb); err != nil || !strings.Contains(errb.String(), "usage") {
		t.Errorf("-h: err %v, stderr %q", err, errb.String())
	}
}

func TestBadInput(t *testing.T) {
	cases := []struct {
		name, in string
		line     int
		column   string
	}{
		{"empty", "", 1, ""},
		{"no timestamp column", "time,value\n2014-01-01,1\n", 1, "timestamp"},
		{"no value column", "timestamp\n2014-01-01\n", 1, "value"},
		{"duplicate column", "timestamp,value,Value\n", 1, "Value"},
		{"unnamed column", "timestamp,,value\n", 1, ""},
		{"non-numeric", "timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:05:00,abc\n", 3, "value"},
		{"NaN", "timestamp,value\n2014-01-01 00:00:00,NaN\n", 2, "value"},
		{"Inf", "timestamp,value\n2014-01-01 00:00:00,-Inf\n", 2, "value"},
		{"overflow", "timestamp,value\n2014-01-01 00:00:00,1e999\n", 2, "value"},
		{"beyond the detector's range", "timestamp,value\n2014-01-01 00:00:00,-1.7e308\n", 2, "value"},
		{"empty value", "timestamp,value\n2014-01-01 00:00:00,\n", 2, "value"},
		{"bad metric", "timestamp,cpu,mem\n2014-01-01 00:00:00,1,x\n", 2, "mem"},
		{"bad timestamp", "timestamp,value\n2014-01-01 00:00:00,1\n01/02/2014 00:05,2\n", 3, "timestamp"},
		{"empty timestamp", "timestamp,value\n,2\n", 2, "timestamp"},
		{"negative Unix timestamp", "timestamp,value\n-86400,2\n", 2, "timestamp"},
		{"short row", "timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:05:00\n", 3, ""},
		{"bad quote", "timestamp,value\n2014-01-01 00:00:00,\"1\n", 2, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := runCLI(t, c.in)
			var ie *InputError
			if !errors.As(err, &ie) || !errors.Is(err, ErrUsage) {
				t.Fatalf("err = %v, want an *InputError matching ErrUsage", err)
			}
			if ie.Line != c.line || ie.Column != c.column {
				t.Errorf("err %q: line %d column %q, want line %d column %q", err, ie.Line, ie.Column, c.line, c.column)
			}
		})
	}
}

func TestTimestampFormats(t *testing.T) {
	for _, ts := range []string{
		"2014-04-10 07:15:00.000000", "2014-04-10T07:15:00Z", "2014-04-10T07:15:00+02:00",
		"2014-04-10 07:15", "2014-04-10", "1397114100", "1397114100.5", "1397114100000",
		"139711410000", "1397114100000000", "1397114100000000000", "1969-07-20T20:17:40Z",
	} {
		if _, err := runCLI(t, "timestamp,value\n"+ts+",1\n"); err != nil {
			t.Errorf("%q: %v", ts, err)
		}
	}
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	err := Run(ctx, nil, strings.NewReader(synth(10000)), &out, &errb)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// sharedDir is the shared/ folder beside the repository, or "" when absent.
func sharedDir() string {
	if d := os.Getenv("SMARTCLOUDOPS_SHARED"); d != "" {
		return d
	}
	d, _ := filepath.Abs("../../../../shared")
	if _, err := os.Stat(filepath.Join(d, "data/nab")); err != nil {
		return ""
	}
	return d
}

// TestNABFileCausal runs a real NAB series whole and as a prefix.
func TestNABFileCausal(t *testing.T) {
	sh := sharedDir()
	if sh == "" {
		t.Skip("shared/data/nab not found beside the repository (set SMARTCLOUDOPS_SHARED); skipping the NAB file check")
	}
	b, err := os.ReadFile(filepath.Join(sh, "data/nab/data/realKnownCause/nyc_taxi.csv"))
	if err != nil {
		t.Skip("NAB nyc_taxi.csv not readable: ", err)
	}
	whole, err := runCLI(t, string(b))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	part, err := runCLI(t, strings.Join(lines[:5001], ""))
	if err != nil {
		t.Fatal(err)
	}
	for i := range part {
		if strings.Join(part[i], ",") != strings.Join(whole[i], ",") {
			t.Fatalf("row %d differs: %v vs %v", i, part[i], whole[i])
		}
	}
}

// FuzzDecode feeds arbitrary bytes through the whole command: it must never
// panic, and either fail with an error naming the input or write exactly one
// row per input record.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(synth(5)))
	f.Add([]byte("timestamp,cpu,mem\n1700000000,1,2\n1700000060,3,4\n"))
	f.Add([]byte("timestamp,value\n2014-01-01,NaN\n"))
	f.Add([]byte("\ufefftimestamp,value\r\n\"2014-01-01 00:00:00\",\"1\"\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var out, errb bytes.Buffer
		err := Run(context.Background(), nil, bytes.NewReader(in), &out, &errb)
		if err != nil {
			if !errors.Is(err, ErrUsage) {
				t.Fatalf("error not classified as bad input: %v", err)
			}
			return
		}
		// The reference reader speaks the decoder's dialect: leading
		// white space before a field (a quoted one too) is trimmed.
		ref := csv.NewReader(bytes.NewReader(in))
		ref.TrimLeadingSpace = true
		inRecs, ierr := ref.ReadAll()
		outRecs, oerr := csv.NewReader(&out).ReadAll()
		if ierr != nil || oerr != nil {
			t.Fatalf("accepted input (%v) or produced output (%v) that is not CSV", ierr, oerr)
		}
		if len(outRecs) != len(inRecs) {
			t.Fatalf("%d output rows for %d input rows", len(outRecs), len(inRecs))
		}
	})
}

func BenchmarkRun(b *testing.B) {
	in := synth(20000)
	b.SetBytes(int64(len(in)))
	for i := 0; i < b.N; i++ {
		if err := Run(context.Background(), nil, strings.NewReader(in), ioDiscard{}, ioDiscard{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(20000*b.N)/b.Elapsed().Seconds(), "rows/s")
}

type ioDiscard struct{}

func (ioDiscard) Write(p []byte) (int, error) { return len(p), nil }

// TestStateFlag: a level that leaves its normal and stays there alerts once;
// with --state, is_anomaly stays 1 while the series is held away from its
// normal, and the state column says how far; without it the output is
// unchanged.
func TestStateFlag(t *testing.T) {
	var b strings.Builder
	b.WriteString("timestamp,value\n")
	rng := rand.New(rand.NewPCG(7, 8))
	for i := 0; i < 1200; i++ {
		v := 50 + rng.NormFloat64()
		if i >= 800 {
			v += 40 // a fault that does not come back
		}
		fmt.Fprintf(&b, "%d,%.3f\n", 1700000000+300*i, v)
	}
	plain, err := runCLI(t, b.String())
	if err != nil {
		t.Fatal(err)
	}
	held, err := runCLI(t, b.String(), "--state")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(held[0], ","); got != "timestamp,value,anomaly_score,is_anomaly,state" {
		t.Fatalf("header with --state = %q", got)
	}
	alerts, sustained := 0, 0
	for i := 801; i < len(held); i++ {
		if plain[i][3] == "1" {
			alerts++
		}
		if held[i][3] == "1" {
			sustained++
		}
		if plain[i][2] != held[i][2] {
			t.Fatalf("row %d: --state changed the score: %s vs %s", i, plain[i][2], held[i][2])
		}
	}
	if alerts != 1 {
		t.Errorf("alerts after the fault = %d, want one", alerts)
	}
	if sustained < 300 {
		t.Errorf("rows in the sustained state after the fault = %d of 400, want the fault held", sustained)
	}
	for i := 1; i < 700; i++ {
		if held[i][3] != plain[i][3] {
			t.Fatalf("row %d before the fault: --state is_anomaly %s, plain %s", i, held[i][3], plain[i][3])
		}
	}
	if _, err := runCLI(t, b.String(), "--state", "--train-rows", "100"); !errors.Is(err, ErrUsage) {
		t.Errorf("--state with --train-rows = %v, want a usage error", err)
	}
}
