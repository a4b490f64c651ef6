package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/smartcloudops/smartcloudops/internal/config"
	"github.com/smartcloudops/smartcloudops/internal/health"
	"github.com/smartcloudops/smartcloudops/internal/httpapi"
	"github.com/smartcloudops/smartcloudops/internal/store"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Exit statuses: 2 is a usage or configuration error, as with flag parsing.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

const usage = `usage: smartcloudops [command] [flags]

commands:
  serve     run the HTTP service (the default)
  migrate   apply database migrations and exit
  version   print the build and exit

Run "smartcloudops serve -h" for the flags; every flag also has an environment variable.
`

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

func runWith(ctx context.Context, args []string, getenv func(string) string, _ io.Reader, stdout, stderr io.Writer, h hooks) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return withConfig(args, getenv, stderr, func(cfg *config.Config) error { return serve(ctx, cfg, stderr, h) })
	case "migrate":
		return withConfig(args, getenv, stderr, func(cfg *config.Config) error { return migrate(ctx, cfg, stdout, stderr) })
	case "version":
		b := buildInfo()
		fmt.Fprintf(stdout, "smartcloudops %s (revision %s, %s)\n", b.Version, b.Revision, b.GoVersion)
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "smartcloudops: unknown command %q\n%s", cmd, usage)
	return exitUsage
}

// withConfig loads the configuration and runs f, mapping failures to exit
// statuses: a bad setting is one line on stderr and status 2.
func withConfig(args []string, getenv func(string) string, stderr io.Writer, f func(*config.Config) error) int {
	cfg, err := config.Load(args, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintln(stderr, "smartcloudops:", err)
		return exitUsage
	}
	if err := f(cfg); err != nil {
		fmt.Fprintln(stderr, "smartcloudops:", err)
		return exitFailure
	}
	return exitOK
}

func buildInfo() httpapi.BuildInfo {
	b := httpapi.BuildInfo{Version: version, Revision: "unknown"}
	if bi, ok := debug.ReadBuildInfo(); ok {
		b.GoVersion = bi.GoVersion
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				b.Revision = s.Value
			}
		}
	}
	return b
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (*store.Store, error) {
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := store.Open(octx, store.Options{URL: cfg.DatabaseURL, PoolSize: cfg.DatabasePoolSize})
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
	st, err := openStore(ctx, cfg, log)
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

// serve runs the HTTP service until ctx ends, then shuts down in order:
// stop accepting, finish in-flight requests, close the store.
func serve(ctx context.Context, cfg *config.Config, stderr io.Writer, h hooks) error {
	log := newLogger(cfg, stderr)
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	b := buildInfo()
	if err := httpapi.RegisterBuildInfo(reg, b); err != nil {
		return err
	}

	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()
	reg.MustRegister(collectors.NewDBStatsCollector(st.Writer(), "writer"))
	if st.Reader() != st.Writer() {
		reg.MustRegister(collectors.NewDBStatsCollector(st.Reader(), "reader"))
	}

	redisCheck, closeRedis := newRedisChecker(cfg)
	defer closeRedis()

	api, err := httpapi.New(httpapi.Deps{
		Logger:   log,
		Registry: reg,
		Components: map[string]health.Checker{
			"database": st,
			"redis":    redisCheck,
		},
		Ready:        st,
		Config:       cfg,
		Database:     st,
		Auth:         httpapi.AuthOptions{AdminToken: cfg.AdminToken, JWTSecret: cfg.JWTSecret, RequireAuth: cfg.RequireAuth},
		MaxBodyBytes: cfg.MaxBodyBytes,
	})
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
	log.Info("smartcloudops listening", slog.String("addr", ln.Addr().String()), slog.String("database", string(st.Kind())),
		slog.String("version", b.Version))
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
	log.Info("shutting down", slog.Duration("timeout", cfg.ShutdownTimeout))
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
