package stream

import (
	"testing"
	"time"
)

// nightlyJob is a quiet series (10 ± 0.5) with a 30-minute burst to 40 every
// night, starting at 03:00 plus a drift of up to ±20 minutes from day to
// day, as a cron job's load does.
func nightlyJob(days int, seed uint64) []float64 {
	const perDay = 288
	drift := []int{0, 3, -2, 4, -4, 1, -3, 2, 0, -1, 4, -2}
	vals := series(days*perDay, seed, func(int) float64 { return 10 }, 0.5)
	for day := 0; day < days; day++ {
		start := day*perDay + 36 + drift[day%len(drift)]
		for i := start; i < start+6; i++ {
			vals[i] += 30
		}
	}
	return vals
}

// flagsIn returns the flags of rs whose index is in [from, to).
func flagsIn(rs []Result, from, to int) []int {
	var f []int
	for i := from; i < to && i < len(rs); i++ {
		if rs[i].IsAnomaly {
			f = append(f, i)
		}
	}
	return f
}

// TestRecurringDailyEventLearned: a nightly burst is flagged while it is new,
// is no longer flagged once it has come back at about the same time on the
// previous two days, and the same burst at another time of day is still
// flagged.
func TestRecurringDailyEventLearned(t *testing.T) {
	const days, perDay = 10, 288
	vals := nightlyJob(days, 7)
	spike := 8*perDay + 180 // 15:00 on day 8
	for i := spike; i < spike+6; i++ {
		vals[i] += 30
	}
	rs := runAll(mustNew(t, Options{}), vals, 0)

	if f := flagsIn(rs, perDay, perDay+60); len(f) == 0 {
		t.Errorf("the burst on day 1, before it has recurred, is not flagged (score %.3f)", maxScore(rs, perDay+30, perDay+50))
	}
	for day := 3; day < days; day++ {
		if f := flagsIn(rs, day*perDay+20, day*perDay+60); len(f) > 0 {
			t.Errorf("day %d: the recurring burst is flagged at %v (score %.3f, views %.2f)", day, f, rs[f[0]].Score, rs[f[0]].Views)
		}
	}
	// The views have learned that bursts happen, so this one may be caught
	// on its rise or its fall; it must be caught, and its time of day must
	// not excuse it.
	if f := flagsIn(rs, spike, spike+8); len(f) == 0 {
		t.Errorf("the burst at 15:00, a novel time, is not flagged (score %.3f)", maxScore(rs, spike, spike+8))
	}
}

// TestRecurrenceNeedsBothDays: one incident does not hide an incident at the
// same time the next day; only an event seen on each of the previous two
// days is discounted.
func TestRecurrenceNeedsBothDays(t *testing.T) {
	const perDay = 288
	vals := series(6*perDay, 3, func(int) float64 { return 10 }, 0.5)
	for _, at := range []int{3*perDay + 150, 4*perDay + 150} {
		for i := at; i < at+6; i++ {
			vals[i] += 30
		}
	}
	rs := runAll(mustNew(t, Options{}), vals, 0)
	for _, at := range []int{3*perDay + 150, 4*perDay + 150} {
		if f := flagsIn(rs, at, at+6); len(f) == 0 {
			t.Errorf("incident at %d (day %d) not flagged; score %.3f", at, at/perDay, maxScore(rs, at, at+6))
		}
	}
}

// TestRecurrenceForgotten: a job that skips two nights is new again when it
// comes back, and is flagged.
func TestRecurrenceForgotten(t *testing.T) {
	const days, perDay = 9, 288
	vals := nightlyJob(days, 11)
	for day := 5; day < 7; day++ { // no job on days 5 and 6
		for i := day * perDay; i < (day+1)*perDay; i++ {
			vals[i] = min(vals[i], 12)
		}
	}
	rs := runAll(mustNew(t, Options{}), vals, 0)
	if f := flagsIn(rs, 4*perDay, 5*perDay); len(f) > 0 {
		t.Errorf("the job on day 4, after four nights, is flagged at %v", f)
	}
	if f := flagsIn(rs, 7*perDay+20, 7*perDay+60); len(f) == 0 {
		t.Errorf("the job returning on day 7 after two quiet nights is not flagged; score %.3f", maxScore(rs, 7*perDay+20, 7*perDay+60))
	}
}

// TestRecurrenceOutOfOrderAndGaps: a timestamp that goes backwards or a gap
// of days neither panics nor breaks the score range, and a gap clears the
// memory (an event is compared only with the days just before it).
func TestRecurrenceOutOfOrderAndGaps(t *testing.T) {
	d := mustNew(t, Options{})
	vals := nightlyJob(4, 5)
	for i, v := range vals {
		ts := t0.Add(time.Duration(i) * step)
		if i%97 == 0 {
			ts = ts.Add(-3 * time.Hour)
		}
		if i >= 2*288 {
			ts = ts.Add(10 * 24 * time.Hour)
		}
		if r := d.Update(ts, v); !(r.Score >= 0 && r.Score <= 1) {
			t.Fatalf("score %v at %d", r.Score, i)
		}
	}
	pre := d.Update(time.Date(1960, 1, 1, 3, 0, 0, 0, time.UTC), 10)
	if !(pre.Score >= 0 && pre.Score <= 1) {
		t.Fatalf("score %v for a pre-1970 timestamp", pre.Score)
	}
}

func maxScore(rs []Result, from, to int) float64 {
	m := 0.0
	for i := from; i < to && i < len(rs); i++ {
		m = max(m, rs[i].Score)
	}
	return m
}
