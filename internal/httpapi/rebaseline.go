package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/smartcloudops/smartcloudops/internal/anomaly"
)

// rebaselineRequest is the body of POST /performance/anomaly/series/rebaseline.
// The fields are raw so that a missing, null and empty value can each be
// told apart and named.
type rebaselineRequest struct {
	// Host names the host whose series are re-baselined (required).
	Host json.RawMessage `json:"host"`
	// Metric limits it to one metric; absent means every metric of the host.
	Metric json.RawMessage `json:"metric"`
}

// parseRebaseline reads the body's host and optional metric, naming the
// field at fault. An empty metric is refused rather than read as "every
// metric": a client that meant one metric and sent "" must not reset all.
func parseRebaseline(req rebaselineRequest) (host, metric string, err error) {
	var fields []FieldError
	str := func(raw json.RawMessage, name string, required bool) string {
		if raw == nil || isNull(raw) {
			if required {
				fields = append(fields, FieldError{Field: name, Detail: "is required"})
			} else if raw != nil {
				fields = append(fields, FieldError{Field: name, Detail: "must be a metric name, or absent to re-baseline every metric of the host"})
			}
			return ""
		}
		var v string
		if json.Unmarshal(raw, &v) != nil {
			fields = append(fields, FieldError{Field: name, Detail: "must be a string"})
			return ""
		}
		if v == "" {
			detail := "must not be empty"
			if !required {
				detail = "must not be empty; omit it to re-baseline every metric of the host"
			}
			fields = append(fields, FieldError{Field: name, Detail: detail})
		}
		return v
	}
	host = str(req.Host, "host", true)
	metric = str(req.Metric, "metric", false)
	if len(fields) > 0 {
		return "", "", Invalid(fields...)
	}
	canon, verr := anomaly.ValidSeries(host, metric)
	var fe *anomaly.FieldError
	if errors.As(verr, &fe) {
		return "", "", Invalid(FieldError{Field: fe.Field, Detail: fe.Detail})
	}
	if verr != nil {
		return "", "", verr
	}
	return host, canon, nil
}

// anomalyRebaseline serves POST /performance/anomaly/series/rebaseline
// {"host": …, "metric": …}: an admin accepts the current level of a host's
// series (one metric, or every metric when metric is absent) as their new
// normal; a series held in a sustained anomaly leaves its hold. The change is
// audited by the anomaly service (an "audit":"rebaseline" log line naming
// who, what and when, and smartcloudops_anomaly_series_rebaselined_total).
// The route is admin-only; the tenant rule of the other series routes is
// applied all the same, so a narrower role given this route later keeps it.
func (s *Server) anomalyRebaseline(w http.ResponseWriter, r *http.Request) error {
	a, err := s.anomalyPart()
	if err != nil {
		return err
	}
	var req rebaselineRequest
	if err := decodeJSON(r, &req, false); err != nil {
		return err
	}
	host, metric, err := parseRebaseline(req)
	if err != nil {
		return err
	}
	p := PrincipalFrom(r.Context())
	if _, err := tenantFilter(p, host, "host"); err != nil {
		return err
	}
	who := "unknown"
	if p != nil {
		who = p.Subject
	}
	rep, err := a.Rebaseline(r.Context(), host, metric, who)
	if errors.Is(err, anomaly.ErrSeriesNotFound) {
		field, detail := "host", "the service holds no series of this host (never ingested, or evicted); nothing was changed"
		if metric != "" {
			field, detail = "metric", "the service holds no series of this metric on this host (never ingested, or evicted); nothing was changed"
		}
		return &Error{Code: CodeNotFound, Detail: "no such series", Fields: []FieldError{{Field: field, Detail: detail}}, Err: err}
	}
	if err != nil {
		return anomalyError(err)
	}
	writeJSON(w, r, http.StatusOK, rep)
	return nil
}
