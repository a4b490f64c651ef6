package main

// These tests hold the exported metrics to the Prometheus naming conventions
// and keep the monitoring assets in deploy/ honest: every metric a Grafana
// panel or an alert reads must be one the service exports, and the alert
// rules must pass promtool. A dashboard over a renamed metric fails silently
// in production (an empty panel, an alert that never fires), so the check
// belongs here rather than in a reviewer's memory.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/smartcloudops/smartcloudops/internal/redistest"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/dbadmin"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

const (
	dashboardPath = "../../deploy/grafana/smartcloudops.json"
	alertsPath    = "../../deploy/prometheus/alerts.yml"
	alertTestPath = "../../deploy/prometheus/alerts_test.yml"
	promConfPath  = "../../deploy/prometheus/prometheus.yml"
)

// notYetWired lists the parts whose code registers metrics that serve does
// not export yet, so the deploy assets may already use their names. Each
// entry names the package whose source must register the name, so a typo is
// still caught; once the part is wired (its metrics appear on
// /performance/metrics) the entry is stale and the test says to remove it.
var notYetWired = []struct {
	prefix, dir, why string
}{}

// unboundedLabels are label names whose values come from callers or data
// (a URL path, a cache key, a host, SQL text, an id): each new value is a new
// series, so a label with such a name would let traffic grow the TSDB
// without bound. Routes are labelled by pattern, statements by kind.
var unboundedLabels = map[string]bool{
	"path": true, "url": true, "uri": true, "raw_path": true,
	"key": true, "cache_key": true, "namespace": true,
	"host": true, "hostname": true, "remote": true, "remote_addr": true, "ip": true, "addr": true, "address": true,
	"query": true, "sql": true, "fingerprint": true, "query_id": true,
	"request_id": true, "id": true, "trace_id": true, "span_id": true,
	"user": true, "user_id": true, "subject": true, "tenant": true, "token": true, "email": true, "session": true,
	"error": true, "err": true, "message": true, "msg": true, "file": true, "filename": true,
	// Prometheus adds these at scrape time; a target-side one would collide.
	"instance": true, "job": true,
}

// cappedLabels are the exceptions to unboundedLabels: families that carry
// such a label on purpose and bound its series themselves. The anomaly score
// gauge holds one series per series in an open incident, so a dashboard and
// alert rules can name the host, and caps them (ANOMALY_MAX_SCORE_SERIES,
// overflow counted in smartcloudops_anomaly_score_series_dropped_total).
var cappedLabels = map[string]map[string]bool{
	"smartcloudops_anomaly_score": {"host": true, "metric": true},
}

// maxLabelValues bounds the distinct values one label may take in the
// scrape below; the largest legitimate set is the route patterns.
const maxLabelValues = 64

var (
	snakeName = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	// Units other than the base ones (seconds, bytes, ratios) and abbreviations.
	nonBaseUnit = map[string]string{
		"ms": "seconds", "milliseconds": "seconds", "millis": "seconds", "us": "seconds", "microseconds": "seconds",
		"ns": "seconds", "nanoseconds": "seconds", "minutes": "seconds", "hours": "seconds", "days": "seconds",
		"sec": "seconds", "secs": "seconds",
		"kb": "bytes", "kib": "bytes", "mb": "bytes", "mib": "bytes", "gb": "bytes", "gib": "bytes",
		"kilobytes": "bytes", "megabytes": "bytes", "bits": "bytes", "percent": "ratio", "pct": "ratio",
	}
	// Words that say a metric measures time, so it must carry _seconds.
	timeWords = []string{"duration", "latency", "elapsed", "wait"}
)

// newMarker returns a random token put into request paths, cache keys and
// hosts: if it shows up in any label value, a label carries caller data.
func newMarker(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "zq" + hex.EncodeToString(b)
}

