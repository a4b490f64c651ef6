package httpapi

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/anomaly"
	"github.com/smartcloudops/smartcloudops/internal/domain"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

// hostSample is one ingest or detect body for host at minute i of a day
// that ends at testNow.
func hostSample(host string, i int, cpu float64) string {
	at := testNow.Add(-24 * time.Hour).Add(time.Duration(i) * time.Minute)
	return fmt.Sprintf(`{"host":%q,"timestamp":%q,"metrics":{"cpu_usage":%v,"memory_usage":50}}`, host, at.Format(time.RFC3339), cpu)
}

// TestDetectCannotChangeOrRevealIngest replays, over HTTP, the attacks of
// issue 13 on the series state: another tenant reading a host's learned
// state, poisoning it with values at the float64 limit, and blinding it with
// a timestamp an hour ahead. None may change what ingest answers next, and
// every answer is valid JSON or a 4xx problem naming the field.
func TestDetectCannotChangeOrRevealIngest(t *testing.T) {
	f, svc, st := anomalyFixture(t, func(o *anomaly.Options) { o.MaxBatch = 50; o.Stream.WarmUp = 100 })
	acme := userToken(t, "acme")
	rng := rand.New(rand.NewPCG(1, 2))
	ingest := func(i int, cpu float64) anomaly.IngestReport {
		t.Helper()
		w := f.do(t, "POST", "/api/v1/metrics", acme, "application/json", hostSample("acme/web-1", i, cpu))
		var rep anomaly.IngestReport
		if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &rep) != nil {
			t.Fatalf("ingest point %d: %d %s", i, w.Code, w.Body)
		}
		return rep
	}
	for i := range 200 {
		ingest(i, 30+rng.NormFloat64())
	}
	series := svc.Stats().Series

	// Another tenant may not read acme's host, even to score against it.
	w := f.do(t, "POST", "/performance/anomaly/detect", userToken(t, "globex"), "application/json", hostSample("acme/web-1", 200, 0))
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "samples[0].host") {
		t.Fatalf("cross-tenant detect: %d %s", w.Code, w.Body)
	}
	// Values past the detector's range are refused, naming the field.
	for _, v := range []string{"1.7e308", "-1.7e308", "1.23e38"} {
		body := strings.Replace(hostSample("acme/web-1", 200, 0), `"cpu_usage":0`, `"cpu_usage":`+v, 1)
		w := f.do(t, "POST", "/performance/anomaly/detect", acme, "application/json", body)
		if p := decodeProblem(t, w); w.Code != http.StatusBadRequest || len(p.Errors) == 0 || p.Errors[0].Field != "metrics.cpu_usage" {
			t.Fatalf("detect cpu %s: %d %+v", v, w.Code, p)
		}
		w = f.do(t, "POST", "/api/v1/metrics", acme, "application/json", body)
		if w.Code != http.StatusBadRequest {
			t.Fatalf("ingest cpu %s: %d %s", v, w.Code, w.Body)
		}
	}
	// Accepted extremes and a sample from an hour ahead: answered, and learned
	// by nobody.
	for _, body := range []string{
		`[` + hostSample("acme/web-1", 200, 1e30) + `,` + hostSample("acme/web-1", 201, -1e30) + `]`,
		hostSample("acme/web-1", 24*60+59, 30),
	} {
		w := f.do(t, "POST", "/performance/anomaly/detect", acme, "application/json", body)
		if w.Code != http.StatusOK || !json.Valid(w.Body.Bytes()) || w.Body.Len() == 0 {
			t.Fatalf("detect %s: %d %q", body, w.Code, w.Body)
		}
	}
	if got := svc.Stats().Series; got != series {
		t.Fatalf("detect changed the series count from %d to %d", series, got)
	}
	// The next real points are read against ingest's history alone: calm,
	// then a jump 30 → 75 that is flagged and stored.
	if rep := ingest(200, 30); rep.Results[0].Late || rep.Stored != 1 {
		t.Fatalf("real point after the attacks: %+v", rep)
	}
	rep := ingest(201, 75)
	if !rep.Results[0].IsAnomaly || rep.Anomalies != 1 {
		t.Fatalf("cpu jump 30 → 75 after the attacks: %+v", rep.Results[0])
	}
	list, err := st.AnomalyRange(context.Background(), store.AnomalyRangeQuery{})
	if err != nil || len(list.Anomalies) == 0 {
		t.Fatalf("stored anomalies: %+v, %v", list, err)
	}
}

