package stream

import (
	"math"
)

// mix is SplitMix64's finaliser: a fixed bijective scramble, so pattern keys
// spread evenly over the bitset (deterministic, no seed).
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// novelty quantises v against the envelope, forms the short patterns that
// end at it, and returns the share never seen in the last two generations.
// A false "seen" (two patterns on one bit) only makes the view quieter.
func (d *Detector) novelty(v float64, facts *[numFacts]uint32) float64 {
	q := 0
	if span := d.hi - d.lo; span > 0 {
		q = int(math.Floor(quantLevels*(v-d.lo)/span)) + 1
		q = max(0, min(q, quantLevels+1))
	}
	cur := uint64(q)
	for j := 0; j < numFacts-1; j++ {
		facts[j] = uint32(mix(uint64(j+1)<<32|uint64(d.qh[j])<<8|cur) % memBits)
	}
	facts[numFacts-1] = uint32(mix(uint64(numFacts)<<32|uint64(d.qh[1])<<16|uint64(d.qh[0])<<8|cur) % memBits)
	copy(d.qh[1:], d.qh[:len(d.qh)-1])
	d.qh[0] = uint8(q)
	if d.n <= numFacts {
		return 0
	}
	unseen := 0
	for _, f := range facts {
		w, b := f/64, uint64(1)<<(f%64)
		if d.mem[0][w]&b == 0 && d.mem[1][w]&b == 0 {
			unseen++
		}
	}
	return float64(unseen) / numFacts
}

// remember stores the point's patterns, starting a new generation every
// memGen points so that patterns not seen for two generations are forgotten
// (and the bitset never fills up).
func (d *Detector) remember(facts *[numFacts]uint32) {
	d.memAge++
	if d.memAge >= uint32(d.opt.Tuning.MemGen) {
		d.memAge = 0
		d.mem[1] = d.mem[0]
		d.mem[0] = [memWords]uint64{}
	}
	for _, f := range facts {
		d.mem[0][f/64] |= uint64(1) << (f % 64)
	}
}
