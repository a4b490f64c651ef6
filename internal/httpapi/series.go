package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/anomaly"
	"github.com/smartcloudops/smartcloudops/internal/domain"
	"github.com/smartcloudops/smartcloudops/internal/store"
)

// SeriesReader is what the host, series and anomaly read endpoints need from
// the store; *store.Store implements it.
type SeriesReader interface {
	Hosts(ctx context.Context, q store.HostsQuery) (store.HostList, error)
	MetricSeries(ctx context.Context, q store.SeriesQuery) (store.Series, error)
	AnomalyRange(ctx context.Context, q store.AnomalyRangeQuery) (store.AnomalyList, error)
}

// seriesPart is Deps.Series, or a 503 when the service runs without one.
func (s *Server) seriesPart() (SeriesReader, error) {
	if s.deps.Series != nil {
		return s.deps.Series, nil
	}
	return nil, Errorf(CodeUnavailable, "no database is configured for metric and anomaly history")
}

// HostSummary is one host in GET /api/v1/hosts.
type HostSummary struct {
	Host string `json:"host"`
	// LastSample is the time of the host's most recent stored sample.
	LastSample time.Time `json:"last_sample"`
}

// HostsResponse is the body of GET /api/v1/hosts.
type HostsResponse struct {
	Count int `json:"count"`
	Limit int `json:"limit"`
	// Truncated says more hosts matched than limit.
	Truncated bool          `json:"truncated"`
	Hosts     []HostSummary `json:"hosts"`
}

// SeriesPoint is one sample of a host's series: the typed metrics it
// reported at that time (metrics it did not report are absent).
type SeriesPoint struct {
	Timestamp time.Time          `json:"timestamp"`
	Metrics   map[string]float64 `json:"metrics"`
}

// SeriesResponse is the body of GET /api/v1/hosts/{host}/metrics.
type SeriesResponse struct {
	Host  string     `json:"host"`
	From  *time.Time `json:"from,omitempty"`
	To    *time.Time `json:"to,omitempty"`
	Count int        `json:"count"`
	Limit int        `json:"limit"`
	// Truncated says the window held more samples than limit; the oldest
	// were left out.
	Truncated bool `json:"truncated"`
	// Metrics names every metric present in the samples, in a fixed order.
	Metrics []string      `json:"metrics"`
	Samples []SeriesPoint `json:"samples"`
}

// AnomalyRecord is one stored anomaly in GET /api/v1/anomalies.
type AnomalyRecord struct {
	ID   int64  `json:"id"`
	Host string `json:"host"`
	// Metric is the metric that contributed most; empty for a host-wide finding.
	Metric       string             `json:"metric,omitempty"`
	DetectedAt   time.Time          `json:"detected_at"`
	Score        float64            `json:"score"`
	Confidence   float64            `json:"confidence"`
	Severity     string             `json:"severity"`
	Status       string             `json:"status"`
	ModelVersion string             `json:"model_version"`
	Features     map[string]float64 `json:"features,omitempty"`
	Explanation  string             `json:"explanation,omitempty"`
}

// AnomaliesResponse is the body of GET /api/v1/anomalies.
type AnomaliesResponse struct {
	Count int `json:"count"`
	Limit int `json:"limit"`
	// Truncated says more anomalies matched than limit; the oldest were left out.
	Truncated bool            `json:"truncated"`
	Anomalies []AnomalyRecord `json:"anomalies"`
}

// seriesMetricNames are the typed metric columns, in the order the series
// reports them; the names are the anomaly part's canonical ones.
var seriesMetricNames = [...]string{"cpu_usage", "memory_usage", "disk_usage", "network_in", "network_out", "load_average", "response_time_ms", "error_rate", "request_rate"}

