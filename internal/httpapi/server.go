// Package httpapi is SmartCloudOps' HTTP surface: every route in one place,
// thin handlers that call the parts through small interfaces, RFC 9457
// problem responses, bearer-token auth, access logs and request metrics.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/smartcloudops/smartcloudops/internal/config"
	"github.com/smartcloudops/smartcloudops/internal/health"
	"github.com/smartcloudops/smartcloudops/internal/tuning"
)

// ConfigView is what /performance/config shows.
type ConfigView interface {
	Redacted() []config.Entry
}

// Registry is the one Prometheus registry every part registers into.
type Registry interface {
	prometheus.Registerer
	prometheus.Gatherer
}

// Deps are the parts the API serves. Nil optional parts leave their routes
// answering 503 with a problem that says the part is not enabled.
type Deps struct {
	Logger   *slog.Logger
	Registry Registry
	// Components are the health checks shown on /performance/health, by name.
	Components map[string]health.Checker
	// Ready decides /readyz (the database).
	Ready  health.Checker
	Config ConfigView
	// Cache serves the cache endpoints; nil when ENABLE_CACHE=false.
	Cache Cache
	// Logs serves the log statistics; optional.
	Logs LogStats
	// Database serves /performance/database/* (statistics, index advisor,
	// maintenance); optional.
	Database Database
	Auth     AuthOptions
	// Limits are the per-client budgets of refused credentials and
	// state-changing requests; the zero value turns them off.
	Limits       LimitOptions
	MaxBodyBytes int64
	// CheckTimeout bounds each health check. Default 2s.
	CheckTimeout time.Duration
	Now          func() time.Time

	// Tunables are the runtime settings of PUT /performance/config; optional.
	Tunables Tunables
	// Replica names this process among the replicas sharing the database
	// (GET /performance/summary); optional.
	Replica string

	// Anomaly scores, ingests and manages models; optional.
	Anomaly AnomalyService

	// RemoteWrite takes Prometheus remote-write requests on
	// POST /api/v1/write; when nil, the route answers 503.
	RemoteWrite RemoteWriter

	// Series reads hosts, metric series and stored anomalies for /api/v1/hosts,
	// /api/v1/hosts/{host}/metrics and /api/v1/anomalies (and the dashboard);
	// when nil, they answer 503.
	Series SeriesReader

	// OTLP receives OTLP/HTTP metric exports on POST /v1/metrics; when nil,
	// the route answers 503.
	OTLP OTLPReceiver

	// TracerProvider records a server span per request, named by its route
	// pattern; nil (tracing off) records nothing and costs nothing.
	TracerProvider trace.TracerProvider

	// Pprof serves net/http/pprof at /debug/pprof/ to admins
	// (SMARTCLOUDOPS_PPROF); off, the paths are 404.
	Pprof bool
}

// Server is the HTTP handler of the service.
type Server struct {
	deps    Deps
	log     *slog.Logger
	auth    *authenticator
	limits  *limits
	metrics *httpMetrics
	mux     *http.ServeMux
	handler http.Handler
	maxBody int64
	now     func() time.Time
	// started is when the server was built, for uptime and rates.
	started time.Time
	// patterns are the registered routes, for Routes.
	patterns []string
	// draining is set by Drain: /readyz answers 503 from then on.
	draining atomic.Bool
}

