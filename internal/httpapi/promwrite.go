package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/smartcloudops/smartcloudops/internal/ingest/promwrite"
)

// RemoteWriter is the Prometheus remote-write receiver as the API uses it;
// *promwrite.Receiver implements it.
type RemoteWriter interface {
	Write(ctx context.Context, req promwrite.Request) (promwrite.Response, error)
	// BodyLimit is the largest compressed body the receiver takes (0: no
	// limit), which replaces the server-wide SMARTCLOUDOPS_MAX_BODY_BYTES
	// on this route: remote-write batches are larger than JSON requests.
	BodyLimit() int64
}

// remoteWrite serves POST /api/v1/write: a remote write 1.0 or 2.0 request
// from Prometheus (or any sender of the protocol), answered 204 when taken.
// Refusals are problems with the status the sender reads as "do not
// retry" (400, 413, 415); an overloaded or unavailable service answers 503
// and anything unexpected 500, which the sender retries. A token's tenant
// qualifies the hosts the series name ("tenant/host"), so a tenant writes
// only its own hosts whatever its labels say.
func (s *Server) remoteWrite(w http.ResponseWriter, r *http.Request) error {
	rw := s.deps.RemoteWrite
	if rw == nil {
		return Errorf(CodeUnavailable, "the remote-write receiver is not enabled")
	}
	if raw := infoFrom(r.Context()).body; raw != nil {
		r.Body = raw
		if limit := rw.BodyLimit(); limit > 0 {
			r.Body = http.MaxBytesReader(w, raw, limit)
		}
	}
	tenant := ""
	if p := PrincipalFrom(r.Context()); p != nil {
		tenant = p.Tenant
	}
	resp, err := rw.Write(r.Context(), promwrite.Request{Tenant: tenant, ContentType: r.Header.Get("Content-Type"),
		ContentEncoding: r.Header.Get("Content-Encoding"), ContentLength: r.ContentLength, Body: r.Body})
	if err != nil {
		return remoteWriteError(err)
	}
	if resp.Version == promwrite.V2 {
		h := w.Header()
		h.Set("X-Prometheus-Remote-Write-Samples-Written", strconv.Itoa(resp.Samples))
		h.Set("X-Prometheus-Remote-Write-Histograms-Written", strconv.Itoa(resp.Histograms))
		h.Set("X-Prometheus-Remote-Write-Exemplars-Written", strconv.Itoa(resp.Exemplars))
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// remoteWriteError maps a receiver's refusal to its problem, and a sink's
// failure as the JSON ingest path does.
func remoteWriteError(err error) error {
	var pe *promwrite.Error
	if !errors.As(err, &pe) {
		return anomalyError(err)
	}
	code := CodeMalformed
	switch pe.Status {
	case http.StatusRequestEntityTooLarge:
		code = CodeTooLarge
	case http.StatusUnsupportedMediaType:
		code = CodeUnsupportedMedia
	}
	return &Error{Code: code, Detail: pe.Detail, Err: err}
}
