package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/smartcloudops/smartcloudops/internal/anomaly"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

// tenantReadRoutes are the routes that read tenant data.
var tenantReadRoutes = []struct{ method, path, body string }{
	{"GET", "/api/v1/hosts", ""},
	{"GET", "/api/v1/hosts/web-1/metrics", ""},
	{"GET", "/api/v1/anomalies", ""},
	{"POST", "/performance/anomaly/detect", sampleJSON},
}

// Tenant data needs a token once JWT_SECRET is set, unless the operator
// says SMARTCLOUDOPS_REQUIRE_AUTH=false; other reads stay open unless it is
// true.
func TestTenantReadPolicy(t *testing.T) {
	url := storetest.SQLiteURL(t)
	cases := []struct {
		name string
		auth AuthOptions
		// policy is what start-up logs; tenant and read are whether an
		// anonymous caller gets through.
		policy       ReadPolicy
		tenant, read bool
	}{
		{"auto with JWT secret", AuthOptions{AdminToken: adminToken, JWTSecret: jwtSecret}, TenantReadsNeedToken, false, true},
		{"auto, admin token only", AuthOptions{AdminToken: adminToken}, ReadsOpen, true, true},
		{"auto, no credential at all", AuthOptions{}, ReadsOpen, true, true},
		{"explicit false with JWT secret", AuthOptions{AdminToken: adminToken, JWTSecret: jwtSecret, OpenTenantReads: true}, ReadsOpen, true, true},
		{"true", AuthOptions{AdminToken: adminToken, JWTSecret: jwtSecret, RequireAuth: true}, AllReadsNeedToken, false, false},
		{"true beats explicit false", AuthOptions{JWTSecret: jwtSecret, RequireAuth: true, OpenTenantReads: true}, AllReadsNeedToken, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.auth.ReadPolicy(); got != tc.policy {
				t.Errorf("policy %s; want %s", got, tc.policy)
			}
			f := seriesFixture(t, url, func(d *Deps) {
				d.Auth = tc.auth
				d.Anomaly = stubAnomaly{anomaly.ErrBusy}
				d.MaxBodyBytes = 1 << 20
			}, "web-1")
			for _, r := range tenantReadRoutes {
				w := f.do(t, r.method, r.path, "", "application/json", r.body)
				if (w.Code == http.StatusUnauthorized) == tc.tenant {
					t.Errorf("anonymous %s %s: %d; want through=%v", r.method, r.path, w.Code, tc.tenant)
				}
				if w.Code == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
					t.Errorf("%s %s: 401 without WWW-Authenticate", r.method, r.path)
				}
			}
			if w := f.do(t, "GET", "/performance/config", "", "", ""); (w.Code == http.StatusOK) != tc.read {
				t.Errorf("anonymous GET /performance/config: %d; want through=%v", w.Code, tc.read)
			}
			if w := f.do(t, "GET", "/livez", "", "", ""); w.Code != http.StatusOK {
				t.Errorf("/livez: %d", w.Code)
			}
		})
	}
}

