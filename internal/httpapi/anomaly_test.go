package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartcloudops/smartcloudops/internal/anomaly"
	"github.com/smartcloudops/smartcloudops/internal/config"
	"github.com/smartcloudops/smartcloudops/internal/domain"
	"github.com/smartcloudops/smartcloudops/internal/health"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

// anomalyFixture is the API with a real anomaly service on a real SQLite
// store; samples are timestamped around the fixture's clock.
func anomalyFixture(t *testing.T, mod func(o *anomaly.Options)) (*fixture, *anomaly.Service, *store.Store) {
	t.Helper()
	return anomalyFixtureOn(t, storetest.SQLiteURL(t), mod)
}

// anomalyFixtureOn is anomalyFixture on the database at url.
func anomalyFixtureOn(t *testing.T, url string, mod func(o *anomaly.Options)) (*fixture, *anomaly.Service, *store.Store) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{URL: url, PoolSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	o := anomaly.Options{Store: st, Registerer: prometheus.NewRegistry(), MaxBatch: 5, QueueSize: 100, MinTrainingRows: 100}
	if mod != nil {
		mod(&o)
	}
	svc, err := anomaly.New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	f := newFixture(t, func(d *Deps) {
		d.Anomaly = svc
		d.MaxBodyBytes = 1 << 20
		openTenantReads(d) // the tests drive detection anonymously
	})
	return f, svc, st
}

func userToken(t *testing.T, tenant string) string {
	c := jwt.MapClaims{"sub": "agent", "role": "user", "exp": testNow.Add(time.Hour).Unix()}
	if tenant != "" {
		c["tenant"] = tenant
	}
	return signed(t, jwt.SigningMethodHS256, []byte(jwtSecret), c)
}

const sampleJSON = `{"host":"web-1","timestamp":"2026-11-28T11:59:00Z","metrics":{"cpu_usage":95.5,"memory_usage":40}}`

func TestAnomalyDetectShapes(t *testing.T) {
	f, _, _ := anomalyFixture(t, nil)
	w := f.do(t, "POST", "/performance/anomaly/detect", "", "application/json", sampleJSON)
	if w.Code != http.StatusOK {
		t.Fatalf("single: %d %s", w.Code, w.Body)
	}
	var r anomaly.Result
	if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if !r.IsAnomaly || r.ModelVersion != anomaly.ThresholdVersion || r.Severity != domain.SeverityHigh || r.Host != "web-1" ||
		len(r.Contributors) == 0 || r.Contributors[0].Metric != "cpu_usage" || r.Features["cpu_usage"] != 95.5 {
		t.Fatalf("single result = %+v", r)
	}
	for _, body := range []string{
		`{"samples":[` + sampleJSON + `,{"host":"web-2","metrics":{"cpu":10}}]}`,
		`[` + sampleJSON + `,{"host":"web-2","timestamp":1795867140,"metrics":{"cpu":10}}]`,
	} {
		w := f.do(t, "POST", "/performance/anomaly/detect?use_cache=false", "", "application/json", body)
		var b DetectBatchResponse
		if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &b) != nil || b.Count != 2 || len(b.Results) != 2 || b.Results[1].IsAnomaly {
			t.Fatalf("batch %s: %d %s", body, w.Code, w.Body)
		}
	}
	w = f.do(t, "GET", "/performance/anomaly/stats", "", "", "")
	var st anomaly.Stats
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &st) != nil || st.SamplesScored != 5 || st.AnomaliesBySeverity["high"] != 3 {
		t.Fatalf("stats: %d %s", w.Code, w.Body)
	}
}

