package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrBadState is wrapped by UnmarshalBinary's error when the data is not a
// detector state this version can read.
var ErrBadState = errors.New("stream: bad detector state")

// stateMagic starts every encoded state; stateVersion changes whenever the
// layout does, so a service that persisted states can tell that it must
// retrain instead of misreading them.
const (
	stateMagic   = "SCDS"
	stateVersion = 5
)

// MarshalBinary encodes the detector's options and complete state in a fixed
// little-endian layout (about 1.9 KB with the daily profile). Decoding it and
// continuing gives exactly the results the original would have given.
func (d *Detector) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 1024+len(d.prof)*6)
	b = append(b, stateMagic...)
	b = append(b, stateVersion)
	le := binary.LittleEndian
	u64 := func(x uint64) { b = le.AppendUint64(b, x) }
	f64 := func(x float64) { u64(math.Float64bits(x)) }

	o := d.opt
	u64(uint64(o.WarmUp))
	f64(o.Threshold)
	u64(uint64(o.Refractory))
	u64(uint64(o.History))
	u64(uint64(o.Short))
	u64(uint64(o.Period))
	if o.NoSeasonality {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	for _, f := range o.Tuning.floats() {
		f64(*f)
	}
	for _, n := range o.Tuning.ints() {
		u64(uint64(*n))
	}

	u64(d.n)
	b = le.AppendUint32(b, d.sinceFl)
	for _, x := range [...]float64{d.prev, d.level, d.levelDev, d.stepDev, d.stepFast,
		d.sprMean, d.sprDev, d.lo, d.hi, d.base, d.baseDev, d.seasDev} {
		f64(x)
	}
	b = le.AppendUint32(b, d.seasN)
	for _, l := range d.lik {
		f64(l.short)
		f64(l.mean)
		f64(l.vari)
		b = le.AppendUint32(b, l.n)
	}
	b = append(b, d.qh[:]...)
	b = le.AppendUint32(b, d.memAge)
	for g := range d.mem {
		for _, w := range d.mem[g] {
			u64(w)
		}
	}
	u64(uint64(d.recSlot))
	b = append(b, d.recur[:]...)
	var hf uint8
	if d.hold.on {
		hf |= 1
	}
	if d.hold.seasonal {
		hf |= 2
	}
	b = append(b, hf)
	for _, x := range [...]float64{d.hold.ref, d.hold.dev, d.hold.mean, d.hold.pred, d.lastT, d.stepSec, d.tail.peak, d.tail.beta} {
		f64(x)
	}
	b = le.AppendUint32(b, d.tail.n)
	b = le.AppendUint32(b, uint32(len(d.prof)))
	for i := range d.prof {
		b = le.AppendUint32(b, math.Float32bits(d.prof[i]))
		b = le.AppendUint16(b, d.profN[i])
	}
	return b, nil
}

// stateReader reads the fixed layout, remembering the first short read.
type stateReader struct {
	b   []byte
	err error
}

