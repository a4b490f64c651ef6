package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/smartcloudops/smartcloudops/internal/domain"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

// seriesFixture is the API over a real store holding, for each host, ten
// samples a minute apart ending at testNow-1m (cpu_usage = minute index,
// memory_usage on even minutes) and one high anomaly at minute 7.
func seriesFixture(t *testing.T, url string, mod func(d *Deps), hosts ...string) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{URL: url, PoolSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	var (
		samples   []domain.MetricSample
		anomalies []domain.Anomaly
	)
	for _, h := range hosts {
		for i := range 10 {
			cpu := float64(i)
			m := domain.MetricSample{Host: h, Timestamp: seriesStart.Add(time.Duration(i) * time.Minute), CPUUsage: &cpu}
			if i%2 == 0 {
				mem := 50.0
				m.MemoryUsage = &mem
			}
			samples = append(samples, m)
		}
		anomalies = append(anomalies, domain.Anomaly{Host: h, Metric: "cpu_usage", DetectedAt: seriesStart.Add(7 * time.Minute),
			Score: 0.9, Confidence: 0.8, Severity: "high", ModelVersion: "threshold-v1",
			Features: map[string]float64{"cpu_usage": 7}, Explanation: "cpu_usage 7 > 5"})
	}
	if _, err := st.InsertMetrics(ctx, samples); err != nil {
		t.Fatal(err)
	}
	if _, err := st.InsertAnomalies(ctx, anomalies); err != nil {
		t.Fatal(err)
	}
	return newFixture(t, func(d *Deps) {
		d.Series = st
		if mod != nil {
			mod(d)
		}
	})
}

var seriesStart = testNow.Add(-10 * time.Minute)

// openTenantReads is SMARTCLOUDOPS_REQUIRE_AUTH=false: tests of a handler's
// answers read anonymously although the fixture has a JWT secret.
func openTenantReads(d *Deps) { d.Auth.OpenTenantReads = true }

func decodeBody[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("body: %v: %s", err, w.Body)
	}
	return v
}