func TestAnomalyBadInput(t *testing.T) {
	f, _, _ := anomalyFixture(t, nil)
	many := strings.Repeat(`{"host":"h","metrics":{"cpu":1}},`, 6)
	cases := []struct {
		name, query, body, field string
		status                   int
	}{
		{"string value", "", `{"host":"a","metrics":{"cpu_usage":"high"}}`, "metrics.cpu_usage", 400},
		{"boolean value", "", `{"host":"a","metrics":{"cpu_usage":true}}`, "metrics.cpu_usage", 400},
		{"null value", "", `{"host":"a","metrics":{"cpu_usage":null}}`, "metrics.cpu_usage", 400},
		{"overflowing value", "", `{"host":"a","metrics":{"cpu_usage":1e999}}`, "metrics.cpu_usage", 400},
		{"unknown timestamp format", "", `{"host":"a","timestamp":"28/11/2026 10:00","metrics":{"cpu":1}}`, "timestamp", 400},
		{"boolean timestamp", "", `{"host":"a","timestamp":true,"metrics":{"cpu":1}}`, "timestamp", 400},
		{"future timestamp", "", `{"host":"a","timestamp":"2099-01-01T00:00:00Z","metrics":{"cpu":1}}`, "timestamp", 400},
		{"negative unix time", "", `{"host":"a","timestamp":-5,"metrics":{"cpu":1}}`, "timestamp", 400},
		{"missing host", "", `{"metrics":{"cpu":1}}`, "host", 400},
		{"empty host", "", `{"host":" ","metrics":{"cpu":1}}`, "host", 400},
		{"numeric host", "", `{"host":7,"metrics":{"cpu":1}}`, "host", 400},
		{"host with space", "", `{"host":"a b","metrics":{"cpu":1}}`, "host", 400},
		{"missing metrics", "", `{"host":"a"}`, "metrics", 400},
		{"empty metrics", "", `{"host":"a","metrics":{}}`, "metrics", 400},
		{"metrics not an object", "", `{"host":"a","metrics":[1,2]}`, "metrics", 400},
		{"bad metric name", "", `{"host":"a","metrics":{"cpu usage":1}}`, "metrics.cpu usage", 400},
		{"two names for one metric", "", `{"host":"a","metrics":{"cpu":1,"cpu_usage":2}}`, "metrics.cpu_usage", 400},
		{"unknown field", "", `{"host":"a","metrics":{"cpu":1},"extra":1}`, "extra", 400},
		{"empty batch", "", `{"samples":[]}`, "samples", 400},
		{"empty array", "", `[]`, "samples", 400},
		{"batch not an array", "", `{"samples":{"host":"a"}}`, "samples", 400},
		{"batch with other keys", "", `{"samples":[],"x":1}`, "samples", 400},
		{"batch over the limit", "", `{"samples":[` + strings.TrimSuffix(many, ",") + `]}`, "samples", 400},
		{"bad sample in batch", "", `{"samples":[{"host":"a","metrics":{"cpu":1}},{"host":"b","metrics":{"cpu":"x"}}]}`, "samples[1].metrics.cpu", 400},
		{"non-object sample", "", `[1]`, "samples[0].sample", 400},
		{"bad use_cache", "?use_cache=maybe", sampleJSON, "use_cache", 400},
		{"string body", "", `"hello"`, "", 400},
		{"malformed JSON", "", `{"host":`, "", 400},
		{"empty body", "", ``, "", 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, path := range []string{"/performance/anomaly/detect", "/api/v1/metrics"} {
				w := f.do(t, "POST", path+c.query, "Bearer "+adminToken, "application/json", c.body)
				if c.query != "" && path == "/api/v1/metrics" {
					continue // use_cache is detect's
				}
				if w.Code != c.status {
					t.Fatalf("%s: status %d; want %d: %s", path, w.Code, c.status, w.Body)
				}
				p := decodeProblem(t, w)
				if c.field == "" {
					continue
				}
				if len(p.Errors) == 0 || p.Errors[0].Field != c.field || p.Errors[0].Detail == "" {
					t.Fatalf("%s: problem %+v; want field %q", path, p, c.field)
				}
			}
		})
	}
}

