package cache

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

type inner struct {
	N    int               `json:"n"`
	Tags []string          `json:"tags"`
	M    map[string]uint16 `json:"m"`
}

type record struct {
	ID      int64          `json:"id"`
	Name    string         `json:"name"`
	Score   float64        `json:"score"`
	When    time.Time      `json:"when"`
	Took    time.Duration  `json:"took"`
	Raw     []byte         `json:"raw"`
	Ptr     *inner         `json:"ptr"`
	NilPtr  *inner         `json:"nil_ptr"`
	ByID    map[int]string `json:"by_id"`
	Array   [3]int8        `json:"array"`
	Enabled bool           `json:"enabled"`
}

// kind is one value kind for the round-trip table: the value and a fresh
// pointer of its type to decode into.
type kind struct {
	name string
	v    any
	dst  func() any
	// jsonOK is false for values JSON cannot carry; with CodecJSON they
	// must still round-trip, through the CBOR fallback.
	jsonOK bool
}

func ptrTo[T any]() func() any { return func() any { return new(T) } }

func valueKinds() []kind {
	when := time.Date(2025, 3, 4, 5, 6, 7, 890123456, time.UTC)
	big := strings.Repeat("compressible text, ", 500)
	return []kind{
		{"string", "hello, 世界", ptrTo[string](), true},
		{"empty string", "", ptrTo[string](), true},
		{"int", 42, ptrTo[int](), true},
		{"int64 min", int64(math.MinInt64), ptrTo[int64](), true},
		{"uint64 max", uint64(math.MaxUint64), ptrTo[uint64](), true},
		{"int8", int8(-7), ptrTo[int8](), true},
		{"float64", 3.141592653589793, ptrTo[float64](), true},
		{"float64 tiny", 5e-324, ptrTo[float64](), true},
		{"float32", float32(1.5), ptrTo[float32](), true},
		{"NaN", math.NaN(), ptrTo[float64](), false},
		{"+Inf", math.Inf(1), ptrTo[float64](), false},
		{"bool", true, ptrTo[bool](), true},
		{"bytes", []byte{0, 1, 2, 0xff}, ptrTo[[]byte](), true},
		{"nil bytes", []byte(nil), ptrTo[[]byte](), true},
		{"slice", []int{1, 2, 3}, ptrTo[[]int](), true},
		{"empty slice", []string{}, ptrTo[[]string](), true},
		{"map", map[string]int{"a": 1, "b": 2}, ptrTo[map[string]int](), true},
		{"int-keyed map", map[int]string{1: "x", -2: "y"}, ptrTo[map[int]string](), true},
		{"time", when, ptrTo[time.Time](), true},
		{"duration", 1500 * time.Millisecond, ptrTo[time.Duration](), true},
		{"struct", record{
			ID: 1 << 60, Name: "n", Score: -0.25, When: when, Took: time.Second, Raw: []byte("raw"),
			Ptr:  &inner{N: 3, Tags: []string{"x"}, M: map[string]uint16{"k": 65535}},
			ByID: map[int]string{7: "seven"}, Array: [3]int8{1, -1, 0}, Enabled: true,
		}, ptrTo[record](), true},
		{"large compressible", big, ptrTo[string](), true},
		{"float map with NaN", map[string]float64{"nan": math.NaN()}, ptrTo[map[string]float64](), false},
	}
}

// equalValues is reflect.DeepEqual except that NaN equals NaN.
func equalValues(a, b any) bool {
	if reflect.DeepEqual(a, b) {
		return true
	}
	switch x := a.(type) {
	case float64:
		y, ok := b.(float64)
		return ok && math.IsNaN(x) && math.IsNaN(y)
	case map[string]float64:
		y, ok := b.(map[string]float64)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || !(v == w || (math.IsNaN(v) && math.IsNaN(w))) {
				return false
			}
		}
		return true
	}
	return false
}

