package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/trace"

	"github.com/smartcloudops/smartcloudops/internal/anomaly"
	"github.com/smartcloudops/smartcloudops/internal/anomaly/stream"
	"github.com/smartcloudops/smartcloudops/internal/cache"
	"github.com/smartcloudops/smartcloudops/internal/config"
	"github.com/smartcloudops/smartcloudops/internal/health"
	"github.com/smartcloudops/smartcloudops/internal/httpapi"
	"github.com/smartcloudops/smartcloudops/internal/ingest/otlp"
	"github.com/smartcloudops/smartcloudops/internal/logs"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/dbadmin"
	"github.com/smartcloudops/smartcloudops/internal/store/querycache"
	"github.com/smartcloudops/smartcloudops/internal/store/sharedstate"
)

// version and revision are set by a release build:
//
//	go build -ldflags "-X main.version=v1.2.3 -X main.revision=$(git rev-parse HEAD)" ./cmd/smartcloudops
//
// Left empty, they come from the build info (go install's module version,
// the VCS stamp of a build in a checkout).
var version, revision string

// Exit statuses: 2 is a usage or configuration error, as with flag parsing.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// hooks let tests observe a running server without parsing its logs.
type hooks struct {
	onListen func(addr net.Addr)
	// wrap, when set, wraps the API handler (a test uses it to hold a request in flight).
	wrap func(http.Handler) http.Handler
}

// run is the whole program behind main: it reads nothing global, so tests
// call it with their own arguments, environment and output.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runWith(ctx, args, getenv, stdin, stdout, stderr, hooks{})
}

func runWith(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer, h hooks) int {
	cmd := "serve"
	if len(args) > 0 {
		switch a := args[0]; {
		case a == "-h" || a == "--help" || a == "-help":
			fmt.Fprint(stdout, usage)
			return exitOK
		case a == "--version" || a == "-version":
			cmd = "version"
		case !strings.HasPrefix(a, "-"):
			cmd, args = a, args[1:]
		}
	}
	switch cmd {
	case "serve":
		return withConfig(cmd, args, getenv, stdout, stderr, nil, func(cfg *config.Config) error { return serve(ctx, cfg, getenv, stderr, h) })
	case "migrate":
		return withConfig(cmd, args, getenv, stdout, stderr, config.MigrateFlags, func(cfg *config.Config) error { return migrate(ctx, cfg, stdout, stderr) })
	case "check-config":
		return withConfig(cmd, args, getenv, stdout, stderr, nil, func(cfg *config.Config) error { return checkConfig(cfg, stdout) })
	case "detect":
		return runDetect(ctx, args, stdin, stdout, stderr)
	case "version":
		b := buildInfo()
		fmt.Fprintf(stdout, "smartcloudops %s (revision %s, %s)\n", b.Version, b.Revision, b.GoVersion)
		return exitOK
	case "help":
		if len(args) > 0 && commandHelp(args[0], stdout) {
			return exitOK
		}
		if len(args) > 0 {
			fmt.Fprintf(stderr, "smartcloudops: no help for unknown command %q (see smartcloudops --help)\n", args[0])
			return exitUsage
		}
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "smartcloudops: unknown command %q (see smartcloudops --help)\n", cmd)
	return exitUsage
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// openStore opens and migrates the database. reg and qc may be nil (the
// migrate command has no metrics and no cache). Its duration is logged as
// a "call" record (func store.open), so a slow start names its step.
func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger, reg prometheus.Registerer, qc querycache.Backend, tp trace.TracerProvider) (_ *store.Store, err error) {
	defer logs.Time(ctx, log, "store.open")(&err)
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := store.Open(octx, store.Options{
		URL:                cfg.DatabaseURL,
		PoolSize:           cfg.DatabasePoolSize,
		MinIdle:            cfg.DatabasePoolMinIdle,
		ConnMaxLifetime:    cfg.DatabaseConnMaxLifetime,
		Logger:             log,
		Registerer:         reg,
		SlowQueryThreshold: cfg.SlowQueryThreshold,
		LogQueryParams:     cfg.SlowQueryLogParams,
		StatsCapacity:      cfg.DBStatsCapacity,
		Cache:              qc,
		CacheTTL:           cfg.DBQueryCacheTTL,
		TracerProvider:     tp,
	})
	if err != nil {
		return nil, err
	}
	applied, err := st.Migrate(octx, nil)
	if err != nil {
		st.Close()
		return nil, err
	}
	for _, m := range applied {
		log.Info("migration applied", slog.Int64("version", m.Version), slog.String("source", m.Source), slog.String("duration", m.Duration))
	}
	return st, nil
}