func TestAnomalyIngestAuthAndTenant(t *testing.T) {
	f, _, st := anomalyFixture(t, nil)
	body := func(host string) string {
		return fmt.Sprintf(`{"host":%q,"timestamp":"2026-11-28T11:00:00Z","metrics":{"cpu_usage":99,"gc_ms":3}}`, host)
	}
	if w := f.do(t, "POST", "/api/v1/metrics", "", "application/json", body("web-1")); w.Code != http.StatusUnauthorized {
		t.Fatalf("anonymous ingest: %d", w.Code)
	}
	w := f.do(t, "POST", "/api/v1/metrics", userToken(t, "acme"), "application/json", `[`+body("acme/web-1")+`,`+body("web-1")+`]`)
	if w.Code != http.StatusForbidden {
		t.Fatalf("tenant writing a foreign host: %d %s", w.Code, w.Body)
	}
	if p := decodeProblem(t, w); len(p.Errors) != 1 || p.Errors[0].Field != "samples[1].host" {
		t.Fatalf("tenant problem = %+v", p)
	}
	for _, c := range []struct{ auth, host string }{
		{userToken(t, "acme"), "acme/web-1"}, {userToken(t, ""), "web-1"}, {"Bearer " + adminToken, "web-2"},
	} {
		w := f.do(t, "POST", "/api/v1/metrics", c.auth, "application/json", body(c.host))
		var rep anomaly.IngestReport
		if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &rep) != nil || rep.Stored != 1 || rep.Anomalies != 1 {
			t.Fatalf("ingest %s: %d %s", c.host, w.Code, w.Body)
		}
	}
	list, err := st.AnomalyRange(context.Background(), store.AnomalyRangeQuery{})
	rows := list.Anomalies
	if err != nil || len(rows) != 3 || rows[0].Severity != "critical" {
		t.Fatalf("stored anomalies = %+v, %v", rows, err)
	}
	w = f.do(t, "POST", "/api/v1/metrics", userToken(t, ""), "application/json", body("web-1"))
	var rep anomaly.IngestReport
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &rep) != nil || rep.Duplicates != 1 || rep.Anomalies != 0 {
		t.Fatalf("re-sent ingest: %d %s", w.Code, w.Body)
	}
}