func TestSeriesEndpoints(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		f := seriesFixture(t, url, openTenantReads, "web-1", "acme/db-1")

		hosts := decodeBody[HostsResponse](t, f.do(t, "GET", "/api/v1/hosts", "", "", ""))
		if hosts.Count != 2 || hosts.Limit != store.DefaultHostsLimit || hosts.Truncated || len(hosts.Hosts) != 2 {
			t.Fatalf("hosts = %+v", hosts)
		}
		for _, h := range hosts.Hosts {
			if !h.LastSample.Equal(seriesStart.Add(9 * time.Minute)) {
				t.Fatalf("host %+v: last sample want %v", h, seriesStart.Add(9*time.Minute))
			}
		}
		if h := decodeBody[HostsResponse](t, f.do(t, "GET", "/api/v1/hosts?limit=1", "", "", "")); h.Count != 1 || !h.Truncated || h.Limit != 1 {
			t.Fatalf("hosts limit 1 = %+v", h)
		}

		// A tenant host's "/" travels escaped in the path.
		from, to := seriesStart.Add(2*time.Minute), seriesStart.Add(8*time.Minute)
		path := "/api/v1/hosts/acme%2Fdb-1/metrics?from=" + from.Format(time.RFC3339) + "&to=" + to.Format(time.RFC3339) + "&limit=4"
		s := decodeBody[SeriesResponse](t, f.do(t, "GET", path, "", "", ""))
		if s.Host != "acme/db-1" || s.Count != 4 || !s.Truncated || s.Limit != 4 || s.From == nil || !s.From.Equal(from) || !s.To.Equal(to) {
			t.Fatalf("series head = %+v", s)
		}
		if strings.Join(s.Metrics, ",") != "cpu_usage,memory_usage" {
			t.Fatalf("metrics present = %v", s.Metrics)
		}
		// The window follows the timestamp rule of every input: Unix seconds
		// and milliseconds name the same instants.
		numeric := fmt.Sprintf("/api/v1/hosts/acme%%2Fdb-1/metrics?from=%d&to=%d&limit=4", from.Unix(), to.UnixMilli())
		if n := decodeBody[SeriesResponse](t, f.do(t, "GET", numeric, "", "", "")); n.Count != 4 || !n.From.Equal(from) || !n.To.Equal(to) {
			t.Fatalf("numeric window = %+v", n)
		}
		for i, p := range s.Samples {
			want := float64(4 + i) // the latest 4 of minutes 2..7, oldest first
			if p.Metrics["cpu_usage"] != want || !p.Timestamp.Equal(seriesStart.Add(time.Duration(want)*time.Minute)) {
				t.Fatalf("sample %d = %+v; want cpu %v", i, p, want)
			}
			if _, ok := p.Metrics["memory_usage"]; ok != (int(want)%2 == 0) {
				t.Fatalf("sample %d: memory_usage present = %v", i, ok)
			}
		}
		s = decodeBody[SeriesResponse](t, f.do(t, "GET", "/api/v1/hosts/web-1/metrics", "", "", ""))
		if s.Count != 10 || s.Truncated || s.Limit != store.DefaultSeriesLimit || s.From != nil || s.To != nil {
			t.Fatalf("whole series = %+v", s)
		}
		if s := decodeBody[SeriesResponse](t, f.do(t, "GET", "/api/v1/hosts/nobody/metrics", "", "", "")); s.Count != 0 || s.Samples == nil || s.Metrics == nil {
			t.Fatalf("unknown host: %+v (want empty arrays, not null)", s)
		}

		a := decodeBody[AnomaliesResponse](t, f.do(t, "GET", "/api/v1/anomalies", "", "", ""))
		if a.Count != 2 || a.Limit != store.DefaultAnomaliesLimit || a.Truncated {
			t.Fatalf("anomalies = %+v", a)
		}
		got := a.Anomalies[0]
		if got.ID == 0 || got.Metric != "cpu_usage" || !got.DetectedAt.Equal(seriesStart.Add(7*time.Minute)) || got.Severity != "high" ||
			got.Status != "open" || got.Score != 0.9 || got.Confidence != 0.8 || got.ModelVersion != "threshold-v1" ||
			got.Features["cpu_usage"] != 7 || got.Explanation == "" {
			t.Fatalf("anomaly = %+v", got)
		}
		a = decodeBody[AnomaliesResponse](t, f.do(t, "GET", "/api/v1/anomalies?host=web-1&from="+seriesStart.Add(7*time.Minute).Format(time.RFC3339)+"&limit=5", "", "", ""))
		if a.Count != 1 || a.Anomalies[0].Host != "web-1" {
			t.Fatalf("web-1 anomalies from minute 7 = %+v", a)
		}
		a = decodeBody[AnomaliesResponse](t, f.do(t, "GET", "/api/v1/anomalies?to="+seriesStart.Add(7*time.Minute).Format(time.RFC3339), "", "", ""))
		if a.Count != 0 || a.Anomalies == nil {
			t.Fatalf("anomalies before minute 7 = %+v (to is exclusive)", a)
		}
	})
}

