package main

import (
	"bytes"
	"context"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/plot/vg/vgimg"

	"github.com/smartcloudops/smartcloudops/bench/detecteval/nab"
)

// TestChartWritesPNG runs -chart on a synthetic NAB layout (600 rows of
// noise with one spike inside its labelled window) and checks the PNG
// decodes at the size drawn and the printed verdict names the catch.
func TestChartWritesPNG(t *testing.T) {
	out := filepath.Join(t.TempDir(), "sub", "chart.png")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-nab", "testdata/chart", "-chart", "synthetic/spike.csv", "-png", out}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{"600 rows, 90 unscored", "caught at 2026-01-02 13:30:00", "caught 1 of 1 windows"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("the chart is not a PNG: %v", err)
	}
	w, h := int(math.Ceil(chartWidth.Dots(vgimg.DefaultDPI))), int(math.Ceil(chartHeight.Dots(vgimg.DefaultDPI)))
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Errorf("chart is %dx%d, want %dx%d", b.Dx(), b.Dy(), w, h)
	}
}

func TestChartRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unlabelled file", []string{"-nab", "testdata/chart", "-chart", "synthetic/none.csv"}, "not in testdata/chart/labels"},
		{"no labels", []string{"-nab", t.TempDir(), "-chart", "synthetic/spike.csv"}, "read labels"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			png := filepath.Join(t.TempDir(), "x.png")
			err := run(context.Background(), append(tc.args, "-png", png), &bytes.Buffer{}, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if _, err := os.Stat(png); err == nil {
				t.Error("a PNG was written for bad input")
			}
		})
	}
	s := Series{Name: "short", Values: []float64{1, 2}, Times: make([]time.Time, 2), Scores: []float64{0}, Alerts: make([]bool, 2)}
	if err := WriteChart(filepath.Join(t.TempDir(), "x.png"), s, Judge(s)); err == nil {
		t.Error("WriteChart accepted 2 values with 1 score")
	}
}

// TestJudge checks the verdict follows NAB's rules: the first alert in a
// window counts, later ones in it are ignored, alerts in the probation count
// for nothing and every other alert is a false alarm.
func TestJudge(t *testing.T) {
	alerts := func(n int, at ...int) []bool {
		a := make([]bool, n)
		for _, i := range at {
			a[i] = true
		}
		return a
	}
	wins := []nab.Window{{Start: 20, End: 29}, {Start: 60, End: 69}}
	for _, tc := range []struct {
		name   string
		alerts []bool
		want   Verdict
	}{
		{"silent", alerts(100), Verdict{First: []int{-1, -1}}},
		{"both caught, repeats ignored", alerts(100, 25, 27, 60), Verdict{First: []int{25, 60}}},
		{"one missed, false alarms", alerts(100, 40, 65, 99), Verdict{First: []int{-1, 65}, FalseAlarms: 2}},
		{"probation not scored", alerts(100, 3, 14, 15), Verdict{First: []int{-1, -1}, FalseAlarms: 1, Probation: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Judge(Series{Alerts: tc.alerts, Windows: wins, Probation: nab.Probation(100)})
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Judge = %+v, want %+v", got, tc.want)
			}
			if c, want := got.Caught(), tc.want.Caught(); c != want {
				t.Errorf("Caught = %d, want %d", c, want)
			}
		})
	}
}
