package main

import (
	"bytes"
	"context"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/smartcloudops/smartcloudops/bench/detecteval/nab"
	"github.com/smartcloudops/smartcloudops/internal/anomaly/detectcli"
	"github.com/smartcloudops/smartcloudops/internal/anomaly/stream"
)

// Series is one labelled NAB file as the detector saw it: what -chart draws.
type Series struct {
	Name      string // "<category>/<file>.csv"
	Times     []time.Time
	Values    []float64
	Scores    []float64 // anomaly_score
	Alerts    []bool    // is_anomaly: the detector's own decisions
	Windows   []nab.Window
	Probation int     // rows NAB does not score
	Threshold float64 // the detector's own decision point
}

// Verdict is what NAB would make of a series' own decisions: per window, the
// first alert inside it (-1 when the window is missed), and the alerts
// outside every window after the probationary period (false alarms).
type Verdict struct {
	First       []int
	FalseAlarms int
	// Probation counts alerts in the unscored period, shown but not scored.
	Probation int
}

// Caught is the number of windows with an alert in them.
func (v Verdict) Caught() int {
	n := 0
	for _, f := range v.First {
		if f >= 0 {
			n++
		}
	}
	return n
}

// Judge compares the alerts with the windows as NAB's scorer does: only the
// first alert in a window counts, an alert in the probationary period counts
// for nothing.
func Judge(s Series) Verdict {
	v := Verdict{First: make([]int, len(s.Windows))}
	for i := range v.First {
		v.First[i] = -1
	}
	for r, a := range s.Alerts {
		if !a {
			continue
		}
		if r < s.Probation {
			v.Probation++
			continue
		}
		in := false
		for i, w := range s.Windows {
			if r >= w.Start && r <= w.End {
				in = true
				if v.First[i] < 0 {
					v.First[i] = r
				}
			}
		}
		if !in {
			v.FalseAlarms++
		}
	}
	return v
}

// LoadSeries runs the default detector over one file of a NAB layout under
// root, with the runner `smartcloudops detect` uses.
func LoadSeries(ctx context.Context, root, name string, opt stream.Options) (Series, error) {
	s := Series{Name: name}
	labels, err := nab.ReadLabels(filepath.Join(root, "labels", "combined_windows.json"))
	if err != nil {
		return s, err
	}
	wins, ok := labels[name]
	if !ok {
		return s, fmt.Errorf("-chart %s: not in %s/labels/combined_windows.json (want <category>/<file>.csv)", name, root)
	}
	d, err := stream.New(opt)
	if err != nil {
		return s, fmt.Errorf("-chart: %w", err)
	}
	s.Threshold = d.Options().Threshold
	data, err := os.ReadFile(filepath.Join(root, "data", name))
	if err != nil {
		return s, fmt.Errorf("nab data: %w", err)
	}
	var out bytes.Buffer
	if err := detectcli.Score(ctx, bytes.NewReader(data), &out, opt); err != nil {
		return s, fmt.Errorf("%s: %w", name, err)
	}
	ts, vals, err := nab.ReadResult(bytes.NewReader(out.Bytes()), "value")
	if err != nil {
		return s, fmt.Errorf("%s: %w", name, err)
	}
	if _, s.Scores, err = nab.ReadResult(bytes.NewReader(out.Bytes()), "anomaly_score"); err != nil {
		return s, fmt.Errorf("%s: %w", name, err)
	}
	_, own, err := nab.ReadResult(bytes.NewReader(out.Bytes()), "is_anomaly")
	if err != nil {
		return s, fmt.Errorf("%s: %w", name, err)
	}
	if s.Windows, err = nab.Locate(ts, wins); err != nil {
		return s, fmt.Errorf("%s: %w", name, err)
	}
	s.Values = vals
	s.Alerts = make([]bool, len(own))
	for i, o := range own {
		s.Alerts[i] = o >= 0.5
	}
	s.Times = make([]time.Time, len(ts))
	for i, t := range ts {
		if s.Times[i], err = time.Parse(time.DateTime, t); err != nil {
			return s, fmt.Errorf("%s row %d: timestamp %q: want %s", name, i+1, t, time.DateTime)
		}
	}
	s.Probation = nab.Probation(len(ts))
	return s, nil
}

