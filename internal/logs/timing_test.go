package logs

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
)

func readRecords(t *testing.T, dir string) []map[string]any {
	t.Helper()
	lines, _ := readLogLines(t, dir, DefaultFileName)
	var out []map[string]any
	for _, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		out = append(out, m)
	}
	return out
}

func TestTime(t *testing.T) {
	dir := t.TempDir()
	l, err := New(Options{Dir: dir, Synchronous: true, CopyLevel: "off"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := WithRequestID(context.Background(), "r1")
	work := func(fail bool) (err error) {
		defer Time(ctx, l.Slog(), "work")(&err)
		if fail {
			return errors.New("disk on fire")
		}
		return nil
	}
	_ = work(false)
	_ = work(true)
	closeLogger(t, l)
	recs := readRecords(t, dir)
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	for i, want := range []struct{ level, outcome string }{{"INFO", "ok"}, {"ERROR", "error"}} {
		r := recs[i]
		if r["func"] != "work" || r["level"] != want.level || r["outcome"] != want.outcome || r["request_id"] != "r1" {
			t.Errorf("record %d: %v", i, r)
		}
		if d, ok := r["duration_seconds"].(float64); !ok || d < 0 {
			t.Errorf("record %d: duration_seconds %v", i, r["duration_seconds"])
		}
	}
	if recs[1]["error"] != "disk on fire" {
		t.Errorf("error = %v", recs[1]["error"])
	}
}
