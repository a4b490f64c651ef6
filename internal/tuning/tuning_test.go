package tuning

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"
)

type state struct {
	ttl   time.Duration
	n     int64
	f     float64
	level string
	size  int64
}

func registry(st *state, logw *bytes.Buffer) *Registry {
	r := New(slog.New(slog.NewJSONHandler(logw, nil)), func() time.Time { return time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC) })
	r.Add(Duration("cache.default_ttl", "ttl", time.Second, time.Hour, func() time.Duration { return st.ttl }, func(d time.Duration) { st.ttl = d }, nil))
	r.Add(Integer("anomaly.batch_size", "batch", 1, 1000, func() int64 { return st.n }, func(n int64) { st.n = n },
		func(n int64) error {
			if n == 13 {
				return errors.New("unlucky")
			}
			return nil
		}))
	r.Add(Number("anomaly.cpu", "cpu", 0.1, 100, func() float64 { return st.f }, func(f float64) { st.f = f }))
	r.Add(Enum("logs.level", "level", []string{"debug", "info"}, func() string { return st.level }, func(s string) { st.level = s }))
	r.Add(Bytes("logs.max_file_size", "size", 1024, 1<<30, func(s string) (int64, error) {
		if s == "64KiB" {
			return 64 << 10, nil
		}
		return strconv.ParseInt(s, 10, 64)
	}, func() int64 { return st.size }, func(n int64) { st.size = n }))
	return r
}

func raw(m map[string]string) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	for k, v := range m {
		out[k] = json.RawMessage(v)
	}
	return out
}

func TestApplyAllOrNothing(t *testing.T) {
	bad := []struct {
		name    string
		changes map[string]string
		key     string
	}{
		{"unknown key", map[string]string{"cache.nope": `1`}, "cache.nope"},
		{"duration type", map[string]string{"cache.default_ttl": `true`}, "cache.default_ttl"},
		{"duration text", map[string]string{"cache.default_ttl": `"soon"`}, "cache.default_ttl"},
		{"duration range", map[string]string{"cache.default_ttl": `"2h"`}, "cache.default_ttl"},
		{"integer fraction", map[string]string{"anomaly.batch_size": `1.5`}, "anomaly.batch_size"},
		{"integer range", map[string]string{"anomaly.batch_size": `0`}, "anomaly.batch_size"},
		{"integer check", map[string]string{"anomaly.batch_size": `13`}, "anomaly.batch_size"},
		{"integer as string", map[string]string{"anomaly.batch_size": `"10"`}, "anomaly.batch_size"},
		{"number range", map[string]string{"anomaly.cpu": `101`}, "anomaly.cpu"},
		{"enum", map[string]string{"logs.level": `"loud"`}, "logs.level"},
		{"bytes", map[string]string{"logs.max_file_size": `"lots"`}, "logs.max_file_size"},
		{"bytes range", map[string]string{"logs.max_file_size": `10`}, "logs.max_file_size"},
		// null is no value: without the check it applied the type's zero.
		{"duration null", map[string]string{"cache.default_ttl": `null`}, "cache.default_ttl"},
		{"integer null", map[string]string{"anomaly.batch_size": `null`}, "anomaly.batch_size"},
		{"number null", map[string]string{"anomaly.cpu": ` null `}, "anomaly.cpu"},
		{"enum null", map[string]string{"logs.level": `null`}, "logs.level"},
		{"bytes null", map[string]string{"logs.max_file_size": `null`}, "logs.max_file_size"},
		{"empty", map[string]string{"anomaly.batch_size": ``}, "anomaly.batch_size"},
		// One bad value among good ones: nothing is applied.
		{"mixed", map[string]string{"cache.default_ttl": `"30s"`, "logs.level": `"loud"`}, "logs.level"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			st := &state{ttl: time.Minute, n: 100, f: 90, level: "info", size: 4096}
			before := *st
			var logw bytes.Buffer
			_, err := registry(st, &logw).Apply(raw(tc.changes), "ops")
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Key != tc.key {
				t.Fatalf("err = %v; want one field error for %s", err, tc.key)
			}
			if *st != before || logw.Len() != 0 {
				t.Fatalf("a refused request changed state %+v or logged %q", *st, logw.String())
			}
		})
	}
}

func TestApplyChangesAndAudits(t *testing.T) {
	st := &state{ttl: time.Minute, n: 100, f: 90, level: "info", size: 4096}
	var logw bytes.Buffer
	r := registry(st, &logw)
	changes, err := r.Apply(raw(map[string]string{
		"cache.default_ttl": `120`, "anomaly.batch_size": `50`, "anomaly.cpu": `85.5`, "logs.level": `"DEBUG"`, "logs.max_file_size": `"64KiB"`,
	}), "admin-token")
	if err != nil {
		t.Fatal(err)
	}
	if *st != (state{ttl: 2 * time.Minute, n: 50, f: 85.5, level: "debug", size: 64 << 10}) {
		t.Fatalf("state after apply: %+v", *st)
	}
	if len(changes) != 5 || changes[0].Key != "anomaly.batch_size" || changes[0].Old != int64(100) || changes[0].New != int64(50) || changes[0].By != "admin-token" {
		t.Fatalf("changes: %+v", changes)
	}
	if got := strings.Count(logw.String(), `"audit":"config"`); got != 5 {
		t.Fatalf("%d audit lines; want 5:\n%s", got, logw.String())
	}
	for _, e := range r.Entries() {
		if e.ChangedBy != "admin-token" || e.ChangedAt == nil {
			t.Errorf("entry %s does not show who changed it", e.Key)
		}
		if e.Key == "cache.default_ttl" && e.Value != "2m0s" {
			t.Errorf("cache.default_ttl shows %v", e.Value)
		}
	}
	if _, err := r.Apply(nil, "x"); err == nil {
		t.Fatal("an empty change was accepted")
	}
}
