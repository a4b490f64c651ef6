package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/tuning"
)

// runtimeSettings builds a registry with the service's runtime keys, one of
// each setting kind, over plain variables.
func runtimeSettings() *tuning.Registry {
	r := tuning.New(slog.New(slog.NewJSONHandler(io.Discard, nil)), func() time.Time { return testNow })
	level, size, files, age := "info", int64(10<<20), int64(5), int64(7)
	ttl, slow, batchTimeout := 5*time.Minute, time.Second, 50*time.Millisecond
	threshold, batch, compress := 90.0, int64(64), int64(1024)
	dur := func(key string, lo, hi time.Duration, v *time.Duration) tuning.Setting {
		return tuning.Duration(key, key, lo, hi, func() time.Duration { return *v }, func(d time.Duration) { *v = d }, nil)
	}
	integer := func(key string, lo, hi int64, v *int64) tuning.Setting {
		return tuning.Integer(key, key, lo, hi, func() int64 { return *v }, func(n int64) { *v = n }, nil)
	}
	byteCount := func(key string, lo, hi int64, v *int64) tuning.Setting {
		return tuning.Bytes(key, key, lo, hi, func(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) },
			func() int64 { return *v }, func(n int64) { *v = n })
	}
	r.Add(tuning.Enum("logs.level", "level", []string{"debug", "info", "warn", "error"}, func() string { return level }, func(s string) { level = s }))
	r.Add(byteCount("logs.max_file_size", 1<<10, 1<<40, &size))
	r.Add(integer("logs.max_files", 0, 100000, &files))
	r.Add(integer("logs.max_age_days", 0, 36500, &age))
	r.Add(dur("cache.default_ttl", time.Second, 24*time.Hour, &ttl))
	r.Add(byteCount("cache.compression_threshold", 1, 1<<30, &compress))
	r.Add(dur("database.slow_query_threshold", 0, time.Hour, &slow))
	r.Add(integer("anomaly.batch_size", 1, 10000, &batch))
	r.Add(dur("anomaly.batch_timeout", time.Millisecond, time.Minute, &batchTimeout))
	r.Add(tuning.Number("anomaly.thresholds.cpu_usage", "cpu", 0.01, 100, func() float64 { return threshold }, func(f float64) { threshold = f }))
	return r
}

// TestPutConfigRefusesNull sends JSON null for every runtime key: each is a
// 400 validation problem naming the key, and nothing changes. Before, null
// applied the type's zero (logs.max_files: null turned retention off).
func TestPutConfigRefusesNull(t *testing.T) {
	admin := "Bearer " + adminToken
	f := newFixture(t, func(d *Deps) { d.Tunables = runtimeSettings(); d.MaxBodyBytes = 1 << 10 })
	runtime := func() map[string]any {
		t.Helper()
		w := f.do(t, http.MethodGet, "/performance/config", "", "", "")
		var rep ConfigReport
		if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil || w.Code != http.StatusOK {
			t.Fatalf("GET /performance/config: %d %v %s", w.Code, err, w.Body)
		}
		out := map[string]any{}
		for _, e := range rep.Runtime {
			out[e.Key] = e.Value
		}
		return out
	}
	before := runtime()
	if len(before) == 0 {
		t.Fatal("no runtime settings listed")
	}

	type tc struct {
		name, body string
		field      string // the field the problem must name
	}
	var cases []tc
	for key := range before {
		cases = append(cases, tc{"null " + key, fmt.Sprintf(`{%q: null}`, key), key})
	}
	cases = append(cases,
		tc{"null beside a valid change", `{"logs.level": "debug", "logs.max_files": null}`, "logs.max_files"},
		tc{"null with spaces", `{"logs.max_files":   null  }`, "logs.max_files"},
		tc{"null body", `null`, "body"},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := f.do(t, http.MethodPut, "/performance/config", admin, "application/json", c.body)
			if w.Code != http.StatusBadRequest {
				t.Fatalf("PUT %s: %d %s; want 400", c.body, w.Code, w.Body)
			}
			p := decodeProblem(t, w)
			if p.Type != problemType(CodeValidation) || len(p.Errors) != 1 || p.Errors[0].Field != c.field || p.Errors[0].Detail == "" {
				t.Fatalf("PUT %s: problem %+v; want a validation problem naming %s", c.body, p, c.field)
			}
			if after := runtime(); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Fatalf("PUT %s changed settings:\n got %v\nwant %v", c.body, after, before)
			}
		})
	}

	// A real value still applies: null is refused, not every change.
	if w := f.do(t, http.MethodPut, "/performance/config", admin, "application/json", `{"logs.max_files": 0}`); w.Code != http.StatusOK {
		t.Fatalf("PUT logs.max_files 0: %d %s", w.Code, w.Body)
	}
	if got := runtime()["logs.max_files"]; got != float64(0) {
		t.Fatalf("logs.max_files = %v after setting 0", got)
	}
}
