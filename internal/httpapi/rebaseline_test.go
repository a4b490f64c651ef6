package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartcloudops/smartcloudops/internal/anomaly"
	"github.com/smartcloudops/smartcloudops/internal/metrictest"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

const rebaselinePath = "/performance/anomaly/series/rebaseline"

// memoryBatch is n samples of host's memory around level, one a minute
// from the i-th minute of the day before testNow.
func memoryBatch(rng *rand.Rand, host string, i, n int, level float64) string {
	items := make([]string, n)
	for k := range items {
		at := testNow.Add(-24 * time.Hour).Add(time.Duration(i+k) * time.Minute)
		items[k] = fmt.Sprintf(`{"host":%q,"timestamp":%q,"metrics":{"memory":%.3f}}`, host, at.Format(time.RFC3339), level+rng.NormFloat64())
	}
	return `{"samples":[` + strings.Join(items, ",") + `]}`
}

// TestRebaselineOverHTTP: through the API on both databases, memory steps
// from 55% to 80% and stays there. Every ingest result after the alert
// reports the anomalous state, one anomaly row is stored for the incident,
// the gauge counts the series; the re-baseline is refused to anyone but an
// admin, and after an admin's the same level is calm, with an audit line
// and a counter.
func TestRebaselineOverHTTP(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		var logs bytes.Buffer
		reg := prometheus.NewRegistry()
		f, _, st := anomalyFixtureOn(t, url, func(o *anomaly.Options) {
			o.MaxBatch, o.QueueSize, o.Registerer = 200, 1000, reg
			o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
		})
		admin := "Bearer " + adminToken
		host := "acme/db-1"
		rng := rand.New(rand.NewPCG(31, 32))
		ingest := func(i, n int, level float64) []anomaly.Result {
			t.Helper()
			w := f.do(t, "POST", "/api/v1/metrics", admin, "application/json", memoryBatch(rng, host, i, n, level))
			if w.Code != http.StatusOK {
				t.Fatalf("ingest: %d %s", w.Code, w.Body)
			}
			return decodeBody[anomaly.IngestReport](t, w).Results
		}
		for i := 0; i < 600; i += 200 {
			ingest(i, 200, 55)
		}
		alerts, first := 0, -1
		for i := 600; i < 900; i += 100 {
			for k, r := range ingest(i, 100, 80) {
				if r.IsAnomaly {
					alerts++
					if first < 0 {
						first = i + k
					}
				}
				if first >= 0 && (!r.Sustained || r.State < 0.5 || !slices.Equal(r.SustainedMetrics, []string{"memory_usage"})) {
					t.Fatalf("point %d, %d into the fault, not visible: %+v", i+k, i+k-first, r)
				}
			}
		}
		if alerts != 1 || first < 600 || first > 605 {
			t.Fatalf("%d alerts, the first at point %d; want one at the fault's start (600)", alerts, first)
		}
		list, err := st.AnomalyRange(context.Background(), store.AnomalyRangeQuery{Filter: store.HostFilter{Host: host}, From: testNow.Add(-24 * time.Hour).Add(600 * time.Minute)})
		if err != nil || len(list.Anomalies) != 1 {
			t.Fatalf("stored anomalies of the incident: %+v, %v; want its alert only", list.Anomalies, err)
		}
		if g := metrictest.Value(t, reg, "smartcloudops_anomaly_series_sustained"); g != 1 {
			t.Fatalf("sustained series gauge = %v during the fault", g)
		}

		body := `{"host":"acme/db-1","metric":"memory"}`
		for name, auth := range map[string]string{"anonymous": "", "user": userToken(t, ""), "tenant acme's user": userToken(t, "acme")} {
			want := http.StatusForbidden
			if auth == "" {
				want = http.StatusUnauthorized
			}
			if w := f.do(t, "POST", rebaselinePath, auth, "application/json", body); w.Code != want {
				t.Fatalf("%s: %d %s; want %d", name, w.Code, w.Body, want)
			}
		}
		if g := metrictest.Value(t, reg, "smartcloudops_anomaly_series_sustained"); g != 1 {
			t.Fatalf("a refused re-baseline changed the series: gauge %v", g)
		}
		w := f.do(t, "POST", rebaselinePath, admin, "application/json", body)
		if w.Code != http.StatusOK {
			t.Fatalf("admin re-baseline: %d %s", w.Code, w.Body)
		}
		rep := decodeBody[anomaly.RebaselineReport](t, w)
		if rep.Host != host || !slices.Equal(rep.Metrics, []string{"memory_usage"}) || !slices.Equal(rep.Held, []string{"memory_usage"}) ||
			len(rep.OverLimit) != 0 || rep.By != "admin-token" {
			t.Fatalf("report = %+v", rep)
		}
		for _, r := range ingest(900, 200, 80) {
			if r.IsAnomaly || r.Sustained {
				t.Fatalf("after the re-baseline: %+v", r)
			}
		}
		if g := metrictest.Value(t, reg, "smartcloudops_anomaly_series_sustained"); g != 0 {
			t.Fatalf("sustained series gauge = %v after the re-baseline", g)
		}
		if c := metrictest.Value(t, reg, "smartcloudops_anomaly_series_rebaselined_total"); c != 1 {
			t.Fatalf("re-baselined counter = %v", c)
		}
		var audits []map[string]any
		for l := range strings.Lines(logs.String()) {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["audit"] == "rebaseline" {
				audits = append(audits, m)
			}
		}
		if len(audits) != 1 || audits[0]["host"] != host || audits[0]["by"] != "admin-token" || audits[0]["at"] == nil || audits[0]["time"] == nil ||
			fmt.Sprint(audits[0]["metrics"]) != "[memory_usage]" {
			t.Fatalf("audit lines = %v", audits)
		}
	})
}