// metricsService starts the whole service with the local Redis (each run
// under its own key prefix) and an admin token, and drives requests through
// every part it wires, so vector metrics have series to inspect.
func metricsService(t *testing.T, marker string) (*running, string) {
	t.Helper()
	redisURL := redistest.URL()
	token := "metrics-test-token-" + marker
	// An Alertmanager that takes every alert, so the notifier's metrics
	// are exported and checked too.
	am := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
	t.Cleanup(am.Close)
	r := start(t, map[string]string{
		"DATABASE_URL":                   storetest.SQLiteURL(t),
		"REDIS_URL":                      redisURL,
		"CACHE_KEY_PREFIX":               "smartcloudops-test-metrics-" + marker + ":",
		"SMARTCLOUDOPS_ADMIN_TOKEN":      token,
		"LOG_STDERR_LEVEL":               "off",
		"SMARTCLOUDOPS_ALERTMANAGER_URL": am.URL,
	}, nil)
	t.Cleanup(func() {
		// Leave nothing behind in the shared Redis.
		send(t, r.base, token, http.MethodPost, "/performance/cache/clear", `{"namespace":"metrics-test"}`)
	})

	for _, p := range []string{"/livez", "/readyz", "/performance/health", "/performance/config",
		"/performance/cache/stats", "/performance/logs/stats", "/performance/anomaly/stats", "/performance/database/stats"} {
		send(t, r.base, "", http.MethodGet, p, "")
	}
	for i := range 10 {
		key := fmt.Sprintf("/performance/cache/metrics-test/%s-%d", marker, i)
		send(t, r.base, token, http.MethodPut, key+"?ttl=120", strings.Repeat("v", 100*(i+1)))
		send(t, r.base, token, http.MethodGet, key, "")
		send(t, r.base, token, http.MethodGet, key+"-missing", "")
		send(t, r.base, "", http.MethodGet, fmt.Sprintf("/no/such/%s/%d", marker, i), "")
	}
	send(t, r.base, token, http.MethodDelete, fmt.Sprintf("/performance/cache/metrics-test/%s-0", marker), "")
	send(t, r.base, "", http.MethodDelete, "/performance/health", "") // 405
	sample := fmt.Sprintf(`{"host":"%s-host","metrics":{"cpu_usage":42,"memory_usage":50}}`, marker)
	send(t, r.base, "", http.MethodPost, "/performance/anomaly/detect", sample)
	send(t, r.base, token, http.MethodPost, "/api/v1/metrics", `{"samples":[`+sample+`]}`)
	// A cpu past its limit opens an incident: an alert, and a series of
	// the score gauge.
	send(t, r.base, token, http.MethodPost, "/api/v1/metrics", fmt.Sprintf(`{"host":"%s-hot","metrics":{"cpu_usage":99}}`, marker))
	send(t, r.base, token, http.MethodPost, "/performance/database/optimize", `{}`)
	return r, token
}

// send makes one request and discards the answer: the tests only need the
// side effects on the metrics, whatever the status.
func send(t *testing.T, base, token, method, path, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// scrape reads /performance/metrics in the text format, the way Prometheus does.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/performance/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics: %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse metrics: %v", err)
	}
	return mfs
}

// namingProblems checks one family against the conventions and returns
// what is wrong with it, one line each.
func namingProblems(mf *dto.MetricFamily, all map[string]*dto.MetricFamily) []string {
	var out []string
	name, typ := mf.GetName(), mf.GetType()
	bad := func(format string, a ...any) { out = append(out, fmt.Sprintf(format, a...)) }
	if !snakeName.MatchString(name) {
		bad("name is not snake_case")
	}
	if strings.TrimSpace(mf.GetHelp()) == "" {
		bad("no help text")
	}
	isCounter := typ == dto.MetricType_COUNTER
	if isCounter != strings.HasSuffix(name, "_total") {
		if isCounter {
			bad("counter without the _total suffix")
		} else {
			bad("%s with the _total suffix, which is for counters only", typ)
		}
	}
	for _, suf := range []string{"_count", "_sum", "_bucket", "_created", "_info_total"} {
		if strings.HasSuffix(name, suf) {
			bad("suffix %s is reserved for histogram, summary and OpenMetrics series", suf)
		}
	}
	if typ == dto.MetricType_HISTOGRAM || typ == dto.MetricType_SUMMARY {
		for _, suf := range []string{"_count", "_sum", "_bucket"} {
			if _, ok := all[name+suf]; ok {
				bad("another family is named %s, colliding with this %s's series", name+suf, typ)
			}
		}
	}
	words := strings.Split(strings.TrimSuffix(name, "_total"), "_")
	for i, w := range words {
		if base, ok := nonBaseUnit[w]; ok {
			bad("unit %q is not a base unit; use %s", w, base)
		}
		if (w == "seconds" || w == "bytes") && i != len(words)-1 {
			bad("unit %q must be the last word (before _total on counters)", w)
		}
	}
	for _, w := range timeWords {
		if slices.Contains(words, w) && !slices.Contains(words, "seconds") {
			bad("measures time (%q) but is not in _seconds", w)
		}
	}
	if strings.HasSuffix(name, "_info") && (typ != dto.MetricType_GAUGE || !constantOne(mf)) {
		bad("an _info metric must be a gauge whose value is 1")
	}
	return out
}

