// Package detectcli implements `smartcloudops detect`: it runs the streaming
// anomaly detector (package stream) over a CSV file in row order and writes one
// scored row per input row, without holding the file in memory.
//
// Input: a header with a "timestamp" column (any position, case-insensitive)
// and either one "value" column (the NAB format) or several numeric metric
// columns. Timestamps follow the rule of every input, domain.ParseTimestamp:
// RFC 3339, "2006-01-02 15:04:05[.frac]" (taken as UTC), a date, or a Unix
// count of seconds/milliseconds/microseconds/nanoseconds told apart by its
// magnitude. Rows are scored in file order,
// even where a timestamp goes backwards (real exports have such glitches): the
// detector is a stream, and the row order is the arrival order.
//
// Output: timestamp,value,anomaly_score,is_anomaly. With several metric
// columns each metric gets its own detector and the output adds one
// <metric>_score column per metric; anomaly_score is then the largest
// per-metric score, is_anomaly is 1 when any metric's detector flags, and
// value is the value of the metric with the largest score (the one an
// operator should look at first), named in an added anomaly_metric column.
// --explain adds a reasons column ("cpu:level,cpu:change") naming the views
// that fired. --state makes is_anomaly the service's sustained state rather
// than its alert (1 from the alert while a metric stays held away from its
// normal; docs/alerting.md) and adds a state column, the largest per-metric
// state on anomaly_score's scale. --train-rows N (or --train FILE) also fits the service's host
// models on the first N rows (or on FILE) and adds their model_score (see
// runTrained).
package detectcli

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/anomaly/stream"
)

// progressMinBytes is the input size from which a progress bar is worth
// drawing: below it a run takes well under a second.
const progressMinBytes = 8 << 20

// checkEvery is how many rows pass between checks of ctx and the progress bar.
const checkEvery = 4096

// Run executes `detect` with args (the arguments after the subcommand name).
// Errors caused by the caller's flags or data match ErrUsage; -h prints the
// usage and returns nil.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("detect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	input := fs.String("input", "-", "input CSV `file` (\"-\" for standard input)")
	output := fs.String("output", "-", "output CSV `file` (\"-\" for standard output)")
	threshold := fs.Float64("threshold", 0, "score at which is_anomaly is 1 (default 0.5)")
	explain := fs.Bool("explain", false, "add a reasons column naming the views that fired")
	state := fs.Bool("state", false, "is_anomaly is the sustained state (the alert and every held point after it), and a state column is added")
	trainRows := fs.Int("train-rows", 0, "fit the host models on the first `N` rows (taken as normal), as the service trains, and score every row with them too")
	trainFile := fs.String("train", "", "fit the host models on every row of `FILE` (same columns, taken as normal) and score every input row with them too")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: smartcloudops detect [--input FILE.csv] [--output FILE.csv] [--threshold S] [--explain] [--state] [--train-rows N | --train FILE.csv]\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	if *trainRows < 0 || *trainRows > maxTrainRows {
		return fmt.Errorf("%w: --train-rows %d not in [0, %d]", ErrUsage, *trainRows, maxTrainRows)
	}
	if *trainRows > 0 && *trainFile != "" {
		return fmt.Errorf("%w: --train-rows and --train both name training rows; give one", ErrUsage)
	}
	if *state && (*trainRows > 0 || *trainFile != "") {
		return fmt.Errorf("%w: --state is how a trained run already decides is_anomaly; give it without --train-rows or --train", ErrUsage)
	}
	if *trainFile == "-" {
		return fmt.Errorf("%w: --train must name a file (standard input is the input)", ErrUsage)
	}
	opt := stream.Options{Threshold: *threshold}
	if _, err := stream.New(opt); err != nil {
		return fmt.Errorf("%w: --threshold: %w", ErrUsage, err)
	}

	in, size, closeIn, err := openInput(*input, stdin)
	if err != nil {
		return err
	}
	defer closeIn()
	var prog *progress
	if size >= progressMinBytes && isTerminal(stderr) {
		cr := &countingReader{r: in}
		in = cr
		prog = &progress{w: stderr, total: size, read: &cr.n}
	}
	out, closeOut, err := openOutput(*output, stdout)
	if err != nil {
		return err
	}
	if *trainRows > 0 || *trainFile != "" {
		err = runTrained(ctx, bufio.NewReaderSize(in, 64<<10), out, opt, *threshold, *trainRows, *trainFile, *explain, prog)
	} else {
		err = run(ctx, bufio.NewReaderSize(in, 64<<10), out, opt, *explain, *state, prog)
	}
	if cerr := closeOut(); err == nil && cerr != nil {
		err = fmt.Errorf("detect: close output: %w", cerr)
	}
	return err
}

