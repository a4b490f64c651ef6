package detectcli

// `detect --train-rows N`: the first N rows are taken as normal and a PCA
// model (package pca) is fitted on them; then every row, the training rows
// included, is scored by that model and by the streaming detectors, in file
// order. Only the first N rows are held in memory.
//
// The output adds a pca_score column. anomaly_score is the larger of the PCA
// score and the streaming score, and is_anomaly is 1 when either model flags.
// Max, because both scores are calibrated to their own limit (0.5 at the
// limit, see pca.ScoreOf and stream's Threshold), so the max is exactly "past
// either model's limit": the streaming detectors catch a sudden change of one
// metric early, but absorb a sustained fault into their "normal" level within
// minutes, while the PCA model, fixed on the normal window, keeps seeing the
// fault (and a broken correlation no single metric shows) for as long as it
// lasts. A mean would halve a fault only one model sees.

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/anomaly/pca"
	"github.com/smartcloudops/smartcloudops/internal/anomaly/stream"
)

// maxTrainRows bounds --train-rows: the training rows are held in memory.
const maxTrainRows = 1 << 20

// heldRow is a decoded row kept until the model is fitted.
type heldRow struct {
	rawTS  string
	ts     time.Time
	rawVal []string
	vals   []float64
}

// runTrained is run with a PCA model fitted on the first trainRows rows.
// threshold is the --threshold flag (0 for the default 0.5).
func runTrained(ctx context.Context, in io.Reader, out io.Writer, opt stream.Options, threshold float64, trainRows int, explain bool, prog *progress) error {
	if threshold == 0 {
		threshold = 0.5
	}
	dec, err := newDecoder(in)
	if err != nil {
		return err
	}
	held := make([]heldRow, 0, min(trainRows, 1<<12))
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
	train := make([][]float64, len(held))
	for i, h := range held {
		train[i] = h.vals
	}
	model, err := pca.Fit(train)
	if err != nil {
		return fmt.Errorf("%w: --train-rows %d: %w", ErrUsage, trainRows, err)
	}
	dets := make([]*stream.Detector, len(dec.names))
	for i := range dets {
		if dets[i], err = stream.New(opt); err != nil {
			return fmt.Errorf("detect: %w", err)
		}
	}
	sc := pca.NewScorer(model, pca.DefaultWindow)
	multi := len(dets) > 1
	bw := bufio.NewWriterSize(out, 64<<10)
	w := csv.NewWriter(bw)
	header := outputHeader(dec.names, multi, explain, "pca_score")
	if err := w.Write(header); err != nil {
		return fmt.Errorf("detect: write output: %w", err)
	}
	rec := make([]string, 0, len(header))
	scores := make([]string, len(dets))
	contrib := make([]float64, len(dets))
	var reasons strings.Builder
	score := func(rawTS string, ts time.Time, rawVal []string, vals []float64) error {
		best, top, flag := -1.0, 0, false
		reasons.Reset()
		for i, d := range dets {
			res := d.Update(ts, vals[i])
			if res.Score > best {
				best, top = res.Score, i
			}
			flag = flag || res.IsAnomaly
			scores[i] = formatScore(res.Score)
			if explain {
				for _, why := range res.Reasons {
					addReason(&reasons, multi, dec.names[i], why.View.String())
				}
			}
		}
		pr := sc.Score(vals)
		if pr.Score >= threshold {
			flag = true
		}
		if pr.Score > best {
			best = pr.Score
			// Name the metric that broke the pattern most: the largest share
			// of Q (for a row off only along a component it is still the
			// metric furthest from the training subspace).
			contrib = model.Contributions(vals, contrib)
			top = 0
			for i, c := range contrib {
				if c > contrib[top] {
					top = i
				}
			}
		}
		if explain && pr.Score >= threshold/2 {
			lt, lq := model.Limits()
			why := "pca:T2"
			if pr.Q/lq >= pr.T2/lt {
				why = "pca:Q"
			}
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
		rec = append(rec, formatScore(pr.Score))
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
