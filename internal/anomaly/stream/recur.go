package stream

import (
	"math"
	"time"
)

// Recurrence memory shape (see "Recurrence" in the package doc).
const (
	// recurSlotSec is the width of a time-of-day slot: half an hour.
	recurSlotSec = 30 * 60
	// recurDay is the number of slots in a day.
	recurDay = 24 * 60 * 60 / recurSlotSec
	// recurDays is how many previous days an event must have come back on
	// (at about the same time) to count as recurring.
	recurDays = 2
	// recurSlots is the ring length: the slots of today and of the previous
	// recurDays days, which covers every slot a lookup can reach.
	recurSlots = (recurDays + 1) * recurDay
	// recurQuant is the resolution of a stored score (one byte over [0,1]).
	recurQuant = 255
)

// slotOf is the absolute half-hour slot of t (floor division, so instants
// before 1970 fall into the right slot too).
func slotOf(t time.Time) int64 {
	s := t.Unix()
	h := s / recurSlotSec
	if s < 0 && s%recurSlotSec != 0 {
		h--
	}
	return h
}

// recurDiscount returns score lowered by the score that a notable event
// reached near this time of day on each of the previous recurDays days, and
// records score (undiscounted, so a recurring event keeps its full size in
// memory) in the current slot. Subtracting scores divides tail
// probabilities: the result measures how much rarer this point is than the
// day's regular events at this time. Slots left behind as time moves on are
// cleared; a timestamp older than the newest slot (out of order) is treated
// as belonging to the newest slot.
func (d *Detector) recurDiscount(t time.Time, score, thr float64) float64 {
	h := slotOf(t)
	switch {
	case d.n == 1 || h-d.recSlot >= recurSlots:
		d.recur = [recurSlots]uint8{}
		d.recSlot = h
	case h > d.recSlot:
		for d.recSlot < h {
			d.recSlot++
			// ringIndex, not %: slots before 1970 are negative.
			d.recur[ringIndex(d.recSlot)] = 0
		}
	}
	h = d.recSlot
	past := uint8(math.MaxUint8)
	for j := int64(1); j <= recurDays; j++ {
		peak := uint8(0)
		for o := -int64(d.opt.Tuning.RecurSpan); o <= int64(d.opt.Tuning.RecurSpan); o++ {
			peak = max(peak, d.recur[ringIndex(h-j*recurDay+o)])
		}
		past = min(past, peak)
	}
	if score >= d.opt.Tuning.RecurGate*thr {
		c := &d.recur[ringIndex(h)]
		*c = max(*c, uint8(math.Round(score*recurQuant)))
	}
	return math.Max(0, score-float64(past)/recurQuant)
}

// ringIndex maps an absolute slot to its place in the ring.
func ringIndex(s int64) int {
	i := s % recurSlots
	if i < 0 {
		i += recurSlots
	}
	return int(i)
}
