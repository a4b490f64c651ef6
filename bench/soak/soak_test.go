package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestJudge(t *testing.T) {
	const n = 60 // ten minutes at one sample every ten seconds
	at := make([]time.Duration, n)
	for i := range at {
		at[i] = time.Duration(i) * 10 * time.Second
	}
	gen := func(f func(i int) float64) []float64 {
		ys := make([]float64, n)
		for i := range ys {
			ys[i] = f(i)
		}
		return ys
	}
	tests := []struct {
		name  string
		ys    []float64
		floor float64
		flat  bool
	}{
		{"constant", gen(func(int) float64 { return 40 }), 10, true},
		{"noise within floor", gen(func(i int) float64 { return 40 + float64(i%3) }), 10, true},
		// A fast start is warm-up, not a leak: the first minute is ignored.
		{"warm-up ramp", gen(func(i int) float64 { return 40 + 200*math.Min(float64(i), 5) }), 10, true},
		{"steady leak", gen(func(i int) float64 { return 40 + 2*float64(i) }), 10, false},
		{"leak below floor", gen(func(i int) float64 { return 40 + 0.1*float64(i) }), 10, true},
		// Twice the first half's spread is allowed: noisy but not growing.
		{"noisy", gen(func(i int) float64 { return 100 + 30*float64(i%2) }), 1, true},
		{"shrinking", gen(func(i int) float64 { return 400 - 5*float64(i) }), 1, true},
		{"unknown samples ignored", gen(func(i int) float64 {
			if i%2 == 0 {
				return math.NaN()
			}
			return 40
		}), 10, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := judge(at, tt.ys, warmupOf(10*time.Minute, 10*time.Second), tt.floor)
			if v.flat != tt.flat {
				t.Errorf("flat = %v; want %v (%+v)", v.flat, tt.flat, v)
			}
		})
	}
	if v := judge(at[:4], []float64{1, 2, 3, 100}, time.Second, 1); v.n != 3 || !v.flat {
		t.Errorf("three judged samples give no verdict: %+v", v)
	}
	if v := judge(at, gen(func(i int) float64 { return float64(i) }), 0, 0); math.Abs(v.slopePerMin-6) > 1e-9 {
		t.Errorf("slope = %v per minute; want 6 (one a sample, six samples a minute)", v.slopePerMin)
	}
}

func TestParseMetrics(t *testing.T) {
	body, err := os.ReadFile(filepath.Join("testdata", "metrics.txt"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := parseMetrics(body)
	if err != nil {
		t.Fatal(err)
	}
	if m.goroutines != 42 || m.openFDs != 23 || m.heapMiB != 12 || m.dbConns != 5 {
		t.Errorf("parseMetrics = %+v; want 42 goroutines, 23 fds, 12 MiB, 5 connections", m)
	}
	m, err = parseMetrics([]byte("# TYPE go_goroutines gauge\ngo_goroutines 3\n"))
	if err != nil || m.goroutines != 3 || !math.IsNaN(m.dbConns) {
		t.Errorf("a missing family must read as unknown: %+v %v", m, err)
	}
	if _, err := parseMetrics([]byte("go_goroutines{ 3\n")); err == nil {
		t.Error("malformed exposition parsed")
	}
}

func TestRSSOfThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	mib, err := rssMiB(os.Getpid())
	if err != nil || mib <= 1 || mib > 1<<20 {
		t.Errorf("rssMiB = %v, %v", mib, err)
	}
}

func TestWriteTables(t *testing.T) {
	ss := watched(false)
	pts := []point{
		{at: 0, values: []float64{30, 5, 20, 18, 2}},
		{at: 10 * time.Second, requests: 500, clientErrs: 2, errs: 1, values: []float64{31.5, 6, 21, 18, math.NaN()}},
	}
	var b bytes.Buffer
	if err := writeTable(&b, ss, pts); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "RSS MiB") || !strings.Contains(lines[0], "db pool conns") ||
		!strings.Contains(lines[2], "0:10") || !strings.Contains(lines[2], "31.5") || !strings.HasSuffix(strings.TrimSpace(lines[2]), "-") {
		t.Errorf("table:\n%s", b.String())
	}
	b.Reset()
	vs := []verdict{{n: 30, flat: true, firstMean: 30, lastMean: 31, growth: 1, allowed: 16}, {n: 30, growth: 50, allowed: 16}, {n: 2, flat: true}, {n: 30, flat: true}, {n: 30, flat: true}}
	if err := writeVerdicts(&b, ss, vs); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"flat", "GROWING", "too few samples (2)", "+1.0"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("verdicts lack %q:\n%s", want, b.String())
		}
	}
}

func TestChartIsAPNG(t *testing.T) {
	ss := watched(true)
	var pts []point
	for i := range 12 {
		pts = append(pts, point{at: time.Duration(i) * 10 * time.Second, values: []float64{30, 5, 20, 18, 2, float64(i % 3)}})
	}
	vs := make([]verdict, len(ss))
	path := filepath.Join(t.TempDir(), "soak.png")
	if err := writeChart(path, "test", ss, pts, vs, 0.5); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() < 600 || b.Dy() < 400 {
		t.Errorf("chart is %v", b)
	}
}

func TestMixCoversRoutesAndIngestsNewSamples(t *testing.T) {
	m := newMix()
	seen := map[string]bool{}
	cycle := int64(len(m.slots))
	for i := range cycle * 100 {
		seen[m.pick(i).name] = true
	}
	for _, r := range m.routes {
		if !seen[r.name] {
			t.Errorf("route %s never sent in 100 cycles", r.name)
		}
	}
	// A rare route is sent only on its cycles.
	var trains int
	for i := range cycle * 100 {
		if m.pick(i).name == "train" {
			trains++
		}
	}
	if trains != 2 {
		t.Errorf("train sent %d times in 100 cycles; want 2 (every 50th)", trains)
	}
	keys := map[string]bool{}
	for range 50 {
		var doc struct {
			Samples []struct {
				Host      string `json:"host"`
				Timestamp int64  `json:"timestamp"`
			} `json:"samples"`
		}
		if err := json.Unmarshal(m.ingestBody(0), &doc); err != nil {
			t.Fatal(err)
		}
		for _, s := range doc.Samples {
			k := s.Host + "@" + time.Unix(s.Timestamp, 0).String()
			if keys[k] {
				t.Fatalf("sample %s sent twice", k)
			}
			keys[k] = true
		}
	}
}

// TestSoakSmoke runs the command end to end for a few seconds on SQLite.
// It builds the service, so it needs a go toolchain, and skips under -short.
func TestSoakSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the service; skipped under -short")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go toolchain to build the service")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	chart := filepath.Join(t.TempDir(), "soak.png")
	var out bytes.Buffer
	code := run(ctx, []string{"-duration", "3s", "-interval", "1s", "-rate", "40", "-redis", "", "-png", chart}, &out, io.Discard)
	text := out.String()
	// Three seconds judge nothing (too few samples): the run must pass.
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, text)
	}
	if strings.Count(text, "\n  0:0") != 4 || !strings.Contains(text, "too few samples") {
		t.Errorf("want four samples and no verdict:\n%s", text)
	}
	if _, err := os.Stat(chart); err != nil {
		t.Error(err)
	}
}
