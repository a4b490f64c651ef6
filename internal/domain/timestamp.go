package domain

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The magnitudes at which a Unix timestamp number changes unit. Each unit's
// band starts where the unit below would reach the year 5138, and
// 1e11 ms = 1e14 µs = 1e17 ns = 1973-03-03T09:46:40Z, so from that instant on
// the four units fall into disjoint bands and none can be taken for another.
const (
	unixMilliFrom = 1e11
	unixMicroFrom = 1e14
	unixNanoFrom  = 1e17
)

// The accepted instants, in UTC: the years RFC 3339's four-digit year can
// write, so every accepted timestamp can be written back and read again.
var (
	minTimestamp = time.Date(1, time.January, 1, 0, 0, 0, 0, time.UTC)
	maxTimestamp = time.Date(9999, time.December, 31, 23, 59, 59, 999999999, time.UTC)
)

// timestampForms names the accepted forms in an error message.
const timestampForms = `RFC 3339 (2006-01-02T15:04:05Z), "2006-01-02 15:04:05" (UTC), a date, or Unix seconds (or ms, µs, ns)`

// ParseTimestamp reads a timestamp, by the one rule every input follows: the
// HTTP API's sample bodies and query windows, the detect CLI's CSV column and
// the text a database hands back. Surrounding spaces are ignored. It accepts:
//
//   - Text: a date 2006-01-02, optionally followed by "T" or a space and a
//     time 15:04, 15:04:05 or 15:04:05.999999999 (any number of fractional
//     digits, nanoseconds kept), optionally followed by a zone "Z" or
//     "±07:00". That is RFC 3339 with the relaxations its section 5.6 allows
//     (a space for "T", lower-case "t" and "z") plus the forms CSV exports
//     and SQLite write. A time without a zone, and a bare date (its
//     midnight), is UTC, so a file reads the same on every machine. Any
//     instant from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z
//     (after applying the zone) is accepted.
//   - A number in JSON's syntax (digits, an optional fraction and exponent;
//     not negative — write earlier instants as text) counting from the Unix
//     epoch 1970-01-01T00:00:00Z, its unit told by its magnitude: below
//     10^11 seconds, below 10^14 milliseconds, below 10^17 microseconds,
//     else nanoseconds up to 2^63−1 (2262-04-11T23:47:16Z). The bands are
//     disjoint for every instant from 1973-03-03T09:46:40Z to
//     5138-11-16T09:46:40Z (nanoseconds end in 2262), so a timestamp of that
//     span is never misread whatever its unit; before 1973-03-03 only
//     seconds are read as meant (an earlier millisecond count is below
//     10^11 and reads as seconds). A fraction is rounded to the nanosecond.
//
// The result is in UTC. Policy on top of the rule, such as the API refusing
// samples from before 1970 or from the future, is the caller's.
func ParseTimestamp(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, errors.New("empty timestamp")
	}
	var (
		t   time.Time
		err error
	)
	if len(s) >= 10 && s[4] == '-' && s[7] == '-' {
		t, err = parseTimestampText(s)
	} else {
		t, err = parseTimestampNumber(s)
	}
	if err != nil {
		return time.Time{}, err
	}
	if t.Before(minTimestamp) || t.After(maxTimestamp) {
		return time.Time{}, fmt.Errorf("%s is outside the years 0001 to 9999 in UTC", quoteInput(s))
	}
	return t, nil
}

// textLayouts is indexed by [space separator][with seconds][with zone].
// time.Parse takes a fraction after the seconds, of any length, without its
// being in the layout.
var textLayouts = [2][2][2]string{
	{{"2006-01-02T15:04", "2006-01-02T15:04Z07:00"}, {"2006-01-02T15:04:05", "2006-01-02T15:04:05Z07:00"}},
	{{"2006-01-02 15:04", "2006-01-02 15:04Z07:00"}, {"2006-01-02 15:04:05", "2006-01-02 15:04:05Z07:00"}},
}