func constantOne(mf *dto.MetricFamily) bool {
	for _, m := range mf.GetMetric() {
		if m.GetGauge().GetValue() != 1 {
			return false
		}
	}
	return true
}

// labelProblems checks the label names and how many values each took.
func labelProblems(mf *dto.MetricFamily, marker string) []string {
	var out []string
	values := map[string]map[string]bool{}
	for _, m := range mf.GetMetric() {
		for _, lp := range m.GetLabel() {
			n, v := lp.GetName(), lp.GetValue()
			if cappedLabels[mf.GetName()][n] {
				continue
			}
			if values[n] == nil {
				values[n] = map[string]bool{}
			}
			values[n][v] = true
			if strings.Contains(v, marker) {
				out = append(out, fmt.Sprintf("label %s=%q carries request data (a path, key or host)", n, v))
			}
		}
	}
	for n, vs := range values {
		if !snakeName.MatchString(n) {
			out = append(out, fmt.Sprintf("label %q is not snake_case", n))
		}
		if unboundedLabels[n] {
			out = append(out, fmt.Sprintf("label %q has unbounded values (one series per distinct value)", n))
		}
		if len(vs) > maxLabelValues {
			out = append(out, fmt.Sprintf("label %q took %d values in one short run", n, len(vs)))
		}
	}
	return out
}

