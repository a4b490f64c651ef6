package domain

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseTimestamp(t *testing.T) {
	utc := func(y int, mo time.Month, d, h, mi, s, ns int) time.Time {
		return time.Date(y, mo, d, h, mi, s, ns, time.UTC)
	}
	nab := utc(2014, 4, 10, 7, 15, 0, 0)
	for _, c := range []struct {
		in   string
		want time.Time
	}{
		// Text.
		{"2014-04-10T07:15:00Z", nab},
		{"2014-04-10t07:15:00z", nab},
		{"2014-04-10 07:15:00Z", nab},
		{"2014-04-10T09:15:00+02:00", nab},
		{"2014-04-10T02:15:00-05:00", nab},
		{"2014-04-10 09:15:00.000000+02:00", nab},
		{"2014-04-10 07:15:00", nab},
		{"2014-04-10T07:15:00", nab},
		{"2014-04-10 07:15:00.000000", nab},
		{"2014-04-10 07:15", nab},
		{"2014-04-10T07:15Z", nab},
		{"2014-04-10T09:15+02:00", nab},
		{"2014-04-10", utc(2014, 4, 10, 0, 0, 0, 0)},
		{"  2014-04-10T07:15:00Z\n", nab},
		{"2014-04-10T07:15:00.123456789Z", utc(2014, 4, 10, 7, 15, 0, 123456789)},
		{"2014-04-10T07:15:00.5Z", utc(2014, 4, 10, 7, 15, 0, 5e8)},
		{"2014-04-10T07:15:00.1234567891234Z", utc(2014, 4, 10, 7, 15, 0, 123456789)},
		{"1969-07-20T20:17:40Z", utc(1969, 7, 20, 20, 17, 40, 0)},
		{"0001-01-01T00:00:00Z", utc(1, 1, 1, 0, 0, 0, 0)},
		{"9999-12-31T23:59:59.999999999Z", utc(9999, 12, 31, 23, 59, 59, 999999999)},
		{"2016-02-29", utc(2016, 2, 29, 0, 0, 0, 0)},
		// Numbers: the unit follows the magnitude.
		{"0", time.Unix(0, 0).UTC()},
		{"1", time.Unix(1, 0).UTC()},
		{"1397114100", nab},
		{"1397114100.5", nab.Add(500 * time.Millisecond)},
		{"1.3971141e9", nab},
		{"1397114100000", nab},
		{"1397114100123", nab.Add(123 * time.Millisecond)},
		{"1397114100123.5", nab.Add(123*time.Millisecond + 500*time.Microsecond)},
		{"1397114100000000", nab},
		{"1397114100000000000", nab},
		{"1397114100123456789", nab.Add(123456789)},
		{"99999999999", time.Unix(99999999999, 0).UTC()},   // the last second: year 5138
		{"100000000000", time.UnixMilli(1e11).UTC()},       // the first millisecond: 1973-03-03
		{"99999999999999", time.UnixMilli(1e14 - 1).UTC()}, // the last millisecond
		{"100000000000000", time.UnixMicro(1e14).UTC()},
		{"100000000000000000", time.Unix(0, 1e17).UTC()},
		{"9223372036854775807", time.Unix(0, 1<<63-1).UTC()},
		{"0001397114100", nab},
	} {
		got, err := ParseTimestamp(c.in)
		if err != nil || !got.Equal(c.want) || got.Location() != time.UTC {
			t.Errorf("ParseTimestamp(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

func TestParseTimestampRefuses(t *testing.T) {
	for _, c := range []struct {
		in, msg string
	}{
		{"", "empty timestamp"},
		{"   ", "empty timestamp"},
		{"28/11/2026 10:00", "is not a timestamp"},
		{"2014/04/10 07:15:00", "is not a timestamp"},
		{"10.04.2014", "is not a timestamp"},
		{"2014-04-10X07:15:00", "is not a timestamp"},
		{"2014-04-10T07", "is not a timestamp"},
		{"2014-04-10T07:15:00:00", "is not a timestamp"},
		{"2014-04-10T07:15:00+0200", "is not a timestamp"},
		{"2014-04-10T07:15:00 +02:00", "is not a timestamp"},
		{"2014-04-10T07:15:00Zjunk", `extra text: "Zjunk"`},
		{"2014-13-10", "month out of range"},
		{"2015-02-29", "day out of range"},
		{"2014-04-10T25:00:00Z", "hour out of range"},
		{"0000-01-01T00:00:00Z", "outside the years 0001 to 9999"},
		{"9999-12-31T23:59:59-01:00", "outside the years 0001 to 9999"},
		{"-5", "must not be negative"},
		{"-1397114100000", "must not be negative"},
		{"9223372036854775808", "out of range"},
		{"99999999999999999999", "out of range"},
		{"1e19", "out of range"},
		{"1e999", "out of range"},
		{"inf", "is not a timestamp"},
		{"NaN", "is not a timestamp"},
		{"0x10", "is not a timestamp"},
		{"1_000", "is not a timestamp"},
		{".5", "is not a timestamp"},
		{"5.", "is not a timestamp"},
		{"+5", "is not a timestamp"},
		{"1e", "is not a timestamp"},
		{"true", "is not a timestamp"},
		{strings.Repeat("9", 30) + "x", "is not a timestamp"},
	} {
		got, err := ParseTimestamp(c.in)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("ParseTimestamp(%q) = %v, %v; want an error with %q", c.in, got, err, c.msg)
		}
	}
	// Outside input is quoted, and cut so it cannot flood a message.
	_, err := ParseTimestamp(strings.Repeat("é", 100))
	if err == nil || len(err.Error()) > 200 || !strings.Contains(err.Error(), "…") {
		t.Errorf("long input: %v", err)
	}
}

// unambiguousFrom is the first instant whose Unix count in every unit lies
// in that unit's band (1e11 ms).
var unambiguousFrom = time.UnixMilli(1e11).UTC()

// nanosEnd is the last instant a Unix nanosecond count can hold.
var nanosEnd = time.Unix(0, 1<<63-1).UTC()

// FuzzParseTimestamp: no input panics; an accepted one is a UTC instant of
// years 1–9999 that reads back the same from its RFC 3339 form and, from
// 1973-03-03 on, from its Unix count in each unit, truncated to that unit.
func FuzzParseTimestamp(f *testing.F) {
	for _, s := range []string{"2014-04-10T07:15:00Z", "2014-04-10 07:15:00.5+02:00", "2014-04-10", "2014-04-10 07:15",
		"1397114100", "1397114100.5", "1397114100000", "1397114100000000", "1397114100123456789", "1.3971141e9",
		"", "-1", "1e999", "9223372036854775807", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "2014-04-10T07:15:00,5Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTimestamp(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("ParseTimestamp(%q): empty error", s)
			}
			return
		}
		if got.Location() != time.UTC || got.Before(minTimestamp) || got.After(maxTimestamp) {
			t.Fatalf("ParseTimestamp(%q) = %v", s, got)
		}
		text := got.Format(time.RFC3339Nano)
		if back, err := ParseTimestamp(text); err != nil || !back.Equal(got) {
			t.Fatalf("ParseTimestamp(%q) = %v; its RFC 3339 form %q reads %v, %v", s, got, text, back, err)
		}
		if got.Before(unambiguousFrom) {
			if got.Unix() >= 0 {
				if back, err := ParseTimestamp(strconv.FormatInt(got.Unix(), 10)); err != nil || !back.Equal(got.Truncate(time.Second)) {
					t.Fatalf("ParseTimestamp(%q) = %v; its Unix seconds read %v, %v", s, got, back, err)
				}
			}
			return
		}
		for _, u := range []struct {
			unit  time.Duration
			count int64
		}{
			{time.Second, got.Unix()}, {time.Millisecond, got.UnixMilli()}, {time.Microsecond, got.UnixMicro()}, {time.Nanosecond, got.UnixNano()},
		} {
			if u.unit == time.Nanosecond && got.After(nanosEnd) || u.unit != time.Nanosecond && u.count >= 1e11*int64(time.Second/u.unit) {
				continue // past int64's nanoseconds (2262) or the unit's band (year 5138)
			}
			in := strconv.FormatInt(u.count, 10)
			if back, err := ParseTimestamp(in); err != nil || !back.Equal(got.Truncate(u.unit)) {
				t.Fatalf("ParseTimestamp(%q) = %v; as a count of %v, %s reads %v, %v", s, got, u.unit, in, back, err)
			}
		}
	})
}

func TestSeverityOf(t *testing.T) {
	for _, c := range []struct {
		score float64
		want  Severity
	}{{0, SeverityLow}, {0.399, SeverityLow}, {0.4, SeverityMedium}, {0.599, SeverityMedium}, {0.6, SeverityHigh}, {0.8, SeverityCritical}, {1, SeverityCritical}} {
		if got := SeverityOf(c.score); got != c.want {
			t.Errorf("SeverityOf(%v) = %s; want %s", c.score, got, c.want)
		}
	}
}
