package logs

import (
	"bytes"
	"encoding"
	"encoding/binary"
	"encoding/json"
	"log/slog"
	"math"
	"slices"
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
//
// Most strings in a log line are short ASCII with nothing to escape. Those
// are checked and copied a word (eight bytes) at a time, straight into b's
// spare room, which is grown to hold a whole word past the string; a word
// that holds anything else hands over, at that word, to the escaping.
func appendString(b []byte, s string) []byte {
	b = slices.Grow(b, len(s)+10)
	n := len(b) + 1
	b = b[:n+len(s)]
	b[n-1] = '"'
	dst := b[n:cap(b)]
	if len(s) < 8 {
		w := loadShort(s)
		if needsEscape(w) {
			return appendEscaped(b[:n], s, 0)
		}
		binary.LittleEndian.PutUint64(dst, w)
		return append(b, '"')
	}
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := load64(s, i)
		if needsEscape(w) {
			return appendEscaped(b[:n+i], s, i)
		}
		binary.LittleEndian.PutUint64(dst[i:], w)
	}
	if i < len(s) {
		// The last word overlaps the one before: fewer than eight bytes left.
		j := len(s) - 8
		w := load64(s, j)
		if needsEscape(w) {
			return appendEscaped(b[:n+i], s, i)
		}
		binary.LittleEndian.PutUint64(dst[j:], w)
	}
	return append(b, '"')
}

// loadShort reads a string of fewer than eight bytes as a little-endian
// word padded with spaces, which need no escaping and are overwritten
// after the copy. Two overlapping loads cover the string without a loop:
// bytes both loads hold are ORed with themselves.
func loadShort(s string) uint64 {
	n := len(s)
	var w uint64
	switch {
	case n >= 4:
		lo := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24
		t := s[n-4:]
		hi := uint64(t[0]) | uint64(t[1])<<8 | uint64(t[2])<<16 | uint64(t[3])<<24
		w = lo | hi<<(8*(n-4))
	case n > 0:
		w = uint64(s[0]) | uint64(s[n/2])<<(8*(n/2)) | uint64(s[n-1])<<(8*(n-1))
	}
	return w | ' '*lsb<<(8*n)
}

// load64 reads s[i:i+8] as a little-endian word; the compiler turns the
// eight byte loads into one.
func load64(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// needsEscape reports whether any byte of w is not ASCII, is a control
// character, or is a quote or a backslash. With every high bit clear, a
// byte's high bit after the subtraction is set only when that byte is below
// the subtrahend (or a lower byte already was, which is a hit anyway).
func needsEscape(w uint64) bool {
	return (w|(w-0x20*lsb)|((w^'"'*lsb)-lsb)|((w^'\\'*lsb)-lsb))&msb != 0
}

// appendEscaped appends s[i:] escaped and the closing quote, for a string
// whose s[:i] is already in b.
func appendEscaped(b []byte, s string, i int) []byte {
	start := i
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
		for i := 9; i > 1; i -= 2 {
			d := 2 * (ns % 100)
			frac[i-1], frac[i] = digitPairs[d], digitPairs[d+1]
			ns /= 100
		}
		frac[1] = byte('0' + ns)
		n := 10
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, frac[:n]...)
	}
	b = append(b, c.zone...)
	return append(b, '"')
}

// digitPairs holds "00" to "99", to write a fraction two digits a step.
const digitPairs = "00010203040506070809" +
	"10111213141516171819" +
	"20212223242526272829" +
	"30313233343536373839" +
	"40414243444546474849" +
	"50515253545556575859" +
	"60616263646566676869" +
	"70717273747576777879" +
	"80818283848586878889" +
	"90919293949596979899"

// appendLevel writes the standard levels' names without escaping them.
func appendLevel(b []byte, l slog.Level) []byte {
	switch l {
	case slog.LevelDebug:
		return append(b, `"DEBUG"`...)
	case slog.LevelInfo:
		return append(b, `"INFO"`...)
	case slog.LevelWarn:
		return append(b, `"WARN"`...)
	case slog.LevelError:
		return append(b, `"ERROR"`...)
	}
	return appendString(b, l.String())
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