func newTestCodecs(t testing.TB, c Codec, comp Compression, threshold int) *codecs {
	t.Helper()
	cs, err := newCodecs(c, comp, threshold, DefaultMaxValueBytes)
	if err != nil {
		t.Fatalf("newCodecs: %v", err)
	}
	t.Cleanup(cs.close)
	return cs
}

func TestRoundTripEveryKind(t *testing.T) {
	for _, codec := range []Codec{CodecJSON, CodecCBOR} {
		for _, comp := range []Compression{CompressionNone, CompressionS2, CompressionZstd} {
			// Threshold 1 tries compression on every value; the default
			// only on the large one.
			for _, threshold := range []int{1, DefaultCompressionThreshold} {
				cs := newTestCodecs(t, codec, comp, threshold)
				for _, k := range valueKinds() {
					name := string(codec) + "/" + string(comp) + "/" + k.name
					payload, used, err := cs.marshal(k.v)
					if err != nil {
						t.Fatalf("%s: marshal: %v", name, err)
					}
					if codec == CodecJSON && k.jsonOK && used != codecJSON {
						t.Errorf("%s: encoded with codec %d, want JSON", name, used)
					}
					w := cs.seal(used, "", payload, 1234)
					if comp != CompressionNone && k.name == "large compressible" && !w.compressed {
						t.Errorf("%s: large value not compressed", name)
					}
					if w.compressed && w.stored >= len(payload) {
						t.Errorf("%s: kept a compressed form of %d bytes for %d", name, w.stored, len(payload))
					}
					env, err := cs.open(w.wire)
					if err != nil {
						t.Fatalf("%s: open: %v", name, err)
					}
					if env.expireAtMs != 1234 || env.codec != used {
						t.Errorf("%s: header = %+v", name, env)
					}
					dst := k.dst()
					if err := cs.unmarshal(env, dst); err != nil {
						t.Fatalf("%s: unmarshal: %v", name, err)
					}
					if got := reflect.ValueOf(dst).Elem().Interface(); !equalValues(k.v, got) {
						t.Errorf("%s: round trip = %#v, want %#v", name, got, k.v)
					}
				}
			}
		}
	}
}

func TestRawRoundTrip(t *testing.T) {
	cs := newTestCodecs(t, CodecJSON, CompressionS2, 16)
	body := bytes.Repeat([]byte("<p>hi</p>"), 100)
	env, err := cs.open(cs.seal(codecRaw, "text/html; charset=utf-8", body, 0).wire)
	if err != nil {
		t.Fatal(err)
	}
	if env.contentTypeOrDefault() != "text/html; charset=utf-8" || !bytes.Equal(env.payload, body) {
		t.Fatalf("raw round trip: %q %d bytes", env.contentType, len(env.payload))
	}
	var s string
	if err := cs.unmarshal(env, &s); err != nil || s != string(body) {
		t.Fatalf("raw into *string: %v", err)
	}
	var n int
	if err := cs.unmarshal(env, &n); !errors.Is(err, ErrTypeMismatch) {
		t.Fatalf("raw into *int: %v, want ErrTypeMismatch", err)
	}
}