// TestSeriesTenantScope: a tenant's token reads only "<tenant>/…" hosts, as
// it may write only those; admin and unscoped user tokens read every host.
func TestSeriesTenantScope(t *testing.T) {
	f := seriesFixture(t, storetest.SQLiteURL(t), func(d *Deps) { d.Auth.RequireAuth = true }, "web-1", "acme/db-1", "acme/web-1", "acmex/web-1", "ACME/web-9")
	acme := userToken(t, "acme")

	hosts := decodeBody[HostsResponse](t, f.do(t, "GET", "/api/v1/hosts", acme, "", ""))
	var names []string
	for _, h := range hosts.Hosts {
		names = append(names, h.Host)
	}
	if strings.Join(names, ",") != "acme/db-1,acme/web-1" {
		t.Fatalf("tenant acme sees hosts %v", names)
	}
	a := decodeBody[AnomaliesResponse](t, f.do(t, "GET", "/api/v1/anomalies", acme, "", ""))
	for _, an := range a.Anomalies {
		if !strings.HasPrefix(an.Host, "acme/") {
			t.Fatalf("tenant acme sees anomaly of %q", an.Host)
		}
	}
	if a.Count != 2 {
		t.Fatalf("tenant acme anomalies = %d, want 2", a.Count)
	}
	if s := decodeBody[SeriesResponse](t, f.do(t, "GET", "/api/v1/hosts/acme%2Fweb-1/metrics", acme, "", "")); s.Count != 10 {
		t.Fatalf("own host series = %+v", s)
	}
	for _, path := range []string{"/api/v1/hosts/web-1/metrics", "/api/v1/hosts/acmex%2Fweb-1/metrics", "/api/v1/hosts/ACME%2Fweb-9/metrics",
		"/api/v1/hosts/acme%2F/metrics", "/api/v1/anomalies?host=web-1", "/api/v1/anomalies?host=acme"} {
		w := f.do(t, "GET", path, acme, "", "")
		p := decodeProblem(t, w)
		if w.Code != http.StatusForbidden || len(p.Errors) != 1 || p.Errors[0].Field != "host" {
			t.Fatalf("%s with tenant acme: %d %+v; want 403 naming host", path, w.Code, p)
		}
	}
	for name, tok := range map[string]string{"admin": "Bearer " + adminToken, "unscoped user": userToken(t, "")} {
		if h := decodeBody[HostsResponse](t, f.do(t, "GET", "/api/v1/hosts", tok, "", "")); h.Count != 5 {
			t.Fatalf("%s sees %d hosts, want 5", name, h.Count)
		}
		if s := decodeBody[SeriesResponse](t, f.do(t, "GET", "/api/v1/hosts/web-1/metrics", tok, "", "")); s.Count != 10 {
			t.Fatalf("%s series = %+v", name, s)
		}
	}
	// Reads need a token here (SMARTCLOUDOPS_REQUIRE_AUTH=true), and a role.
	noRole := signed(t, jwt.SigningMethodHS256, []byte(jwtSecret), jwt.MapClaims{"sub": "x", "exp": testNow.Add(time.Hour).Unix()})
	for _, path := range []string{"/api/v1/hosts", "/api/v1/hosts/web-1/metrics", "/api/v1/anomalies"} {
		if w := f.do(t, "GET", path, "", "", ""); w.Code != http.StatusUnauthorized || w.Header().Get("WWW-Authenticate") == "" {
			t.Fatalf("%s without a token: %d", path, w.Code)
		}
		if w := f.do(t, "GET", path, noRole, "", ""); w.Code != http.StatusForbidden {
			t.Fatalf("%s with a role-less token: %d", path, w.Code)
		}
	}
}

func TestSeriesBadParams(t *testing.T) {
	f := seriesFixture(t, storetest.SQLiteURL(t), openTenantReads, "web-1")
	long := strings.Repeat("h", 256)
	cases := []struct{ path, fields string }{
		{"/api/v1/hosts?limit=0", "limit"},
		{"/api/v1/hosts?limit=abc", "limit"},
		{"/api/v1/hosts?limit=" + strconv.Itoa(store.MaxHostsLimit+1), "limit"},
		{"/api/v1/hosts?host=web-1", "host"},
		{"/api/v1/hosts/web-1/metrics?limit=-1", "limit"},
		{"/api/v1/hosts/web-1/metrics?limit=" + strconv.Itoa(store.MaxSeriesLimit+1), "limit"},
		{"/api/v1/hosts/web-1/metrics?from=yesterday", "from"},
		{"/api/v1/hosts/web-1/metrics?to=2026-11-28T25:00:00Z", "to"},
		{"/api/v1/hosts/web-1/metrics?from=2026-11-28T12:00:00Z&to=2026-11-28T11:00:00Z", "from"},
		{"/api/v1/hosts/web-1/metrics?from=2026-11-28T12:00:00Z&to=2026-11-28T12:00:00Z", "from"},
		{"/api/v1/hosts/web-1/metrics?form=2026-11-28T12:00:00Z", "form"},
		{"/api/v1/hosts/web%201/metrics", "host"},
		{"/api/v1/hosts/" + long + "/metrics", "host"},
		{"/api/v1/hosts/web%01/metrics?from=x&limit=0", "host,from,limit"},
		{"/api/v1/anomalies?host=", "host"},
		{"/api/v1/anomalies?host=a%20b", "host"},
		{"/api/v1/anomalies?limit=" + strconv.Itoa(store.MaxAnomaliesLimit+1), "limit"},
		{"/api/v1/anomalies?from=-1700000000", "from"},
		{"/api/v1/anomalies?severity=high&status=open", "severity,status"},
	}
	for _, c := range cases {
		w := f.do(t, "GET", c.path, "", "", "")
		p := decodeProblem(t, w)
		var got []string
		for _, e := range p.Errors {
			got = append(got, e.Field)
		}
		if w.Code != http.StatusBadRequest || strings.Join(got, ",") != c.fields {
			t.Errorf("%s: %d fields %v (%s); want 400 naming %s", c.path, w.Code, got, p.Detail, c.fields)
		}
	}
}

