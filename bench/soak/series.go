package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// point is one sample of the service's resources.
type point struct {
	at time.Duration // since the load started
	// requests, clientErrs and errs count the load's answers since the
	// previous point: all, 4xx, and 5xx or no answer.
	requests, clientErrs, errs int64
	values                     []float64 // in series order; NaN when unknown
}

// series is one resource the soak watches, with its flatness tolerance.
type series struct {
	name, unit string
	// floor is the smallest growth that counts, in the series' unit:
	// below it a change is too small to be a leak worth a look whatever
	// the noise (a pool opening two more connections, 16 MiB of heap).
	floor float64
}

// watched are the series in table and chart order.
func watched(postgres bool) []series {
	s := []series{
		{name: "RSS", unit: "MiB", floor: 16},
		{name: "heap in use", unit: "MiB", floor: 16},
		{name: "goroutines", floor: 10},
		{name: "open fds", floor: 10},
		{name: "db pool conns", floor: 4},
	}
	if postgres {
		s = append(s, series{name: "pg backends", floor: 4})
	}
	return s
}

// rssMiB reads the resident set size of a process from /proc.
func rssMiB(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return math.NaN(), err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			if err != nil {
				return math.NaN(), fmt.Errorf("VmRSS %q: %w", rest, err)
			}
			return kb / 1024, nil
		}
	}
	return math.NaN(), fmt.Errorf("/proc/%d/status: no VmRSS line", pid)
}

// procMetrics are the figures the soak takes from /performance/metrics.
type procMetrics struct {
	goroutines, openFDs, heapMiB, dbConns float64
}

// parseMetrics reads the exposition: the Go and process collectors'
// goroutines, open file descriptors and heap, and the store's open
// connections summed over its pools and states.
func parseMetrics(body []byte) (procMetrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return procMetrics{}, err
	}
	sum := func(name string) float64 {
		f, ok := fams[name]
		if !ok {
			return math.NaN()
		}
		var t float64
		for _, m := range f.GetMetric() {
			t += value(m)
		}
		return t
	}
	return procMetrics{
		goroutines: sum("go_goroutines"),
		openFDs:    sum("process_open_fds"),
		heapMiB:    sum("go_memstats_heap_inuse_bytes") / (1 << 20),
		dbConns:    sum("smartcloudops_db_pool_connections"),
	}, nil
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return math.NaN()
}

// verdict is the flatness check of one series.
type verdict struct {
	firstMean, lastMean float64
	growth, allowed     float64
	// slopePerMin is the least-squares slope over the judged samples, for
	// the reader; the rule does not use it.
	slopePerMin float64
	n           int
	flat        bool
}

// warmupOf is how much of the start the rule ignores: pools fill, caches
// and the heap grow to their working size in the first minute or so.
func warmupOf(total, interval time.Duration) time.Duration {
	return max(interval, total/10)
}

// judge applies the rule: drop the warm-up, split the rest into halves by
// time, and call the series flat when the last half's mean exceeds the
// first half's by no more than the largest of the floor, 10% of the first
// half's mean, and twice the first half's standard deviation (its noise).
// Only growth counts: memory handed back or connections closed is not a
// leak. Fewer than four judged samples give no verdict (flat, n < 4).
func judge(at []time.Duration, ys []float64, warmup time.Duration, floor float64) verdict {
	var ts, vs []float64
	for i, y := range ys {
		if at[i] >= warmup && !math.IsNaN(y) {
			ts = append(ts, at[i].Minutes())
			vs = append(vs, y)
		}
	}
	v := verdict{n: len(vs), flat: true}
	if len(vs) < 4 {
		return v
	}
	half := len(vs) / 2
	first, last := vs[:half], vs[len(vs)-half:]
	v.firstMean, v.lastMean = mean(first), mean(last)
	v.growth = v.lastMean - v.firstMean
	v.allowed = max(floor, 0.10*math.Abs(v.firstMean), 2*stddev(first))
	v.flat = v.growth <= v.allowed
	v.slopePerMin = slope(ts, vs)
	return v
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func stddev(xs []float64) float64 {
	m := mean(xs)
	var s float64
	for _, x := range xs {
		s += (x - m) * (x - m)
	}
	return math.Sqrt(s / float64(len(xs)))
}

// slope is the least-squares slope of ys over xs.
func slope(xs, ys []float64) float64 {
	mx, my := mean(xs), mean(ys)
	var num, den float64
	for i := range xs {
		num += (xs[i] - mx) * (ys[i] - my)
		den += (xs[i] - mx) * (xs[i] - mx)
	}
	if den == 0 {
		return 0
	}
	return num / den
}

// writeTable prints one row per sample.
func writeTable(w io.Writer, ss []series, pts []point) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "t\trequests\t4xx\t5xx+no answer")
	for _, s := range ss {
		name := s.name
		if s.unit != "" {
			name += " " + s.unit
		}
		fmt.Fprint(tw, "\t"+name)
	}
	fmt.Fprintln(tw, "\t")
	for _, p := range pts {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d", fmtAt(p.at), p.requests, p.clientErrs, p.errs)
		for _, v := range p.values {
			fmt.Fprintf(tw, "\t%s", fmtValue(v))
		}
		fmt.Fprintln(tw, "\t")
	}
	return tw.Flush()
}

// writeVerdicts prints the rule's figures and verdict for each series.
func writeVerdicts(w io.Writer, ss []series, vs []verdict) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "series\tfirst half\tlast half\tgrowth\tallowed\tslope/min\tverdict\t")
	for i, s := range ss {
		v := vs[i]
		if v.n < 4 {
			fmt.Fprintf(tw, "%s\t\t\t\t\t\ttoo few samples (%d)\t\n", s.name, v.n)
			continue
		}
		word := "flat"
		if !v.flat {
			word = "GROWING"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%+.1f\t%s\t%+.2f\t%s\t\n", s.name, fmtValue(v.firstMean), fmtValue(v.lastMean), v.growth, fmtValue(v.allowed), v.slopePerMin, word)
	}
	return tw.Flush()
}

func fmtAt(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}

func fmtValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case v == math.Trunc(v) && math.Abs(v) < 1e6:
		return strconv.FormatFloat(v, 'f', 0, 64)
	default:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
}
