package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/smartcloudops/smartcloudops/bench/internal/svcrun"
)

func fetchFloorStats(ctx context.Context, client *http.Client, url string) (floorStats, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return floorStats{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return floorStats{}, fmt.Errorf("floor stats: %w", err)
	}
	defer resp.Body.Close()
	var fs floorStats
	if err := json.NewDecoder(resp.Body).Decode(&fs); err != nil {
		return floorStats{}, fmt.Errorf("floor stats: %w", err)
	}
	return fs, nil
}

// median returns the middle value (the mean of the two middle ones for an
// even count); medians over repeats keep one disturbed run from moving the
// report.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// per100k is CPU seconds per 100,000 samples accepted.
func per100k(cpu float64, samples int64) float64 {
	if samples <= 0 {
		return 0
	}
	return cpu / float64(samples) * 1e5
}

// figures are one run's derived numbers, the ones the table shows.
type figures struct {
	sps, rps, p50, p99   float64
	storedPS, scoredPS   float64
	keptPS               float64
	cpu100k, share, busy float64
	self100k             float64
}

func derive(r runStats) figures {
	f := figures{
		sps: r.res.samplesPerSec(), rps: float64(r.res.requests) / r.res.elapsed.Seconds(),
		p50: float64(r.res.quantile(0.5)), p99: float64(r.res.quantile(0.99)),
		self100k: per100k(r.selfCPU, r.res.samples),
	}
	if r.window > 0 {
		f.storedPS = r.stored / r.window.Seconds()
		f.scoredPS = r.scored / r.window.Seconds()
		f.keptPS = r.kept / r.window.Seconds()
		f.share = r.cpu / (r.window.Seconds() * float64(runtime.NumCPU()))
	}
	if r.cpuOK {
		f.cpu100k = per100k(r.cpu, r.res.samples)
	}
	if r.machineAll > 0 {
		f.busy = r.machineBusy / r.machineAll
	}
	return f
}

func medianOf(rs []runStats, get func(figures) float64) float64 {
	xs := make([]float64, 0, len(rs))
	for _, r := range rs {
		xs = append(xs, get(derive(r)))
	}
	return median(xs)
}

