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
		var w map[string]any
		if err := json.Unmarshal(want.Bytes(), &w); err != nil {
			t.Fatal(err)
		}
		delete(w, "time")
		// Both encoders: Handle's, from a slog.Record, and LogAttrs's,
		// from the record's parts.
		for _, direct := range []bool{false, true} {
			got := encodeWith(t, direct, rec)
			var g map[string]any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatalf("record %d (direct %v): our output is not JSON: %v: %s", i, direct, err, got)
			}
			delete(g, "time")
			if !reflect.DeepEqual(g, w) {
				t.Errorf("record %d (direct %v):\n got %s\nwant %s", i, direct, got, want.Bytes())
			}
		}
	}
}

// encodeWith runs rec against a Handler whose submit is captured; direct
// encodes through encodeAttrs, LogAttrs's encoder, instead of encode.
func encodeWith(t *testing.T, direct bool, rec func(*slog.Logger)) []byte {
	t.Helper()
	var out []byte
	h := &Handler{l: &Logger{opts: Options{Level: slog.LevelDebug}}}
	capture := captureHandler{h: h, out: &out, direct: direct}
	rec(slog.New(capture))
	return out
}

// captureHandler calls Handler.Handle's encoding without a pipeline.
type captureHandler struct {
	h      *Handler
	out    *[]byte
	direct bool
}

func (c captureHandler) Enabled(ctx context.Context, l slog.Level) bool { return c.h.Enabled(ctx, l) }
func (c captureHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return captureHandler{h: c.h.WithAttrs(a).(*Handler), out: c.out, direct: c.direct}
}
func (c captureHandler) WithGroup(n string) slog.Handler {
	return captureHandler{h: c.h.WithGroup(n).(*Handler), out: c.out, direct: c.direct}
}
func (c captureHandler) Handle(ctx context.Context, r slog.Record) error {
	var bp *[]byte
	if c.direct {
		var attrs []slog.Attr
		r.Attrs(func(a slog.Attr) bool { attrs = append(attrs, a); return true })
		bp = c.h.encodeAttrs(ctx, r.Time, r.Level, r.Message, attrs)
	} else {
		bp = c.h.encode(ctx, &r)
	}
	*c.out = append([]byte(nil), *bp...)
	putBuf(bp)
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

// TestLogAttrs: LogAttrs through a real pipeline writes what slog.Logger
// writes, honours the level, With and WithGroup, and hands a logger that is
// not the pipeline's to slog.
func TestLogAttrs(t *testing.T) {
	dir := t.TempDir()
	l, err := New(Options{Dir: dir, Synchronous: true, CopyLevel: "off", Level: slog.LevelInfo}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := WithRequestID(context.Background(), "r7")
	attrs := []slog.Attr{slog.String("s", "v"), slog.Int("i", 3), slog.Group("g", slog.Bool("b", true)), slog.Group("empty")}
	for _, lg := range []*slog.Logger{l.Slog(), l.Slog().With("w", 1), l.Slog().WithGroup("outer"), l.Slog().WithGroup("e")} {
		lg.LogAttrs(ctx, slog.LevelWarn, "m", attrs...)
		LogAttrs(ctx, lg, slog.LevelWarn, "m", attrs...)
		LogAttrs(ctx, lg, slog.LevelDebug, "below the level")
	}
	LogAttrs(ctx, l.Slog().WithGroup("e"), slog.LevelInfo, "empty group vanishes")
	closeLogger(t, l)
	recs := readRecords(t, dir)
	if len(recs) != 9 {
		t.Fatalf("%d records, want 9: %v", len(recs), recs)
	}
	for i := 0; i < 8; i += 2 {
		delete(recs[i], "time")
		delete(recs[i+1], "time")
		if !reflect.DeepEqual(recs[i], recs[i+1]) {
			t.Errorf("LogAttrs wrote %v, slog.Logger wrote %v", recs[i+1], recs[i])
		}
	}
	if _, ok := recs[8]["e"]; ok || recs[8]["msg"] != "empty group vanishes" {
		t.Errorf("record without attributes: %v", recs[8])
	}

	var buf bytes.Buffer
	LogAttrs(ctx, slog.New(slog.NewJSONHandler(&buf, nil)), slog.LevelInfo, "other handler", slog.Int("n", 1))
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil || m["msg"] != "other handler" || m["n"] != 1.0 {
		t.Errorf("another handler got %q (%v)", buf.Bytes(), err)
	}
}

// TestLogAttrsAllocs: LogAttrs does not allocate for ten attributes, where
// slog.Logger's front end allocates their copy.
func TestLogAttrsAllocs(t *testing.T) {
	l, err := New(Options{Dir: t.TempDir(), CopyLevel: "off"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeLogger(t, l)
	ctx := context.Background()
	lg := l.Slog()
	allocs := testing.AllocsPerRun(1000, func() {
		LogAttrs(ctx, lg, slog.LevelInfo, "request handled",
			slog.String("method", "GET"), slog.String("route", "/api/v1/items/{id}"),
			slog.Int("status", 200), slog.Int("bytes", 5123), slog.Duration("duration", time.Millisecond),
			slog.String("user", "alice"), slog.String("tenant", "acme"), slog.String("region", "eu-west-1"),
			slog.Bool("cache_hit", true), slog.Int("seq", 1))
	})
	if allocs != 0 {
		t.Errorf("LogAttrs allocates %v times per call", allocs)
	}
}

func TestRequestID(t *testing.T) {
	ctx := WithRequestID(context.Background(), "req-42")
	out := encodeWith(t, false, func(l *slog.Logger) { l.InfoContext(ctx, "with id") })
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
