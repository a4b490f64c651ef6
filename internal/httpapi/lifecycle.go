package httpapi

import (
	"net/http"
	"net/http/pprof"

	"github.com/smartcloudops/smartcloudops/internal/health"
)

// Drain makes /readyz answer 503 from now on, while every other route
// keeps serving: on SIGTERM the service calls it, then waits the shutdown
// delay before closing its listener, so load balancers and Kubernetes
// endpoints stop sending new requests before any is refused.
func (s *Server) Drain() { s.draining.Store(true) }

// Draining reports whether Drain was called.
func (s *Server) Draining() bool { return s.draining.Load() }

// drainingComponent is /readyz's body while draining: the same shape as the
// database's component, so probes read one schema.
func drainingComponent() health.Component {
	return health.Component{Status: health.StatusDown, Details: map[string]any{"error": "shutting down"}}
}

// pprofRoutes serves net/http/pprof to admins only: profiles show code
// paths, and the CPU profile and trace cost CPU while they run, so they are
// neither public nor open to plain users. Off unless Deps.Pprof is set, so
// the routes do not exist (404) by default.
func (s *Server) pprofRoutes() {
	if !s.deps.Pprof {
		return
	}
	wrap := func(h http.HandlerFunc) handlerFunc {
		return func(w http.ResponseWriter, r *http.Request) error {
			h(w, r)
			return nil
		}
	}
	s.handle("GET /debug/pprof/{$}", AdminRole, wrap(pprof.Index))
	s.handle("GET /debug/pprof/cmdline", AdminRole, wrap(pprof.Cmdline))
	s.handle("GET /debug/pprof/profile", AdminRole, wrap(pprof.Profile))
	s.handle("GET /debug/pprof/symbol", AdminRole, wrap(pprof.Symbol))
	s.handle("GET /debug/pprof/trace", AdminRole, wrap(pprof.Trace))
	// Index serves the named runtime profiles (heap, goroutine, allocs, …).
	s.handle("GET /debug/pprof/{profile}", AdminRole, wrap(pprof.Index))
}
