package detectcli

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/anomaly/stream"
)

// fuzzLayouts are the timestamp spellings FuzzDetectRows writes, all of
// which the decoder must read. A Unix count is never negative, so an instant
// before 1970 is written in RFC 3339 instead.
var fuzzLayouts = []func(time.Time) string{
	func(t time.Time) string {
		if t.Unix() < 0 {
			return t.Format(time.RFC3339Nano)
		}
		return strconv.FormatInt(t.Unix(), 10)
	},
	func(t time.Time) string {
		// Milliseconds are told from seconds by their magnitude (from 1e11).
		if ms := t.UnixMilli(); ms >= 1e12 {
			return strconv.FormatInt(ms, 10)
		} else if ms < 0 {
			return t.Format(time.RFC3339Nano)
		}
		return strconv.FormatInt(t.Unix(), 10)
	},
	func(t time.Time) string { return t.Format("2006-01-02 15:04:05") },
	func(t time.Time) string { return t.Format(time.RFC3339Nano) },
	func(t time.Time) string { return t.Format("2006-01-02") },
}

// FuzzDetectRows writes well-formed CSV from fuzzed points, so the fuzzer
// spends its time in the detector rather than in CSV syntax: timestamps of
// any era in any accepted spelling (before 1970 included), any float64
// value, one or two metrics, with or without --explain. Every 16 bytes of
// data are one row: Unix seconds and a value, little-endian. A value that is
// not finite or beyond ±stream.MaxAbsValue must be refused naming its line
// and column; otherwise every input
// row gets one output row echoing its timestamp, with a score in [0,1] and
// is_anomaly 0 or 1.
func FuzzDetectRows(f *testing.F) {
	point := func(sec int64, v float64) []byte {
		b := binary.LittleEndian.AppendUint64(nil, uint64(sec))
		return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	var daily, early, wild []byte
	for i := range 200 {
		daily = append(daily, point(1396310400+int64(i)*300, 50+20*math.Sin(float64(i)/20))...)
		early = append(early, point(-86400*3+int64(i)*1800, float64(i%5))...)
		wild = append(wild, point(int64(i%4)*int64(1e10)-int64(1e10), math.Pow(-10, float64(i%300)))...)
	}
	f.Add(daily, uint8(0), false, false)
	f.Add(early, uint8(2), true, false)
	f.Add(wild, uint8(1), true, true)
	f.Add(point(0, math.NaN()), uint8(0), false, false)
	f.Fuzz(func(t *testing.T, data []byte, layout uint8, multi, explain bool) {
		format := fuzzLayouts[int(layout)%len(fuzzLayouts)]
		var in strings.Builder
		in.WriteString("timestamp,value")
		if multi {
			in.WriteString(",other")
		}
		in.WriteByte('\n')
		var stamps []string
		badLine := 0
		for ; len(data) >= 16; data = data[16:] {
			// ±3e9 s spans 1875 to 2065; epoch milliseconds must not
			// reach the 13 digits that would read as seconds.
			sec := int64(binary.LittleEndian.Uint64(data)) % 3e9
			v := math.Float64frombits(binary.LittleEndian.Uint64(data[8:]))
			ts := format(time.Unix(sec, 0).UTC())
			stamps = append(stamps, ts)
			if badLine == 0 && !(math.Abs(v) <= stream.MaxAbsValue) {
				badLine = len(stamps) + 1
			}
			fmt.Fprintf(&in, "%s,%s", ts, strconv.FormatFloat(v, 'g', -1, 64))
			if multi {
				fmt.Fprintf(&in, ",%s", strconv.FormatFloat(-v, 'e', -1, 64))
			}
			in.WriteByte('\n')
		}
		var args []string
		if explain {
			args = append(args, "--explain")
		}
		var out, errb bytes.Buffer
		err := Run(context.Background(), args, strings.NewReader(in.String()), &out, &errb)
		if badLine > 0 {
			var ie *InputError
			if !errors.As(err, &ie) || ie.Line != badLine || ie.Column != "value" {
				t.Fatalf("value out of range on line %d: got %v", badLine, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("well-formed input refused: %v\n%s", err, in.String())
		}
		recs, err := csv.NewReader(&out).ReadAll()
		if err != nil {
			t.Fatalf("output is not CSV: %v", err)
		}
		if len(recs) != len(stamps)+1 {
			t.Fatalf("%d output rows for %d input rows", len(recs)-1, len(stamps))
		}
		for i, rec := range recs[1:] {
			if rec[0] != stamps[i] {
				t.Fatalf("row %d: timestamp %q, input had %q", i+1, rec[0], stamps[i])
			}
			s, err := strconv.ParseFloat(rec[2], 64)
			if err != nil || !(s >= 0 && s <= 1) || (rec[3] != "0" && rec[3] != "1") {
				t.Fatalf("row %d: score %q, is_anomaly %q", i+1, rec[2], rec[3])
			}
		}
	})
}
