package logs

import (
	"bytes"
	"encoding"
	"encoding/json"
	"math"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// safeASCII marks the bytes that stand for themselves inside a JSON
// string: ASCII but quote, backslash and control characters. Bytes from
// 0x80 up start multi-byte runes, which need checking.
var safeASCII = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendString appends s as a JSON string with encoding/json's escaping
// (minus HTML escaping, like slog's JSON handler), so any line parses.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	// The common case, nothing to escape, in one tight loop.
	i := 0
	for i < len(s) && safeASCII[s[i]] {
		i++
	}
	if i == len(s) {
		b = append(b, s...)
		return append(b, '"')
	}
	start := 0
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if safeASCII[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 break JavaScript consumers of JSON lines.
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendKey appends `,"key":` unless the object was just opened.
func appendKey(b []byte, key string) []byte {
	if len(b) > 0 && b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	b = appendString(b, key)
	return append(b, ':')
}

// appendTime uses RFC 3339 with nanoseconds, as slog's JSON handler does.
// Records logged within the same second share the date, clock and zone
// text, so that part is formatted once per second and reused.
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	sec, loc := t.Unix(), t.Location()
	c := timeCache.Load()
	if c == nil || c.sec != sec || c.loc != loc {
		c = newSecondText(t)
		if c == nil {
			b = t.AppendFormat(b, time.RFC3339Nano)
			return append(b, '"')
		}
		timeCache.Store(c)
	}
	b = append(b, c.clock...)
	if ns := t.Nanosecond(); ns != 0 {
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i > 0; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, frac[:n]...)
	}
	b = append(b, c.zone...)
	return append(b, '"')
}

// secondText is one second's RFC 3339 text in one location, split around
// where the fraction goes.
type secondText struct {
	sec   int64
	loc   *time.Location
	clock string // 2006-01-02T15:04:05
	zone  string // Z or -07:00
}

var timeCache atomic.Pointer[secondText]

// newSecondText returns nil for a year RFC 3339 cannot write in four
// digits; AppendFormat handles those itself.
func newSecondText(t time.Time) *secondText {
	if y := t.Year(); y < 0 || y > 9999 {
		return nil
	}
	whole := t.Truncate(time.Second)
	txt := whole.AppendFormat(nil, time.RFC3339)
	const clockLen = len("2006-01-02T15:04:05")
	return &secondText{sec: t.Unix(), loc: t.Location(), clock: string(txt[:clockLen]), zone: string(txt[clockLen:])}
}

func appendFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"+Inf"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Inf"`...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

// appendAny follows slog's JSON handler: errors by their message, JSON and
// text marshalers by their own encoding, everything else by encoding/json.
func appendAny(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case json.Marshaler:
	case error:
		return appendString(b, x.Error())
	case encoding.TextMarshaler:
		t, err := x.MarshalText()
		if err != nil {
			return appendString(b, "!ERROR:"+err.Error())
		}
		return appendString(b, string(t))
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return appendString(b, "!ERROR:"+err.Error())
	}
	return append(b, bytes.TrimRight(buf.Bytes(), "\n")...)
}

func appendInt(b []byte, n int64) []byte   { return strconv.AppendInt(b, n, 10) }
func appendUint(b []byte, n uint64) []byte { return strconv.AppendUint(b, n, 10) }