func labelNames(mf *dto.MetricFamily) []string {
	set := map[string]bool{}
	for _, m := range mf.GetMetric() {
		for _, lp := range m.GetLabel() {
			set[lp.GetName()] = true
		}
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ours keeps the smartcloudops_* families: the Go, process and database/sql
// collectors follow their own (upstream) conventions.
func ours(mfs map[string]*dto.MetricFamily) []*dto.MetricFamily {
	var out []*dto.MetricFamily
	for name, mf := range mfs {
		if strings.HasPrefix(name, "smartcloudops_") {
			out = append(out, mf)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out
}

// checkConventions runs the naming, label and promlint checks over families.
func checkConventions(t *testing.T, fams []*dto.MetricFamily, all map[string]*dto.MetricFamily, marker string) {
	t.Helper()
	for _, mf := range fams {
		for _, p := range append(namingProblems(mf, all), labelProblems(mf, marker)...) {
			t.Errorf("%s: %s", mf.GetName(), p)
		}
	}
	problems, err := promlint.NewWithMetricFamilies(fams).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// TestMetricNamesFollowConventions scrapes a running service after some
// traffic and holds every smartcloudops_* family to the conventions: base
// units as the last word, _total exactly on counters, no names that collide
// with histogram series, snake_case, help text, and labels that cannot grow
// with traffic. It prints the list, which is the reference for the
// dashboards and alerts.
func TestMetricNamesFollowConventions(t *testing.T) {
	marker := newMarker(t)
	r, _ := metricsService(t, marker)
	mfs := scrape(t, r.base)
	fams := ours(mfs)
	if len(fams) < 20 {
		t.Fatalf("only %d smartcloudops_* families exported", len(fams))
	}
	for _, want := range []string{"smartcloudops_http_requests_total", "smartcloudops_cache_requests_total", "smartcloudops_log_records_total"} {
		if mfs[want] == nil || len(mfs[want].GetMetric()) == 0 {
			t.Errorf("%s has no series after traffic", want)
		}
	}
	checkConventions(t, fams, mfs, marker)

	var b strings.Builder
	fmt.Fprintf(&b, "%d smartcloudops_* metrics exported by serve:\n", len(fams))
	for _, mf := range fams {
		fmt.Fprintf(&b, "  %-55s %-9s {%s} %s\n", mf.GetName(), strings.ToLower(mf.GetType().String()),
			strings.Join(labelNames(mf), ","), mf.GetHelp())
	}
	t.Log(b.String())
}

// TestMetricNamesOfStoreFollowConventions applies the same checks to the
// store's smartcloudops_db_* metrics on a store opened with a registry of
// its own, so the store's names are held to the conventions whatever serve
// wires (it exports them too, and the test above covers them there).
func TestMetricNamesOfStoreFollowConventions(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	st, err := store.Open(ctx, store.Options{URL: storetest.SQLiteURL(t), PoolSize: 2, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// The index advisor's metrics are the store's too, registered by dbadmin.
	admin, err := dbadmin.New(st, dbadmin.Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Optimize(ctx, dbadmin.OptimizeOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]*dto.MetricFamily{}
	for _, mf := range got {
		all[mf.GetName()] = mf
	}
	fams := ours(all)
	if len(fams) == 0 {
		t.Fatal("the store registered no smartcloudops_* metrics")
	}
	checkConventions(t, fams, all, newMarker(t))
	names := make([]string, len(fams))
	for i, mf := range fams {
		names[i] = fmt.Sprintf("%s (%s {%s})", mf.GetName(), strings.ToLower(mf.GetType().String()), strings.Join(labelNames(mf), ","))
	}
	t.Logf("store metrics:\n  %s", strings.Join(names, "\n  "))
}

// TestPromtoolChecksAlertRules runs promtool over the alert rules, their
// unit tests, the example scrape configuration and the dashboard's queries. promtool comes with
// Debian's prometheus package; without it the test skips and says so.
func TestPromtoolChecksAlertRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not on PATH (apt-get install -y prometheus provides it); alert rules not checked")
	}
	// The dashboard's queries, with Grafana's variables given plain values,
	// as recording rules: promtool then parses every one as PromQL.
	queries := strings.NewReplacer("$__rate_interval", "5m", "$__range", "1h", "$instance", ".*", "$route", ".*")
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range dashboardExprs(t) {
		expr, err := json.Marshal(queries.Replace(e.expr))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&rules, "      - record: dashboard_query_%d\n        expr: %s\n", i, expr)
	}
	dashRules := filepath.Join(t.TempDir(), "dashboard_queries.yml")
	if err := os.WriteFile(dashRules, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"check", "rules", alertsPath},
		{"check", "rules", dashRules},
		{"test", "rules", alertTestPath},
		// Also loads the rule files the example names.
		{"check", "config", promConfPath},
	} {
		t.Run(strings.Join(args[:2], " ")+" "+filepath.Base(args[len(args)-1]), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, promtool, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
		})
	}
}

var metricRef = regexp.MustCompile(`smartcloudops_[a-z0-9_]+`)

// referencedMetrics returns the smartcloudops_* names the deploy assets
// mention, with where. The whole text counts, not only the expressions: a
// variable's query, an annotation or a description naming a metric that
// does not exist misleads as much as a broken panel.
func referencedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	refs := map[string][]string{}
	add := func(name, where string) {
		if !slices.Contains(refs[name], where) {
			refs[name] = append(refs[name], where)
		}
	}
	for _, e := range dashboardExprs(t) {
		for _, n := range metricRef.FindAllString(e.expr, -1) {
			add(n, "dashboard panel "+strconv.Quote(e.panel))
		}
	}
	for _, path := range []string{dashboardPath, alertsPath} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range metricRef.FindAllString(string(data), -1) {
			if len(refs[n]) == 0 {
				add(n, filepath.Base(path))
			}
		}
	}
	return refs
}

type panelExpr struct{ panel, expr string }

// dashboard is the part of Grafana's JSON model the tests look at.
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int                      `json:"id"`
	Type       string                   `json:"type"`
	Title      string                   `json:"title"`
	Datasource map[string]string        `json:"datasource"`
	GridPos    struct{ H, W, X, Y int } `json:"gridPos"`
	Targets    []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	return d
}

func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

