// Package iforest is the multivariate Isolation Forest of SmartCloudOps
// (Liu, Ting and Zhou, "Isolation Forest", ICDM 2008), written to score a
// host's feature vector as well as scikit-learn's IsolationForest with the same
// defaults (100 trees, 256 samples per tree, depth limit ceil(log2(256)) = 8)
// and many times faster.
//
// # Layout
//
// Every tree is stored as a perfect binary tree of the forest's depth limit in
// flat arrays (node i has children 2i+1 and 2i+2). A node that became a leaf
// above the depth limit keeps "pass-through" nodes below it whose threshold is
// +Inf, so every row takes exactly depth steps, left at each pass-through,
// and ends in the leftmost leaf of that subtree. This costs at most twice the
// memory of a pointer layout (a tree limited to depth ceil(log2 ψ) has at most
// 2ψ nodes either way) and buys a traversal with no data-dependent branch and
// no pointer: the next index is computed from a comparison, so several
// traversals can run interleaved and the CPU overlaps them. The leaf stores
// the path length the paper assigns to it, the real depth plus c(size).
//
// Scoring reads a packed copy in which the trees of each group of four are
// interleaved node by node, and keeps eight or twelve traversals in flight
// (two groups for one row, or one group for three rows of a batch): one tree
// level costs a chain of two dependent loads and a compare, and only many
// independent chains keep the core busy. Training keeps the plain per-tree
// arrays, which Explain and the serialized form use.
//
// # Concurrency
//
// A *Forest is immutable after Fit, FitMatrix or UnmarshalBinary returns, so
// any number of goroutines may score with it at once. Fit and the batch
// scorers use at most GOMAXPROCS goroutines; a batch of up to 48 rows is
// scored in the calling goroutine.
package iforest

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// Defaults are scikit-learn's: n_estimators=100 and max_samples=256, the values
// the paper found sufficient on every data set it tried.
const (
	DefaultTrees      = 100
	DefaultSampleSize = 256
	// MaxSampleSize bounds ψ so that a tree (2^ceil(log2 ψ) leaves) stays a
	// few megabytes; the paper's curves are flat long before it.
	MaxSampleSize = 1 << 16
	// MaxTrees bounds the forest so that a stored blob cannot ask for an
	// absurd allocation.
	MaxTrees = 1 << 16
	// MaxFeatures bounds the row width: feature indices are stored in 16 bits.
	MaxFeatures = 1 << 16
)

// Errors callers can test with errors.Is; every returned error wraps one of
// them with the operation and the offending row or column.
var (
	// ErrTooFewRows means fewer than two training rows: nothing can be split.
	ErrTooFewRows = errors.New("too few rows")
	// ErrRagged means a row's length differs from the first row's or from the
	// forest's feature count.
	ErrRagged = errors.New("row length differs from the feature count")
	// ErrNonFinite means a NaN or ±Inf value; the forest's order-based splits
	// have no meaning for them.
	ErrNonFinite = errors.New("value is NaN or infinite")
	// ErrOptions means an option is out of range.
	ErrOptions = errors.New("invalid options")
	// ErrCorrupt means a serialized forest failed validation.
	ErrCorrupt = errors.New("corrupt model")
	// ErrVersion means a serialized forest was written by an unknown format version.
	ErrVersion = errors.New("unsupported model format version")
)

// Options configure Fit. The zero value gives scikit-learn's defaults.
type Options struct {
	// Trees is the number of trees; 0 means DefaultTrees.
	Trees int
	// SampleSize is ψ, the rows drawn without replacement for each tree;
	// 0 means DefaultSampleSize. It is lowered to the row count when the
	// training set is smaller, as scikit-learn does.
	SampleSize int
	// MaxFeatures is how many features each tree may split on, drawn without
	// replacement per tree (scikit-learn's max_features); 0 means all.
	MaxFeatures int
	// Seed makes training reproducible: the same rows, options and seed give
	// the same forest, whatever GOMAXPROCS is.
	Seed uint64
}

func (o Options) withDefaults() Options {
	if o.Trees == 0 {
		o.Trees = DefaultTrees
	}
	if o.SampleSize == 0 {
		o.SampleSize = DefaultSampleSize
	}
	return o
}

func (o Options) validate(cols int) error {
	switch {
	case o.Trees < 0 || o.Trees > MaxTrees:
		return fmt.Errorf("trees %d not in [1, %d]: %w", o.Trees, MaxTrees, ErrOptions)
	case o.SampleSize < 0 || o.SampleSize > MaxSampleSize:
		return fmt.Errorf("sample size %d not in [2, %d]: %w", o.SampleSize, MaxSampleSize, ErrOptions)
	case o.SampleSize == 1:
		return fmt.Errorf("sample size 1 cannot be split: %w", ErrOptions)
	case o.MaxFeatures < 0 || o.MaxFeatures > cols:
		return fmt.Errorf("max features %d not in [0, %d]: %w", o.MaxFeatures, cols, ErrOptions)
	}
	return nil
}

