package pca

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// codecMagic starts every encoded model; the last byte is the format version.
var codecMagic = [8]byte{'S', 'C', 'O', 'P', 'C', 'A', 0, 1}

// ErrCorrupt is matched by every UnmarshalBinary error.
var ErrCorrupt = errors.New("pca: corrupt model")

// MarshalBinary encodes the model: magic, d and k as uint32, then median,
// scale, mean, eigenvalues, loadings and the two limits as float64, all little
// endian.
func (m *Model) MarshalBinary() ([]byte, error) {
	n := 3*m.d + m.k + m.d*m.k + 2
	b := make([]byte, 0, len(codecMagic)+8+8*n)
	b = append(b, codecMagic[:]...)
	b = binary.LittleEndian.AppendUint32(b, uint32(m.d))
	b = binary.LittleEndian.AppendUint32(b, uint32(m.k))
	for _, s := range [][]float64{m.median, m.scale, m.mean, m.eig, m.comp, {m.limT2, m.limQ}} {
		for _, v := range s {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
	}
	return b, nil
}

// UnmarshalBinary decodes a model written by MarshalBinary. It refuses
// anything a fit could not have produced that would make scoring non-finite:
// a model it accepts scores every input finitely.
func (m *Model) UnmarshalBinary(b []byte) error {
	if len(b) < len(codecMagic)+8 || [8]byte(b[:8]) != codecMagic {
		return fmt.Errorf("%w: bad magic or version", ErrCorrupt)
	}
	d := int(binary.LittleEndian.Uint32(b[8:]))
	k := int(binary.LittleEndian.Uint32(b[12:]))
	if d < 1 || d > MaxColumns || k > d {
		return fmt.Errorf("%w: %d columns, %d components", ErrCorrupt, d, k)
	}
	n := 3*d + k + d*k + 2
	body := b[16:]
	if len(body) != 8*n {
		return fmt.Errorf("%w: %d bytes of values, want %d", ErrCorrupt, len(body), 8*n)
	}
	vals := make([]float64, n)
	for i := range vals {
		vals[i] = math.Float64frombits(binary.LittleEndian.Uint64(body[8*i:]))
		if math.IsNaN(vals[i]) || math.Abs(vals[i]) > maxState {
			return fmt.Errorf("%w: value %d is %g", ErrCorrupt, i, vals[i])
		}
	}
	out := Model{d: d, k: k}
	take := func(c int) []float64 { s := vals[:c:c]; vals = vals[c:]; return s }
	out.median, out.scale, out.mean = take(d), take(d), take(d)
	out.eig, out.comp = take(k), take(d*k)
	out.limT2, out.limQ = vals[0], vals[1]
	for j := 0; j < d; j++ {
		if math.Abs(out.median[j]) > MaxAbsValue || !(out.scale[j] >= scaleFloorRel) || math.Abs(out.mean[j]) > 1e45 {
			return fmt.Errorf("%w: column %d scaling out of range", ErrCorrupt, j)
		}
	}
	for c, v := range out.eig {
		if !(v >= eigFloorAbs) {
			return fmt.Errorf("%w: eigenvalue %d is %g", ErrCorrupt, c, v)
		}
	}
	for i, v := range out.comp {
		// Loadings come from unit vectors.
		if math.Abs(v) > 1+1e-9 {
			return fmt.Errorf("%w: loading %d is %g", ErrCorrupt, i, v)
		}
	}
	if !(out.limT2 >= limitFloor) || !(out.limQ >= limitFloor) {
		return fmt.Errorf("%w: limits %g, %g", ErrCorrupt, out.limT2, out.limQ)
	}
	*m = out
	return nil
}