func TestOpenRejectsForeignValues(t *testing.T) {
	cs := newTestCodecs(t, CodecJSON, CompressionS2, 1)
	good := cs.seal(codecJSON, "", bytes.Repeat([]byte(`"aaaa",`), 50), 0).wire
	bomb := cs.seal(codecJSON, "", []byte(`"x"`), 0).wire
	bomb[3] = byte(compS2)
	bomb = append(bomb[:headerLen], 0xff, 0xff, 0xff, 0xff, 0x0f) // claims 4 GiB
	cases := map[string][]byte{
		"empty":           nil,
		"plain text":      []byte("hello from redis-cli, not a cache value"),
		"short header":    good[:5],
		"bad version":     append([]byte{wireMagic, 9}, good[2:]...),
		"bad codec":       append([]byte{wireMagic, wireVersion, 77}, good[3:]...),
		"bad compression": append([]byte{wireMagic, wireVersion, byte(codecJSON), 9}, good[4:]...),
		"truncated":       good[:len(good)-3],
		"bomb":            bomb,
		"bad expiry":      append([]byte{wireMagic, wireVersion, byte(codecJSON), 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, '1'),
	}
	for name, b := range cases {
		if _, err := cs.open(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: open = %v, want ErrCorrupt", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, comp := range []Compression{CompressionNone, CompressionS2, CompressionZstd} {
		cs := newTestCodecs(f, CodecJSON, comp, 8)
		f.Add(cs.seal(codecJSON, "", []byte(`{"a":[1,2,3],"b":"xxxxxxxxxxxxxxxxxxxxxxxx"}`), 99).wire)
		f.Add(cs.seal(codecRaw, "text/plain", []byte("plain plain plain plain"), 0).wire)
		cb, _, _ := newTestCodecs(f, CodecCBOR, comp, 8).marshal(map[string]any{"k": []any{1.5, "s", []byte{1}}})
		f.Add(cs.seal(codecCBOR, "", cb, 0).wire)
	}
	f.Add([]byte("not a cache value"))
	f.Add([]byte{wireMagic, wireVersion, byte(codecCBOR), byte(compZstd), 0, 0, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3})
	cs := newTestCodecs(f, CodecJSON, CompressionS2, 8)
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := cs.open(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("open error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if len(env.payload) > DefaultMaxValueBytes {
			t.Fatalf("payload of %d bytes passed the size limit", len(env.payload))
		}
		var a any
		err = cs.unmarshal(env, &a)
		if env.codec == codecJSON {
			// The JSON codec decodes with the json/v2 engine's v1
			// emulation: it must agree with encoding/json exactly.
			var want any
			werr := json.Unmarshal(env.payload, &want)
			if (err == nil) != (werr == nil) || (err == nil && !reflect.DeepEqual(a, want)) {
				t.Fatalf("decode %q: got %#v, %v; encoding/json: %#v, %v", env.payload, a, err, want, werr)
			}
		}
		var r record
		_ = cs.unmarshal(env, &r)
		var raw []byte
		_ = cs.unmarshal(env, &raw)
	})
}

// FuzzJSONMatchesStdlib feeds JSON payloads straight to the JSON codec's
// decoder and checks it against encoding/json, into an interface and into
// a struct: same success or failure, same value.
func FuzzJSONMatchesStdlib(f *testing.F) {
	for _, s := range []string{`{"a":[1,2,3],"b":"x"}`, `"\u00e9\ud83d\ude00"`, `1e400`, `{"n":1,"N":2}`,
		`{"tags":null,"m":{"k":65535}}`, `[1,"a",null,true,{"x":{}}]`, "\"\xff\"", `{"n":1.5}`, ` 7 `} {
		f.Add([]byte(s))
	}
	cs := newTestCodecs(f, CodecJSON, CompressionNone, 1<<20)
	f.Fuzz(func(t *testing.T, payload []byte) {
		env := envelope{codec: codecJSON, payload: payload}
		var got, want any
		err, werr := cs.unmarshal(env, &got), json.Unmarshal(payload, &want)
		if (err == nil) != (werr == nil) || (err == nil && !reflect.DeepEqual(got, want)) {
			t.Fatalf("%q into any: got %#v, %v; encoding/json: %#v, %v", payload, got, err, want, werr)
		}
		var gr, wr record
		err, werr = cs.unmarshal(env, &gr), json.Unmarshal(payload, &wr)
		if (err == nil) != (werr == nil) || (err == nil && !reflect.DeepEqual(gr, wr)) {
			t.Fatalf("%q into a struct: got %#v, %v; encoding/json: %#v, %v", payload, gr, err, wr, werr)
		}
	})
}