// Forest is a trained Isolation Forest. See the package comment for its layout.
type Forest struct {
	cols        int
	trees       int
	sampleSize  int // ψ after clamping to the training rows
	depth       int // depth limit, ceil(log2 ψ)
	maxFeatures int // as trained; 0 means all
	seed        uint64
	trainRows   int
	norm        float64 // trees · c(ψ): the divisor of the summed path lengths

	// Per tree, stride = 1<<depth entries: internal nodes at [0, stride-1),
	// the last entry is padding so that trees start at a power of two.
	feat []uint16
	thr  []float64
	// Per tree, 2*stride entries indexed by node number: internal nodes then
	// leaves at [stride-1, 2*stride-1). Training rows that reached each node;
	// only Explain reads the internal ones.
	count []uint32

	// What scoring reads: the trees packed by pack. An internal node sends
	// x right when x[pfeat] > pthr; a leaf holds its path length in pthr.
	// Two arrays rather than one of structs: both index with a hardware
	// scale (no shift per step), and slicing them to one length lets the
	// compiler drop pfeat's bounds check, about 20% faster in all.
	pthr  []float64
	pfeat []uint32
}

// lanes is how many trees one group interleaves. The walkers run two or
// three groups' worth of lanes at once; four per group keeps the index
// arithmetic to one LEA pair per step.
const lanes = 4

// The walkers spell out four lanes; this fails to compile if lanes changes.
const _ = uint(lanes-4) + uint(4-lanes)

// NumFeatures is the row width the forest was trained on and scores.
func (f *Forest) NumFeatures() int { return f.cols }

// NumTrees is the number of trees.
func (f *Forest) NumTrees() int { return f.trees }

// SampleSize is ψ as used, after clamping to the training rows; scores are
// normalised by c(ψ).
func (f *Forest) SampleSize() int { return f.sampleSize }

// MaxDepth is the depth limit of every tree, ceil(log2 ψ).
func (f *Forest) MaxDepth() int { return f.depth }

// Seed is the seed the forest was trained with.
func (f *Forest) Seed() uint64 { return f.seed }

// TrainingRows is the number of rows the forest was trained on, kept so that
// a stored model can say what it learned from.
func (f *Forest) TrainingRows() int { return f.trainRows }

// eulerGamma is the Euler–Mascheroni constant of the paper's harmonic-number
// approximation H(i) ≈ ln(i) + γ.
const eulerGamma = 0.5772156649015329

// AveragePathLength is c(n), the average path length of an unsuccessful search
// in a binary search tree of n points (the paper's equation 1). It normalises
// the score and completes the path of a leaf that still holds n points, as
// the tree stops growing at the depth limit. c(2) is 1 exactly, as in
// scikit-learn, rather than the harmonic approximation's 0.15.
func AveragePathLength(n int) float64 {
	switch {
	case n <= 1:
		return 0
	case n == 2:
		return 1
	}
	m := float64(n)
	return 2*(math.Log(m-1)+eulerGamma) - 2*(m-1)/m
}

// depthFor is scikit-learn's max_depth, ceil(log2(max(ψ, 2))): the average
// tree height, beyond which inliers are not worth isolating.
func depthFor(psi int) int {
	d := 0
	for 1<<d < psi {
		d++
	}
	return max(d, 1)
}

// FitMatrix is Fit on a row-major matrix of cols columns, which avoids a copy
// when the caller already holds its rows in one slice. len(data) must be a
// multiple of cols. The forest keeps no reference to data.
func FitMatrix(data []float64, cols int, opts Options) (*Forest, error) {
	f, err := fitMatrix(data, cols, opts)
	if err != nil {
		return nil, fmt.Errorf("iforest: fit: %w", err)
	}
	return f, nil
}

func fitMatrix(data []float64, cols int, opts Options) (*Forest, error) {
	if cols < 1 || cols > MaxFeatures {
		return nil, fmt.Errorf("%d columns not in [1, %d]: %w", cols, MaxFeatures, ErrRagged)
	}
	if len(data)%cols != 0 {
		return nil, fmt.Errorf("%d values do not make rows of %d: %w", len(data), cols, ErrRagged)
	}
	n := len(data) / cols
	if n < 2 {
		return nil, fmt.Errorf("%d rows: %w", n, ErrTooFewRows)
	}
	if err := checkFinite(data, cols, 0); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	if err := opts.validate(cols); err != nil {
		return nil, err
	}
	psi := min(opts.SampleSize, n)
	f := newForest(cols, opts.Trees, psi, opts.MaxFeatures, opts.Seed, n)

	// Each tree draws from its own stream seeded by (seed, tree), so the
	// forest does not depend on which goroutine built which tree.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), opts.Trees) {
		wg.Go(func() {
			b := newBuilder(f, data)
			for t := int(next.Add(1) - 1); t < f.trees; t = int(next.Add(1) - 1) {
				b.buildTree(t)
			}
		})
	}
	wg.Wait()
	if err := f.finish(); err != nil {
		// The builder only writes what finish accepts; reaching this is a bug.
		return nil, fmt.Errorf("internal: %w", err)
	}
	return f, nil
}

