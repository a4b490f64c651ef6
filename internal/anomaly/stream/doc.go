// Package stream is SmartCloudOps' online anomaly detector for one metric
// series: causal (a score uses only the current and earlier points),
// constant memory (about 1.9 KB per series with the daily profile), deterministic, and calibrated (a
// score means the same thing on every series, so one threshold serves all).
//
// # Views
//
// Each point is looked at through several views. Four are small predictive
// models whose error z is measured in units of that model's own recent typical
// error:
//
//   - level: the value against an exponentially weighted mean of the recent
//     past (spikes, dips, level shifts);
//   - change: the step from the previous value against the typical step
//     (sudden moves, even while the level drifts);
//   - spread: the recent typical step against the long-run typical step
//     (a series that turns noisy, or goes flat);
//   - seasonal: the value against a daily (or weekly) profile, used only once
//     the profile explains the series clearly better than its mean does.
//
// Their error becomes a surprise in decades, s = (ν/2)·log10(1+z²/ν) with ν=3:
// -log10 of a heavy-tailed (Student-like) two-sided tail. The heavy tail
// matters: metrics are spiky, and a Gaussian tail would call every spike a
// miracle.
//
// The fifth view, novelty, is a pattern memory: the value is quantised into
// 16 levels of the envelope the series has kept (plus "below" and "above"),
// and the short patterns ending at it (pairs with each of the 4 previous
// levels, and the last three levels) are looked up in a 4096-bit set of the
// patterns seen in the last two generations of 4000 points. Its surprise is
// the share of patterns never seen: it tells a recurring shape (a nightly
// job) from a new one, which a distance-to-the-mean cannot.
//
// # Calibration
//
// A view's surprise is averaged over a short window (Options.Short) and the
// average is compared with its own long-run mean and variance on this series
// (Options.History): the Gaussian upper tail of that comparison is the
// view's "anomaly likelihood", the post-processing of Numenta's HTM detector.
// A series whose surprises are always high needs a larger change to alert
// than a quiet one, and a sustained change scores higher than a lone blip.
// A view's score is -log10(tail)/10 clipped to [0,1]: 0.5 is a one-in-10^5
// state. The result's score is the most unusual view's score plus 0.3 of the
// runner-up's, so a point that two independent views find odd outranks one
// that only one view finds odd by the same margin.
//
// # Recurrence
//
// A scheduled job (a nightly backup, an hourly batch) is a real departure
// from the recent past, so the views find it surprising every time; what
// makes it normal is that it comes back at the same time of day. The
// detector keeps, for each half-hour of the last three days, the highest
// score that reached at least half the threshold there (one byte per slot).
// A score is then lowered by the score such an event reached within an hour
// of the same time on each of the previous two days (the smaller of the two
// peaks). Scores are scaled logarithms of tail probabilities, so the
// subtraction divides this point's tail probability by the recurring
// event's: what remains is how much rarer this point is than what this time
// of day has lately brought. Requiring both days keeps one past incident
// from masking the next day's; requiring a notable score keeps ordinary
// noise from blunting every point. The same event at another time of day
// still scores in full, an event at the usual time keeps whatever score it
// has beyond the usual one's, and an event that stops recurring is
// forgotten after two days.
//
// # Restraint
//
// After a flag the detector holds back for Options.Refractory points: no new
// flag, and the score is scaled by the fraction of the period elapsed, so it
// climbs back linearly. One incident pages once; NAB, like an on-call
// engineer, charges for every repeat.
//
// # Alert and state
//
// Result.IsAnomaly is the alert: the onset of something unusual, once per
// incident. Result.State is the anomaly state a dashboard shows: it stays
// high for as long as a fault persists, although the views adapt to it (see
// hold.go), until the series comes back or an operator calls Rebaseline.
//
// The alert threshold is a per-point rarity, so a series sampled every 10
// seconds, with 30 times the points of a 5-minute one, would page 30 times
// as often on noise alone. Detector.Threshold raises it for series sampled
// faster than every five minutes by as much as this series' own score needs
// to become that factor rarer (its upper tail measured as peaks over a
// threshold, tail.go; log10 of the factor if the score were exact), keeping
// the rate of chance alerts per day, which is what an on-call rota pays for.
package stream
