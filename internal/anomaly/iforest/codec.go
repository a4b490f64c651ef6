package iforest

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// The serialized form, little-endian:
//
//	magic "SCIF", version uint16, reserved uint16 (0)
//	features, trees, sample size, depth, max features uint32; seed, training rows uint64
//	per tree: 2^depth-1 feature uint16, 2^depth-1 threshold float64, 2^depth leaf count uint32
//	CRC-32C of everything before it, uint32
//
// Only what training decided is stored; node counts, leaf path lengths and the
// packed layout are derived again on load by the same code as after Fit, so a
// blob cannot carry derived values that disagree with its trees, and a change
// of in-memory layout needs no new format version.
const (
	magic         = "SCIF"
	formatVersion = 1
	headerSize    = 4 + 2 + 2 + 5*4 + 2*8
	maxDepth      = 16 // ceil(log2(MaxSampleSize))
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MarshalBinary encodes the forest for the model store. The encoding is
// deterministic: equal forests give equal bytes.
func (f *Forest) MarshalBinary() ([]byte, error) {
	stride := 1 << f.depth
	inner := stride - 1
	b := make([]byte, 0, headerSize+f.trees*(inner*(2+8)+stride*4)+4)
	b = append(b, magic...)
	b = binary.LittleEndian.AppendUint16(b, formatVersion)
	b = binary.LittleEndian.AppendUint16(b, 0)
	for _, v := range []int{f.cols, f.trees, f.sampleSize, f.depth, f.maxFeatures} {
		b = binary.LittleEndian.AppendUint32(b, uint32(v))
	}
	b = binary.LittleEndian.AppendUint64(b, f.seed)
	b = binary.LittleEndian.AppendUint64(b, uint64(f.trainRows))
	for t := range f.trees {
		for _, v := range f.feat[t*stride : t*stride+inner] {
			b = binary.LittleEndian.AppendUint16(b, v)
		}
		for _, v := range f.thr[t*stride : t*stride+inner] {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
		for _, v := range f.count[t*2*stride+inner : t*2*stride+inner+stride] {
			b = binary.LittleEndian.AppendUint32(b, v)
		}
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// UnmarshalBinary replaces f with the forest encoded in data. Every field is
// validated, so a truncated or corrupt blob is an error wrapping ErrCorrupt
// (or ErrVersion for a newer format), never a panic or an allocation larger
// than the blob implies. f must not be in use by other goroutines; on error
// it is left unchanged.
func (f *Forest) UnmarshalBinary(data []byte) error {
	g, err := decode(data)
	if err != nil {
		return fmt.Errorf("iforest: unmarshal: %w", err)
	}
	*f = *g
	return nil
}

func decode(data []byte) (*Forest, error) {
	if len(data) < headerSize+4 {
		return nil, fmt.Errorf("%d bytes, shorter than a header: %w", len(data), ErrCorrupt)
	}
	if string(data[:4]) != magic {
		return nil, fmt.Errorf("bad magic %q: %w", data[:4], ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint16(data[4:]); v != formatVersion {
		return nil, fmt.Errorf("version %d, want %d: %w", v, formatVersion, ErrVersion)
	}
	body := data[:len(data)-4]
	if got, want := crc32.Checksum(body, castagnoli), binary.LittleEndian.Uint32(data[len(data)-4:]); got != want {
		return nil, fmt.Errorf("checksum %08x, stored %08x: %w", got, want, ErrCorrupt)
	}
	if r := binary.LittleEndian.Uint16(data[6:]); r != 0 {
		return nil, fmt.Errorf("reserved field %d: %w", r, ErrCorrupt)
	}
	u32 := func(i int) int { return int(binary.LittleEndian.Uint32(data[8+4*i:])) }
	cols, trees, psi, depth, maxFeatures := u32(0), u32(1), u32(2), u32(3), u32(4)
	seed := binary.LittleEndian.Uint64(data[28:])
	trainRows := binary.LittleEndian.Uint64(data[36:])
	switch {
	case cols < 1 || cols > MaxFeatures:
		return nil, fmt.Errorf("%d features: %w", cols, ErrCorrupt)
	case trees < 1 || trees > MaxTrees:
		return nil, fmt.Errorf("%d trees: %w", trees, ErrCorrupt)
	case psi < 2 || psi > MaxSampleSize:
		return nil, fmt.Errorf("sample size %d: %w", psi, ErrCorrupt)
	case depth != depthFor(psi):
		return nil, fmt.Errorf("depth %d for sample size %d: %w", depth, psi, ErrCorrupt)
	case maxFeatures > cols:
		return nil, fmt.Errorf("max features %d of %d: %w", maxFeatures, cols, ErrCorrupt)
	case trainRows < uint64(psi) || trainRows > 1<<48: // more rows than memory holds
		return nil, fmt.Errorf("%d training rows for sample size %d: %w", trainRows, psi, ErrCorrupt)
	}
	stride := 1 << depth
	inner := stride - 1
	perTree := inner*(2+8) + stride*4
	// Checked before allocating: the header cannot ask for more memory than
	// the blob's own size accounts for.
	if want := headerSize + trees*perTree + 4; len(data) != want {
		return nil, fmt.Errorf("%d bytes, header implies %d: %w", len(data), want, ErrCorrupt)
	}
	f := newForest(cols, trees, psi, maxFeatures, seed, int(trainRows))
	p := data[headerSize:]
	for t := range trees {
		for i := range inner {
			f.feat[t*stride+i] = binary.LittleEndian.Uint16(p[2*i:])
		}
		p = p[2*inner:]
		for i := range inner {
			f.thr[t*stride+i] = math.Float64frombits(binary.LittleEndian.Uint64(p[8*i:]))
		}
		p = p[8*inner:]
		for i := range stride {
			c := binary.LittleEndian.Uint32(p[4*i:])
			if int(c) > psi {
				return nil, fmt.Errorf("tree %d leaf %d holds %d of %d samples: %w", t, i, c, psi, ErrCorrupt)
			}
			f.count[t*2*stride+inner+i] = c
		}
		p = p[4*stride:]
	}
	if err := f.finish(); err != nil {
		return nil, err
	}
	return f, nil
}