func newForest(cols, trees, psi, maxFeatures int, seed uint64, trainRows int) *Forest {
	depth := depthFor(psi)
	stride := 1 << depth
	f := &Forest{
		cols:        cols,
		trees:       trees,
		sampleSize:  psi,
		depth:       depth,
		maxFeatures: maxFeatures,
		seed:        seed,
		trainRows:   trainRows,
		norm:        float64(trees) * AveragePathLength(psi),
		feat:        make([]uint16, trees*stride),
		thr:         make([]float64, trees*stride),
		count:       make([]uint32, trees*2*stride),
	}
	// Pass-through everywhere until the builder writes a real split.
	for i := range f.thr {
		f.thr[i] = math.Inf(1)
	}
	return f
}

// finish derives the internal node counts and the leaf path lengths from the
// splits and the leaf counts, and checks that they make a consistent forest.
// Fit and UnmarshalBinary share it, so a stored model carries no derived
// value that could disagree with its structure.
func (f *Forest) finish() error {
	stride := 1 << f.depth
	inner := stride - 1
	realDepth := make([]int, inner+stride)
	leafPath := make([]float64, stride)
	groups := (f.trees + lanes - 1) / lanes
	f.pthr = make([]float64, groups*lanes*2*stride)
	f.pfeat = make([]uint32, groups*lanes*2*stride)
	for t := range groups * lanes {
		if t >= f.trees {
			// A padding lane of pass-through nodes ending in leaves of
			// path length 0, so that adding it changes no sum.
			pass := make([]float64, stride)
			for i := range pass {
				pass[i] = math.Inf(1)
			}
			f.pack(t, make([]uint16, stride), pass, make([]float64, stride))
			continue
		}
		feat := f.feat[t*stride : (t+1)*stride]
		thr := f.thr[t*stride : (t+1)*stride]
		count := f.count[t*2*stride : (t+1)*2*stride]
		for i := inner - 1; i >= 0; i-- {
			sum := uint64(count[2*i+1]) + uint64(count[2*i+2])
			if sum > uint64(f.sampleSize) {
				return fmt.Errorf("tree %d node %d holds %d of %d samples: %w", t, i, sum, f.sampleSize, ErrCorrupt)
			}
			count[i] = uint32(sum)
		}
		if int(count[0]) != f.sampleSize {
			return fmt.Errorf("tree %d holds %d samples, want %d: %w", t, count[0], f.sampleSize, ErrCorrupt)
		}
		for i := range inner {
			passThrough := math.IsInf(thr[i], 1)
			switch {
			case int(feat[i]) >= f.cols:
				return fmt.Errorf("tree %d node %d splits feature %d of %d: %w", t, i, feat[i], f.cols, ErrCorrupt)
			case math.IsNaN(thr[i]) || math.IsInf(thr[i], -1):
				return fmt.Errorf("tree %d node %d has threshold %v: %w", t, i, thr[i], ErrCorrupt)
			case !passThrough && count[i] > 0 && (count[2*i+1] == 0 || count[2*i+2] == 0):
				// A real split of training rows sends some each way; Explain
				// relies on it to take logarithms of count ratios.
				return fmt.Errorf("tree %d node %d splits nothing off: %w", t, i, ErrCorrupt)
			}
			d := realDepth[i]
			if !passThrough {
				d++
			}
			realDepth[2*i+1], realDepth[2*i+2] = d, d
		}
		for l := range stride {
			leafPath[l] = float64(realDepth[inner+l]) + AveragePathLength(int(count[inner+l]))
		}
		f.pack(t, feat, thr, leafPath)
	}
	return nil
}

// pack writes tree t into f.pthr and f.pfeat, interleaved with the other trees of its
// group of lanes: node i of the tree (1-based, children 2i and 2i+1; leaves
// at [stride, 2*stride)) lands at group start + i*lanes + t%lanes. feat and
// thr are the tree's internal nodes 0-based, leafPath its leaves.
func (f *Forest) pack(t int, feat []uint16, thr, leafPath []float64) {
	stride := 1 << f.depth
	gt := f.pthr[t/lanes*lanes*2*stride:]
	gf := f.pfeat[t/lanes*lanes*2*stride:]
	l := t % lanes
	for i := 1; i < stride; i++ {
		gt[i*lanes+l] = thr[i-1]
		gf[i*lanes+l] = uint32(feat[i-1])
	}
	for i := range stride {
		gt[(stride+i)*lanes+l] = leafPath[i]
	}
}

// checkFinite reports the first NaN or infinite value of a row-major matrix,
// naming its row (offset by first) and column.
func checkFinite(data []float64, cols, first int) error {
	for i, v := range data {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("row %d column %d is %v: %w", first+i/cols, i%cols, v, ErrNonFinite)
		}
	}
	return nil
}
