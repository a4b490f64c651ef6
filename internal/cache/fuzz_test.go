package cache

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzValue is a typed value as callers cache them: the fields cover each
// kind the codecs treat differently (text, floats that JSON cannot carry,
// large integers, bytes, a nested map).
type fuzzValue struct {
	S string             `json:"s"`
	F float64            `json:"f"`
	I int64              `json:"i"`
	B []byte             `json:"b"`
	M map[string]float64 `json:"m"`
}

func sameFloat(a, b float64) bool {
	return a == b || (math.IsNaN(a) && math.IsNaN(b))
}

func sameValue(a, b fuzzValue) bool {
	if a.S != b.S || !sameFloat(a.F, b.F) || a.I != b.I || !bytes.Equal(a.B, b.B) || len(a.M) != len(b.M) {
		return false
	}
	for k, v := range a.M {
		w, ok := b.M[k]
		if !ok || !sameFloat(v, w) {
			return false
		}
	}
	return true
}

// FuzzCodecRoundTrip checks encode→decode for every codec and compression:
// a raw body comes back byte for byte with its content type and expiry, and
// a typed value comes back equal (NaN and ±Inf included, which the JSON
// codec hands to CBOR).
func FuzzCodecRoundTrip(f *testing.F) {
	f.Add([]byte("hello"), "text/plain", int64(1234), "web-1", 0.5, int64(7))
	f.Add(bytes.Repeat([]byte("compressible "), 200), "", int64(0), strings.Repeat("x", 300), math.NaN(), int64(math.MinInt64))
	f.Add([]byte{0, 0xff, 0xfe}, "application/octet-stream; q=1", int64(maxExpireMs), "\u00e9\U0001F600", math.Inf(-1), int64(math.MaxInt64))
	f.Add([]byte{}, strings.Repeat("t", maxContentTypeLen), int64(1), "", math.Copysign(0, -1), int64(0))
	type setup struct {
		def  Codec
		comp Compression
		cs   *codecs
	}
	var setups []setup
	for _, def := range []Codec{CodecJSON, CodecCBOR} {
		for _, comp := range []Compression{CompressionNone, CompressionS2, CompressionZstd} {
			// Threshold 1 tries compression on every value.
			setups = append(setups, setup{def, comp, newTestCodecs(f, def, comp, 1)})
		}
	}
	f.Fuzz(func(t *testing.T, body []byte, contentType string, expire int64, s string, x float64, n int64) {
		if len(contentType) > maxContentTypeLen {
			contentType = contentType[:maxContentTypeLen]
		}
		expire = min(max(expire, 0), maxExpireMs)
		for _, su := range setups {
			cs := su.cs
			if len(body) <= DefaultMaxValueBytes {
				env, err := cs.open(cs.seal(codecRaw, contentType, body, expire).wire)
				if err != nil {
					t.Fatalf("%s/%s raw: open: %v", su.def, su.comp, err)
				}
				if !bytes.Equal(env.payload, body) || env.contentType != contentType || env.expireAtMs != expire {
					t.Fatalf("%s/%s raw: got %q (%q, %d)", su.def, su.comp, env.payload, env.contentType, env.expireAtMs)
				}
			}

			in := fuzzValue{S: s, F: x, I: n, B: body, M: map[string]float64{s: x, "n": float64(n)}}
			payload, codec, err := cs.marshal(in)
			if err != nil {
				t.Fatalf("%s/%s marshal: %v", su.def, su.comp, err)
			}
			if len(payload) > DefaultMaxValueBytes {
				continue // Set refuses it before it is sealed
			}
			env, err := cs.open(cs.seal(codec, "", payload, expire).wire)
			if err != nil {
				t.Fatalf("%s/%s: open: %v", su.def, su.comp, err)
			}
			var out fuzzValue
			if err := cs.unmarshal(env, &out); err != nil {
				t.Fatalf("%s/%s: unmarshal: %v", su.def, su.comp, err)
			}
			if codec == codecJSON && !utf8.ValidString(s) {
				// JSON has no way to say an invalid UTF-8 string: it
				// arrives with U+FFFD in place of the bad bytes, as
				// encoding/json does it.
				continue
			}
			if !sameValue(in, out) {
				t.Fatalf("%s/%s (codec %d): round trip %#v -> %#v", su.def, su.comp, codec, in, out)
			}
		}
	})
}