// TestRebaselineAccess: the route is admin-only under every read policy,
// and says how to configure a credential when none is.
func TestRebaselineAccess(t *testing.T) {
	adminJWT := signed(t, jwt.SigningMethodHS256, []byte(jwtSecret), jwt.MapClaims{"sub": "alice", "role": "admin", "exp": testNow.Add(time.Hour).Unix()})
	noRole := signed(t, jwt.SigningMethodHS256, []byte(jwtSecret), jwt.MapClaims{"sub": "x", "exp": testNow.Add(time.Hour).Unix()})
	for _, require := range []bool{false, true} {
		f, svc, _ := anomalyFixture(t, nil)
		f.srv.auth = newAuthenticator(AuthOptions{AdminToken: adminToken, JWTSecret: jwtSecret, RequireAuth: require, Now: func() time.Time { return testNow }})
		if _, err := svc.Ingest(context.Background(), []anomaly.Sample{{Host: "web-1", Timestamp: testNow.Add(-time.Hour), Metrics: map[string]float64{"cpu_usage": 10}}}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name, auth string
			status     int
		}{
			{"anonymous", "", http.StatusUnauthorized},
			{"user", userToken(t, ""), http.StatusForbidden},
			{"tenant user", userToken(t, "acme"), http.StatusForbidden},
			{"role-less token", noRole, http.StatusForbidden},
			{"bad token", "Bearer nope", http.StatusUnauthorized},
			{"admin JWT", adminJWT, http.StatusOK},
			{"admin token", "Bearer " + adminToken, http.StatusOK},
		} {
			w := f.do(t, "POST", rebaselinePath, tc.auth, "application/json", `{"host":"web-1"}`)
			if w.Code != tc.status {
				t.Fatalf("require_auth=%v %s: %d %s; want %d", require, tc.name, w.Code, w.Body, tc.status)
			}
			if w.Code >= 400 {
				decodeProblem(t, w)
			} else if tc.auth == adminJWT && decodeBody[anomaly.RebaselineReport](t, w).By != "alice" {
				t.Fatalf("the report does not name the JWT's subject: %s", w.Body)
			}
		}
	}
	f := newFixture(t, func(d *Deps) { d.Auth = AuthOptions{} })
	w := f.do(t, "POST", rebaselinePath, "", "application/json", `{"host":"web-1"}`)
	if p := decodeProblem(t, w); w.Code != http.StatusForbidden || p.Type != problemType(CodeAuthNotSet) {
		t.Fatalf("without any credential configured: %d %+v", w.Code, p)
	}
}