// TestInvalidUTF8HostRefused: a decoder turns invalid bytes into U+FFFD,
// which would merge distinct hosts; both forms are refused.
func TestInvalidUTF8HostRefused(t *testing.T) {
	f, _, _ := anomalyFixture(t, nil)
	for _, host := range []string{"web-\xff", "web-\xfe", "web-\uFFFD"} {
		body := fmt.Sprintf(`{"host":"%s","timestamp":"2026-11-28T11:00:00Z","metrics":{"cpu_usage":1}}`, host)
		for _, path := range []string{"/performance/anomaly/detect", "/api/v1/metrics"} {
			w := f.do(t, "POST", path, "Bearer "+adminToken, "application/json", body)
			if p := decodeProblem(t, w); w.Code != http.StatusBadRequest || len(p.Errors) == 0 || p.Errors[0].Field != "host" {
				t.Fatalf("%s host %q: %d %+v", path, host, w.Code, p)
			}
		}
	}
}

// TestStoreOutageIs503: a database that cannot be reached answers 503 with
// Retry-After on every anomaly route that needs it, never 500.
func TestStoreOutageIs503(t *testing.T) {
	down := fmt.Errorf("anomaly: ingest: store: insert metrics: %w", driver.ErrBadConn)
	f := newFixture(t, func(d *Deps) { d.Anomaly = stubAnomaly{down}; d.MaxBodyBytes = 1 << 20 })
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/api/v1/metrics", sampleJSON},
		{"POST", "/performance/anomaly/detect", sampleJSON},
		{"GET", "/performance/anomaly/models", ""},
		{"POST", "/performance/anomaly/models", ""},
	} {
		ct := ""
		if c.body != "" {
			ct = "application/json"
		}
		w := f.do(t, c.method, c.path, "Bearer "+adminToken, ct, c.body)
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
			t.Fatalf("%s %s while the database is down: %d, Retry-After %q", c.method, c.path, w.Code, w.Header().Get("Retry-After"))
		}
		if p := decodeProblem(t, w); strings.Contains(p.Detail, "bad connection") {
			t.Fatalf("internal error leaked: %+v", p)
		}
	}
}

// TestConcurrentIngestOneAnomalyPerIncident: identical ingests racing each
// other, and a re-send later, of one sustained fault (cpu past its limit on
// every point) store one anomaly row, its alert, on both databases.
func TestConcurrentIngestOneAnomalyPerIncident(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		f, _, st := anomalyFixtureOn(t, url, func(o *anomaly.Options) { o.MaxBatch = 50 })
		var samples []string
		for i := range 50 {
			samples = append(samples, hostSample("web-1", i, 99)) // over the cpu limit while warming
		}
		body := "[" + strings.Join(samples, ",") + "]"
		var wg sync.WaitGroup
		codes := make([]int, 8)
		for g := range codes {
			wg.Go(func() {
				codes[g] = f.do(t, "POST", "/api/v1/metrics", "Bearer "+adminToken, "application/json", body).Code
			})
		}
		wg.Wait()
		for g, c := range codes {
			if c != http.StatusOK {
				t.Fatalf("ingest %d: status %d", g, c)
			}
		}
		if w := f.do(t, "POST", "/api/v1/metrics", "Bearer "+adminToken, "application/json", body); w.Code != http.StatusOK {
			t.Fatalf("re-send: %d %s", w.Code, w.Body)
		}
		list, err := st.AnomalyRange(context.Background(), store.AnomalyRangeQuery{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Anomalies) != 1 {
			t.Fatalf("%d anomaly rows for one incident; want its alert only: %+v", len(list.Anomalies), list.Anomalies)
		}
	})
}

