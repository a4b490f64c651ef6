package iforest

import (
	"math"
	"math/rand/v2"
)

// builder grows trees into a Forest's arrays. One builder per goroutine: it
// owns scratch space that would otherwise be allocated per tree.
type builder struct {
	f      *Forest
	data   []float64 // row-major training matrix, f.cols wide
	idx    []int32   // the tree's sample, partitioned in place as nodes split
	feats  []uint16  // the features this tree may split on
	cands  []uint16  // scratch: features not yet tried at a node
	chosen map[int32]struct{}
}

func newBuilder(f *Forest, data []float64) *builder {
	return &builder{
		f:      f,
		data:   data,
		idx:    make([]int32, f.sampleSize),
		feats:  make([]uint16, f.cols),
		cands:  make([]uint16, f.cols),
		chosen: make(map[int32]struct{}, f.sampleSize),
	}
}

// treeRand gives tree t its own stream, independent of build order.
func treeRand(seed uint64, t int) *rand.Rand {
	return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15*uint64(t+1)))
}

func (b *builder) buildTree(t int) {
	rng := treeRand(b.f.seed, t)
	n := len(b.data) / b.f.cols
	b.sample(rng, n)

	// The tree's features: all, or MaxFeatures of them drawn without
	// replacement (a partial Fisher–Yates shuffle).
	for i := range b.feats {
		b.feats[i] = uint16(i)
	}
	feats := b.feats
	if k := b.f.maxFeatures; k > 0 && k < len(feats) {
		for i := range k {
			j := i + rng.IntN(len(feats)-i)
			feats[i], feats[j] = feats[j], feats[i]
		}
		feats = feats[:k]
	}
	b.grow(rng, t, 0, 0, b.idx, feats)
}

// sample draws ψ distinct rows of n into b.idx with Floyd's algorithm, which
// needs O(ψ) work and memory however large the training set is.
func (b *builder) sample(rng *rand.Rand, n int) {
	psi := len(b.idx)
	if psi == n {
		for i := range b.idx {
			b.idx[i] = int32(i)
		}
		return
	}
	clear(b.chosen)
	k := 0
	for j := n - psi; j < n; j++ {
		r := int32(rng.IntN(j + 1))
		if _, dup := b.chosen[r]; dup {
			r = int32(j)
		}
		b.chosen[r] = struct{}{}
		b.idx[k] = r
		k++
	}
}

// grow splits node (numbered in the perfect layout, at level depth) on the
// rows idx. As in scikit-learn's random splitter, the feature is drawn
// uniformly among those not constant on idx and the threshold uniformly in
// [min, max); rows with value <= threshold go left.
func (b *builder) grow(rng *rand.Rand, t, node, depth int, idx []int32, feats []uint16) {
	f := b.f
	stride := 1 << f.depth
	if depth == f.depth || len(idx) <= 1 {
		b.leaf(t, node, depth, len(idx))
		return
	}
	cands := b.cands[:len(feats)]
	copy(cands, feats)
	for k := len(cands); k > 0; k-- {
		j := rng.IntN(k)
		c := cands[j]
		cands[j] = cands[k-1]
		lo, hi := b.span(idx, int(c))
		if !(hi > lo) {
			continue
		}
		u := rng.Float64()
		th := lo + u*(hi-lo)
		if math.IsInf(th, 0) || math.IsNaN(th) {
			// hi-lo overflows for values of opposite sign near the float64
			// limit; the convex form cannot.
			th = lo*(1-u) + hi*u
		}
		if th >= hi {
			// Rounding can land on hi, which would send every row left.
			th = lo
		}
		f.feat[t*stride+node] = c
		f.thr[t*stride+node] = th
		m := b.partition(idx, int(c), th)
		// cands is scratch for this node only; the children refill it.
		b.grow(rng, t, 2*node+1, depth+1, idx[:m], feats)
		b.grow(rng, t, 2*node+2, depth+1, idx[m:], feats)
		return
	}
	// Every feature is constant here: the rows cannot be told apart.
	b.leaf(t, node, depth, len(idx))
}

// leaf records size rows at node. Below the depth limit the node's subtree
// stays pass-through, which routes every row to its leftmost leaf.
func (b *builder) leaf(t, node, depth, size int) {
	stride := 1 << b.f.depth
	for range b.f.depth - depth {
		node = 2*node + 1
	}
	b.f.count[t*2*stride+node] = uint32(size)
}

func (b *builder) span(idx []int32, c int) (lo, hi float64) {
	cols := b.f.cols
	lo = b.data[int(idx[0])*cols+c]
	hi = lo
	for _, r := range idx[1:] {
		v := b.data[int(r)*cols+c]
		lo = min(lo, v)
		hi = max(hi, v)
	}
	return lo, hi
}

// partition moves the rows with value <= th to the front and returns how many.
func (b *builder) partition(idx []int32, c int, th float64) int {
	cols := b.f.cols
	m := 0
	for i, r := range idx {
		if b.data[int(r)*cols+c] <= th {
			idx[i], idx[m] = idx[m], idx[i]
			m++
		}
	}
	return m
}