// TestRebaselineBadInput: every bad body is a problem naming its field, an
// unknown series is a 404 naming host or metric, and nothing is changed.
func TestRebaselineBadInput(t *testing.T) {
	reg := prometheus.NewRegistry()
	f, svc, _ := anomalyFixture(t, func(o *anomaly.Options) { o.Registerer = reg })
	if _, err := svc.Ingest(context.Background(), []anomaly.Sample{{Host: "web-1", Timestamp: testNow.Add(-time.Hour),
		Metrics: map[string]float64{"cpu_usage": 10, "memory_usage": 20}}}); err != nil {
		t.Fatal(err)
	}
	admin := "Bearer " + adminToken
	cases := []struct {
		name, ct, body string
		status         int
		code           Code
		field          string
	}{
		{"malformed", "application/json", `{"host":`, 400, CodeMalformed, ""},
		{"array", "application/json", `[{"host":"web-1"}]`, 400, CodeMalformed, ""},
		{"empty body", "application/json", ``, 400, CodeMalformed, ""},
		{"trailing data", "application/json", `{"host":"web-1"} {}`, 400, CodeMalformed, ""},
		{"unknown field", "application/json", `{"host":"web-1","metrics":["cpu"]}`, 400, CodeValidation, "metrics"},
		{"no host", "application/json", `{}`, 400, CodeValidation, "host"},
		{"null host", "application/json", `{"host":null}`, 400, CodeValidation, "host"},
		{"empty host", "application/json", `{"host":""}`, 400, CodeValidation, "host"},
		{"numeric host", "application/json", `{"host":7}`, 400, CodeValidation, "host"},
		{"host with a space", "application/json", `{"host":"web 1"}`, 400, CodeValidation, "host"},
		{"host too long", "application/json", `{"host":"` + strings.Repeat("h", 256) + `"}`, 400, CodeValidation, "host"},
		{"empty metric", "application/json", `{"host":"web-1","metric":""}`, 400, CodeValidation, "metric"},
		{"null metric", "application/json", `{"host":"web-1","metric":null}`, 400, CodeValidation, "metric"},
		{"numeric metric", "application/json", `{"host":"web-1","metric":1}`, 400, CodeValidation, "metric"},
		{"metric with a space", "application/json", `{"host":"web-1","metric":"cpu usage"}`, 400, CodeValidation, "metric"},
		{"metric too long", "application/json", `{"host":"web-1","metric":"` + strings.Repeat("m", 65) + `"}`, 400, CodeValidation, "metric"},
		{"unknown host", "application/json", `{"host":"web-2"}`, 404, CodeNotFound, "host"},
		{"unknown metric", "application/json", `{"host":"web-1","metric":"gc_ms"}`, 404, CodeNotFound, "metric"},
		{"not json", "text/plain", `{"host":"web-1"}`, 415, CodeUnsupportedMedia, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := f.do(t, "POST", rebaselinePath, admin, tc.ct, tc.body)
			p := decodeProblem(t, w)
			if w.Code != tc.status || p.Type != problemType(tc.code) {
				t.Fatalf("%d %+v; want %d %s", w.Code, p, tc.status, tc.code)
			}
			if tc.field != "" && (len(p.Errors) != 1 || p.Errors[0].Field != tc.field) {
				t.Fatalf("problem names %+v; want %s", p.Errors, tc.field)
			}
		})
	}
	if c := metrictest.Value(t, reg, "smartcloudops_anomaly_series_rebaselined_total"); c != 0 {
		t.Fatalf("bad requests re-baselined %v series", c)
	}
	// Any spelling a sample may use names the series.
	if w := f.do(t, "POST", rebaselinePath, admin, "application/json", `{"host":"web-1","metric":"CPU"}`); w.Code != http.StatusOK ||
		!slices.Equal(decodeBody[anomaly.RebaselineReport](t, w).Metrics, []string{"cpu_usage"}) {
		t.Fatalf("alias: %d %s", w.Code, w.Body)
	}
	if w := f.do(t, "POST", rebaselinePath, admin, "application/json", `{"host":"web-1"}`); w.Code != http.StatusOK ||
		!slices.Equal(decodeBody[anomaly.RebaselineReport](t, w).Metrics, []string{"cpu_usage", "memory_usage"}) {
		t.Fatalf("every metric: %d %s", w.Code, w.Body)
	}
	off := newFixture(t, nil)
	if w := off.do(t, "POST", rebaselinePath, admin, "application/json", `{"host":"web-1"}`); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("without the anomaly part: %d %s", w.Code, w.Body)
	}
}

