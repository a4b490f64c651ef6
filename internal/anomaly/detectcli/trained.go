package detectcli

// `detect --train-rows N` and `detect --train FILE`: the multivariate host
// models are fitted on rows taken as normal (the first N rows of the input,
// or every row of FILE) exactly as the service's training fits them on its
// history (anomaly.FitSamples: an Isolation Forest and a PCA model, the one
// with the better detection minus false alarms on the holdout kept); then
// every input row, the training rows included, is scored by that model and
// by the streaming detectors, in file order, as the service scores a sample
// with a trained model. With --train-rows only the first N rows are held in
// memory; with --train, FILE's rows are.
//
// The output adds a model_score column: the model's calibrated score, 0.5 at
// its limit, which is the service's model component for the same values.
// anomaly_score is the larger of it and the streaming score, and is_anomaly
// is the service's "sustained" verdict, the state and not the alert: 1 when a
// stream is in an anomalous state (held away from its normal) or the row is
// past the model's limit, on every row of a fault, as SKAB labels faults. Max, because both scores
// are calibrated to their own limit, so the max is exactly "past either
// model's limit": the streaming detectors catch a sudden change of one metric
// early, but absorb a sustained fault into their "normal" level within
// minutes, while the host model, fixed on the normal rows, keeps seeing the
// fault (and a broken correlation no single metric shows) for as long as it
// lasts. A mean would halve a fault only one model sees. The service's static
// thresholds (cpu > 90 …) are not applied here.

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/anomaly"
	"github.com/smartcloudops/smartcloudops/internal/anomaly/stream"
)

// maxTrainRows bounds --train-rows and the rows of --train: the training
// rows are held in memory.
const maxTrainRows = 1 << 20

// cliHost is the host every row of a file is taken to come from: one host,
// so the fleet model is the model.
const cliHost = "detect-cli"

// heldRow is a decoded row kept until the model is fitted.
type heldRow struct {
	rawTS  string
	ts     time.Time
	rawVal []string
	vals   []float64
}

// fitRows fits the host model on rows as the service would on samples of
// those values; flag names the flag that supplied them, for errors.
func fitRows(names []string, rows []heldRow, flag string) (*anomaly.TrainedModel, []int, error) {
	samples := make([]anomaly.Sample, len(rows))
	for i, r := range rows {
		m := make(map[string]float64, len(names))
		for j, n := range names {
			m[n] = r.vals[j]
		}
		s, err := anomaly.Normalize(anomaly.Sample{Host: cliHost, Timestamp: r.ts, Metrics: m})
		var fe *anomaly.FieldError
		if errors.As(err, &fe) {
			return nil, nil, fmt.Errorf("%w: %s: row %d: %s", ErrUsage, flag, i+1, fe)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s: row %d: %w", ErrUsage, flag, i+1, err)
		}
		samples[i] = s
	}
	model, err := anomaly.FitSamples(samples, anomaly.Options{MinTrainingRows: 2})
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrUsage, flag, err)
	}
	// perm[k] is the input column of the model's k-th column.
	cols := model.Columns()
	perm := make([]int, len(cols))
	for k, c := range cols {
		perm[k] = slices.IndexFunc(names, func(n string) bool { return anomaly.CanonicalMetric(n) == c })
		if perm[k] < 0 {
			return nil, nil, fmt.Errorf("%w: %s: the model's metric %q is not an input column", ErrUsage, flag, c)
		}
	}
	return model, perm, nil
}

// readAll decodes every row of the --train file.
func readTrainFile(name string) (names []string, rows []heldRow, err error) {
	in, _, closeIn, err := openInput(name, nil)
	if err != nil {
		return nil, nil, err
	}
	defer closeIn()
	dec, err := newDecoder(bufio.NewReaderSize(in, 64<<10))
	if err != nil {
		return nil, nil, fmt.Errorf("--train %s: %w", name, err)
	}
	for {
		r, err := dec.next()
		if err == io.EOF {
			return dec.names, rows, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("--train %s: %w", name, err)
		}
		if len(rows) == maxTrainRows {
			return nil, nil, fmt.Errorf("%w: --train %s holds more than %d rows", ErrUsage, name, maxTrainRows)
		}
		rows = append(rows, heldRow{ts: r.ts, vals: slices.Clone(r.vals)})
	}
}