func migrate(ctx context.Context, cfg *config.Config, stdout, stderr io.Writer) error {
	log := newLogger(cfg, stderr)
	st, err := openStore(ctx, cfg, log, nil, nil, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	v, err := st.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "database %s at schema version %d\n", st.Kind(), v)
	return nil
}

// components builds the parts' health checks, saying why a part that is off is off.
func components(st *store.Store, c *cache.Cache, lg *logs.Logger, cfg *config.Config) map[string]health.Checker {
	disabled := func(reason string) health.Checker {
		return health.CheckerFunc(func(context.Context) health.Component {
			return health.Component{Status: health.StatusDisabled, Details: map[string]any{"reason": reason}}
		})
	}
	m := map[string]health.Checker{"database": st, "logs": lg}
	switch {
	case c == nil:
		m["cache"] = disabled("ENABLE_CACHE=false")
		m["redis"] = disabled("the cache is disabled (ENABLE_CACHE=false), so nothing uses Redis")
	case cfg.EffectiveRedisURL() == "":
		m["cache"] = c
		m["redis"] = disabled("no Redis configured: set REDIS_URL or REDIS_HOST to enable the shared cache tier")
	default:
		// The cache is Redis's only user, so its check (PING, breaker state,
		// fallback) is the Redis component too.
		m["cache"] = c
		m["redis"] = c
	}
	return m
}

// newAnomaly starts anomaly detection, which loads the active model; the
// duration is logged as func anomaly.start.
func newAnomaly(ctx context.Context, cfg *config.Config, st *store.Store, c *cache.Cache, reg prometheus.Registerer, log *slog.Logger, tp trace.TracerProvider, note anomaly.Notifier, leads func() bool) (_ *anomaly.Service, err error) {
	defer logs.Time(ctx, log, "anomaly.start")(&err)
	a := cfg.Anomaly
	o := anomaly.Options{
		Store:           st,
		Registerer:      reg,
		Logger:          log.With(slog.String("part", "anomaly")),
		DisableBatching: !cfg.EnableBatchProcessing,
		BatchSize:       a.BatchSize,
		BatchTimeout:    a.BatchTimeout,
		MaxWorkers:      a.MaxWorkers,
		QueueSize:       a.QueueSize,
		MaxBatch:        a.MaxBatch,
		CacheTTL:        a.CacheTTL,
		Threshold:       a.Threshold,
		Thresholds: anomaly.Thresholds{
			anomaly.MetricCPU: a.CPUThreshold, anomaly.MetricMemory: a.MemoryThreshold,
			anomaly.MetricDisk: a.DiskThreshold, anomaly.MetricErrorRate: a.ErrorRateThreshold,
		},
		MaxSeries:       a.MaxSeries,
		MaxSeriesBytes:  a.MaxSeriesBytes,
		TrainingWindow:  a.TrainingWindow,
		MinTrainingRows: a.MinTrainingRows,
		MaxTrainingRows: a.MaxTrainingRows,
		Contamination:   a.Contamination,
		RetrainInterval: a.RetrainInterval,
		IsLeader:        leads,
		Stream:          stream.Options{WarmUp: a.WarmUp},
		TracerProvider:  tp,
		Notifier:        note,
		MaxScoreSeries:  a.MaxScoreSeries,
	}
	if c != nil {
		o.Cache = namespaced{c, predictionCacheNamespace}
	}
	an, err := anomaly.New(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("anomaly: %w", err)
	}
	return an, nil
}