// New builds the API. It registers its metrics into d.Registry.
func New(d Deps) (*Server, error) {
	if d.Logger == nil || d.Registry == nil || d.Config == nil || d.Ready == nil {
		return nil, errors.New("httpapi: Logger, Registry, Config and Ready are required")
	}
	if d.MaxBodyBytes <= 0 {
		d.MaxBodyBytes = 1 << 20
	}
	if d.CheckTimeout <= 0 {
		d.CheckTimeout = 2 * time.Second
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Auth.Now == nil {
		d.Auth.Now = d.Now
	}
	m, err := newHTTPMetrics(d.Registry)
	if err != nil {
		return nil, err
	}
	lim, err := newLimits(d.Limits, d.Now)
	if err != nil {
		return nil, err
	}
	s := &Server{deps: d, log: d.Logger, auth: newAuthenticator(d.Auth), limits: lim, metrics: m, mux: http.NewServeMux(), maxBody: d.MaxBodyBytes, now: d.Now, started: d.Now()}
	s.routes()
	s.handler = s.instrument(http.HandlerFunc(s.route))
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// routes is the one place that lists every endpoint, its method and its access policy.
func (s *Server) routes() {
	s.handle("GET /livez", Public, s.livez)
	s.handle("GET /readyz", Public, s.readyz)
	s.handle("GET /performance/health", Public, s.health)
	s.handle("GET /performance/config", Read, s.config)
	s.handle("PUT /performance/config", AdminRole, s.putConfig)
	s.handle("GET /performance/summary", Read, s.summary)
	metrics := s.promMetrics()
	s.handle("GET /performance/metrics", MetricsRead, metrics)
	s.handle("GET /metrics", MetricsRead, metrics)
	s.handle("GET /performance/openapi.json", Public, s.openAPI)
	s.handle("POST /api/v1/metrics", UserRole, s.anomalyIngest)
	s.handle("POST /api/v1/write", UserRole, s.remoteWrite)
	s.handle("POST /v1/metrics", UserRole, s.otlpMetrics)
	s.handle("POST /performance/anomaly/detect", TenantRead, s.anomalyDetect)
	s.handle("GET /performance/anomaly/stats", Read, s.anomalyStats)
	s.handle("GET /performance/anomaly/models", Read, s.anomalyModels)
	s.handle("POST /performance/anomaly/models", AdminRole, s.anomalyTrain)
	s.handle("POST /performance/anomaly/models/{version}/activate", AdminRole, s.anomalyActivate)
	s.handle("POST /performance/anomaly/series/rebaseline", AdminRole, s.anomalyRebaseline)
	db := newDatabaseAPI(s)
	s.handle("GET /performance/database/stats", Read, db.stats)
	s.handle("GET /performance/database/indexes", Read, db.indexes)
	s.handle("POST /performance/database/indexes", AdminRole, db.createIndex)
	s.handle("POST /performance/database/optimize", AdminRole, db.optimize)
	s.handle("GET /performance/database/jobs/{id}", Read, db.jobStatus)

	s.handle("GET /performance/cache/stats", Read, s.cacheStats)
	s.handle("POST /performance/cache/clear", UserRole, s.cacheClear)
	s.handle("GET /performance/cache/{namespace}/{key...}", UserRole, s.cacheGet)
	s.handle("PUT /performance/cache/{namespace}/{key...}", UserRole, s.cachePut)
	s.handle("DELETE /performance/cache/{namespace}/{key...}", UserRole, s.cacheDelete)

	s.handle("GET /performance/logs/stats", Read, s.logStats)

	s.handle("GET /api/v1/hosts", TenantRead, s.listHosts)
	s.handle("GET /api/v1/hosts/{host}/metrics", TenantRead, s.hostSeries)
	s.handle("GET /api/v1/anomalies", TenantRead, s.listAnomalies)
	s.handle("GET /{$}", Public, s.dashboard)
	s.handle("GET /ui/{file}", Public, s.dashboardAsset)
	s.pprofRoutes()
}

// handlerFunc is a handler that reports failure by returning an error, which
// becomes a problem response; handlers never write error bodies themselves.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (s *Server) handle(pattern string, access Access, h handlerFunc) {
	s.patterns = append(s.patterns, pattern)
	s.mux.Handle(pattern, routeHandler(func(w http.ResponseWriter, r *http.Request) {
		info := infoFrom(r.Context())
		info.route = pattern
		if err := s.admit(w, r, access); err != nil {
			writeProblem(w, r, err)
			return
		}
		p, err := s.auth.authorize(r, access)
		info.who = p
		if err != nil {
			if isCode(err, CodeUnauthorized) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="smartcloudops"`)
				if r.Header.Get("Authorization") != "" {
					s.authFailed(r)
				}
			}
			writeProblem(w, r, err)
			return
		}
		if err := h(w, r); err != nil {
			writeProblem(w, r, err)
		}
	}))
}

func isCode(err error, c Code) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == c
}

// route dispatches to the mux, turning its plain-text 404 and 405 into problems.
// routeHandler marks the handlers registered through handle, so route can
// tell them from the redirects the mux answers on its own.
type routeHandler func(w http.ResponseWriter, r *http.Request)

func (h routeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h(w, r) }

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	h, pattern := s.mux.Handler(r)
	if _, ours := h.(routeHandler); ours {
		s.mux.ServeHTTP(w, r)
		return
	}
	if pattern != "" {
		// The mux wants to redirect: to a cleaned path (a "." or ".." or empty
		// segment) or to add a trailing slash. The API never redirects: a
		// client following one could write a different cache key than it
		// named (a/../b is b), so the request is refused as it stands.
		writeProblem(w, r, Errorf(CodeNotFound, "no endpoint at %s: paths must not contain empty, \".\" or \"..\" segments, and cache entries need /{namespace}/{key}", r.URL.Path))
		return
	}
	// No pattern matched: let the mux decide between 404 and 405 (it knows
	// which methods the path allows) into a recorder, then answer as a problem.
	rec := &headerRecorder{header: http.Header{}}
	s.mux.ServeHTTP(rec, r)
	if rec.status == http.StatusMethodNotAllowed {
		if allow := rec.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		writeProblem(w, r, Errorf(CodeMethodNotAllowed, "%s is not allowed on %s", r.Method, r.URL.Path))
		return
	}
	writeProblem(w, r, Errorf(CodeNotFound, "no endpoint at %s", r.URL.Path))
}

// headerRecorder captures the status and headers the mux's own error
// handlers would send, discarding their plain-text body.
type headerRecorder struct {
	header http.Header
	status int
}

func (h *headerRecorder) Header() http.Header         { return h.header }
func (h *headerRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (h *headerRecorder) WriteHeader(code int)        { h.status = code }

func (s *Server) livez(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, r, http.StatusOK, map[string]string{"status": string(health.StatusUp)})
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	if s.Draining() {
		writeJSON(w, r, http.StatusServiceUnavailable, drainingComponent())
		return nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.deps.CheckTimeout)
	defer cancel()
	c := s.deps.Ready.Check(ctx)
	status := http.StatusOK
	if c.Status == health.StatusDown {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, r, status, c)
	return nil
}

// HealthReport is the body of /performance/health.
type HealthReport struct {
	Status     health.Status               `json:"status"`
	Timestamp  time.Time                   `json:"timestamp"`
	Components map[string]health.Component `json:"components"`
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) error {
	rep := HealthReport{Timestamp: s.now().UTC(), Components: s.checkAll(r.Context())}
	rep.Status = health.Overall(rep.Components)
	status := http.StatusOK
	if rep.Status == health.StatusDown {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, r, status, rep)
	return nil
}

// checkAll runs every component check concurrently, each bounded by
// CheckTimeout, so one hung dependency cannot stall the health endpoint.
func (s *Server) checkAll(ctx context.Context) map[string]health.Component {
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		out = make(map[string]health.Component, len(s.deps.Components))
	)
	for name, c := range s.deps.Components {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, s.deps.CheckTimeout)
			defer cancel()
			res := s.checkOne(cctx, c)
			mu.Lock()
			out[name] = res
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func (s *Server) checkOne(ctx context.Context, c health.Checker) health.Component {
	done := make(chan health.Component, 1)
	go func() { done <- c.Check(ctx) }()
	select {
	case res := <-done:
		return res
	case <-ctx.Done():
		return health.Component{Status: health.StatusDown, Details: map[string]any{"error": "health check timed out"}}
	}
}

// ConfigReport is the body of GET /performance/config: the start-up settings
// with their sources, and the runtime settings with their values in force.
type ConfigReport struct {
	Settings []config.Entry `json:"settings"`
	Runtime  []tuning.Entry `json:"runtime"`
}

func (s *Server) config(w http.ResponseWriter, r *http.Request) error {
	rep := ConfigReport{Settings: s.deps.Config.Redacted(), Runtime: []tuning.Entry{}}
	if s.deps.Tunables != nil {
		rep.Runtime = s.deps.Tunables.Entries()
	}
	writeJSON(w, r, http.StatusOK, rep)
	return nil
}

func (s *Server) promMetrics() handlerFunc {
	h := promhttp.HandlerFor(s.deps.Registry, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelError),
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	})
	return func(w http.ResponseWriter, r *http.Request) error {
		h.ServeHTTP(w, r)
		return nil
	}
}

// BuildInfo describes the running binary.
type BuildInfo struct {
	Version   string
	Revision  string
	GoVersion string
}

// RegisterBuildInfo exports smartcloudops_build_info, the constant-1 gauge
// whose labels say which build is running.
func RegisterBuildInfo(reg prometheus.Registerer, b BuildInfo) error {
	if b.GoVersion == "" {
		b.GoVersion = runtime.Version()
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "smartcloudops_build_info",
		Help:        "Always 1; the labels identify the running build.",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": b.Revision, "goversion": b.GoVersion},
	})
	g.Set(1)
	if err := reg.Register(g); err != nil {
		return fmt.Errorf("httpapi: register build info: %w", err)
	}
	return nil
}

// Routes lists the registered patterns, sorted; the README's endpoint table and
// the tests check against it.
func (s *Server) Routes() []string {
	out := append([]string(nil), s.patterns...)
	sort.Strings(out)
	return out
}