// TestIngestDuringPostgresRestart: while PostgreSQL is down ingest answers
// 503 with Retry-After (never 500); once it is back the same request is
// taken, and every acknowledged sample is stored.
func TestIngestDuringPostgresRestart(t *testing.T) {
	pg := storetest.StartPrivatePostgres(t)
	f, _, st := anomalyFixtureOn(t, pg.URL, nil)
	ingest := func(i int) *httptest.ResponseRecorder {
		return f.do(t, "POST", "/api/v1/metrics", "Bearer "+adminToken, "application/json", hostSample("web-1", i, 30))
	}
	if w := ingest(0); w.Code != http.StatusOK {
		t.Fatalf("before the restart: %d %s", w.Code, w.Body)
	}
	pg.Stop()
	for i := 1; i <= 3; i++ {
		w := ingest(i)
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
			t.Fatalf("while PostgreSQL is down: %d, Retry-After %q, %s", w.Code, w.Header().Get("Retry-After"), w.Body)
		}
	}
	pg.Start()
	var w *httptest.ResponseRecorder
	for range 50 { // the pool reconnects by itself
		if w = ingest(1); w.Code == http.StatusOK {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if w.Code != http.StatusOK {
		t.Fatalf("after the restart: %d %s", w.Code, w.Body)
	}
	rows, err := st.MetricHistory(context.Background(), domain.HistoryQuery{Host: "web-1"})
	if err != nil || len(rows) != 2 {
		t.Fatalf("stored samples: %d, %v; want the 2 acknowledged", len(rows), err)
	}
}

// nanAnomaly answers every detect with a score no JSON can carry.
type nanAnomaly struct{ stubAnomaly }

func (nanAnomaly) Detect(_ context.Context, s []anomaly.Sample, _ anomaly.DetectOptions) ([]anomaly.Result, error) {
	return []anomaly.Result{{Host: s[0].Host, AnomalyScore: math.NaN()}}, nil
}

// TestEncodingFailureIs500Problem: a response that cannot be encoded is a
// 500 problem whose cause reaches the access log, never a 200 with an empty
// body.
func TestEncodingFailureIs500Problem(t *testing.T) {
	f := newFixture(t, func(d *Deps) { d.Anomaly = nanAnomaly{}; d.MaxBodyBytes = 1 << 20 })
	w := f.do(t, "POST", "/performance/anomaly/detect", "Bearer "+adminToken, "application/json", sampleJSON)
	if w.Code != http.StatusInternalServerError || w.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("unencodable result: %d %q %q", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	if p := decodeProblem(t, w); p.RequestID == "" || strings.Contains(p.Detail, "NaN") {
		t.Fatalf("problem = %+v", p)
	}

	r := httptest.NewRequest("GET", "/x", nil)
	info := &reqInfo{id: "req-1"}
	r = r.WithContext(context.WithValue(r.Context(), infoKey{}, info))
	rec := httptest.NewRecorder()
	writeJSON(rec, r, http.StatusOK, map[string]float64{"score": math.Inf(1)})
	if rec.Code != http.StatusInternalServerError || info.err == nil || !strings.Contains(info.err.Error(), "encode") {
		t.Fatalf("writeJSON of +Inf: %d, logged cause %v", rec.Code, info.err)
	}
	rec = httptest.NewRecorder()
	writeJSON(rec, r, http.StatusCreated, map[string]int{"n": 1})
	if rec.Code != http.StatusCreated || rec.Header().Get("Content-Length") != strconv.Itoa(rec.Body.Len()) || !json.Valid(rec.Body.Bytes()) {
		t.Fatalf("writeJSON: %d %q", rec.Code, rec.Body)
	}
}