// run is the streaming loop: decode a row, update each metric's detector,
// write the scored row. With state, is_anomaly is the sustained state and a
// state column follows the per-metric scores.
func run(ctx context.Context, in io.Reader, out io.Writer, opt stream.Options, explain, state bool, prog *progress) error {
	dec, err := newDecoder(in)
	if err != nil {
		return err
	}
	dets := make([]*stream.Detector, len(dec.names))
	for i := range dets {
		if dets[i], err = stream.New(opt); err != nil {
			return fmt.Errorf("detect: %w", err)
		}
	}
	multi := len(dets) > 1
	bw := bufio.NewWriterSize(out, 64<<10)
	w := csv.NewWriter(bw)
	var extra []string
	if state {
		extra = []string{"state"}
	}
	header := outputHeader(dec.names, multi, explain, extra...)
	if err := w.Write(header); err != nil {
		return fmt.Errorf("detect: write output: %w", err)
	}
	rec := make([]string, 0, len(header))
	var reasons strings.Builder
	scores := make([]string, len(dets))
	err = eachRow(ctx, dec, prog, 1, func(r *row) error {
		best, top, flag, st := -1.0, 0, false, 0.0
		reasons.Reset()
		for i, d := range dets {
			res := d.Update(r.ts, r.vals[i])
			if res.Score > best {
				best, top = res.Score, i
			}
			flag = flag || res.IsAnomaly || state && res.Anomalous
			st = max(st, res.State)
			scores[i] = formatScore(res.Score)
			if explain {
				for _, why := range res.Reasons {
					if reasons.Len() > 0 {
						reasons.WriteByte(',')
					}
					if multi {
						reasons.WriteString(dec.names[i])
						reasons.WriteByte(':')
					}
					reasons.WriteString(why.View.String())
				}
			}
		}
		rec = append(rec[:0], r.rawTS, r.rawVal[top], formatScore(best), "0")
		if flag {
			rec[3] = "1"
		}
		if multi {
			rec = append(rec, dec.names[top])
			rec = append(rec, scores...)
		}
		if state {
			rec = append(rec, formatScore(st))
		}
		if explain {
			rec = append(rec, reasons.String())
		}
		if err := w.Write(rec); err != nil {
			return fmt.Errorf("detect: write output: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return finish(prog, w, bw)
}

// outputHeader is the output's header: the four NAB columns, then with
// several metrics the metric that scored highest and each metric's score,
// then any extra columns (a trained run's model_score), then the reasons when
// explained.
func outputHeader(names []string, multi, explain bool, extra ...string) []string {
	header := []string{"timestamp", "value", "anomaly_score", "is_anomaly"}
	if multi {
		header = append(header, "anomaly_metric")
		for _, n := range names {
			header = append(header, n+"_score")
		}
	}
	header = append(header, extra...)
	if explain {
		header = append(header, "reasons")
	}
	return header
}

// finish ends the progress line and flushes the CSV writer and the buffer
// under it, so a full disk is an error rather than a cut-off file.
func finish(prog *progress, w *csv.Writer, bw *bufio.Writer) error {
	prog.show(true)
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("detect: write output: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("detect: write output: %w", err)
	}
	return nil
}

// eachRow calls fn for every row dec has left, numbering them from first for
// the periodic cancellation check and progress line, until the input ends.
func eachRow(ctx context.Context, dec *decoder, prog *progress, first int, fn func(r *row) error) error {
	for n := first; ; n++ {
		r, err := dec.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if n%checkEvery == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("detect: %w", err)
			}
			prog.show(false)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
}

// formatScore prints a score with enough digits for a threshold search: the
// score is a log-tail, so 1e-6 steps are 1e-5 decades.
func formatScore(s float64) string {
	return strconv.FormatFloat(s, 'f', 6, 64)
}

// openInput opens name ("-" or "" for stdin) and reports its size when it is
// a regular file (0 otherwise).
func openInput(name string, stdin io.Reader) (io.Reader, int64, func(), error) {
	if name == "-" || name == "" {
		if stdin == nil {
			return nil, 0, nil, fmt.Errorf("%w: no standard input", ErrUsage)
		}
		return stdin, 0, func() {}, nil
	}
	f, err := os.Open(name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, 0, nil, fmt.Errorf("%w: --input: %w", ErrUsage, err)
		}
		return nil, 0, nil, fmt.Errorf("detect: open input: %w", err)
	}
	var size int64
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		size = st.Size()
	}
	return f, size, func() { f.Close() }, nil
}

// openOutput creates name ("-" or "" for stdout).
func openOutput(name string, stdout io.Writer) (io.Writer, func() error, error) {
	if name == "-" || name == "" {
		return stdout, func() error { return nil }, nil
	}
	f, err := os.Create(name)
	if err != nil {
		return nil, nil, fmt.Errorf("detect: create output: %w", err)
	}
	return f, f.Close, nil
}

// isTerminal reports whether w is a character device (a terminal), so that
// a redirected stderr never receives carriage-return progress lines.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// countingReader counts the bytes read through it, for the progress bar.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// progress draws a one-line bar on a terminal, at most every 200 ms.
type progress struct {
	w     io.Writer
	total int64
	read  *int64
	last  time.Time
}

// show redraws the bar; done finishes the line. A nil progress draws nothing.
func (p *progress) show(done bool) {
	if p == nil {
		return
	}
	now := time.Now()
	if !done && now.Sub(p.last) < 200*time.Millisecond {
		return
	}
	p.last = now
	frac := float64(*p.read) / float64(p.total)
	if done || frac > 1 {
		frac = 1
	}
	const width = 30
	filled := int(frac * width)
	fmt.Fprintf(p.w, "\rdetect [%s%s] %3.0f%%", strings.Repeat("#", filled), strings.Repeat(" ", width-filled), 100*frac)
	if done {
		fmt.Fprintln(p.w)
	}
}

// Score runs the streaming detector with opt over the CSV in and writes the
// scored CSV to out exactly as `detect` does (same decoder, same per-metric
// detectors, same six-digit scores), for harnesses that run many files in
// one process and must score what the command would print.
func Score(ctx context.Context, in io.Reader, out io.Writer, opt stream.Options) error {
	return run(ctx, in, out, opt, false, false, nil)
}
