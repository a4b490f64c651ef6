//go:build !knobs

package stream

// Tuning of the model; see the constants' uses. (An evaluation build with the
// "knobs" tag reads them from the environment instead.)
const (
	kRaw      = 2
	kNu       = 3
	kRangeTol = 0.1
	kRangeF   = 10
	kSigma    = 0.02
	kDamp     = 1
	kNoView   = -1
)

func knob(_ string, def float64) float64 { return def }