func TestSeriesWithoutStore(t *testing.T) {
	f := newFixture(t, openTenantReads) // no Series
	for _, path := range []string{"/api/v1/hosts", "/api/v1/hosts/web-1/metrics", "/api/v1/anomalies"} {
		w := f.do(t, "GET", path, "", "", "")
		if p := decodeProblem(t, w); w.Code != http.StatusServiceUnavailable || !strings.Contains(p.Detail, "database") {
			t.Fatalf("%s: %d %+v; want 503 saying no database", path, w.Code, p)
		}
	}
	// Wired as the service does: the admin serves the database endpoints,
	// the store itself the series.
	st, err := store.Open(context.Background(), store.Options{URL: storetest.SQLiteURL(t), PoolSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	f = newFixture(t, func(d *Deps) { d.Database, d.Series = adminOf(t, st), st })
	if h := decodeBody[HostsResponse](t, f.do(t, "GET", "/api/v1/hosts", "Bearer "+adminToken, "", "")); h.Count != 0 || h.Hosts == nil {
		t.Fatalf("empty store: %+v", h)
	}
}

func TestDashboardAssets(t *testing.T) {
	f := newFixture(t, func(d *Deps) { d.Auth.RequireAuth = true })
	// The page and its assets are public even when reads need a token: they
	// hold no data.
	for _, c := range []struct{ path, ctype string }{
		{"/", "text/html"}, {"/ui/dashboard.js", "javascript"}, {"/ui/dashboard.css", "text/css"},
	} {
		w := f.do(t, "GET", c.path, "", "", "")
		if w.Code != http.StatusOK || !strings.Contains(w.Header().Get("Content-Type"), c.ctype) || w.Body.Len() == 0 {
			t.Fatalf("%s: %d %q", c.path, w.Code, w.Header().Get("Content-Type"))
		}
		etag := w.Header().Get("ETag")
		if etag == "" || !strings.Contains(w.Header().Get("Content-Security-Policy"), "script-src 'self'") ||
			w.Header().Get("X-Content-Type-Options") != "nosniff" || w.Header().Get("Cache-Control") != "no-cache" {
			t.Fatalf("%s headers: %v", c.path, w.Header())
		}
		r := httptest.NewRequest("GET", c.path, nil)
		r.Header.Set("If-None-Match", etag)
		w2 := httptest.NewRecorder()
		f.srv.ServeHTTP(w2, r)
		if w2.Code != http.StatusNotModified {
			t.Fatalf("%s revalidation: %d, want 304", c.path, w2.Code)
		}
		// Nothing is loaded from elsewhere: every URL in the assets is the
		// SVG namespace or a path on this server.
		for _, u := range regexp.MustCompile(`(?i)(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}`).FindAllString(w.Body.String(), -1) {
			if u != "http://www.w3.org" {
				t.Fatalf("%s refers to %s: the dashboard must work without internet access", c.path, u)
			}
		}
	}
	page := f.do(t, "GET", "/", "", "", "").Body.String()
	for _, ref := range []string{`src="/ui/dashboard.js"`, `href="/ui/dashboard.css"`, `id="dash-status"`} {
		if !strings.Contains(page, ref) {
			t.Fatalf("page lacks %s", ref)
		}
	}
	for _, path := range []string{"/ui/nope.js", "/ui/", "/index.html", "/ui/../server.go"} {
		w := f.do(t, "GET", path, "", "", "")
		if w.Code != http.StatusNotFound && w.Code != http.StatusMovedPermanently {
			t.Fatalf("%s: %d, want 404", path, w.Code)
		}
	}
	if w := f.do(t, "POST", "/", "", "", ""); w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST /: %d", w.Code)
	}
}
