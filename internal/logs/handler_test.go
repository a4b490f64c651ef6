package logs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

type valuer struct{}

func (valuer) LogValue() slog.Value { return slog.StringValue("resolved") }

type point struct{ X, Y int }

// TestHandlerMatchesSlogJSON encodes the same records with our handler and
// slog's own JSON handler; the parsed objects must be equal, so our lines
// read like any slog JSON line.
func TestHandlerMatchesSlogJSON(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 600, time.UTC)
	records := []func(*slog.Logger){
		func(l *slog.Logger) { l.Info("plain") },
		func(l *slog.Logger) {
			l.Warn("kinds \"quoted\"\n\t\x01 \u2028 é \xff", "s", "v", "i", -3, "u", uint64(7), "f", 1.5, "b", true,
				"d", time.Second, "t", at, "err", errors.New("boom"), "nil", nil, "any", point{1, 2}, "lv", valuer{},
				"m", map[string]int{"a": 1})
		},
		func(l *slog.Logger) {
			l.With("a", 1).WithGroup("g").With("b", 2).WithGroup("h").Info("groups", "c", 3, slog.Group("inner", "d", 4), slog.Group("empty"))
		},
		func(l *slog.Logger) { l.WithGroup("g").WithGroup("h").Info("empty groups vanish") },
		func(l *slog.Logger) { l.Info("inline", slog.Group("", "x", 1), slog.Attr{}) },
		func(l *slog.Logger) { l.Debug("debug") },
		func(l *slog.Logger) { l.Warn("warn") },
		func(l *slog.Logger) { l.Error("error") },
		func(l *slog.Logger) { l.Log(context.Background(), slog.LevelInfo+2, "between levels") },
		func(l *slog.Logger) { l.Log(context.Background(), slog.LevelError+4, "above error") },
	}
	for i, rec := range records {
		var want bytes.Buffer
		ref := slog.New(slog.NewJSONHandler(&want, &slog.HandlerOptions{Level: slog.LevelDebug}))
		rec(ref)
		got := encodeWith(t, rec)
		var g, w map[string]any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatalf("record %d: our output is not JSON: %v: %s", i, err, got)
		}
		if err := json.Unmarshal(want.Bytes(), &w); err != nil {
			t.Fatal(err)
		}
		delete(g, "time")
		delete(w, "time")
		if !reflect.DeepEqual(g, w) {
			t.Errorf("record %d:\n got %s\nwant %s", i, got, want.Bytes())
		}
	}
}

// encodeWith runs rec against a Handler whose submit is captured.
func encodeWith(t *testing.T, rec func(*slog.Logger)) []byte {
	t.Helper()
	var out []byte
	h := &Handler{l: &Logger{opts: Options{Level: slog.LevelDebug}}}
	capture := captureHandler{h: h, out: &out}
	rec(slog.New(capture))
	return out
}

// captureHandler calls Handler.Handle's encoding without a pipeline.
type captureHandler struct {
	h   *Handler
	out *[]byte
}

func (c captureHandler) Enabled(ctx context.Context, l slog.Level) bool { return c.h.Enabled(ctx, l) }
func (c captureHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return captureHandler{h: c.h.WithAttrs(a).(*Handler), out: c.out}
}
func (c captureHandler) WithGroup(n string) slog.Handler {
	return captureHandler{h: c.h.WithGroup(n).(*Handler), out: c.out}
}
func (c captureHandler) Handle(ctx context.Context, r slog.Record) error {
	bp := c.h.encode(ctx, &r)
	*c.out = append([]byte(nil), *bp...)
	return nil
}

// TestZeroTime: a record without a time has no time key, as slog's
// handlers write it.
func TestZeroTime(t *testing.T) {
	h := &Handler{l: &Logger{}}
	r := slog.NewRecord(time.Time{}, slog.LevelWarn, "no time", 0)
	bp := h.encode(context.Background(), &r)
	defer putBuf(bp)
	if got, want := string(*bp), `{"level":"WARN","msg":"no time"}`+"\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestRequestID(t *testing.T) {
	ctx := WithRequestID(context.Background(), "req-42")
	out := encodeWith(t, func(l *slog.Logger) { l.InfoContext(ctx, "with id") })
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	if m["request_id"] != "req-42" {
		t.Errorf("request_id = %v in %s", m["request_id"], out)
	}
	if _, ok := RequestID(context.Background()); ok {
		t.Error("RequestID found an id in an empty context")
	}
}

// appendTime caches each second's text; whatever the cache holds, the
// result must be AppendFormat's RFC 3339 with nanoseconds.
func TestAppendTime(t *testing.T) {
	india := time.FixedZone("IST", 5*3600+1800)
	west := time.FixedZone("", -7*3600)
	base := time.Date(2026, 11, 28, 20, 56, 33, 0, time.UTC)
	var times []time.Time
	for _, loc := range []*time.Location{time.UTC, india, west, time.Local} {
		for _, ns := range []int{0, 1, 600, 100_000_000, 123_456_789, 999_999_999} {
			times = append(times, base.Add(time.Duration(ns)).In(loc))
		}
	}
	times = append(times, time.Date(1, 1, 1, 0, 0, 0, 5, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 1, west),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 6, 1, 0, 0, 0, 0, india), base.Add(time.Second), base)
	for round := range 2 { // the second round reads the cache the first one filled
		for _, tm := range times {
			want := `"` + tm.Format(time.RFC3339Nano) + `"`
			if got := string(appendTime(nil, tm)); got != want {
				t.Errorf("round %d: appendTime(%v) = %s, want %s", round, tm, got, want)
			}
		}
	}
}

func FuzzAppendTime(f *testing.F) {
	f.Add(int64(1795900593), int64(123456789), 0)
	f.Add(int64(0), int64(0), 3600)
	f.Add(int64(-62135596800), int64(1), -25200)
	f.Fuzz(func(t *testing.T, sec, nsec int64, offset int) {
		tm := time.Unix(sec, nsec).In(time.FixedZone("", offset%(18*3600)))
		for range 2 {
			if got, want := string(appendTime(nil, tm)), `"`+tm.Format(time.RFC3339Nano)+`"`; got != want {
				t.Fatalf("appendTime(%v) = %s, want %s", tm, got, want)
			}
		}
	})
}

// FuzzAppendString checks the string escaping against encoding/json: the
// output must decode to what encoding/json's own encoding decodes to (the
// escapes may differ: \u000c for \f, as slog writes it), and may not hold
// U+2028 or U+2029 unescaped.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "quote\" back\\ nl\n tab\t cr\r \x01\x1f\f\b", "é ü 日本", "\u2028\u2029", "\xff\xfe bad", "<a&b>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		ours := appendString(nil, s)
		// After other bytes, with no room to spare and with plenty: the
		// word-wise copy writes into b's spare capacity.
		for _, prefix := range [][]byte{[]byte(`{"k":`), append(make([]byte, 0, 4096), `{"k":`...)} {
			if got := appendString(prefix, s); string(got) != `{"k":`+string(ours) {
				t.Fatalf("appendString after a prefix = %s, want %s", got, `{"k":`+string(ours))
			}
		}
		var got, want string
		if err := json.Unmarshal(ours, &got); err != nil {
			t.Fatalf("appendString(%q) = %s: not a JSON string: %v", s, ours, err)
		}
		if err := json.Unmarshal(ref, &want); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("appendString(%q) = %s decodes to %q; encoding/json's decodes to %q", s, ours, got, want)
		}
		if strings.ContainsAny(string(ours), "\u2028\u2029") {
			t.Fatalf("appendString(%q) = %s holds a raw line or paragraph separator", s, ours)
		}
	})
}
