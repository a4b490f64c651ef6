package httpapi

import (
	"context"
	"math"
	"net/http"
	"strconv"

	"github.com/smartcloudops/smartcloudops/internal/ingest/otlp"
)

// OTLPReceiver takes OTLP/HTTP metric exports; *otlp.Receiver implements
// it.
type OTLPReceiver interface {
	Export(ctx context.Context, req otlp.Request) otlp.Response
}

// otlpMetrics serves POST /v1/metrics, the OTLP/HTTP metrics endpoint.
// The receiver decides the answer as OTLP/HTTP specifies it (an
// ExportMetricsServiceResponse, or a google.rpc.Status on failure, encoded
// as the request was), because OTLP senders read that body and not a
// problem; the route's auth and rate-limit refusals, which come before the
// receiver, stay problems. The caller's tenant qualifies the hosts, as the
// tenant rule of POST /api/v1/metrics requires.
func (s *Server) otlpMetrics(w http.ResponseWriter, r *http.Request) error {
	if s.deps.OTLP == nil {
		return Errorf(CodeUnavailable, "the OTLP receiver is not enabled (it needs anomaly detection)")
	}
	tenant := ""
	if p := PrincipalFrom(r.Context()); p != nil {
		tenant = p.Tenant
	}
	resp := s.deps.OTLP.Export(r.Context(), otlp.Request{Tenant: tenant, ContentType: r.Header.Get("Content-Type"),
		ContentEncoding: r.Header.Get("Content-Encoding"), Body: r.Body})
	if resp.Err != nil {
		infoFrom(r.Context()).err = resp.Err
	}
	h := w.Header()
	if resp.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int(math.Ceil(resp.RetryAfter.Seconds()))))
	}
	h.Set("Content-Type", resp.ContentType)
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(resp.Body)))
	w.WriteHeader(resp.Status)
	_, _ = w.Write(resp.Body)
	return nil
}