func report(w io.Writer, o options, u *universe, targets []*target, runs [][]runStats) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tsamples/s\treq/s\tp50\tp99\tkept/s\trows stored/s\trows scored/s\tCPU s/100k\tCPU share\tmachine busy\tbench CPU s/100k\tfailed\t")
	dur := func(x float64) string { return svcrun.FmtDuration(time.Duration(x)) }
	opt := func(x float64, ok bool) string {
		if !ok {
			return "n/a"
		}
		return fmt.Sprintf("%.0f", x)
	}
	for i, t := range targets {
		rs := runs[i]
		var failed int64
		storedOK, scoredOK, keptOK, cpuOK := true, true, true, true
		for _, r := range rs {
			failed += r.res.failed
			storedOK = storedOK && r.storedOK
			scoredOK = scoredOK && r.scoredOK
			keptOK = keptOK && r.keptOK
			cpuOK = cpuOK && r.cpuOK
		}
		if t.name == "floor" {
			// The floor's count of decoded samples is its "stored".
			scoredOK, keptOK = false, false
		}
		g := func(get func(figures) float64) float64 { return medianOf(rs, get) }
		cpu := "n/a"
		if cpuOK {
			cpu = fmt.Sprintf("%.3f", g(func(f figures) float64 { return f.cpu100k }))
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f%%\t%.0f%%\t%.3f\t%d\t\n", t.name,
			g(func(f figures) float64 { return f.sps }), g(func(f figures) float64 { return f.rps }),
			dur(g(func(f figures) float64 { return f.p50 })), dur(g(func(f figures) float64 { return f.p99 })),
			opt(g(func(f figures) float64 { return f.keptPS }), keptOK),
			opt(g(func(f figures) float64 { return f.storedPS }), storedOK), opt(g(func(f figures) float64 { return f.scoredPS }), scoredOK),
			cpu, 100*g(func(f figures) float64 { return f.share }), 100*g(func(f figures) float64 { return f.busy }),
			g(func(f figures) float64 { return f.self100k }), failed)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)

	if len(targets) == 2 && targets[0].name == "service" {
		var thr, cpu, p99 []float64
		for k := range runs[0] {
			s, f := derive(runs[0][k]), derive(runs[1][k])
			if f.sps > 0 {
				thr = append(thr, s.sps/f.sps)
			}
			if f.cpu100k > 0 {
				cpu = append(cpu, s.cpu100k/f.cpu100k)
			}
			if f.p99 > 0 {
				p99 = append(p99, s.p99/f.p99)
			}
		}
		fmt.Fprintf(w, "service/floor: samples/s %.3f, CPU per 100k samples %.1f, p99 %.1f (medians of the per-repeat ratios)\n\n",
			median(thr), median(cpu), median(p99))
	}

	for i, t := range targets {
		byStatus := map[string]int64{}
		var first string
		var simEnd time.Time
		var samples int64
		for _, r := range runs[i] {
			for k, v := range r.res.byStatus {
				byStatus[k] += v
			}
			if first == "" {
				first = r.res.firstErr
			}
			if r.res.simEnd.After(simEnd) {
				simEnd = r.res.simEnd
			}
			samples += r.res.samples
		}
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(byStatus)) {
			parts = append(parts, fmt.Sprintf("%s: %d", k, byStatus[k]))
		}
		fmt.Fprintf(w, "%-8s attempts by status (all measured runs): %s\n", t.name, strings.Join(parts, ", "))
		if first != "" {
			fmt.Fprintf(w, "%-8s first error: %s\n", "", first)
		}
		fmt.Fprintf(w, "%-8s simulated time reached %s; %d samples accepted ≈ %d host rows (a row per host per scrape)\n", "",
			simEnd.UTC().Format(time.RFC3339), samples, samples/int64(u.perHost))
		if t.name == "service" && len(runs[i]) > 0 {
			last := runs[i][len(runs[i])-1]
			if len(last.deltas) > 0 {
				fmt.Fprintf(w, "%-8s counters matching -counters over the last run:\n", "")
				for _, d := range last.deltas {
					fmt.Fprintf(w, "%-8s   %s\n", "", d)
				}
			} else {
				fmt.Fprintf(w, "%-8s no counter matching -counters %q changed over the last run\n", "", o.counters.String())
			}
		}
	}
	fmt.Fprintf(w, "\nkept/s: -kept %s; rows stored/s: -stored %s; rows scored/s: -scored %s;\n"+
		"each over the run plus the wait for them to settle (the floor's rows stored/s is the samples it decoded)\n",
		selList(o.kept), selList(o.stored), selList(o.scored))
}

func selList(sels []counterSel) string {
	var out []string
	for _, s := range sels {
		out = append(out, s.String())
	}
	return strings.Join(out, " + ")
}

// startPerf records the service's on-CPU stacks (frame pointers, which Go
// keeps) until the returned function stops it.
func startPerf(ctx context.Context, file string, pid int, stderr io.Writer) (func() error, error) {
	path, err := exec.LookPath("perf")
	if err != nil {
		return nil, fmt.Errorf("-perf: perf is not installed (apt-get install linux-perf): %w", err)
	}
	cmd := exec.CommandContext(ctx, path, "record", "-F", "499", "--call-graph", "fp", "-p", fmt.Sprint(pid), "-o", file)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("-perf: %w", err)
	}
	return func() error {
		_ = cmd.Process.Signal(syscall.SIGINT)
		return cmd.Wait()
	}, nil
}

// perfReport prints the top functions by self time and by time with their
// callees.
func perfReport(ctx context.Context, w io.Writer, file string) {
	for _, mode := range []struct{ title, flag string }{{"self", "--no-children"}, {"with callees", "--children"}} {
		out, err := exec.CommandContext(ctx, "perf", "report", "-i", file, "--stdio", mode.flag, "-g", "none",
			"--sort", "symbol", "--percent-limit", "1.5").Output()
		if err != nil {
			fmt.Fprintf(w, "perf report: %v\n", err)
			return
		}
		fmt.Fprintf(w, "\nservice CPU by function (%s), perf record -F 499 over the measured runs:\n", mode.title)
		n := 0
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "#") || strings.TrimSpace(l) == "" {
				continue
			}
			f := strings.Fields(l)
			for len(f) > 0 && f[len(f)-1] == "-" {
				f = f[:len(f)-1]
			}
			fmt.Fprintln(w, "  "+strings.Join(f, " "))
			if n++; n >= 30 {
				break
			}
		}
	}
	fmt.Fprintf(w, "(full profile: perf report -i %s)\n", file)
}