// runTrained is run with a host model fitted on the first trainRows rows of
// the input, or on every row of trainFile when it is not empty. threshold is
// the --threshold flag (0 for the default 0.5).
func runTrained(ctx context.Context, in io.Reader, out io.Writer, opt stream.Options, threshold float64, trainRows int, trainFile string, explain bool, prog *progress) error {
	if threshold == 0 {
		threshold = 0.5
	}
	dec, err := newDecoder(in)
	if err != nil {
		return err
	}
	var held []heldRow
	var model *anomaly.TrainedModel
	var perm []int
	if trainFile != "" {
		names, rows, err := readTrainFile(trainFile)
		if err != nil {
			return err
		}
		if !slices.Equal(names, dec.names) {
			return fmt.Errorf("%w: --train %s has metric columns %v, the input %v", ErrUsage, trainFile, names, dec.names)
		}
		if model, perm, err = fitRows(names, rows, "--train "+trainFile); err != nil {
			return err
		}
	} else {
		held = make([]heldRow, 0, min(trainRows, 1<<12))
		for len(held) < trainRows {
			r, err := dec.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			held = append(held, heldRow{rawTS: r.rawTS, ts: r.ts, rawVal: slices.Clone(r.rawVal), vals: slices.Clone(r.vals)})
		}
		if len(held) < trainRows {
			return fmt.Errorf("%w: --train-rows %d but the input has only %d rows", ErrUsage, trainRows, len(held))
		}
		if model, perm, err = fitRows(dec.names, held, fmt.Sprintf("--train-rows %d", trainRows)); err != nil {
			return err
		}
	}
	dets := make([]*stream.Detector, len(dec.names))
	for i := range dets {
		if dets[i], err = stream.New(opt); err != nil {
			return fmt.Errorf("detect: %w", err)
		}
	}
	// judged[i]: the model was fitted on input column i, so it judges that
	// metric's state (the stream's alert point still counts), as the
	// service's combine does.
	judged := make([]bool, len(dets))
	for _, j := range perm {
		judged[j] = true
	}
	multi := len(dets) > 1
	bw := bufio.NewWriterSize(out, 64<<10)
	w := csv.NewWriter(bw)
	header := outputHeader(dec.names, multi, explain, "model_score")
	if err := w.Write(header); err != nil {
		return fmt.Errorf("detect: write output: %w", err)
	}
	rec := make([]string, 0, len(header))
	scores := make([]string, len(dets))
	mrow := make([]float64, len(perm))
	var reasons strings.Builder
	score := func(rawTS string, ts time.Time, rawVal []string, vals []float64) error {
		best, top, flag := -1.0, 0, false
		reasons.Reset()
		for i, d := range dets {
			res := d.Update(ts, vals[i])
			if res.Score > best {
				best, top = res.Score, i
			}
			flag = flag || res.IsAnomaly || res.Anomalous && !judged[i]
			scores[i] = formatScore(res.Score)
			if explain {
				for _, why := range res.Reasons {
					addReason(&reasons, multi, dec.names[i], why.View.String())
				}
			}
		}
		for k, j := range perm {
			mrow[k] = vals[j]
		}
		ms, err := model.ScoreRow(mrow)
		if err != nil {
			return fmt.Errorf("detect: %w", err)
		}
		if ms >= threshold {
			flag = true
		}
		var why string
		if ms > best || explain && ms >= threshold/2 {
			var k int
			k, why = model.Explain(mrow)
			if ms > best {
				// Name the metric that set the row apart most.
				best, top = ms, perm[k]
			}
		}
		if explain && ms >= threshold/2 {
			addReason(&reasons, false, "", why)
		}
		rec = append(rec[:0], rawTS, rawVal[top], formatScore(best), "0")
		if flag {
			rec[3] = "1"
		}
		if multi {
			rec = append(rec, dec.names[top])
			rec = append(rec, scores...)
		}
		rec = append(rec, formatScore(ms))
		if explain {
			rec = append(rec, reasons.String())
		}
		if err := w.Write(rec); err != nil {
			return fmt.Errorf("detect: write output: %w", err)
		}
		return nil
	}
	for _, h := range held {
		if err := score(h.rawTS, h.ts, h.rawVal, h.vals); err != nil {
			return err
		}
	}
	held = nil
	if err := eachRow(ctx, dec, prog, trainRows+1, func(r *row) error {
		return score(r.rawTS, r.ts, r.rawVal, r.vals)
	}); err != nil {
		return err
	}
	return finish(prog, w, bw)
}

// addReason appends one reason to a comma-separated list, prefixed by the
// metric name when the input has several metrics.
func addReason(b *strings.Builder, prefixed bool, metric, view string) {
	if b.Len() > 0 {
		b.WriteByte(',')
	}
	if prefixed {
		b.WriteString(metric)
		b.WriteByte(':')
	}
	b.WriteString(view)
}
