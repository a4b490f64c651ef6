package otlp

import (
	"encoding/binary"
	"hash/maphash"
	"math"
	"slices"
	"strings"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
)

// A series is identified as OTel identifies a timeseries: its resource's
// attributes, its instrumentation scope, the metric's name and the data
// point's attributes. Attribute lists are sorted by key first, so the
// order a sender writes them in does not make a new series. The hash is
// the Tracker's id; 64 bits make a collision between two series of one
// tenant vanishingly rare, and the seed is per process (the Tracker's state
// is too).

// hasher writes the parts of a series identity into a maphash.
type hasher struct {
	h   maphash.Hash
	buf [8]byte
}

func (s *hasher) u64(v uint64) {
	binary.LittleEndian.PutUint64(s.buf[:], v)
	_, _ = s.h.Write(s.buf[:])
}

// str writes v length-prefixed, so "ab"+"c" and "a"+"bc" differ.
func (s *hasher) str(v string) {
	s.u64(uint64(len(v)))
	_, _ = s.h.WriteString(v)
}

// attrs writes an attribute list in key order.
func (s *hasher) attrs(kvs []*commonpb.KeyValue) {
	s.u64(uint64(len(kvs)))
	if !slices.IsSortedFunc(kvs, cmpKey) {
		kvs = slices.SortedStableFunc(slices.Values(kvs), cmpKey)
	}
	for _, kv := range kvs {
		s.str(kv.GetKey())
		s.value(kv.GetValue())
	}
}

func cmpKey(a, b *commonpb.KeyValue) int { return strings.Compare(a.GetKey(), b.GetKey()) }

// value writes an AnyValue with a tag per type, so the string "1" and the
// integer 1 are two attributes.
func (s *hasher) value(v *commonpb.AnyValue) {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		s.u64(1)
		s.str(x.StringValue)
	case *commonpb.AnyValue_BoolValue:
		s.u64(2)
		if x.BoolValue {
			s.u64(1)
		} else {
			s.u64(0)
		}
	case *commonpb.AnyValue_IntValue:
		s.u64(3)
		s.u64(uint64(x.IntValue))
	case *commonpb.AnyValue_DoubleValue:
		s.u64(4)
		s.u64(math.Float64bits(x.DoubleValue))
	case *commonpb.AnyValue_BytesValue:
		s.u64(5)
		s.str(string(x.BytesValue))
	case *commonpb.AnyValue_ArrayValue:
		s.u64(6)
		vs := x.ArrayValue.GetValues()
		s.u64(uint64(len(vs)))
		for _, e := range vs {
			s.value(e)
		}
	case *commonpb.AnyValue_KvlistValue:
		s.u64(7)
		s.attrs(x.KvlistValue.GetValues())
	default:
		s.u64(0)
	}
}