// runChart draws one NAB file to png and prints what NAB would make of the
// detector's own decisions on it, so the picture can be checked against
// numbers.
func runChart(ctx context.Context, w io.Writer, root, name, png string) error {
	s, err := LoadSeries(ctx, root, name, stream.Options{})
	if err != nil {
		return err
	}
	v := Judge(s)
	fmt.Fprintf(w, "%s: %d rows, %d unscored (probation), threshold %.2f, %d alerts\n",
		name, len(s.Values), s.Probation, s.Threshold, countTrue(s.Alerts))
	for i, win := range s.Windows {
		at := "missed"
		if f := v.First[i]; f >= 0 {
			at = fmt.Sprintf("caught at %s, row %d of %d", s.Times[f].Format(time.DateTime), f-win.Start+1, win.End-win.Start+1)
		}
		fmt.Fprintf(w, "  window %d %s .. %s: %s\n", i+1, s.Times[win.Start].Format(time.DateTime), s.Times[win.End].Format(time.DateTime), at)
	}
	fmt.Fprintf(w, "  caught %d of %d windows; %d false alarms; %d alerts in the probation\n",
		v.Caught(), len(s.Windows), v.FalseAlarms, v.Probation)
	if err := WriteChart(png, s, v); err != nil {
		return err
	}
	fmt.Fprintf(w, "  wrote %s\n", png)
	return nil
}

