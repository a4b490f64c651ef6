package main

import (
	"fmt"
	"image/color"
	"math"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// writeChart draws one panel per series over the run's minutes, stacked on
// a shared time axis, with the warm-up the rule ignores shaded, and writes
// it as a PNG.
func writeChart(path, title string, ss []series, pts []point, vs []verdict, warmup float64) error {
	const cols = 2
	rows := (len(ss) + cols - 1) / cols
	plots := make([][]*plot.Plot, rows)
	for r := range plots {
		plots[r] = make([]*plot.Plot, cols)
	}
	for i, s := range ss {
		p := plot.New()
		word := "flat"
		if vs[i].n < 4 {
			word = "too few samples"
		} else if !vs[i].flat {
			word = "GROWING"
		}
		p.Title.Text = fmt.Sprintf("%s — %s", s.name, word)
		p.X.Label.Text = "minutes"
		if s.unit != "" {
			p.Y.Label.Text = s.unit
		}
		var xys plotter.XYs
		hi := 0.0
		for _, pt := range pts {
			if y := pt.values[i]; !math.IsNaN(y) {
				xys = append(xys, plotter.XY{X: pt.at.Minutes(), Y: y})
				hi = max(hi, y)
			}
		}
		// A flat series should look flat: the axis starts at zero and
		// leaves headroom, so noise of a few percent does not fill the panel.
		p.Y.Min, p.Y.Max = 0, max(hi*1.25, 1)
		if warmup > 0 {
			// Shaded first, so the line is drawn over it.
			shade, err := plotter.NewPolygon(plotter.XYs{{X: 0, Y: 0}, {X: warmup, Y: 0}, {X: warmup, Y: p.Y.Max}, {X: 0, Y: p.Y.Max}})
			if err != nil {
				return err
			}
			shade.Color = color.Gray{Y: 230}
			shade.LineStyle.Width = 0
			p.Add(shade)
		}
		if len(xys) > 0 {
			line, points, err := plotter.NewLinePoints(xys)
			if err != nil {
				return err
			}
			points.Radius = vg.Points(1.5)
			p.Add(line, points)
		}
		plots[i/cols][i%cols] = p
	}
	img := vgimg.New(vg.Points(900), vg.Points(260*float64(rows)+40))
	dc := draw.New(img)
	head := dc
	head.Min.Y = dc.Max.Y - vg.Points(30)
	head.FillText(draw.TextStyle{Color: color.Black, Font: font.From(plot.DefaultFont, 14), Handler: plot.DefaultTextHandler, XAlign: draw.XCenter},
		vg.Point{X: (dc.Min.X + dc.Max.X) / 2, Y: head.Min.Y + vg.Points(8)}, title)
	body := dc
	body.Max.Y -= vg.Points(36)
	t := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(24), PadY: vg.Points(18),
		PadTop: vg.Points(4), PadBottom: vg.Points(8), PadLeft: vg.Points(8), PadRight: vg.Points(16)}
	canvases := plot.Align(plots, t, body)
	for r := range plots {
		for c := range plots[r] {
			if plots[r][c] != nil {
				plots[r][c].Draw(canvases[r][c])
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}
