package querycache

import (
	"bytes"
	"encoding/gob"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"
)

func sampleResult() *Result {
	local := time.Date(2026, 11, 28, 10, 30, 0, 123456789, time.FixedZone("", 5*3600+30*60))
	return &Result{
		Columns: []string{"host", "n", "avg", "ok", "raw", "ts", "missing"},
		Rows: [][]any{
			{"web-01", int64(42), 1.5, true, []byte{0, 1, 2}, time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC), nil},
			{"", int64(-1 << 62), math.Inf(-1), false, []byte{}, local, nil},
			{"héllo", int64(0), math.Copysign(0, -1), nil, nil, time.Time{}, "x"},
		},
	}
}

// sameResult compares results the way the cache must preserve them: values
// and types exactly, instants with their zone offset.
func sameResult(t *testing.T, got, want *Result) {
	t.Helper()
	if !reflect.DeepEqual(got.Columns, want.Columns) || len(got.Rows) != len(want.Rows) {
		t.Fatalf("got %+v; want %+v", got, want)
	}
	for i := range want.Rows {
		for j, w := range want.Rows[i] {
			g := got.Rows[i][j]
			switch w := w.(type) {
			case time.Time:
				gt, ok := g.(time.Time)
				_, woff := w.Zone()
				_, goff := gt.Zone()
				if !ok || !gt.Equal(w) || goff != woff {
					t.Errorf("row %d col %d = %#v; want %#v", i, j, g, w)
				}
			case float64:
				if gf, ok := g.(float64); !ok || math.Float64bits(gf) != math.Float64bits(w) {
					t.Errorf("row %d col %d = %#v; want %#v", i, j, g, w)
				}
			case []byte:
				if gb, ok := g.([]byte); !ok || !bytes.Equal(gb, w) {
					t.Errorf("row %d col %d = %#v; want %#v", i, j, g, w)
				}
			default:
				if g != any(w) {
					t.Errorf("row %d col %d = %#v (%T); want %#v (%T)", i, j, g, g, w, w)
				}
			}
		}
	}
}

func TestResultCodecRoundTrip(t *testing.T) {
	for _, r := range []*Result{
		sampleResult(),
		{Columns: []string{"a"}}, // no rows
		{},                       // nothing at all
		{Columns: []string{"", ""}, Rows: [][]any{{nil, nil}}},
	} {
		raw, err := appendResult(nil, r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeResult(raw)
		if err != nil {
			t.Fatalf("decode %+v: %v", r, err)
		}
		sameResult(t, got, r)
	}
	// Decoded []byte values are the caller's: appending to one or writing
	// into it changes neither the cached bytes nor a neighbour.
	raw, _ := appendResult(nil, sampleResult())
	keep := bytes.Clone(raw)
	got, _ := decodeResult(raw)
	b := got.Rows[0][4].([]byte)
	b[0] = 9
	_ = append(b, 7)
	if !bytes.Equal(raw, keep) {
		t.Error("decoded []byte aliases the cached value")
	}
	if again, _ := decodeResult(raw); again.Rows[0][4].([]byte)[0] != 0 {
		t.Error("a second decode sees the first caller's change")
	}
}

func TestResultCodecRejects(t *testing.T) {
	valid, _ := appendResult(nil, sampleResult())
	gobbed := new(bytes.Buffer)
	_ = gob.NewEncoder(gobbed).Encode(sampleResult())
	bad := map[string][]byte{
		"empty":                nil,
		"gob (previous)":       gobbed.Bytes(),
		"next version":         append([]byte("SQR\x02"), valid[4:]...),
		"truncated":            valid[:len(valid)-1],
		"trailing byte":        append(bytes.Clone(valid), 0),
		"unknown tag":          append([]byte("SQR\x01\x01\x01a\x01"), 0x7f),
		"huge row count":       []byte("SQR\x01\x01\x01a\xff\xff\xff\xff\xff\xff\xff\xff\x7f\x00"),
		"huge col count":       []byte("SQR\x01\xff\xff\xff\xff\x0f"),
		"string past end":      []byte("SQR\x01\x01\x01a\x01\x06\x05ab"),
		"rows without columns": []byte("SQR\x01\x00\x01"),
		"bad time":             []byte("SQR\x01\x01\x01a\x01\x07\x02\x09\x09"),
	}
	for name, raw := range bad {
		if _, err := decodeResult(raw); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: err = %v; want errCorrupt", name, err)
		}
	}
	for name, r := range map[string]*Result{
		"foreign type":         {Columns: []string{"a"}, Rows: [][]any{{int32(1)}}},
		"ragged row":           {Columns: []string{"a", "b"}, Rows: [][]any{{int64(1)}}},
		"rows without columns": {Rows: [][]any{{}}},
	} {
		if _, err := appendResult(nil, r); !errors.Is(err, errUncacheable) {
			t.Errorf("%s: err = %v; want errUncacheable", name, err)
		}
	}
}

// FuzzDecodeResult feeds the decoder arbitrary bytes: it must return an
// error or a result, never panic, and a result it accepts must re-encode to
// a fixed point (decode ∘ encode is the identity on what it accepts).
func FuzzDecodeResult(f *testing.F) {
	for _, r := range []*Result{sampleResult(), {Columns: []string{"a"}}, {}} {
		raw, _ := appendResult(nil, r)
		f.Add(raw)
	}
	f.Add([]byte("SQR\x01\x01\x01a\x01\x07\x0f"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		res, err := decodeResult(raw)
		if err != nil {
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("error %v is not errCorrupt", err)
			}
			return
		}
		once, err := appendResult(nil, res)
		if err != nil {
			t.Fatalf("accepted input does not re-encode: %v", err)
		}
		res2, err := decodeResult(once)
		if err != nil {
			t.Fatalf("re-encoding does not decode: %v", err)
		}
		twice, _ := appendResult(nil, res2)
		if !bytes.Equal(once, twice) {
			t.Fatalf("encode∘decode is not a fixed point:\n%x\n%x", once, twice)
		}
	})
}

// BenchmarkResultDecode compares decoding a cached 20-row result with the
// binary codec and with gob, which the cache used before.
func BenchmarkResultDecode(b *testing.B) {
	r := &Result{Columns: []string{"host", "count", "avg", "max"}}
	for i := range 20 {
		r.Rows = append(r.Rows, []any{"web-" + string(rune('a'+i)), int64(1000 + i), float64(i) * 1.37, float64(i % 97)})
	}
	b.Run("binary", func(b *testing.B) {
		raw, _ := appendResult(nil, r)
		b.ReportAllocs()
		for range b.N {
			if _, err := decodeResult(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("gob", func(b *testing.B) {
		var buf bytes.Buffer
		_ = gob.NewEncoder(&buf).Encode(r)
		raw := buf.Bytes()
		b.ReportAllocs()
		for range b.N {
			var out Result
			if err := gob.NewDecoder(bytes.NewReader(raw)).Decode(&out); err != nil {
				b.Fatal(err)
			}
		}
	})
}
