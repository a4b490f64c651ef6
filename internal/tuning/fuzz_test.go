package tuning

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"testing"
	"time"
)

// fuzzRegistry holds one setting of each kind, with bounds that include the
// extremes of their types, and records what each setter was given.
type fuzzRegistry struct {
	r   *Registry
	dur time.Duration
	n   int64
	big int64
	x   float64
	e   string
	b   int64
}

func newFuzzRegistry() *fuzzRegistry {
	f := &fuzzRegistry{dur: time.Minute, n: 5, big: 1, x: 0.5, e: "info", b: 1024}
	f.r = New(nil, func() time.Time { return time.Unix(0, 0) })
	f.r.Add(Duration("d", "", time.Second, time.Hour, func() time.Duration { return f.dur }, func(d time.Duration) { f.dur = d }, nil))
	f.r.Add(Integer("n", "", 1, 10000, func() int64 { return f.n }, func(n int64) { f.n = n }, nil))
	f.r.Add(Integer("big", "", 0, math.MaxInt64, func() int64 { return f.big }, func(n int64) { f.big = n }, nil))
	f.r.Add(Number("x", "", 0.01, 0.99, func() float64 { return f.x }, func(x float64) { f.x = x }))
	f.r.Add(Enum("e", "", []string{"debug", "info"}, func() string { return f.e }, func(s string) { f.e = s }))
	f.r.Add(Bytes("b", "", 1024, 1<<40, parseSizeForTest, func() int64 { return f.b }, func(n int64) { f.b = n }))
	return f
}

// parseSizeForTest stands in for config.ParseSize, so the registry is fuzzed
// on its own: digits with an optional KiB or MiB suffix.
func parseSizeForTest(s string) (int64, error) {
	mult := int64(1)
	switch {
	case len(s) > 3 && s[len(s)-3:] == "KiB":
		mult, s = 1<<10, s[:len(s)-3]
	case len(s) > 3 && s[len(s)-3:] == "MiB":
		mult, s = 1<<20, s[:len(s)-3]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, errors.New("bad size")
	}
	return n * mult, nil
}

// FuzzApply sends an arbitrary PUT /performance/config body to Apply: it
// never panics; a refusal is a *ValidationError naming keys of the body and
// changes nothing; an acceptance leaves every setting within its bounds and
// reports, per key, the value now in force.
func FuzzApply(f *testing.F) {
	for _, s := range []string{`{"d":"90s"}`, `{"d":30}`, `{"n":7,"x":0.25}`, `{"e":"DEBUG"}`, `{"b":"64KiB"}`, `{"b":2048}`,
		`{"big":9223372036854775807}`, `{"big":9223372036854775808}`, `{"n":1e400}`, `{"d":-1e9}`, `{"x":null}`, `{}`, `{"zz":1}`,
		`{"n":"5"}`, `{"d":"2562047h47m16.854775807s"}`, `{"b":-0}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var changes map[string]json.RawMessage
		if json.Unmarshal(body, &changes) != nil {
			return // the HTTP layer refuses it before Apply
		}
		reg := newFuzzRegistry()
		before := *reg
		applied, err := reg.r.Apply(changes, "fuzz")
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Fields) == 0 {
				t.Fatalf("error %v is not a validation error naming a field", err)
			}
			for _, fe := range ve.Fields {
				if _, given := changes[fe.Key]; !given && fe.Key != "body" {
					t.Fatalf("refusal names %q, not in the body", fe.Key)
				}
			}
			if reg.dur != before.dur || reg.n != before.n || reg.big != before.big || reg.x != before.x || reg.e != before.e || reg.b != before.b {
				t.Fatal("a refused body changed a setting")
			}
			return
		}
		if len(applied) != len(changes) {
			t.Fatalf("%d changes applied for %d keys", len(applied), len(changes))
		}
		switch {
		case reg.dur < time.Second || reg.dur > time.Hour:
			t.Fatalf("duration %v out of bounds", reg.dur)
		case reg.n < 1 || reg.n > 10000:
			t.Fatalf("integer %d out of bounds", reg.n)
		case reg.big < 0:
			t.Fatalf("integer %d out of bounds", reg.big)
		case !(reg.x >= 0.01 && reg.x <= 0.99):
			t.Fatalf("number %v out of bounds", reg.x)
		case reg.e != "debug" && reg.e != "info":
			t.Fatalf("enum %q", reg.e)
		case reg.b < 1024 || reg.b > 1<<40:
			t.Fatalf("bytes %d out of bounds", reg.b)
		}
		for _, c := range applied {
			for _, e := range reg.r.Entries() {
				if e.Key == c.Key && e.Value != c.New {
					t.Fatalf("%s: change reports %v, setting holds %v", c.Key, c.New, e.Value)
				}
			}
		}
		if _, err := json.Marshal(applied); err != nil {
			t.Fatalf("applied changes do not encode: %v", err)
		}
	})
}
