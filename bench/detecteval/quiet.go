package main

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/anomaly/stream"
)

// quietStep is the sample spacing of the quiet fleet: a common scrape interval.
const quietStep = 10 * time.Second

// QuietSeries is one kind of healthy metric without any incident.
type QuietSeries struct {
	Name string
	// gen returns the value at step i (time i*quietStep).
	gen func(rng *rand.Rand, i int) float64
}

// quietKinds are the incident-free series a fleet is made of. Every value is
// a plausible healthy metric; none contains a change an operator would want
// to hear about.
func quietKinds() []QuietSeries {
	day := float64(24*time.Hour) / float64(quietStep)
	week := 7 * day
	return []QuietSeries{
		{"gaussian", func(r *rand.Rand, _ int) float64 { return 50 + 5*r.NormFloat64() }},
		{"student-t (3 dof)", func(r *rand.Rand, _ int) float64 { return 50 + 2*studentT(r, 3) }},
		{"daily seasonal", func(r *rand.Rand, i int) float64 {
			return 50 + 20*math.Sin(2*math.Pi*float64(i)/day) + 3*r.NormFloat64()
		}},
		{"slow drift (+30 a week)", func(r *rand.Rand, i int) float64 { return 40 + 30*float64(i)/week + 2*r.NormFloat64() }},
		{"percentage, integer", func(r *rand.Rand, _ int) float64 {
			return math.Max(0, math.Min(100, math.Round(30+3*r.NormFloat64())))
		}},
		{"constant", func(*rand.Rand, int) float64 { return 42 }},
		{"counts (Poisson 4)", func(r *rand.Rand, _ int) float64 { return poisson(r, 4) }},
	}
}

// studentT draws from Student's t with nu degrees of freedom.
func studentT(r *rand.Rand, nu int) float64 {
	chi := 0.0
	for range nu {
		z := r.NormFloat64()
		chi += z * z
	}
	return r.NormFloat64() / math.Sqrt(chi/float64(nu))
}

// poisson draws a Poisson count by Knuth's product method (fine for small means).
func poisson(r *rand.Rand, mean float64) float64 {
	limit, p, k := math.Exp(-mean), 1.0, 0
	for {
		p *= r.Float64()
		if p <= limit {
			return float64(k)
		}
		k++
	}
}

// QuietRow is one series' result.
type QuietRow struct {
	Name   string
	Points int
	Alerts int
	// MaxScore is the highest score after warm-up.
	MaxScore float64
	// Anomalous is the number of points whose state was anomalous (what a
	// dashboard would colour), alerted or not.
	Anomalous int
	// Threshold is the alert threshold in force at the end (raised for the
	// 10 s step, see stream.Detector.Threshold).
	Threshold float64
}

// PerDay is alerts per series-day.
func (q QuietRow) PerDay() float64 {
	return float64(q.Alerts) / (float64(q.Points) * float64(quietStep) / float64(24*time.Hour))
}

// QuietFleet runs a default detector over days of every quiet kind, each with
// its own generator seeded from seed, and counts the alerts (IsAnomaly).
func QuietFleet(days int, seed uint64) ([]QuietRow, error) {
	n := days * int(24*time.Hour/quietStep)
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	var rows []QuietRow
	for k, s := range quietKinds() {
		rng := rand.New(rand.NewPCG(seed, uint64(k)))
		d, err := stream.New(stream.Options{})
		if err != nil {
			return nil, fmt.Errorf("quiet fleet: %w", err)
		}
		row := QuietRow{Name: s.Name, Points: n}
		for i := range n {
			res := d.Update(start.Add(time.Duration(i)*quietStep), s.gen(rng, i))
			if res.IsAnomaly {
				row.Alerts++
			}
			if res.Anomalous {
				row.Anomalous++
			}
			row.MaxScore = math.Max(row.MaxScore, res.Score)
			row.Threshold = res.Threshold
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func printQuiet(w io.Writer, rows []QuietRow, days int) {
	fmt.Fprintf(w, "Quiet fleet: %d days at %s, no incident, default Options (every alert is false):\n\n", days, quietStep)
	fmt.Fprintln(w, "| series | points | alerts | alerts per series-day | max score | threshold | points in anomalous state |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
	var alerts, points, anom int
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %d | %d | %.2f | %.3f | %.3f | %.3f%% |\n", r.Name, r.Points, r.Alerts, r.PerDay(), r.MaxScore,
			r.Threshold, 100*float64(r.Anomalous)/float64(r.Points))
		alerts += r.Alerts
		points += r.Points
		anom += r.Anomalous
	}
	all := QuietRow{Points: points, Alerts: alerts}
	fmt.Fprintf(w, "| **all** | %d | %d | %.2f | | | %.3f%% |\n\n", points, alerts, all.PerDay(), 100*float64(anom)/float64(points))
}