// newOTLP is the OTLP/HTTP metrics receiver (POST /v1/metrics) over the
// anomaly service's ingest path.
func newOTLP(cfg *config.Config, an *anomaly.Service, reg prometheus.Registerer) (*otlp.Receiver, error) {
	o := cfg.OTLP
	r, err := otlp.New(otlp.Options{Sink: an, HostAttributes: o.HostAttributes, MaxDecodedBytes: o.MaxDecodedBytes,
		MaxDataPoints: o.MaxDataPoints, MaxSeriesPerTenant: o.MaxSeriesPerTenant, AlignWindow: o.AlignWindow, Registerer: reg})
	if err != nil {
		return nil, fmt.Errorf("otlp: %w", err)
	}
	return r, nil
}

// logOptions maps the configuration onto the log pipeline; both read 0 as
// off.
func logOptions(cfg *config.Config, level slog.Leveler, stderr io.Writer) logs.Options {
	o := logs.DefaultOptions()
	o.Dir = cfg.LogDir
	o.MaxFileSize = cfg.LogMaxFileSize
	o.RotationInterval = cfg.LogRotationInterval
	o.CompressionLevel = cfg.LogCompressionLevel
	o.MaxFiles = cfg.LogMaxFiles
	o.MaxAge = time.Duration(cfg.LogMaxAgeDays) * 24 * time.Hour
	o.Synchronous = !cfg.EnableAsyncLogging
	o.OnFull = logs.Overflow(cfg.LogQueuePolicy)
	o.Level = level
	o.Copy = stderr
	o.CopyLevel = strings.ToUpper(cfg.LogStderrLevel)
	if !cfg.LogStderrClientErrors {
		o.CopySkip = clientErrorLine
	}
	o.Fallback = stderr
	if cfg.LogStderrLevel == "off" {
		o.CopyLevel = "off"
	}
	return o
}

// authOptions maps SMARTCLOUDOPS_REQUIRE_AUTH's three modes onto the API's
// options; auto is their zero value.
func authOptions(cfg *config.Config) httpapi.AuthOptions {
	return httpapi.AuthOptions{
		AdminToken:      cfg.AdminToken,
		JWTSecret:       cfg.JWTSecret,
		MetricsToken:    cfg.MetricsToken,
		RequireAuth:     cfg.RequireAuth == config.AuthRequired,
		OpenTenantReads: cfg.RequireAuth == config.AuthOpen,
	}
}

// logReadPolicy says at start-up, in one line, which reads need a token, so
// an operator never has to work out from three settings whether tenant data
// is open. Open tenant data with JWT_SECRET set is a WARN: tokens carry
// tenants then, and an anonymous caller still reads every tenant's hosts.
func logReadPolicy(log *slog.Logger, cfg *config.Config, o httpapi.AuthOptions) {
	policy := o.ReadPolicy()
	attrs := []any{slog.String("mode", string(cfg.RequireAuth)), slog.String("policy", string(policy)),
		slog.Bool("jwt", cfg.JWTSecret != ""), slog.Bool("admin_token", cfg.AdminToken != "")}
	switch {
	case policy == httpapi.ReadsOpen && cfg.JWTSecret != "":
		log.Warn("read access: tenant data (hosts, series, anomalies, detection) is readable without a token although JWT_SECRET is set, because SMARTCLOUDOPS_REQUIRE_AUTH=false; unset it or set it to true to require tokens", attrs...)
	case policy == httpapi.ReadsOpen:
		log.Info("read access: reads are open without a token (single-user mode: no JWT_SECRET); set SMARTCLOUDOPS_REQUIRE_AUTH=true to require one", attrs...)
	case policy == httpapi.TenantReadsNeedToken:
		log.Info("read access: tenant data (hosts, series, anomalies, detection) needs a token; other reads are open", attrs...)
	default:
		log.Info("read access: every read needs a token", attrs...)
	}
}

