package querycache

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// querySum hashes what, besides the table versions, decides a result: the
// statement text (not only the fingerprint: two statements differing only in
// an inlined literal share a fingerprint but not a result), the tables the
// caller named, and the arguments.
func querySum(text string, tables []string, args []any) ([16]byte, error) {
	h := sha256.New()
	var tmp [8]byte
	binary.LittleEndian.PutUint64(tmp[:], uint64(len(text)))
	h.Write(tmp[:])
	h.Write([]byte(text))
	for _, t := range tables {
		binary.LittleEndian.PutUint64(tmp[:], uint64(len(t)))
		h.Write(tmp[:])
		h.Write([]byte(t))
	}
	h.Write([]byte{0xff})
	for _, a := range args {
		if err := hashArg(h, a, tmp[:]); err != nil {
			return [16]byte{}, err
		}
	}
	var sum [16]byte
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

type hashWriter interface{ Write([]byte) (int, error) }

// hashArg writes a type tag and the value, so 1 (int) and "1" differ.
func hashArg(h hashWriter, a any, tmp []byte) error {
	putU := func(tag byte, u uint64) {
		binary.LittleEndian.PutUint64(tmp, u)
		h.Write([]byte{tag})
		h.Write(tmp)
	}
	putS := func(tag byte, s string) {
		putU(tag, uint64(len(s)))
		h.Write([]byte(s))
	}
	switch v := a.(type) {
	case nil:
		h.Write([]byte{0})
	case int:
		putU(1, uint64(v))
	case int32:
		putU(1, uint64(v))
	case int64:
		putU(1, uint64(v))
	case uint64:
		putU(1, v)
	case float64:
		putU(2, math.Float64bits(v))
	case float32:
		putU(2, math.Float64bits(float64(v)))
	case bool:
		if v {
			putU(3, 1)
		} else {
			putU(3, 0)
		}
	case string:
		putS(4, v)
	case []byte:
		putS(5, string(v))
	case time.Time:
		putS(6, v.UTC().Format(time.RFC3339Nano))
	case *float64:
		if v == nil {
			h.Write([]byte{0})
		} else {
			putU(2, math.Float64bits(*v))
		}
	case *string:
		if v == nil {
			h.Write([]byte{0})
		} else {
			putS(4, *v)
		}
	default:
		return fmt.Errorf("store: query cache: %w: argument of type %T cannot be part of a cache key", ErrInvalid, a)
	}
	return nil
}