// parseTimestampText picks the one layout s can match from its shape, so a
// CSV of a million rows costs one time.Parse a row.
func parseTimestampText(orig string) (time.Time, error) {
	s, layout := orig, "2006-01-02"
	if len(s) > 10 {
		if s[10] == 't' || s[len(s)-1] == 'z' {
			// RFC 3339's lower-case forms, which time.Parse does not take.
			b := []byte(s)
			if b[10] == 't' {
				b[10] = 'T'
			}
			if b[len(b)-1] == 'z' {
				b[len(b)-1] = 'Z'
			}
			s = string(b)
		}
		space := 0
		switch s[10] {
		case 'T':
		case ' ':
			space = 1
		default:
			return time.Time{}, notTimestamp(orig)
		}
		rest, zone := s[11:], 0
		if strings.HasSuffix(rest, "Z") {
			rest, zone = rest[:len(rest)-1], 1
		} else if i := strings.IndexAny(rest, "+-"); i >= 0 {
			rest, zone = rest[:i], 1
		}
		switch strings.Count(rest, ":") {
		case 1:
			layout = textLayouts[space][0][zone]
		case 2:
			layout = textLayouts[space][1][zone]
		default:
			return time.Time{}, notTimestamp(orig)
		}
	}
	t, err := time.Parse(layout, s)
	if err != nil {
		var pe *time.ParseError
		if errors.As(err, &pe) && pe.Message != "" {
			return time.Time{}, fmt.Errorf("%s is not a valid time: %s", quoteInput(orig), strings.TrimPrefix(pe.Message, ": "))
		}
		return time.Time{}, notTimestamp(orig)
	}
	return t.UTC(), nil
}

// parseTimestampNumber reads a Unix timestamp; integers exactly, so a
// nanosecond count keeps all its 19 digits.
func parseTimestampNumber(s string) (time.Time, error) {
	neg := strings.HasPrefix(s, "-")
	integer, ok := numberSyntax(strings.TrimPrefix(s, "-"))
	if !ok {
		return time.Time{}, notTimestamp(s)
	}
	if neg {
		return time.Time{}, fmt.Errorf("%s: a Unix timestamp must not be negative (write instants before 1970 in RFC 3339)", quoteInput(s))
	}
	if integer {
		v, err := strconv.ParseUint(s, 10, 64)
		switch {
		case err != nil || v > math.MaxInt64:
			return time.Time{}, outOfRange(s)
		case v < unixMilliFrom:
			return time.Unix(int64(v), 0).UTC(), nil
		case v < unixMicroFrom:
			return time.UnixMilli(int64(v)).UTC(), nil
		case v < unixNanoFrom:
			return time.UnixMicro(int64(v)).UTC(), nil
		}
		return time.Unix(0, int64(v)).UTC(), nil
	}
	v, err := strconv.ParseFloat(s, 64)
	// 2^63 is exactly representable; anything at or above it overflows int64.
	if err != nil || v >= math.MaxInt64 {
		return time.Time{}, outOfRange(s)
	}
	unit := time.Second
	switch {
	case v >= unixNanoFrom:
		unit = time.Nanosecond
	case v >= unixMicroFrom:
		unit = time.Microsecond
	case v >= unixMilliFrom:
		unit = time.Millisecond
	}
	// Split into seconds and nanoseconds: a millisecond count near the top
	// of its band is past 2^63 nanoseconds.
	whole, frac := math.Modf(v)
	w, per := int64(whole), int64(time.Second/unit)
	nsec := (w%per)*int64(unit) + int64(math.Round(frac*float64(unit)))
	return time.Unix(w/per, nsec).UTC(), nil
}

// numberSyntax reports whether s is an unsigned JSON number, and whether it
// is a plain integer (no fraction, no exponent). It keeps out what
// strconv.ParseFloat would also take: "inf", "0x1p3", "1_000", ".5".
func numberSyntax(s string) (integer, ok bool) {
	i := digits(s, 0)
	if i == 0 {
		return false, false
	}
	integer = true
	if i < len(s) && s[i] == '.' {
		j := digits(s, i+1)
		if j == i+1 {
			return false, false
		}
		i, integer = j, false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := digits(s, i)
		if j == i {
			return false, false
		}
		i, integer = j, false
	}
	return integer, i == len(s)
}

// digits returns the index of the first non-digit of s at or after i.
func digits(s string, i int) int {
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

func outOfRange(s string) error {
	return fmt.Errorf("%s is out of range: a Unix timestamp in nanoseconds ends at 2^63-1 (2262-04-11T23:47:16Z)", quoteInput(s))
}

func notTimestamp(s string) error {
	return fmt.Errorf("%s is not a timestamp: use %s", quoteInput(s), timestampForms)
}

// quoteInput quotes outside input for an error message, cut to 40 bytes (on
// a character boundary) so a huge field cannot flood a problem detail or a
// terminal.
func quoteInput(s string) string {
	const most = 40
	if len(s) <= most {
		return strconv.Quote(s)
	}
	cut := most
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "…"
}