// In the default mode a tenant's token still sees only its own hosts, and
// the tenant name rule holds: tenant "acme" owns "acme/…" (deeper paths
// included) and nothing else, and a token naming tenant "acme/x" is refused
// outright, so it cannot see into "acme/x/…" nor be confused with acme.
func TestTenantNameRule(t *testing.T) {
	f := seriesFixture(t, storetest.SQLiteURL(t), func(d *Deps) {
		d.Anomaly = stubAnomaly{anomaly.ErrBusy}
		d.MaxBodyBytes = 1 << 20
	}, "web-1", "acme/web-1", "acme/x/web-1", "acme-x/web-1", "acmex/db")
	hosts := func(tok string) []string {
		var out []string
		for _, h := range decodeBody[HostsResponse](t, f.do(t, "GET", "/api/v1/hosts", tok, "", "")).Hosts {
			out = append(out, h.Host)
		}
		return out
	}
	if got := hosts(userToken(t, "acme")); !slices.Equal(got, []string{"acme/web-1", "acme/x/web-1"}) {
		t.Errorf("tenant acme sees %v", got)
	}
	if got := hosts(userToken(t, "acme-x")); !slices.Equal(got, []string{"acme-x/web-1"}) {
		t.Errorf("tenant acme-x sees %v", got)
	}
	if got := hosts("Bearer " + adminToken); len(got) != 5 {
		t.Errorf("admin sees %v", got)
	}

	bad := []struct{ name, tenant, detail string }{
		{"slash", "acme/x", `"/"`},
		{"leading slash", "/acme", `"/"`},
		{"trailing slash", "acme/", `"/"`},
		{"space", "acme x", "spaces"},
		{"control", "acme\x01", "control"},
		{"C1 control", "acme\u0085", "control"},
		{"dot dot", "..", `".."`},
		{"too long", strings.Repeat("t", MaxTenantLen+1), "longer"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			tok := userToken(t, tc.tenant)
			for _, r := range []struct{ method, path, ct, body string }{
				{"GET", "/api/v1/hosts", "", ""},
				{"GET", "/api/v1/hosts/acme%2Fx%2Fweb-1/metrics", "", ""},
				{"GET", "/api/v1/anomalies?host=acme/x/web-1", "", ""},
				{"POST", "/performance/anomaly/detect", "application/json", sampleJSON},
				{"POST", "/api/v1/metrics", "application/json", sampleJSON},
				{"PUT", "/performance/cache/acme%2Fx/k", "text/plain", "v"},
				{"GET", "/performance/config", "", ""},
			} {
				w := f.do(t, r.method, r.path, tok, r.ct, r.body)
				if w.Code != http.StatusUnauthorized {
					t.Fatalf("%s %s with tenant %q: %d; want 401", r.method, r.path, tc.tenant, w.Code)
				}
				if p := decodeProblem(t, w); !strings.Contains(p.Detail, "tenant claim") || !strings.Contains(p.Detail, tc.detail) {
					t.Errorf("detail %q; want it to name the tenant claim and %s", p.Detail, tc.detail)
				}
			}
		})
	}

	own := []struct {
		tenant, host string
		ok           bool
	}{
		{"acme", "acme/web-1", true},
		{"acme", "acme/x/web-1", true},
		{"acme", "acme", false},
		{"acme", "acme/", false},
		{"acme", "acme-x/web-1", false},
		{"acme", "acmex/db", false},
		{"acme", "ACME/web-1", false},
		{"acme", "web-1", false},
	}
	for _, tc := range own {
		p := &Principal{Role: RoleUser, Tenant: tc.tenant}
		if got := p.MayUseHost(tc.host); got != tc.ok {
			t.Errorf("tenant %q on host %q: %v; want %v", tc.tenant, tc.host, got, tc.ok)
		}
	}
}

// rawJWT signs an arbitrary claims payload, so a test can send claims the
// jwt library would not encode (a string exp).
func rawJWT(t testing.TB, payload string) string {
	t.Helper()
	enc := func(s string) string { return (*jwt.Token)(nil).EncodeSegment([]byte(s)) }
	signing := enc(`{"alg":"HS256","typ":"JWT"}`) + "." + enc(payload)
	sig, err := jwt.SigningMethodHS256.Sign(signing, []byte(jwtSecret))
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + signing + "." + enc(string(sig))
}

