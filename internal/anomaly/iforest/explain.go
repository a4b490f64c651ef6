package iforest

import (
	"fmt"
	"math"
)

// Explain attributes the row's isolation to its features, for the "metrics
// that contributed most" a person acts on. It writes into out (len(out) must
// be NumFeatures) each feature's share, summing to 1, of the information that
// isolated the row: a split that sends the row from a node of n training rows
// to a child of m contributes log2(n/m) bits to the split's feature. The bits
// along a path add up to log2(ψ/leaf size) whatever the order of the splits,
// so a feature that cut the row off from most of the sample in one step
// outweighs several that each halved it. Shares rank features for any row, but
// they mean "what made this row unusual" only when its score is high. All
// zeros means no split ever separated the row (constant training data).
//
// Explain walks each tree once, without the batch scorer's interleaving; it is
// meant for the few rows reported as anomalies. It does not allocate.
func (f *Forest) Explain(row []float64, out []float64) error {
	if len(out) != f.cols {
		return fmt.Errorf("iforest: explain: %d outputs for %d features: %w", len(out), f.cols, ErrRagged)
	}
	if err := f.CheckRow(row); err != nil {
		return fmt.Errorf("iforest: explain: %w", err)
	}
	clear(out)
	stride := 1 << f.depth
	total := 0.0
	for t := range f.trees {
		feat := f.feat[t*stride : (t+1)*stride]
		thr := f.thr[t*stride : (t+1)*stride]
		count := f.count[t*2*stride : (t+1)*2*stride]
		i := 0
		for range f.depth {
			if math.IsInf(thr[i], 1) {
				i = 2*i + 1
				continue
			}
			c := 2*i + 1
			if row[feat[i]] > thr[i] {
				c++
			}
			// finish guarantees both children of a split that training rows
			// reached hold some, so the ratio is finite and at least 1.
			if count[c] > 0 {
				bits := math.Log2(float64(count[i]) / float64(count[c]))
				out[feat[i]] += bits
				total += bits
			}
			i = c
		}
	}
	if total > 0 {
		for j := range out {
			out[j] /= total
		}
	}
	return nil
}