// tenantFilter applies the tenant rule (Principal.MayUseHost) to reads: a
// user token with a tenant claim sees only hosts whose first '/'-separated
// segment is its tenant; an admin, an unscoped user and (when tenant reads
// are open) an anonymous caller see every host. A requested host outside the
// tenant is 403 naming field. The prefix "<tenant>/" selects exactly the
// tenant's hosts because a valid tenant name holds no '/' (ValidTenant).
func tenantFilter(p *Principal, host, field string) (store.HostFilter, error) {
	f := store.HostFilter{Host: host}
	if p == nil || p.Role == RoleAdmin || p.Tenant == "" {
		return f, nil
	}
	f.Prefix = p.Tenant + "/"
	if host != "" && !p.MayUseHost(host) {
		return f, &Error{Code: CodeForbidden, Detail: "the token's tenant may not read this host",
			Fields: []FieldError{{Field: field, Detail: fmt.Sprintf("a token of tenant %q may read only hosts named %q", p.Tenant, f.Prefix+"…")}}}
	}
	return f, nil
}

// validHost checks a host named in a path or query the way ingest checks a
// sample's host.
func validHost(host string) *FieldError {
	if host == "" {
		return &FieldError{Field: "host", Detail: "is required"}
	}
	if len(host) > anomaly.MaxHostLen {
		return &FieldError{Field: "host", Detail: fmt.Sprintf("is longer than %d bytes", anomaly.MaxHostLen)}
	}
	for _, c := range host {
		if c <= ' ' || c == 0x7f {
			return &FieldError{Field: "host", Detail: "must not contain spaces or control characters"}
		}
	}
	return nil
}

// readLimit parses ?limit=, 1 to most, def when absent.
func readLimit(q url.Values, def, most int) (int, *FieldError) {
	v := q.Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > most {
		return 0, &FieldError{Field: "limit", Detail: fmt.Sprintf("must be an integer from 1 to %d", most)}
	}
	return n, nil
}

// readWindow parses ?from= and ?to= (either may be absent) by the rule every
// timestamp follows (domain.ParseTimestamp) and checks from is before to.
func readWindow(q url.Values) (from, to time.Time, fields []FieldError) {
	parse := func(name string) time.Time {
		v := q.Get(name)
		if v == "" {
			return time.Time{}
		}
		t, err := domain.ParseTimestamp(v)
		if err != nil {
			fields = append(fields, FieldError{Field: name, Detail: err.Error()})
			return time.Time{}
		}
		return t
	}
	from, to = parse("from"), parse("to")
	if len(fields) == 0 && !from.IsZero() && !to.IsZero() && !from.Before(to) {
		fields = append(fields, FieldError{Field: "from", Detail: "must be before to"})
	}
	return from, to, fields
}

// rejectUnknown refuses query parameters the endpoint does not know: a typo
// such as ?form= would otherwise silently widen the window.
func rejectUnknown(q url.Values, known ...string) error {
	var fields []FieldError
	for name := range q {
		ok := false
		for _, k := range known {
			ok = ok || name == k
		}
		if !ok {
			fields = append(fields, FieldError{Field: name, Detail: "unknown parameter"})
		}
	}
	if len(fields) > 0 {
		sortFields(fields)
		return Invalid(fields...)
	}
	return nil
}

