package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/smartcloudops/smartcloudops/internal/tuning"
)

// Tunables are the settings PUT /performance/config may change at run time.
type Tunables interface {
	Entries() []tuning.Entry
	// ApplyContext checks, journals (shared with the other replicas) and
	// applies changes; see tuning.Registry.
	ApplyContext(ctx context.Context, changes map[string]json.RawMessage, who string) ([]tuning.Change, error)
}

// configChangeResponse is the body of a successful PUT /performance/config.
type configChangeResponse struct {
	Applied []tuning.Change `json:"applied"`
}

func (s *Server) putConfig(w http.ResponseWriter, r *http.Request) error {
	if s.deps.Tunables == nil {
		return Errorf(CodeUnavailable, "no runtime settings are available")
	}
	var changes map[string]json.RawMessage
	if err := decodeJSON(r, &changes, false); err != nil {
		return err
	}
	who := "unknown"
	if p := PrincipalFrom(r.Context()); p != nil {
		who = p.Subject
	}
	applied, err := s.deps.Tunables.ApplyContext(r.Context(), changes, who)
	var ve *tuning.ValidationError
	if errors.As(err, &ve) {
		fields := make([]FieldError, len(ve.Fields))
		for i, f := range ve.Fields {
			fields[i] = FieldError{Field: f.Key, Detail: f.Reason}
		}
		e := Invalid(fields...)
		e.Detail += "; nothing was changed"
		return e
	}
	if err != nil {
		// The journal is the database: its outage is a 503, and nothing changed.
		return dbError(err)
	}
	writeJSON(w, r, http.StatusOK, configChangeResponse{Applied: applied})
	return nil
}