// The time claims are numbers, and a token is not issued in the future
// (beyond the 30 s leeway for clock skew).
func TestJWTClaimChecks(t *testing.T) {
	f := newFixture(t, nil)
	exp := testNow.Add(time.Hour).Unix()
	num := func(ts time.Time) string { return jsonInt(ts.Unix()) }
	cases := []struct {
		name    string
		payload string
		status  int
		detail  string
	}{
		{"valid", `{"sub":"a","role":"user","exp":` + jsonInt(exp) + `}`, 200, ""},
		{"fractional exp", `{"sub":"a","role":"user","exp":` + jsonInt(exp) + `.5}`, 200, ""},
		{"iat now", `{"sub":"a","role":"user","exp":` + jsonInt(exp) + `,"iat":` + num(testNow) + `}`, 200, ""},
		{"iat within leeway", `{"sub":"a","role":"user","exp":` + jsonInt(exp) + `,"iat":` + num(testNow.Add(20*time.Second)) + `}`, 200, ""},
		{"iat in the future", `{"sub":"a","role":"user","exp":` + jsonInt(exp) + `,"iat":` + num(testNow.Add(2*time.Minute)) + `}`, 401, "iat is in the future"},
		{"iat far in the future", `{"sub":"a","role":"user","exp":` + jsonInt(exp) + `,"iat":` + num(testNow.Add(24*365*time.Hour)) + `}`, 401, "iat is in the future"},
		{"exp as string", `{"sub":"a","role":"user","exp":"` + jsonInt(exp) + `"}`, 401, "must be JSON numbers"},
		{"exp as string with spaces", `{"sub":"a","role":"user","exp":" ` + jsonInt(exp) + `"}`, 401, "must be JSON numbers"},
		{"exp null", `{"sub":"a","role":"user","exp":null}`, 401, "must be JSON numbers"},
		{"exp bool", `{"sub":"a","role":"user","exp":true}`, 401, "must be JSON numbers"},
		{"iat as string", `{"sub":"a","role":"user","exp":` + jsonInt(exp) + `,"iat":"0"}`, 401, "must be JSON numbers"},
		{"nbf as string", `{"sub":"a","role":"user","exp":` + jsonInt(exp) + `,"nbf":"0"}`, 401, "must be JSON numbers"},
		{"exp missing", `{"sub":"a","role":"user"}`, 401, "exp"},
		{"expired", `{"sub":"a","role":"user","exp":` + num(testNow.Add(-time.Hour)) + `}`, 401, "expired"},
		{"tenant not a string", `{"sub":"a","role":"user","exp":` + jsonInt(exp) + `,"tenant":7}`, 401, "not valid"},
		{"payload not an object", `[1,2]`, 401, "not valid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := f.do(t, "GET", "/performance/config", rawJWT(t, tc.payload), "", "")
			if w.Code != tc.status {
				t.Fatalf("%d; want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.status != 200 {
				if p := decodeProblem(t, w); !strings.Contains(p.Detail, tc.detail) {
					t.Errorf("detail %q lacks %q", p.Detail, tc.detail)
				}
			}
		})
	}
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// clientRequest sends a request from remote with the given headers.
func clientRequest(f *fixture, method, path, remote, auth string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	r.RemoteAddr = remote
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	f.srv.ServeHTTP(w, r)
	return w
}

// A client that has presented too many refused credentials gets 429 with
// Retry-After for any credential, the right one included, until its budget
// refills; other clients, anonymous reads and probes are not affected.
func TestAuthFailureThrottle(t *testing.T) {
	var clock atomic.Int64
	clock.Store(testNow.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	f := newFixture(t, func(d *Deps) {
		d.Now = now
		d.Limits = LimitOptions{AuthFailuresPerMinute: 3, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	})
	const attacker = "192.0.2.1:4000"
	admin := "Bearer " + adminToken
	steps := []struct {
		name         string
		method, path string
		remote, auth string
		hdr          []string
		status       int
		retryAfter   string
	}{
		{"guess 1", "GET", "/performance/config", attacker, "Bearer guess-1", nil, 401, ""},
		{"guess 2", "POST", "/performance/database/optimize", attacker, "Bearer guess-2", nil, 401, ""},
		{"guess 3, a bad scheme", "GET", "/performance/config", attacker, "Basic Zm9vOmJhcg==", nil, 401, ""},
		{"the right token is refused unchecked", "GET", "/performance/config", attacker, admin, nil, 429, "20"},
		{"a guess on a write route too", "POST", "/performance/database/optimize", attacker, "Bearer guess-4", nil, 429, "20"},
		{"anonymous open read passes", "GET", "/performance/config", attacker, "", nil, 200, ""},
		{"probes pass", "GET", "/livez", attacker, "Bearer guess-5", nil, 200, ""},
		{"another port is the same client", "GET", "/performance/config", "192.0.2.1:4001", admin, nil, 429, "20"},
		{"a forged X-Forwarded-For is not believed", "GET", "/performance/config", attacker, admin, []string{"X-Forwarded-For", "198.51.100.7"}, 429, "20"},
		{"another client passes", "GET", "/performance/config", "192.0.2.2:4000", admin, nil, 200, ""},
		{"behind a trusted proxy, the forwarded client counts", "GET", "/performance/config", "10.1.1.1:80", admin, []string{"X-Forwarded-For", "192.0.2.1, 10.2.2.2"}, 429, "20"},
		{"another forwarded client passes", "GET", "/performance/config", "10.1.1.1:80", admin, []string{"X-Forwarded-For", "192.0.2.1, 198.51.100.9"}, 200, ""},
		{"a malformed forwarded hop stops at the proxy", "GET", "/performance/config", "10.1.1.1:80", admin, []string{"X-Forwarded-For", "192.0.2.1, nonsense"}, 200, ""},
	}
	for _, s := range steps {
		w := clientRequest(f, s.method, s.path, s.remote, s.auth, s.hdr...)
		if w.Code != s.status || w.Header().Get("Retry-After") != s.retryAfter {
			t.Fatalf("%s: %d Retry-After %q; want %d %q: %s", s.name, w.Code, w.Header().Get("Retry-After"), s.status, s.retryAfter, w.Body)
		}
		if s.status == 429 {
			if p := decodeProblem(t, w); p.Type != problemType(CodeTooManyRequests) || !strings.Contains(p.Detail, "refused credentials") {
				t.Fatalf("%s: problem %+v", s.name, p)
			}
		}
	}
	if got := testutil.ToFloat64(f.srv.metrics.throttled.WithLabelValues(throttleAuthFailures)); got != 5 {
		t.Errorf("throttled{auth_failures} = %v; want 5", got)
	}
	if got := testutil.ToFloat64(f.srv.metrics.authFailures); got != 3 {
		t.Errorf("auth_failures_total = %v; want 3", got)
	}
	// One failure's worth refills in 20 s (3 a minute).
	clock.Add(int64(19 * time.Second))
	if w := clientRequest(f, "GET", "/performance/config", attacker, admin); w.Code != 429 || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("after 19 s: %d Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	clock.Add(int64(time.Second))
	if w := clientRequest(f, "GET", "/performance/config", attacker, admin); w.Code != 200 {
		t.Fatalf("after 20 s: %d", w.Code)
	}
	// A valid credential spends nothing; the next failure spends the refill.
	if w := clientRequest(f, "GET", "/performance/config", attacker, "Bearer guess-6"); w.Code != 401 {
		t.Fatalf("guess after refill: %d", w.Code)
	}
	if w := clientRequest(f, "GET", "/performance/config", attacker, admin); w.Code != 429 {
		t.Fatalf("after the refill was spent: %d", w.Code)
	}
}

// IPv6 clients are limited by their /64, so one host cannot rotate through
// its addresses for fresh budgets.
func TestLimitsKeyIPv6ByPrefix(t *testing.T) {
	f := newFixture(t, func(d *Deps) { d.Limits = LimitOptions{AuthFailuresPerMinute: 1} })
	if w := clientRequest(f, "GET", "/performance/config", "[2001:db8:1:2::1]:5000", "Bearer guess"); w.Code != 401 {
		t.Fatalf("guess: %d", w.Code)
	}
	for remote, want := range map[string]int{
		"[2001:db8:1:2::ffff]:5000":  429,
		"[2001:db8:1:2:a:b:c:d]:1":   429,
		"[2001:db8:1:3::1]:5000":     200,
		"[::ffff:192.0.2.9]:5000":    200,
		"192.0.2.9:5000":             200,
		"not an address":             200,
		"[2001:db8:1:2::1%eth0]:500": 429,
	} {
		if w := clientRequest(f, "GET", "/performance/config", remote, "Bearer "+adminToken); w.Code != want {
			t.Errorf("%s: %d; want %d", remote, w.Code, want)
		}
	}
}

// State-changing requests have their own per-client rate; reads, and POSTs
// that only read (detection), do not spend it.
func TestWriteThrottle(t *testing.T) {
	var clock atomic.Int64
	clock.Store(testNow.UnixNano())
	f := newFixture(t, func(d *Deps) {
		d.Now = func() time.Time { return time.Unix(0, clock.Load()) }
		d.Limits = LimitOptions{WritesPerSecond: 1}
		d.Anomaly = stubAnomaly{anomaly.ErrBusy}
	})
	admin := "Bearer " + adminToken
	steps := []struct {
		name, method, path string
		status             int
		retryAfter         string
	}{
		{"write 1", "POST", "/performance/database/optimize", 200, ""},
		{"write 2 (burst of two)", "POST", "/performance/database/optimize", 200, ""},
		{"write 3", "POST", "/performance/database/optimize", 429, "1"},
		{"another write route shares the budget", "PUT", "/performance/config", 429, "1"},
		{"reads pass", "GET", "/performance/config", 200, ""},
		{"detection is a read (it gets as far as the body)", "POST", "/performance/anomaly/detect", 400, ""},
	}
	for _, s := range steps {
		w := clientRequest(f, s.method, s.path, "192.0.2.1:1", admin)
		if w.Code != s.status || w.Header().Get("Retry-After") != s.retryAfter {
			t.Fatalf("%s: %d Retry-After %q; want %d %q: %s", s.name, w.Code, w.Header().Get("Retry-After"), s.status, s.retryAfter, w.Body)
		}
	}
	// The telemetry receivers are not throttled by request count: the budget
	// is spent, and they still get as far as their receiver.
	for _, path := range []string{"/api/v1/write", "/v1/metrics"} {
		if w := clientRequest(f, "POST", path, "192.0.2.1:1", admin); w.Code == http.StatusTooManyRequests {
			t.Fatalf("%s throttled: %d %s", path, w.Code, w.Body)
		}
	}
	if w := clientRequest(f, "POST", "/performance/database/optimize", "192.0.2.2:1", admin); w.Code != 200 {
		t.Fatalf("another client: %d", w.Code)
	}
	clock.Add(int64(time.Second))
	if w := clientRequest(f, "POST", "/performance/database/optimize", "192.0.2.1:1", admin); w.Code != 200 {
		t.Fatalf("after a second: %d", w.Code)
	}
	if got := testutil.ToFloat64(f.srv.metrics.throttled.WithLabelValues(throttleWrites)); got != 2 {
		t.Errorf("throttled{writes} = %v; want 2", got)
	}
}

// The limits refuse nonsense instead of running without a limit.
func TestLimitOptionsValidated(t *testing.T) {
	for _, o := range []LimitOptions{{AuthFailuresPerMinute: -1}, {WritesPerSecond: -1}} {
		if _, err := newLimits(o, time.Now); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

// The per-client tables stay bounded however many clients come by.
func TestClientBudgetBounded(t *testing.T) {
	b, err := newClientBudget(1, 1, 100, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5000 {
		b.take(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
	}
	b.table.CleanUp()
	if n := b.table.EstimatedSize(); n > 100 {
		t.Errorf("%d clients kept; bound 100", n)
	}
}

// FuzzBearerToken sends arbitrary Authorization headers, and arbitrary
// claims signed with the right secret, to a route that needs a token: the
// answer is 200, 401 or 403, never a panic or another status.
func FuzzBearerToken(f *testing.F) {
	exp := jsonInt(testNow.Add(time.Hour).Unix())
	for _, s := range []struct{ header, claims string }{
		{"Bearer " + adminToken, `{"sub":"a","role":"admin","exp":` + exp + `}`},
		{"Bearer", `{"exp":"` + exp + `"}`},
		{"bearer  x.y.z", `{"role":"user","tenant":"acme/x","exp":` + exp + `}`},
		{"Bearer eyJhbGciOiJub25lIn0.e30.", `{"role":"user","iat":1e308,"exp":` + exp + `}`},
		{"Basic YTpi", `{"role":"viewer","exp":` + exp + `}`},
		{"Bearer a.b.c.d", `{"role":["admin"],"exp":-1e400}`},
		{"", `null`},
	} {
		f.Add(s.header, []byte(s.claims))
	}
	fx := fuzzFixture(f)
	f.Fuzz(func(t *testing.T, header string, claims []byte) {
		for _, auth := range []string{header, rawJWT(t, string(claims))} {
			r := httptest.NewRequest("GET", "/performance/config", nil)
			if !validHeaderValue(auth) {
				continue
			}
			r.Header.Set("Authorization", auth)
			w := httptest.NewRecorder()
			fx.ServeHTTP(w, r)
			switch w.Code {
			case 200, 401, 403:
			default:
				t.Fatalf("Authorization %q: %d %s", auth, w.Code, w.Body)
			}
		}
	})
}

// validHeaderValue is what net/http would let through as a header value.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// fuzzFixture is a server whose reads all need a token, with both kinds of
// credential configured.
func fuzzFixture(f *testing.F) *Server {
	f.Helper()
	srv, err := New(Deps{
		Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry(), Ready: upChecker{}, Config: emptyConfig{},
		Auth: AuthOptions{AdminToken: adminToken, JWTSecret: jwtSecret, RequireAuth: true},
		Now:  func() time.Time { return testNow },
	})
	if err != nil {
		f.Fatal(err)
	}
	return srv
}
