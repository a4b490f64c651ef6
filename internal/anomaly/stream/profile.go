package stream

import (
	"math"
	"time"
)

// profileBins is the profile resolution: half-hour bins over a day, hourly
// over a week, interpolated linearly so a smooth daily shape is followed
// within a bin.
func profileBins(p time.Duration) int {
	if p == 24*time.Hour {
		return 48
	}
	return 168
}

// phase locates t in the profile: the two bins around it and the weight of
// the second.
func (d *Detector) phase(t time.Time) (int, int, float64) {
	period := int64(d.opt.Period / time.Second)
	s := t.Unix() % period
	if s < 0 {
		s += period
	}
	bins := len(d.prof)
	x := float64(s)*float64(bins)/float64(period) - 0.5 // bin centres at i+0.5
	if x < 0 {
		x += float64(bins)
	}
	i0 := int(x)
	f := x - float64(i0)
	i0 %= bins
	return i0, (i0 + 1) % bins, f
}

// learnProfile moves the two bins around the point's phase towards its
// deviation from the slow level, each in proportion to its interpolation
// weight (at least a quarter, so a bin that is only ever visited near its
// edge still learns).
func (d *Detector) learnProfile(i0, i1 int, f, dev float64) {
	for _, b := range [2]struct {
		i int
		w float64
	}{{i0, 1 - f}, {i1, f}} {
		if b.w < 0.25 && d.profN[b.i] > 0 {
			continue
		}
		if d.profN[b.i] < math.MaxUint16 {
			d.profN[b.i]++
		}
		a := math.Max(1/float64(d.profN[b.i]), d.opt.Tuning.SeasonalBeta) * math.Max(b.w, 0.25)
		d.prof[b.i] += float32(a * (dev - float64(d.prof[b.i])))
	}
}
