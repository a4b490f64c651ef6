package querycache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// The query cache stores a Result in a small binary form of its own rather
// than gob: gob sends and parses type descriptions on every Encode/Decode with
// a fresh coder, which made decoding the larger part of a cache hit. The form
// is self-describing (a tag per value), versioned (a cached value written by
// another release is rejected, counted and replaced, never misread) and
// length-prefixed throughout, so the decoder checks every length against the
// bytes actually left before it allocates or slices.
//
//	"SQR" version(1)
//	uvarint ncols, then per column: uvarint len, name bytes
//	uvarint nrows, then nrows*ncols values, row by row: tag byte, payload
//
// Payloads by tag: nil, false, true — none; int64 — zig-zag varint; float64 —
// 8 bytes little-endian IEEE 754; []byte and string — uvarint len, bytes;
// time.Time — uvarint len, then time.Time's own binary form (instant, zone
// offset), which round-trips exactly as gob did.
const (
	resultMagic   = "SQR"
	resultVersion = 1
)

const (
	tagNil byte = iota
	tagInt
	tagFloat
	tagFalse
	tagTrue
	tagBytes
	tagString
	tagTime
)

// errUncacheable marks a result the codec cannot represent: a value of a type
// database/sql drivers do not hand over, or a row whose width differs from
// the columns. The query's answer is still returned, just not cached.
var errUncacheable = errors.New("store: query cache: result cannot be encoded")

// errCorrupt marks a cached value that is not a well-formed encoding.
var errCorrupt = errors.New("store: query cache: malformed cached result")

// appendResult appends the encoding of r to b.
func appendResult(b []byte, r *Result) ([]byte, error) {
	if len(r.Columns) == 0 && len(r.Rows) > 0 {
		// Rows without columns (PostgreSQL's "SELECT FROM t") carry no bytes,
		// so the decoder could not bound their count; they are not worth caching.
		return b, errUncacheable
	}
	b = append(b, resultMagic...)
	b = append(b, resultVersion)
	b = binary.AppendUvarint(b, uint64(len(r.Columns)))
	for _, c := range r.Columns {
		b = binary.AppendUvarint(b, uint64(len(c)))
		b = append(b, c...)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Rows)))
	for _, row := range r.Rows {
		if len(row) != len(r.Columns) {
			return b, errUncacheable
		}
		for _, v := range row {
			switch v := v.(type) {
			case nil:
				b = append(b, tagNil)
			case int64:
				b = append(b, tagInt)
				b = binary.AppendVarint(b, v)
			case float64:
				b = append(b, tagFloat)
				b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
			case bool:
				if v {
					b = append(b, tagTrue)
				} else {
					b = append(b, tagFalse)
				}
			case []byte:
				b = append(b, tagBytes)
				b = binary.AppendUvarint(b, uint64(len(v)))
				b = append(b, v...)
			case string:
				b = append(b, tagString)
				b = binary.AppendUvarint(b, uint64(len(v)))
				b = append(b, v...)
			case time.Time:
				b = append(b, tagTime)
				lenAt := len(b)
				b = append(b, 0) // time's binary form is 15 or 16 bytes: one length byte
				var err error
				if b, err = v.AppendBinary(b); err != nil {
					return b, errUncacheable
				}
				b[lenAt] = byte(len(b) - lenAt - 1)
			default:
				return b, fmt.Errorf("%w: value of type %T", errUncacheable, v)
			}
		}
	}
	return b, nil
}

// resultDecoder walks an encoding. Strings are cut from one copy of the input
// (made once, so decoded values never alias the cache's buffer) instead of
// being allocated one by one.
type resultDecoder struct {
	raw []byte
	str string // string(raw), made on first use
	off int
}

func (d *resultDecoder) uvarint() (uint64, error) {
	v, n := binary.Uvarint(d.raw[d.off:])
	if n <= 0 {
		return 0, errCorrupt
	}
	d.off += n
	return v, nil
}

// span returns the bounds of a length-prefixed field, checked against the input.
func (d *resultDecoder) span() (int, int, error) {
	n, err := d.uvarint()
	if err != nil || n > uint64(len(d.raw)-d.off) {
		return 0, 0, errCorrupt
	}
	lo := d.off
	d.off += int(n)
	return lo, d.off, nil
}

func (d *resultDecoder) string(lo, hi int) string {
	if d.str == "" {
		d.str = string(d.raw)
	}
	return d.str[lo:hi]
}

// decodeResult parses an encoding made by appendResult. Any malformation —
// a foreign value, another version, a length past the end, an unknown tag,
// trailing bytes — is errCorrupt; it never panics and never allocates more
// than the input's size justifies.
func decodeResult(raw []byte) (*Result, error) {
	if len(raw) < len(resultMagic)+1 || string(raw[:len(resultMagic)]) != resultMagic || raw[len(resultMagic)] != resultVersion {
		return nil, errCorrupt
	}
	d := resultDecoder{raw: raw, off: len(resultMagic) + 1}
	ncols, err := d.uvarint()
	// Every column name takes at least its length byte.
	if err != nil || ncols > uint64(len(raw)-d.off) {
		return nil, errCorrupt
	}
	res := &Result{}
	if ncols > 0 {
		res.Columns = make([]string, ncols)
		for i := range res.Columns {
			lo, hi, err := d.span()
			if err != nil {
				return nil, err
			}
			res.Columns[i] = d.string(lo, hi)
		}
	}
	nrows, err := d.uvarint()
	if err != nil {
		return nil, errCorrupt
	}
	if nrows == 0 {
		if d.off != len(raw) {
			return nil, errCorrupt
		}
		return res, nil
	}
	// Every value takes at least its tag byte, which bounds the allocation.
	if ncols == 0 || nrows > uint64(len(raw)-d.off)/ncols {
		return nil, errCorrupt
	}
	nc := int(ncols)
	cells := make([]any, int(nrows)*nc)
	res.Rows = make([][]any, nrows)
	for i := range res.Rows {
		res.Rows[i] = cells[i*nc : (i+1)*nc : (i+1)*nc]
	}
	var bytesCopy []byte // one copy backs every []byte value
	for i := range cells {
		if d.off >= len(raw) {
			return nil, errCorrupt
		}
		tag := raw[d.off]
		d.off++
		switch tag {
		case tagNil:
		case tagFalse:
			cells[i] = false
		case tagTrue:
			cells[i] = true
		case tagInt:
			v, n := binary.Varint(raw[d.off:])
			if n <= 0 {
				return nil, errCorrupt
			}
			d.off += n
			cells[i] = v
		case tagFloat:
			if len(raw)-d.off < 8 {
				return nil, errCorrupt
			}
			cells[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[d.off:]))
			d.off += 8
		case tagString:
			lo, hi, err := d.span()
			if err != nil {
				return nil, err
			}
			cells[i] = d.string(lo, hi)
		case tagBytes:
			lo, hi, err := d.span()
			if err != nil {
				return nil, err
			}
			if bytesCopy == nil {
				bytesCopy = append([]byte(nil), raw...)
			}
			cells[i] = bytesCopy[lo:hi:hi]
		case tagTime:
			lo, hi, err := d.span()
			if err != nil {
				return nil, err
			}
			var t time.Time
			if err := t.UnmarshalBinary(raw[lo:hi]); err != nil {
				return nil, errCorrupt
			}
			cells[i] = t
		default:
			return nil, errCorrupt
		}
	}
	if d.off != len(raw) {
		return nil, errCorrupt
	}
	return res, nil
}