func countTrue(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// Colours: labelled windows pink, the probation grey, alerts red when they
// are false, green when they fall in a window and grey when nothing scores
// them, so the picture reads as NAB's score does.
var (
	windowFill    = color.RGBA{R: 255, G: 205, B: 210, A: 255}
	probationFill = color.Gray{Y: 225}
	hitColour     = color.RGBA{G: 140, A: 255}
	falseColour   = color.RGBA{R: 210, A: 255}
	lineColour    = color.RGBA{R: 40, G: 70, B: 160, A: 255}
)

// chartWidth and chartHeight are the PNG's size (1467×800 pixels at
// vgimg's 96 dpi): wide enough for a month of 5-minute points to show spikes.
const (
	chartWidth  = 1100 * vg.Inch / 72
	chartHeight = 600 * vg.Inch / 72
)

// WriteChart draws s as two panels on one time axis, the values with the
// detector's alerts above and anomaly_score with the threshold below, the
// labelled windows and the probationary period shaded in both, and writes a
// PNG to path.
func WriteChart(path string, s Series, v Verdict) error {
	n := len(s.Values)
	if n == 0 || len(s.Times) != n || len(s.Scores) != n || len(s.Alerts) != n {
		return fmt.Errorf("chart %s: %d values, %d times, %d scores, %d alerts: want the same non-zero number",
			s.Name, n, len(s.Times), len(s.Scores), len(s.Alerts))
	}
	x := func(i int) float64 { return float64(s.Times[i].Unix()) }
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, y := range s.Values {
		lo, hi = math.Min(lo, y), math.Max(hi, y)
	}
	pad := math.Max((hi-lo)*0.05, 1e-9)
	lo, hi = lo-pad, hi+pad

	top := plot.New()
	top.Title.Text = fmt.Sprintf("%s — caught %d of %d labelled windows, %d false alarms (default detector, own decisions)",
		s.Name, v.Caught(), len(s.Windows), v.FalseAlarms)
	top.Y.Label.Text = "value"
	bottom := plot.New()
	bottom.Y.Label.Text = "anomaly_score"
	bottom.X.Label.Text = "time (UTC)"
	ticks := plot.TimeTicks{Format: "2006-01-02", Time: plot.UTCUnixTime}
	for _, p := range []*plot.Plot{top, bottom} {
		p.X.Min, p.X.Max = x(0), x(n-1)
		p.X.Tick.Marker = ticks
		p.Legend.Top = true
	}
	top.Y.Min, top.Y.Max = lo, hi
	bottom.Y.Min, bottom.Y.Max = 0, 1.05

	// Shading first, so the lines are drawn over it.
	for pi, p := range []*plot.Plot{top, bottom} {
		if s.Probation > 0 {
			b, err := band(x(0), x(s.Probation-1), p.Y.Min, p.Y.Max, probationFill)
			if err != nil {
				return err
			}
			p.Add(b)
			if pi == 0 {
				p.Legend.Add("probation (not scored)", b)
			}
		}
		for i, w := range s.Windows {
			b, err := band(x(w.Start), x(w.End), p.Y.Min, p.Y.Max, windowFill)
			if err != nil {
				return err
			}
			p.Add(b)
			if pi == 0 && i == 0 {
				p.Legend.Add("labelled anomaly window", b)
			}
		}
	}

	vals := make(plotter.XYs, n)
	scores := make(plotter.XYs, n)
	var hits, falses, early plotter.XYs
	for i := range n {
		vals[i] = plotter.XY{X: x(i), Y: s.Values[i]}
		scores[i] = plotter.XY{X: x(i), Y: s.Scores[i]}
		if !s.Alerts[i] {
			continue
		}
		switch {
		case i < s.Probation:
			early = append(early, vals[i])
		case inWindow(s.Windows, i):
			hits = append(hits, vals[i])
		default:
			falses = append(falses, vals[i])
		}
	}
	vl, err := plotter.NewLine(vals)
	if err != nil {
		return err
	}
	vl.Color, vl.Width = lineColour, vg.Points(0.6)
	top.Add(vl)
	for _, m := range []struct {
		xys   plotter.XYs
		col   color.Color
		shape draw.GlyphDrawer
		label string
	}{
		{hits, hitColour, draw.CircleGlyph{}, "alert in a window"},
		{falses, falseColour, draw.TriangleGlyph{}, "alert outside every window (false alarm)"},
		{early, color.Black, draw.BoxGlyph{}, "alert in the probation (not scored)"},
	} {
		if len(m.xys) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(m.xys)
		if err != nil {
			return err
		}
		sc.Color, sc.Shape, sc.Radius = m.col, m.shape, vg.Points(4)
		top.Add(sc)
		top.Legend.Add(m.label, sc)
	}
	sl, err := plotter.NewLine(scores)
	if err != nil {
		return err
	}
	sl.Color, sl.Width = lineColour, vg.Points(0.6)
	th, err := plotter.NewLine(plotter.XYs{{X: x(0), Y: s.Threshold}, {X: x(n - 1), Y: s.Threshold}})
	if err != nil {
		return err
	}
	th.Color, th.Width, th.Dashes = falseColour, vg.Points(1), []vg.Length{vg.Points(4), vg.Points(3)}
	bottom.Add(sl, th)
	bottom.Legend.Add(fmt.Sprintf("threshold %.2f", s.Threshold), th)

	img := vgimg.New(chartWidth, chartHeight)
	dc := draw.New(img)
	t := draw.Tiles{Rows: 2, Cols: 1, PadY: vg.Points(6), PadTop: vg.Points(6), PadBottom: vg.Points(6),
		PadLeft: vg.Points(6), PadRight: vg.Points(16)}
	// The value panel gets most of the height: it is what a reader looks at.
	plots := [][]*plot.Plot{{top}, {bottom}}
	canvases := plot.Align(plots, t, dc)
	split := dc.Min.Y + (dc.Max.Y-dc.Min.Y)*0.36
	canvases[0][0].Min.Y = split
	canvases[1][0].Max.Y = split - vg.Points(6)
	top.Draw(canvases[0][0])
	bottom.Draw(canvases[1][0])

	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("chart: writing %s: %w", path, err)
	}
	return f.Close()
}

// band is a filled rectangle over [x0, x1] × [y0, y1] without an outline.
func band(x0, x1, y0, y1 float64, c color.Color) (*plotter.Polygon, error) {
	if x1 <= x0 {
		// A one-row window would be invisible.
		x1 = x0 + 1
	}
	b, err := plotter.NewPolygon(plotter.XYs{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}})
	if err != nil {
		return nil, err
	}
	b.Color = c
	b.LineStyle.Width = 0
	return b, nil
}

func inWindow(ws []nab.Window, r int) bool {
	for _, w := range ws {
		if r >= w.Start && r <= w.End {
			return true
		}
	}
	return false
}
