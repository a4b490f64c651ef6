package stream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"
	"time"
)

// fuzzState is a detector state worth mutating: warmed up, with a profile,
// novelty memory and recurrence slots filled.
func fuzzState(tb testing.TB, o Options) []byte {
	tb.Helper()
	d, err := New(o)
	if err != nil {
		tb.Fatal(err)
	}
	for i, v := range series(400, 3, daily, 1) {
		if i == 350 {
			v += 60
		}
		d.Update(t0.Add(time.Duration(i)*step), v)
	}
	b, err := d.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// checkResult fails on a result no caller can use: a score outside [0,1]
// or not a number, whatever the state or input was.
func checkResult(t *testing.T, r Result) {
	t.Helper()
	if !(r.Score >= 0 && r.Score <= 1) {
		t.Fatalf("score %v outside [0,1]", r.Score)
	}
	if !(r.State >= r.Score && r.State <= 1) {
		t.Fatalf("state %v outside [score %v, 1]", r.State, r.Score)
	}
	for w, s := range r.Views {
		if !(s >= 0 && s <= 1) {
			t.Fatalf("view %v score %v outside [0,1]", View(w), s)
		}
	}
}

// FuzzDetectorState feeds arbitrary bytes to UnmarshalBinary, as a state
// read back from the database would be: garbage is refused with ErrBadState
// or ErrInvalidOptions and leaves the detector as it was; an accepted state
// re-encodes stably and scores finite values into [0,1] without panicking.
func FuzzDetectorState(f *testing.F) {
	for _, o := range []Options{{}, {Period: 7 * 24 * time.Hour}, {NoSeasonality: true, Threshold: 0.4}} {
		b := fuzzState(f, o)
		f.Add(b, 42.0, int64(0))
		f.Add(b[:len(b)-7], 1.0, int64(300))
	}
	// States damaged in the ways fuzzing found: a NaN in a likelihood (NaN
	// view scores) and a recurrence slot far in the past (an endless
	// catch-up loop).
	for _, damage := range []func(d *Detector){
		func(d *Detector) { d.lik[ViewSpread].short = math.NaN() },
		func(d *Detector) { d.lik[ViewLevel].vari = -1 },
		func(d *Detector) { d.recSlot = math.MinInt64 + 5 },
	} {
		var d Detector
		if err := d.UnmarshalBinary(fuzzState(f, Options{})); err != nil {
			f.Fatal(err)
		}
		damage(&d)
		b, _ := d.MarshalBinary()
		f.Add(b, 1.0, int64(0))
	}
	f.Add([]byte(stateMagic), 0.0, int64(0))
	f.Add([]byte{}, -1.0, int64(-1))
	f.Fuzz(func(t *testing.T, data []byte, v float64, dt int64) {
		d, err := New(Options{})
		if err != nil {
			t.Fatal(err)
		}
		before, _ := d.MarshalBinary()
		if err := d.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, ErrBadState) && !errors.Is(err, ErrInvalidOptions) {
				t.Fatalf("error %v wraps neither ErrBadState nor ErrInvalidOptions", err)
			}
			if after, _ := d.MarshalBinary(); !bytes.Equal(before, after) {
				t.Fatal("a refused state changed the detector")
			}
			return
		}
		once, err := d.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var again Detector
		if err := again.UnmarshalBinary(once); err != nil {
			t.Fatalf("re-encoded state refused: %v", err)
		}
		if twice, _ := again.MarshalBinary(); !bytes.Equal(once, twice) {
			t.Fatal("an accepted state does not re-encode stably")
		}
		at := t0.Add(time.Duration(dt) * time.Second)
		for i, x := range []float64{v, v + 1, 0, -v, 1e6} {
			checkResult(t, d.Update(at.Add(time.Duration(i)*step), x))
		}
	})
}

// FuzzUpdate drives a fresh detector with arbitrary values at arbitrary
// times (before 1970, out of order, far apart): never a panic, and every
// score in [0,1]. Each 16 bytes of data are one point: Unix seconds and a
// float64, little-endian.
func FuzzUpdate(f *testing.F) {
	point := func(sec int64, v float64) []byte {
		b := binary.LittleEndian.AppendUint64(nil, uint64(sec))
		return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	var rising, early, jumpy []byte
	for i := range 60 {
		rising = append(rising, point(t0.Unix()+int64(i)*300, float64(i%7))...)
		early = append(early, point(-100000+int64(i)*1800, float64(i))...)
		jumpy = append(jumpy, point(int64(i%3)*1e9-1e9, math.Pow(-10, float64(i%20)))...)
	}
	f.Add(rising, false)
	f.Add(early, false)
	f.Add(jumpy, true)
	f.Fuzz(func(t *testing.T, data []byte, noSeasonality bool) {
		d, err := New(Options{NoSeasonality: noSeasonality, WarmUp: 5})
		if err != nil {
			t.Fatal(err)
		}
		for ; len(data) >= 16; data = data[16:] {
			sec := int64(binary.LittleEndian.Uint64(data))
			v := math.Float64frombits(binary.LittleEndian.Uint64(data[8:]))
			// time.Unix is defined for every int64, but keep to the years a
			// timestamp parser can produce so the fuzzer explores the model.
			sec %= 1 << 40
			checkResult(t, d.Update(time.Unix(sec, 0), v))
		}
	})
}