func (r *stateReader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.err = fmt.Errorf("%w: truncated", ErrBadState)
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *stateReader) u8() uint8 {
	if p := r.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (r *stateReader) u16() uint16 {
	if p := r.take(2); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}

func (r *stateReader) u32() uint32 {
	if p := r.take(4); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (r *stateReader) u64() uint64 {
	if p := r.take(8); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

func (r *stateReader) f64() float64 { return math.Float64frombits(r.u64()) }

// UnmarshalBinary replaces d's options and state with those encoded by
// MarshalBinary. On error d is unchanged; the error wraps ErrBadState or
// ErrInvalidOptions.
func (d *Detector) UnmarshalBinary(data []byte) error {
	r := &stateReader{b: data}
	if string(r.take(len(stateMagic))) != stateMagic {
		return fmt.Errorf("%w: not a detector state", ErrBadState)
	}
	if v := r.u8(); v != stateVersion {
		return fmt.Errorf("%w: version %d, want %d", ErrBadState, v, stateVersion)
	}
	var o Options
	o.WarmUp = int(r.u64())
	o.Threshold = r.f64()
	o.Refractory = int(r.u64())
	o.History = int(r.u64())
	o.Short = int(r.u64())
	o.Period = time.Duration(r.u64())
	o.NoSeasonality = r.u8() == 1
	var t Tuning
	for _, f := range t.floats() {
		*f = r.f64()
		if *f == 0 || math.IsNaN(*f) {
			// Zero would silently become the default; NaN slips past
			// range checks.
			return fmt.Errorf("%w: tuning value %v", ErrBadState, *f)
		}
	}
	for _, n := range t.ints() {
		u := r.u64()
		if u == 0 || u > 1<<31 {
			return fmt.Errorf("%w: tuning count %d", ErrBadState, u)
		}
		*n = int(u)
	}
	o.Tuning = &t
	if r.err != nil {
		return r.err
	}
	o, err := o.withDefaults()
	if err != nil {
		return fmt.Errorf("stream: decode state: %w", err)
	}
	n := Detector{opt: o}
	n.n = r.u64()
	n.sinceFl = r.u32()
	for _, p := range [...]*float64{&n.prev, &n.level, &n.levelDev, &n.stepDev, &n.stepFast,
		&n.sprMean, &n.sprDev, &n.lo, &n.hi, &n.base, &n.baseDev, &n.seasDev} {
		*p = r.f64()
	}
	n.seasN = r.u32()
	for i := range n.lik {
		n.lik[i] = likelihood{short: r.f64(), mean: r.f64(), vari: r.f64(), n: r.u32()}
	}
	copy(n.qh[:], r.take(len(n.qh)))
	n.memAge = r.u32()
	for g := range n.mem {
		for i := range n.mem[g] {
			n.mem[g][i] = r.u64()
		}
	}
	n.recSlot = int64(r.u64())
	copy(n.recur[:], r.take(len(n.recur)))
	hf := r.u8()
	n.hold = hold{on: hf&1 != 0, seasonal: hf&2 != 0, ref: r.f64(), dev: r.f64(), mean: r.f64(), pred: r.f64()}
	n.lastT, n.stepSec = r.f64(), r.f64()
	n.tail = tail{peak: r.f64(), beta: r.f64(), n: r.u32()}
	if hf > 3 || (n.hold.seasonal && o.NoSeasonality) {
		return fmt.Errorf("%w: hold flags %#x", ErrBadState, hf)
	}
	bins := int(r.u32())
	want := 0
	if !o.NoSeasonality {
		want = profileBins(o.Period)
	}
	if r.err == nil && bins != want {
		return fmt.Errorf("%w: %d profile bins, want %d", ErrBadState, bins, want)
	}
	if bins > 0 {
		n.prof = make([]float32, bins)
		n.profN = make([]uint16, bins)
		for i := range n.prof {
			n.prof[i] = math.Float32frombits(r.u32())
			n.profN[i] = r.u16()
		}
	}
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrBadState, len(r.b))
	}
	for _, q := range n.qh {
		if q > quantLevels+1 {
			return fmt.Errorf("%w: quantised level %d out of range", ErrBadState, q)
		}
	}
	if n.memAge >= uint32(o.Tuning.MemGen) {
		return fmt.Errorf("%w: memory age %d out of range", ErrBadState, n.memAge)
	}
	// Update never stores a NaN or an infinity, nor a negative spread, and
	// from values within ±MaxAbsValue no quantity it keeps exceeds a few
	// times that; a state beyond those bounds is damaged, and scoring from
	// it would overflow into NaN.
	finite := []float64{n.prev, n.level, n.lo, n.hi, n.base, n.sprMean, n.hold.ref, n.hold.mean, n.hold.pred, n.lastT}
	spreads := []float64{n.levelDev, n.stepDev, n.stepFast, n.sprDev, n.baseDev, n.seasDev, n.hold.dev, n.stepSec}
	// A peak and a mean excess are scores, in [0, 1]; the count saturates.
	if !(n.tail.peak >= 0 && n.tail.peak <= 1 && n.tail.beta >= 0 && n.tail.beta <= 1) || n.tail.n > tailPeaks {
		return fmt.Errorf("%w: score tail %+v out of range", ErrBadState, n.tail)
	}
	for _, l := range n.lik {
		finite = append(finite, l.short, l.mean)
		spreads = append(spreads, l.vari)
	}
	for _, p := range n.prof {
		finite = append(finite, float64(p))
	}
	const maxState = 100 * MaxAbsValue
	for _, x := range finite {
		if !(math.Abs(x) <= maxState) {
			return fmt.Errorf("%w: value %v out of range", ErrBadState, x)
		}
	}
	for _, x := range spreads {
		if !(x >= 0 && x <= maxState) {
			return fmt.Errorf("%w: spread %v out of range", ErrBadState, x)
		}
	}
	// Every point lies inside the envelope it widens, so lo ≤ hi; inverted,
	// it would give Update a negative scale floor and a division by zero.
	if n.lo > n.hi {
		return fmt.Errorf("%w: envelope [%v, %v] inverted", ErrBadState, n.lo, n.hi)
	}
	// slotOf of any time.Time lies in this range; a slot beyond it would
	// overflow recurDiscount's distance to the next point's slot and turn
	// its catch-up loop into an endless one.
	if n.recSlot > math.MaxInt64/recurSlotSec || n.recSlot < math.MinInt64/recurSlotSec-1 {
		return fmt.Errorf("%w: recurrence slot %d out of range", ErrBadState, n.recSlot)
	}
	*d = n
	return nil
}