func dashboardExprs(t *testing.T) []panelExpr {
	t.Helper()
	var out []panelExpr
	for _, p := range allPanels(loadDashboard(t).Panels) {
		for _, tg := range p.Targets {
			out = append(out, panelExpr{p.Title, tg.Expr})
		}
	}
	return out
}

// TestDashboardShape checks what makes the Grafana JSON importable and
// usable across a fleet: a templated datasource and instance, every query
// panel on the templated datasource and filtered by $instance, unique ids
// and non-empty queries.
func TestDashboardShape(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard needs a uid and a title")
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" || vars["instance"] != "query" {
		t.Errorf("templating needs a datasource variable and an instance query variable; got %v", vars)
	}
	ids := map[int]string{}
	queries := 0
	for _, p := range allPanels(d.Panels) {
		if prev, ok := ids[p.ID]; ok || p.ID == 0 {
			t.Errorf("panel %q: id %d missing or already used by %q", p.Title, p.ID, prev)
		}
		ids[p.ID] = p.Title
		if p.Type == "row" {
			continue
		}
		if p.GridPos.W == 0 || p.GridPos.H == 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: bad gridPos %+v", p.Title, p.GridPos)
		}
		if p.Datasource["uid"] != "${datasource}" {
			t.Errorf("panel %q: datasource %v, want the templated ${datasource}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no queries", p.Title)
		}
		for _, tg := range p.Targets {
			queries++
			if strings.TrimSpace(tg.Expr) == "" || tg.RefID == "" {
				t.Errorf("panel %q: empty query or refId", p.Title)
			}
			for _, sel := range metricRef.FindAllStringIndex(tg.Expr, -1) {
				rest := tg.Expr[sel[1]:]
				if !strings.HasPrefix(rest, `{`) || !strings.Contains(rest[:strings.Index(rest, "}")+1], `instance=~"$instance"`) {
					t.Errorf("panel %q: %s is not filtered by instance=~\"$instance\"", p.Title, tg.Expr[sel[0]:sel[1]])
				}
			}
		}
	}
	if queries < 20 {
		t.Errorf("only %d queries in the dashboard", queries)
	}
}

// TestDashboardAndAlertMetricsExported checks that every metric the
// dashboard and the alert rules read is exported by the running service
// (histogram series by their base name), except for parts listed in
// notYetWired, whose names must then be registered in that part's source.
func TestDashboardAndAlertMetricsExported(t *testing.T) {
	marker := newMarker(t)
	r, _ := metricsService(t, marker)
	mfs := scrape(t, r.base)
	refs := referencedMetrics(t)
	if len(refs) < 20 {
		t.Fatalf("only %d metrics referenced; parsing went wrong?", len(refs))
	}
	for _, w := range notYetWired {
		for name := range mfs {
			if strings.HasPrefix(name, w.prefix) {
				t.Errorf("%s* is exported now (%s): remove its notYetWired entry so its names are checked against the service", w.prefix, name)
				break
			}
		}
	}
	sourceNames := map[string]map[string]bool{}
	var allowed []string
	names := make([]string, 0, len(refs))
	for n := range refs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if exported(mfs, n) {
			continue
		}
		i := slices.IndexFunc(notYetWired, func(w struct{ prefix, dir, why string }) bool { return strings.HasPrefix(n, w.prefix) })
		if i < 0 {
			t.Errorf("%s is used by %s but the service does not export it", n, strings.Join(refs[n], "; "))
			continue
		}
		w := notYetWired[i]
		if sourceNames[w.dir] == nil {
			sourceNames[w.dir] = registeredInSource(t, w.dir, w.prefix)
		}
		if !sourceNames[w.dir][n] && !sourceNames[w.dir][stripSeriesSuffix(n)] {
			t.Errorf("%s is used by %s but %s registers no such metric", n, strings.Join(refs[n], "; "), w.dir)
			continue
		}
		allowed = append(allowed, n)
	}
	t.Logf("%d metrics referenced; %d not exported yet but registered by their part (%s):\n  %s",
		len(refs), len(allowed), "notYetWired", strings.Join(allowed, "\n  "))
}

func stripSeriesSuffix(n string) string {
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if b, ok := strings.CutSuffix(n, suf); ok {
			return b
		}
	}
	return n
}