// serve runs the HTTP service until ctx ends, then shuts down in order:
// stop accepting, finish in-flight requests, close the cache and the store,
// flush the spans, and flush the logs last so the shutdown itself is logged.
func serve(ctx context.Context, cfg *config.Config, getenv func(string) string, stderr io.Writer, h hooks) (err error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	b := buildInfo()
	if err := httpapi.RegisterBuildInfo(reg, b); err != nil {
		return err
	}

	// A LevelVar, so PUT /performance/config can change the level live.
	level := new(slog.LevelVar)
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	lg, err := logs.New(logOptions(cfg, level, stderr), reg)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if cerr := lg.Close(cctx); cerr != nil {
			fmt.Fprintln(stderr, "smartcloudops: closing logs:", cerr)
			err = errors.Join(err, cerr)
		}
	}()
	log := lg.Slog()

	// Off (nil) unless the OTEL_* variables ask for it (tracing.go). Deferred
	// here, before the parts, so the flush runs after they close.
	tp, stopTracing, err := startTracing(ctx, getenv, b, log)
	if err != nil {
		return err
	}
	defer stopTracing()

	deps := httpapi.Deps{
		Logger:   log,
		Registry: reg,
		Config:   cfg,
		Logs:     lg,
		Auth:     authOptions(cfg),
		Pprof:    cfg.Pprof,
		Limits: httpapi.LimitOptions{
			AuthFailuresPerMinute: cfg.AuthFailureLimit,
			WritesPerSecond:       cfg.WriteRateLimit,
			TrustedProxies:        cfg.TrustedProxies,
		},
		MaxBodyBytes: cfg.MaxBodyBytes,
		// nil when tracing is off, as for every part below.
		TracerProvider: tp,
	}
	var c *cache.Cache
	if cfg.EnableCache {
		done := logs.Time(ctx, log, "cache.start")
		c, err = cache.New(ctx, cache.Options{
			RedisURL:             cfg.EffectiveRedisURL(),
			KeyPrefix:            cfg.CacheKeyPrefix,
			PoolSize:             cfg.RedisPoolSize,
			ReadTimeout:          cfg.RedisTimeout,
			WriteTimeout:         cfg.RedisTimeout,
			DefaultTTL:           cfg.CacheDefaultTTL,
			CompressionThreshold: int(cfg.CacheCompressionThreshold),
			MaxValueBytes:        int(cfg.CacheMaxValueBytes),
			LocalMaxBytes:        cfg.CacheLocalMaxBytes,
			FallbackJournalBytes: cfg.CacheFallbackJournalBytes,
			Registerer:           reg,
			Logger:               log,
			TracerProvider:       tp,
		})
		done(&err)
		if err != nil {
			return err
		}
		defer c.Close()
		deps.Cache = c
	}

	var qc querycache.Backend
	switch {
	case c != nil && cfg.EffectiveRedisURL() != "":
		qc = sharedNamespaced{namespaced{c, queryCacheNamespace}}
	case c != nil:
		qc = namespaced{c, queryCacheNamespace}
	}
	st, err := openStore(ctx, cfg, log, reg, qc, tp)
	if err != nil {
		return err
	}
	defer st.Close()
	replica := sharedstate.ReplicaID(cfg.ReplicaID)
	deps.Replica = replica
	// Closed after admin and anomaly (defers unwind in reverse): the lock
	// goes only once this replica runs none of the jobs it gates.
	lead, err := newLeader(st, replica, reg, log)
	if err != nil {
		return err
	}
	defer lead.Close()
	// Shutdown order: the HTTP server stops (below, before any defer runs),
	// then admin.Close cancels and waits for the advisor's loop, the rollup
	// and retention job and the database jobs, then the store closes
	// (defers unwind in reverse).
	admin, err := dbadmin.New(st, dbadmin.Options{AutoIndex: cfg.DBAutoIndex, AdvisorInterval: cfg.DBAdvisorInterval, Logger: log, Registerer: reg, Leader: lead,
		Retention: dbadmin.RetentionOptions{Interval: cfg.MetricsRollupInterval, Lag: cfg.MetricsRollupLag, Raw: cfg.MetricsRawRetention,
			Rollup: cfg.MetricsRollupRetention, BatchSize: cfg.MetricsRetentionBatchSize}, Replica: replica})
	if err != nil {
		return err
	}
	defer admin.Close()
	deps.Ready, deps.Database, deps.Series = st, admin, st
	deps.Components = components(st, c, lg, cfg)

	// Closed after anomaly (defers unwind in reverse), so the resolutions
	// of its last points are posted too.
	alerts, note, err := newAlerting(cfg, reg, log)
	if err != nil {
		return err
	}
	if alerts != nil {
		defer closeAlerting(ctx, alerts, cfg, log)
	}
	an, err := newAnomaly(ctx, cfg, st, c, reg, log, tp, note, lead.IsLeader)
	if err != nil {
		return err
	}
	defer func() {
		// Runs before st.Close (defers unwind in reverse): queued samples are
		// scored and their anomalies stored while the database is still open.
		cctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		var cerr error
		defer logs.Time(ctx, log, "anomaly.close")(&cerr)
		if cerr = an.Close(cctx); cerr != nil {
			log.Error("closing anomaly detection", slog.String("error", cerr.Error()))
		}
	}()
	deps.Anomaly = an
	deps.Components["anomaly"] = an
	if deps.RemoteWrite, err = newRemoteWrite(cfg, an, reg, log); err != nil {
		return err
	}
	if deps.OTLP, err = newOTLP(cfg, an, reg); err != nil {
		return err
	}
	tun := tunables(log, level, lg, c, st, an)
	deps.Tunables = tun
	// Closed before anomaly and the store (defers unwind in reverse).
	hub, err := newSharedState(ctx, cfg, replica, st, an, tun, reg, log)
	if err != nil {
		return err
	}
	defer hub.Close()

	api, err := httpapi.New(deps)
	if err != nil {
		return err
	}
	var handler http.Handler = api
	if h.wrap != nil {
		handler = h.wrap(api)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	logReadPolicy(log, cfg, deps.Auth)
	log.Info("smartcloudops listening", slog.String("addr", ln.Addr().String()), slog.String("database", string(st.Kind())),
		slog.Bool("cache", c != nil), slog.Bool("redis", cfg.EffectiveRedisURL() != ""), slog.String("version", b.Version), slog.String("replica", replica))
	fmt.Fprintln(stderr, startLine(cfg, ln.Addr().String(), c != nil))
	if h.onListen != nil {
		h.onListen(ln.Addr())
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	// Fail readiness first and keep serving for the delay, so load balancers
	// take this replica out before its listener stops accepting.
	api.Drain()
	if cfg.ShutdownDelay > 0 {
		log.Info("draining: /readyz answers 503", slog.String("delay", cfg.ShutdownDelay.String()))
		select {
		case err := <-errc:
			return fmt.Errorf("http server: %w", err)
		case <-time.After(cfg.ShutdownDelay):
		}
	}
	log.Info("shutting down", slog.String("timeout", cfg.ShutdownTimeout.String()))
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// In-flight requests outlived the timeout: cut them off, but report it.
		srv.Close()
		return fmt.Errorf("shutdown: in-flight requests did not finish within %s: %w", cfg.ShutdownTimeout, err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http server: %w", err)
	}
	log.Info("stopped")
	return nil
}