func sortFields(f []FieldError) {
	for i := 1; i < len(f); i++ {
		for j := i; j > 0 && f[j].Field < f[j-1].Field; j-- {
			f[j], f[j-1] = f[j-1], f[j]
		}
	}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// listHosts serves GET /api/v1/hosts?limit=N: the hosts with stored samples
// (a tenant's only), in name order, each with its latest sample time.
func (s *Server) listHosts(w http.ResponseWriter, r *http.Request) error {
	sr, err := s.seriesPart()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if err := rejectUnknown(q, "limit"); err != nil {
		return err
	}
	limit, fe := readLimit(q, store.DefaultHostsLimit, store.MaxHostsLimit)
	if fe != nil {
		return Invalid(*fe)
	}
	filter, err := tenantFilter(PrincipalFrom(r.Context()), "", "host")
	if err != nil {
		return err
	}
	list, err := sr.Hosts(r.Context(), store.HostsQuery{Filter: filter, Limit: limit})
	if err != nil {
		return dbError(err)
	}
	resp := HostsResponse{Count: len(list.Hosts), Limit: limit, Truncated: list.Truncated, Hosts: make([]HostSummary, len(list.Hosts))}
	for i, h := range list.Hosts {
		resp.Hosts[i] = HostSummary{Host: h.Host, LastSample: h.LastSample}
	}
	writeJSON(w, r, http.StatusOK, resp)
	return nil
}

// hostSeries serves GET /api/v1/hosts/{host}/metrics?from=&to=&limit=: the
// most recent samples of the window [from, to), oldest first. A host name
// holding "/" (a tenant's host) is sent escaped: /api/v1/hosts/acme%2Fweb-1/metrics.
func (s *Server) hostSeries(w http.ResponseWriter, r *http.Request) error {
	sr, err := s.seriesPart()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if err := rejectUnknown(q, "from", "to", "limit"); err != nil {
		return err
	}
	host := r.PathValue("host")
	var fields []FieldError
	if fe := validHost(host); fe != nil {
		fields = append(fields, *fe)
	}
	from, to, wf := readWindow(q)
	fields = append(fields, wf...)
	limit, fe := readLimit(q, store.DefaultSeriesLimit, store.MaxSeriesLimit)
	if fe != nil {
		fields = append(fields, *fe)
	}
	if len(fields) > 0 {
		return Invalid(fields...)
	}
	if _, err := tenantFilter(PrincipalFrom(r.Context()), host, "host"); err != nil {
		return err
	}
	series, err := sr.MetricSeries(r.Context(), store.SeriesQuery{Host: host, From: from, To: to, Limit: limit})
	if err != nil {
		return dbError(err)
	}
	resp := SeriesResponse{Host: host, From: timePtr(from), To: timePtr(to), Count: len(series.Samples), Limit: limit,
		Truncated: series.Truncated, Metrics: []string{}, Samples: make([]SeriesPoint, len(series.Samples))}
	var present [len(seriesMetricNames)]bool
	for i, m := range series.Samples {
		pt := SeriesPoint{Timestamp: m.Timestamp, Metrics: make(map[string]float64, len(seriesMetricNames))}
		for j, v := range []*float64{m.CPUUsage, m.MemoryUsage, m.DiskUsage, m.NetworkIn, m.NetworkOut, m.LoadAverage, m.ResponseTimeMS, m.ErrorRate, m.RequestRate} {
			if v != nil {
				pt.Metrics[seriesMetricNames[j]] = *v
				present[j] = true
			}
		}
		resp.Samples[i] = pt
	}
	for j, ok := range present {
		if ok {
			resp.Metrics = append(resp.Metrics, seriesMetricNames[j])
		}
	}
	writeJSON(w, r, http.StatusOK, resp)
	return nil
}

// listAnomalies serves GET /api/v1/anomalies?host=&from=&to=&limit=: stored
// anomalies (a tenant's hosts' only), newest first.
func (s *Server) listAnomalies(w http.ResponseWriter, r *http.Request) error {
	sr, err := s.seriesPart()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if err := rejectUnknown(q, "host", "from", "to", "limit"); err != nil {
		return err
	}
	host := q.Get("host")
	var fields []FieldError
	if q.Has("host") {
		if fe := validHost(host); fe != nil {
			fields = append(fields, *fe)
		}
	}
	from, to, wf := readWindow(q)
	fields = append(fields, wf...)
	limit, fe := readLimit(q, store.DefaultAnomaliesLimit, store.MaxAnomaliesLimit)
	if fe != nil {
		fields = append(fields, *fe)
	}
	if len(fields) > 0 {
		return Invalid(fields...)
	}
	filter, err := tenantFilter(PrincipalFrom(r.Context()), host, "host")
	if err != nil {
		return err
	}
	list, err := sr.AnomalyRange(r.Context(), store.AnomalyRangeQuery{Filter: filter, From: from, To: to, Limit: limit})
	if err != nil {
		return dbError(err)
	}
	resp := AnomaliesResponse{Count: len(list.Anomalies), Limit: limit, Truncated: list.Truncated, Anomalies: make([]AnomalyRecord, len(list.Anomalies))}
	for i, a := range list.Anomalies {
		resp.Anomalies[i] = AnomalyRecord{ID: a.ID, Host: a.Host, Metric: a.Metric, DetectedAt: a.DetectedAt, Score: a.Score,
			Confidence: a.Confidence, Severity: string(a.Severity), Status: a.Status, ModelVersion: a.ModelVersion,
			Features: a.Features, Explanation: a.Explanation}
	}
	writeJSON(w, r, http.StatusOK, resp)
	return nil
}
