package httpapi

import (
	"net/http"

	"github.com/smartcloudops/smartcloudops/internal/logs"
)

// LogStats is what the log endpoint needs from the log pipeline.
type LogStats interface {
	Stats() logs.Stats
}

func (s *Server) logStats(w http.ResponseWriter, r *http.Request) error {
	if s.deps.Logs == nil {
		return Errorf(CodeUnavailable, "the log pipeline is not enabled")
	}
	writeJSON(w, r, http.StatusOK, s.deps.Logs.Stats())
	return nil
}