func TestAnomalyModelEndpoints(t *testing.T) {
	f, _, st := anomalyFixture(t, func(o *anomaly.Options) { o.Clock = fixedClock{testNow} })
	w := f.do(t, "GET", "/performance/anomaly/models", "", "", "")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"models": []`) {
		t.Fatalf("empty list: %d %s", w.Code, w.Body)
	}
	if w := f.do(t, "POST", "/performance/anomaly/models", userToken(t, ""), "", ""); w.Code != http.StatusForbidden {
		t.Fatalf("train as user: %d", w.Code)
	}
	w = f.do(t, "POST", "/performance/anomaly/models", "Bearer "+adminToken, "", "")
	if w.Code != http.StatusBadRequest || !strings.Contains(decodeProblem(t, w).Detail, "not enough") {
		t.Fatalf("train on an empty store: %d %s", w.Code, w.Body)
	}
	var rows []domain.MetricSample
	for i := range 300 {
		cpu, mem := 40+float64(i%17), 50+float64(i%11)
		rows = append(rows, domain.MetricSample{Host: "web-1", Timestamp: testNow.Add(-time.Duration(i) * time.Minute), CPUUsage: &cpu, MemoryUsage: &mem})
	}
	if _, err := st.InsertMetrics(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
	var versions []string
	for _, body := range []string{`{"activate":true}`, `{"activate":false}`} {
		w := f.do(t, "POST", "/performance/anomaly/models", "Bearer "+adminToken, "application/json", body)
		var info anomaly.ModelInfo
		if w.Code != http.StatusCreated || json.Unmarshal(w.Body.Bytes(), &info) != nil || info.TrainingRows != 300 {
			t.Fatalf("train %s: %d %s", body, w.Code, w.Body)
		}
		versions = append(versions, info.Version)
	}
	if w := f.do(t, "POST", "/performance/anomaly/models/nope/activate", "Bearer "+adminToken, "", ""); w.Code != http.StatusNotFound {
		t.Fatalf("activate unknown: %d %s", w.Code, w.Body)
	}
	if w := f.do(t, "POST", "/performance/anomaly/models/"+versions[1]+"/activate", userToken(t, ""), "", ""); w.Code != http.StatusForbidden {
		t.Fatalf("activate as user: %d", w.Code)
	}
	if w := f.do(t, "POST", "/performance/anomaly/models/"+versions[1]+"/activate", "Bearer "+adminToken, "", ""); w.Code != http.StatusOK {
		t.Fatalf("activate: %d %s", w.Code, w.Body)
	}
	var list ModelsResponse
	w = f.do(t, "GET", "/performance/anomaly/models", "", "", "")
	if json.Unmarshal(w.Body.Bytes(), &list) != nil || len(list.Models) != 2 {
		t.Fatalf("list: %s", w.Body)
	}
	for _, m := range list.Models {
		if m.Active != (m.Version == versions[1]) {
			t.Fatalf("after activation: %+v", list.Models)
		}
	}
	w = f.do(t, "POST", "/performance/anomaly/detect", "", "application/json", sampleJSON)
	if !strings.Contains(w.Body.String(), versions[1]) {
		t.Fatalf("detect after activation does not name %s: %s", versions[1], w.Body)
	}
}

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }
func (c fixedClock) NewTimer(d time.Duration) anomaly.Timer {
	return anomaly.SystemClock{}.NewTimer(d)
}

// stubAnomaly fails every call with err.
type stubAnomaly struct{ err error }

func (s stubAnomaly) Detect(context.Context, []anomaly.Sample, anomaly.DetectOptions) ([]anomaly.Result, error) {
	return nil, s.err
}
func (s stubAnomaly) Ingest(context.Context, []anomaly.Sample) (anomaly.IngestReport, error) {
	return anomaly.IngestReport{}, s.err
}
func (s stubAnomaly) Stats() anomaly.Stats                                { return anomaly.Stats{} }
func (s stubAnomaly) Models(context.Context) ([]anomaly.ModelInfo, error) { return nil, s.err }
func (s stubAnomaly) Train(context.Context, bool) (anomaly.ModelInfo, error) {
	return anomaly.ModelInfo{}, s.err
}
func (s stubAnomaly) Activate(context.Context, string) (anomaly.ModelInfo, error) {
	return anomaly.ModelInfo{}, s.err
}
func (s stubAnomaly) Rebaseline(context.Context, string, string, string) (anomaly.RebaselineReport, error) {
	return anomaly.RebaselineReport{}, s.err
}
func (s stubAnomaly) MaxBatch() int { return 10 }

func TestAnomalyErrorMapping(t *testing.T) {
	cases := []struct {
		err        error
		status     int
		retryAfter string
	}{
		{&anomaly.QueueFullError{Depth: 100, Capacity: 100, RetryAfter: 1500 * time.Millisecond}, 503, "2"},
		{fmt.Errorf("wrapped: %w", anomaly.ErrBusy), 503, "10"},
		{anomaly.ErrClosed, 503, "5"},
		{anomaly.ErrNoStore, 503, ""},
		{context.DeadlineExceeded, 503, ""},
		{errors.New("boom"), 500, ""},
	}
	for _, c := range cases {
		f := newFixture(t, func(d *Deps) { d.Anomaly = stubAnomaly{c.err}; d.MaxBodyBytes = 1 << 20 })
		for _, path := range []string{"/performance/anomaly/detect", "/api/v1/metrics"} {
			w := f.do(t, "POST", path, "Bearer "+adminToken, "application/json", sampleJSON)
			if w.Code != c.status || w.Header().Get("Retry-After") != c.retryAfter {
				t.Fatalf("%v on %s: %d Retry-After %q", c.err, path, w.Code, w.Header().Get("Retry-After"))
			}
			if p := decodeProblem(t, w); c.status == 500 && strings.Contains(p.Detail, "boom") {
				t.Fatalf("internal error leaked: %+v", p)
			}
		}
	}
	f := newFixture(t, nil)
	if w := f.do(t, "POST", "/performance/anomaly/detect", "Bearer "+adminToken, "application/json", sampleJSON); w.Code != 503 {
		t.Fatalf("detect without the part: %d", w.Code)
	}
}

func FuzzDecodeSamples(f *testing.F) {
	for _, s := range []string{sampleJSON, `[` + sampleJSON + `]`, `{"samples":[` + sampleJSON + `]}`, `{"host":"a","timestamp":1795867140123,"metrics":{"x":-1.5e3}}`,
		`{"host":"a","metrics":{"cpu":"1"}}`, `[]`, `{}`, `null`, `{"samples":null}`, `[null]`, `{"host":"a","timestamp":"2026-11-28 10:00:00","metrics":{"cpu":1}}`} {
		f.Add([]byte(s))
	}
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		samples, single, err := decodeSamples(data, now, 50)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || (e.Code != CodeMalformed && e.Code != CodeValidation) {
				t.Fatalf("error %v is not a client problem", err)
			}
			if e.Code == CodeValidation && len(e.Fields) == 0 {
				t.Fatalf("validation problem names no field: %v", err)
			}
			return
		}
		if len(samples) == 0 || len(samples) > 50 || (single && len(samples) != 1) {
			t.Fatalf("%d samples (single %v) accepted", len(samples), single)
		}
		for _, s := range samples {
			if strings.TrimSpace(s.Host) == "" || len(s.Metrics) == 0 || s.Timestamp.IsZero() || s.Timestamp.After(now.Add(maxFutureSkew)) {
				t.Fatalf("invalid sample accepted: %+v", s)
			}
			for k, v := range s.Metrics {
				if math.IsNaN(v) || math.IsInf(v, 0) || k != anomaly.CanonicalMetric(k) {
					t.Fatalf("metric %q = %v accepted", k, v)
				}
			}
		}
	})
}

// BenchmarkHTTPDetect is the detect endpoint end to end in-process (routing,
// auth policy, decoding, scoring, encoding) under concurrent clients.
func BenchmarkHTTPDetect(b *testing.B) {
	svc, err := anomaly.New(context.Background(), anomaly.Options{Registerer: prometheus.NewRegistry(), QueueSize: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer svc.Close(context.Background())
	reg := prometheus.NewRegistry()
	srv, err := New(Deps{Logger: slog.New(slog.DiscardHandler), Registry: reg, Ready: upChecker{}, Config: emptyConfig{},
		Anomaly: svc, MaxBodyBytes: 1 << 20, Now: func() time.Time { return testNow }})
	if err != nil {
		b.Fatal(err)
	}
	var gid atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		g := gid.Add(1)
		for i := 0; pb.Next(); i++ {
			body := fmt.Sprintf(`{"host":"h%d","timestamp":%d,"metrics":{"cpu_usage":%d,"memory_usage":50}}`, g, testNow.Add(-30*24*time.Hour).Unix()+int64(i), 40+i%20)
			r := httptest.NewRequest("POST", "/performance/anomaly/detect", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				b.Errorf("status %d: %s", w.Code, w.Body)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "requests/s")
}

type upChecker struct{}

func (upChecker) Check(context.Context) health.Component {
	return health.Component{Status: health.StatusUp}
}

type emptyConfig struct{}

func (emptyConfig) Redacted() []config.Entry { return nil }

// A write PostgreSQL aborted for a concurrent one (deadlock, serialization)
// stored nothing and passes when sent again: 503 with a short Retry-After,
// which every metrics sender retries, never a 500.
func TestContendedWriteIsRetryable(t *testing.T) {
	for _, code := range []string{"40P01", "40001", "55P03"} {
		err := anomalyError(fmt.Errorf("anomaly: ingest: %w", &pgconn.PgError{Code: code}))
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeUnavailable || e.RetryAfter != time.Second {
			t.Fatalf("SQLSTATE %s: %#v, want 503 with Retry-After 1 s", code, err)
		}
	}
}