// FuzzRebaselineBody sends arbitrary bodies and content types to the
// re-baseline route, as the admin or as a tenant's user, on the server of
// the other fuzz targets with series in memory for fzHosts. Besides the
// checks of serve: a user is never let through, a success names the host
// sent and only series of it (the one metric asked for, by its canonical
// name), and a 404 names host or metric.
func FuzzRebaselineBody(f *testing.F) {
	for _, s := range []struct {
		ct, body string
		tenant   bool
	}{
		{"application/json", `{"host":"web-1"}`, false},
		{"application/json", `{"host":"team-a/web-2","metric":"cpu"}`, false},
		{"application/json", `{"host":"team-a/web-2","metric":"MEM"}`, true},
		{"application/json", `{"host":"web-1","metric":""}`, false},
		{"application/json", `{"host":"web-1","metric":null,"x":1}`, false},
		{"application/json", `{"host":"nowhere","metric":"gc_ms"}`, false},
		{"application/merge-patch+json", `{"host":"team-a/db 1"}`, false},
		{"", `{"host":"web-1\u0000"}`, false},
		{"text/plain", `host=web-1`, false},
		{"application/json", `{"host":["web-1"]}`, false},
	} {
		f.Add(s.ct, []byte(s.body), s.tenant)
	}
	z := newFzServer(f)
	var batch []string
	for _, h := range fzHosts[:2] {
		for i := range 3 {
			batch = append(batch, fmt.Sprintf(`{"host":%q,"timestamp":%q,"metrics":{"cpu_usage":%d,"memory_usage":50}}`,
				h, oaNow.Add(time.Duration(i-3)*time.Second).Format(time.RFC3339), 10*i))
		}
	}
	w := httptest.NewRecorder()
	z.srv.ServeHTTP(w, fzRequest("POST", "/api/v1/metrics", z.admin, "application/json", []byte("["+strings.Join(batch, ",")+"]")))
	if w.Code != http.StatusOK {
		f.Fatalf("ingest: %d %s", w.Code, w.Body)
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte, tenant bool) {
		auth := z.admin
		if tenant {
			auth = z.user
		}
		r := fzRequest("POST", rebaselinePath, auth, contentType, body)
		if strings.ContainsAny(contentType, "\r\n\x00") {
			r.Header.Del("Content-Type") // no client can send it
		}
		w := z.serve(t, r)
		switch {
		case tenant && w.Code < 400:
			t.Fatalf("a user re-baselined: %d %s", w.Code, w.Body)
		case w.Code == http.StatusOK:
			var req struct {
				Host   string  `json:"host"`
				Metric *string `json:"metric"`
			}
			var rep anomaly.RebaselineReport
			if json.Unmarshal(body, &req) != nil || json.Unmarshal(w.Body.Bytes(), &rep) != nil {
				t.Fatalf("success for %q: %s", body, w.Body)
			}
			if rep.Host != req.Host || len(rep.Metrics) == 0 || !slices.IsSorted(rep.Metrics) ||
				(req.Metric != nil && !slices.Equal(rep.Metrics, []string{anomaly.CanonicalMetric(*req.Metric)})) {
				t.Fatalf("request %q re-baselined %+v", body, rep)
			}
		case w.Code == http.StatusNotFound:
			var p Problem
			if json.Unmarshal(w.Body.Bytes(), &p) != nil || len(p.Errors) != 1 || (p.Errors[0].Field != "host" && p.Errors[0].Field != "metric") {
				t.Fatalf("404 for %q does not name host or metric: %s", body, w.Body)
			}
		}
	})
}