// exported reports whether the scrape has n, or n is a series of an
// exported histogram or summary.
func exported(mfs map[string]*dto.MetricFamily, n string) bool {
	if mfs[n] != nil {
		return true
	}
	base := stripSeriesSuffix(n)
	mf := mfs[base]
	return base != n && mf != nil && (mf.GetType() == dto.MetricType_HISTOGRAM || mf.GetType() == dto.MetricType_SUMMARY)
}

var stringLiteral = regexp.MustCompile(`"([a-z0-9_]+)"`)

// registeredInSource collects the metric names a package's Go source can
// register: full-name string literals, and prefix+literal for parts that
// build names from a namespace constant equal to the prefix.
func registeredInSource(t *testing.T, dir, prefix string) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go source in %s: %v", dir, err)
	}
	names := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range stringLiteral.FindAllStringSubmatch(string(src), -1) {
			if strings.HasPrefix(m[1], prefix) {
				names[m[1]] = true
			} else {
				names[prefix+m[1]] = true
			}
		}
	}
	return names
}

// TestMetricNamingRulesCatchViolations feeds the checks families that break
// each rule, so a check that silently stopped working would show here.
func TestMetricNamingRulesCatchViolations(t *testing.T) {
	fam := func(name string, typ dto.MetricType, help string, labels ...string) *dto.MetricFamily {
		m := &dto.Metric{}
		for i := 0; i+1 < len(labels); i += 2 {
			m.Label = append(m.Label, &dto.LabelPair{Name: &labels[i], Value: &labels[i+1]})
		}
		return &dto.MetricFamily{Name: &name, Type: &typ, Help: &help, Metric: []*dto.Metric{m}}
	}
	const marker = "zqmarker"
	cases := []struct {
		mf   *dto.MetricFamily
		want string
	}{
		{fam("smartcloudops_x_requests", dto.MetricType_COUNTER, "h"), "counter without the _total"},
		{fam("smartcloudops_x_open_total", dto.MetricType_GAUGE, "h"), "counters only"},
		{fam("smartcloudops_x_latency_ms", dto.MetricType_GAUGE, "h"), `unit "ms"`},
		{fam("smartcloudops_x_wait", dto.MetricType_GAUGE, "h"), "not in _seconds"},
		{fam("smartcloudops_x_bytes_in", dto.MetricType_GAUGE, "h"), "must be the last word"},
		{fam("smartcloudops_x_items_count", dto.MetricType_GAUGE, "h"), "reserved"},
		{fam("smartcloudops_xRequests_total", dto.MetricType_COUNTER, "h"), "snake_case"},
		{fam("smartcloudops_x_things", dto.MetricType_GAUGE, ""), "no help"},
		{fam("smartcloudops_x_hits_total", dto.MetricType_COUNTER, "h", "path", "/a"), `label "path" has unbounded`},
		{fam("smartcloudops_x_hits_total", dto.MetricType_COUNTER, "h", "route", "/a/"+marker), "carries request data"},
	}
	for _, tc := range cases {
		all := map[string]*dto.MetricFamily{tc.mf.GetName(): tc.mf}
		got := strings.Join(append(namingProblems(tc.mf, all), labelProblems(tc.mf, marker)...), "; ")
		if !strings.Contains(got, tc.want) {
			t.Errorf("%s: problems %q lack %q", tc.mf.GetName(), got, tc.want)
		}
	}
	h := fam("smartcloudops_x_seconds", dto.MetricType_HISTOGRAM, "h")
	clash := fam("smartcloudops_x_seconds_count", dto.MetricType_GAUGE, "h")
	all := map[string]*dto.MetricFamily{h.GetName(): h, clash.GetName(): clash}
	if got := strings.Join(namingProblems(h, all), ";"); !strings.Contains(got, "colliding") {
		t.Errorf("histogram collision not reported: %q", got)
	}
	good := fam("smartcloudops_x_request_duration_seconds", dto.MetricType_HISTOGRAM, "h", "route", "GET /x")
	if p := append(namingProblems(good, map[string]*dto.MetricFamily{}), labelProblems(good, marker)...); len(p) > 0 {
		t.Errorf("a conventional histogram is reported: %v", p)
	}
}
