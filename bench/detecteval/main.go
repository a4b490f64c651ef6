// Command detecteval is an evaluation of the streaming anomaly detector that
// cannot flatter it: NAB scored leave-one-category-out (whatever is tuned is
// chosen on the other categories only), beside the pooled figure nab-eval
// prints; and a quiet fleet of incident-free synthetic series, where every
// alert is a false page. See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"time"

	"github.com/smartcloudops/smartcloudops/bench/detecteval/nab"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "detecteval:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("detecteval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nabRoot := fs.String("nab", "../shared/data/nab", "NAB-layout `dir` (labels/combined_windows.json, data/); empty skips NAB")
	grid := fs.String("grid", "", "detector Options the folds may choose from, e.g. \"Refractory=25,50 Short=10,20\" (default: the defaults; only the threshold is tuned)")
	only := fs.String("only", "", "score only NAB files whose name contains this `text`")
	workers := fs.Int("workers", runtime.GOMAXPROCS(0), "NAB files scored at once")
	days := fs.Int("quiet-days", 7, "length of each quiet-fleet series in `days` (0 skips the check)")
	seed := fs.Uint64("seed", 1, "quiet-fleet random seed")
	skab := fs.String("skab", "../shared/tools/skab-eval", "SKAB scorer `path`; empty skips SKAB")
	skabData := fs.String("skab-data", "../shared/data/skab", "SKAB-layout `dir` (data/, labels/)")
	streamOnly := fs.Bool("skab-stream-only", false, "drop --train-rows from SKAB's detect calls: the streaming detectors alone")
	skabState := fs.Bool("skab-state", false, "with -skab-stream-only, pass --state: is_anomaly is the streams' sustained state, not their alerts")
	src := fs.String("stream-src", "internal/anomaly/stream", "detector source `dir` whose constants are counted; empty skips")
	chart := fs.String("chart", "", "draw this NAB `file` (<category>/<file>.csv under -nab's data/) with its windows, scores and alerts, and do nothing else")
	png := fs.String("png", "nab-chart.png", "where -chart writes its PNG `file`")
	binary := fs.String("binary", "", "smartcloudops `binary` for SKAB (default: go build ./cmd/smartcloudops)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	cands, err := ParseGrid(*grid)
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if *chart != "" {
		return runChart(ctx, stdout, *nabRoot, *chart, *png)
	}
	fmt.Fprintf(stdout, "detecteval %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	if *nabRoot != "" {
		if _, err := os.Stat(filepath.Join(*nabRoot, "labels", "combined_windows.json")); err != nil {
			fmt.Fprintf(stdout, "NAB: skipped, %s has no labels/combined_windows.json\n\n", *nabRoot)
		} else if err := runNAB(ctx, stdout, *nabRoot, cands, *workers, *only); err != nil {
			return err
		}
	}
	if *days > 0 {
		rows, err := QuietFleet(*days, *seed)
		if err != nil {
			return err
		}
		printQuiet(stdout, rows, *days)
	}
	if *skab != "" {
		if err := runSKAB(ctx, stdout, stderr, *skab, *skabData, *binary, *streamOnly, *streamOnly && *skabState); err != nil {
			return err
		}
	}
	if *src != "" {
		c, err := CountConstants(*src)
		switch {
		case err != nil:
			return err
		case len(c.Free)+len(c.Derived) == 0:
			fmt.Fprintf(stdout, "Constants: skipped, no Go constants under %s\n\n", *src)
		default:
			printConstants(stdout, *src, c)
		}
	}
	return nil
}

func runNAB(ctx context.Context, w io.Writer, root string, cands []Candidate, workers int, only string) error {
	start := time.Now()
	files, err := LoadNAB(ctx, root, cands, workers, only)
	if err != nil {
		return err
	}
	rows := 0
	for _, f := range files {
		rows += len(f.Runs[0].Scores)
	}
	fmt.Fprintf(w, "NAB %s: %d files, %d rows, %d candidate configuration(s), scored in %.1fs\n\n",
		root, len(files), rows, len(cands), time.Since(start).Seconds())
	p := nab.Standard()
	folds, err := LeaveOneOut(files, len(cands), p)
	if err != nil {
		return err
	}
	pooled, err := Pool(files, len(cands), p)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "Leave one category out, %s profile (threshold chosen on the other categories;\n", p.Name)
	fmt.Fprintf(w, "the last column scores the category with the pooled threshold %.6f, chosen with it in view):\n\n", pooled.Threshold)
	fmt.Fprintln(w, "| held-out category | files | windows | threshold | tuned in fold | own decisions | flags (tuned / own) | pooled threshold |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, f := range folds {
		var in []File
		for _, fl := range files {
			if fl.Category == f.Category {
				in = append(in, fl)
			}
		}
		pc, _, err := score(in, pooled.Candidate, false, p, pooled.Threshold)
		if err != nil {
			return err
		}
		cand := ""
		if len(cands) > 1 {
			cand = " " + cands[f.Candidate].Name
		}
		fmt.Fprintf(w, "| %s | %d | %d | %.6f%s | %s | %s | %d / %d | %s |\n", f.Category, f.Files, f.Windows,
			f.Threshold, cand, num(f.Tuned), num(f.Own), f.TunedFlags, f.OwnFlags, num(pc))
	}
	mean, worst, wc := Summary(folds, false)
	omean, oworst, owc := Summary(folds, true)
	fmt.Fprintf(w, "| **mean** (categories with windows) | | | | %s | %s | | |\n", num(mean), num(omean))
	fmt.Fprintf(w, "| **worst** | | | | %s (%s) | %s (%s) | | |\n\n", num(worst), wc, num(oworst), owc)
	fmt.Fprintln(w, "Pooled (one threshold optimised over every file, as nab-eval reports):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| profile | threshold | tuned threshold | own decisions |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: |")
	for _, p := range nab.Profiles() {
		pl, err := Pool(files, len(cands), p)
		if err != nil {
			return err
		}
		cand := ""
		if len(cands) > 1 {
			cand = " " + cands[pl.Candidate].Name
		}
		fmt.Fprintf(w, "| %s | %.6f%s | %s | %s |\n", p.Name, pl.Threshold, cand, num(pl.Tuned), num(pl.Own))
	}
	fmt.Fprintln(w)
	return nil
}

// num prints a score, or "n/a" for a category without windows.
func num(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", v)
}
