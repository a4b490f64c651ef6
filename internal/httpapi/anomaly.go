package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/anomaly"
	"github.com/smartcloudops/smartcloudops/internal/domain"
	"github.com/smartcloudops/smartcloudops/internal/store"
)

// AnomalyService is the anomaly detection part as the API uses it;
// *anomaly.Service implements it.
type AnomalyService interface {
	Detect(ctx context.Context, samples []anomaly.Sample, o anomaly.DetectOptions) ([]anomaly.Result, error)
	Ingest(ctx context.Context, samples []anomaly.Sample) (anomaly.IngestReport, error)
	Stats() anomaly.Stats
	Models(ctx context.Context) ([]anomaly.ModelInfo, error)
	Train(ctx context.Context, activate bool) (anomaly.ModelInfo, error)
	Activate(ctx context.Context, version string) (anomaly.ModelInfo, error)
	// Rebaseline accepts the current level of host's series (one metric, or
	// all when metric is empty) as normal; who is audited.
	Rebaseline(ctx context.Context, host, metric, who string) (anomaly.RebaselineReport, error)
	// MaxBatch is the most samples one request may carry.
	MaxBatch() int
}

// maxFutureSkew is how far past the server's clock a sample's timestamp may
// be: agents' clocks drift, but a sample from tomorrow is a bug to report,
// not a point to learn from.
const maxFutureSkew = time.Hour

// DetectBatchResponse is the body of a batch detect.
type DetectBatchResponse struct {
	Count   int              `json:"count"`
	Results []anomaly.Result `json:"results"`
}

func (s *Server) anomalyPart() (AnomalyService, error) {
	if s.deps.Anomaly == nil {
		return nil, Errorf(CodeUnavailable, "anomaly detection is not enabled")
	}
	return s.deps.Anomaly, nil
}

// anomalyDetect serves POST /performance/anomaly/detect: one sample object,
// {"samples":[…]} or a JSON array; a single sample gets a single result.
// ?use_cache=false bypasses the prediction cache.
func (s *Server) anomalyDetect(w http.ResponseWriter, r *http.Request) error {
	a, err := s.anomalyPart()
	if err != nil {
		return err
	}
	useCache := true
	if v := r.URL.Query().Get("use_cache"); v != "" {
		if useCache, err = strconv.ParseBool(v); err != nil {
			return Invalid(FieldError{Field: "use_cache", Detail: "must be true or false"})
		}
	}
	var raw json.RawMessage
	if err := decodeJSON(r, &raw, false); err != nil {
		return err
	}
	samples, single, err := decodeSamples(raw, s.now(), a.MaxBatch())
	if err != nil {
		return err
	}
	// A result carries the series' recent level and spread: reading them is
	// reading the host's data, so the tenant rule of ingest applies.
	if err := checkTenantHosts(PrincipalFrom(r.Context()), samples, "read"); err != nil {
		return err
	}
	res, err := a.Detect(r.Context(), samples, anomaly.DetectOptions{NoCache: !useCache})
	if err != nil {
		return anomalyError(err)
	}
	if single {
		writeJSON(w, r, http.StatusOK, res[0])
		return nil
	}
	writeJSON(w, r, http.StatusOK, DetectBatchResponse{Count: len(res), Results: res})
	return nil
}

// anomalyIngest serves POST /api/v1/metrics. Tenant rule: a user token with
// a tenant claim may write only hosts named "<tenant>/…"; an admin token and
// a user token without a tenant claim may write any host.
func (s *Server) anomalyIngest(w http.ResponseWriter, r *http.Request) error {
	a, err := s.anomalyPart()
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := decodeJSON(r, &raw, false); err != nil {
		return err
	}
	samples, _, err := decodeSamples(raw, s.now(), a.MaxBatch())
	if err != nil {
		return err
	}
	if err := checkTenantHosts(PrincipalFrom(r.Context()), samples, "write"); err != nil {
		return err
	}
	rep, err := a.Ingest(r.Context(), samples)
	if err != nil {
		return anomalyError(err)
	}
	writeJSON(w, r, http.StatusOK, rep)
	return nil
}

// checkTenantHosts applies the tenant rule (Principal.MayUseHost) to the
// hosts of a request that will read or write them (verb says which).
func checkTenantHosts(p *Principal, samples []anomaly.Sample, verb string) error {
	var fields []FieldError
	for i, smp := range samples {
		if !p.MayUseHost(smp.Host) {
			fields = append(fields, FieldError{Field: fmt.Sprintf("samples[%d].host", i),
				Detail: fmt.Sprintf("a token of tenant %q may %s only hosts named %q", p.Tenant, verb, p.Tenant+"/…")})
			if len(fields) == maxFieldErrors {
				break
			}
		}
	}
	if len(fields) > 0 {
		return &Error{Code: CodeForbidden, Detail: "the token's tenant may not " + verb + " these hosts", Fields: fields}
	}
	return nil
}

func (s *Server) anomalyStats(w http.ResponseWriter, r *http.Request) error {
	a, err := s.anomalyPart()
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, a.Stats())
	return nil
}

// ModelsResponse is the body of GET /performance/anomaly/models.
type ModelsResponse struct {
	Models []anomaly.ModelInfo `json:"models"`
}

func (s *Server) anomalyModels(w http.ResponseWriter, r *http.Request) error {
	a, err := s.anomalyPart()
	if err != nil {
		return err
	}
	ms, err := a.Models(r.Context())
	if err != nil {
		return anomalyError(err)
	}
	if ms == nil {
		ms = []anomaly.ModelInfo{}
	}
	writeJSON(w, r, http.StatusOK, ModelsResponse{Models: ms})
	return nil
}

// trainRequest is the optional body of POST /performance/anomaly/models.
type trainRequest struct {
	// Activate makes the new version active at once (default true).
	Activate *bool `json:"activate"`
}

func (s *Server) anomalyTrain(w http.ResponseWriter, r *http.Request) error {
	a, err := s.anomalyPart()
	if err != nil {
		return err
	}
	var req trainRequest
	if err := decodeJSON(r, &req, true); err != nil {
		return err
	}
	activate := req.Activate == nil || *req.Activate
	info, err := a.Train(r.Context(), activate)
	if err != nil {
		return anomalyError(err)
	}
	writeJSON(w, r, http.StatusCreated, info)
	return nil
}

func (s *Server) anomalyActivate(w http.ResponseWriter, r *http.Request) error {
	a, err := s.anomalyPart()
	if err != nil {
		return err
	}
	version := r.PathValue("version")
	if version == "" || len(version) > 128 {
		return Invalid(FieldError{Field: "version", Detail: "must be 1 to 128 characters"})
	}
	info, err := a.Activate(r.Context(), version)
	if err != nil {
		return anomalyError(err)
	}
	writeJSON(w, r, http.StatusOK, info)
	return nil
}

// anomalyError maps the anomaly part's errors to problems. A full queue and
// a busy trainer answer 503 with Retry-After, so a client backs off instead
// of losing data; anything unexpected stays internal and is logged.
func anomalyError(err error) error {
	var full *anomaly.QueueFullError
	switch {
	case errors.As(err, &full):
		secs := int(math.Ceil(full.RetryAfter.Seconds()))
		return &Error{Code: CodeUnavailable, Detail: fmt.Sprintf("the scoring queue is full; nothing was stored or scored, retry after %d s", secs), Err: err, RetryAfter: full.RetryAfter}
	case errors.Is(err, anomaly.ErrBusy):
		return &Error{Code: CodeUnavailable, Detail: "a model training or activation is already running; retry later", Err: err, RetryAfter: 10 * time.Second}
	case errors.Is(err, anomaly.ErrClosed):
		return &Error{Code: CodeUnavailable, Detail: "the anomaly service is shutting down", Err: err, RetryAfter: 5 * time.Second}
	case errors.Is(err, anomaly.ErrNoStore):
		return &Error{Code: CodeUnavailable, Detail: "no database is configured for anomaly detection", Err: err}
	case errors.Is(err, anomaly.ErrModelNotFound):
		return &Error{Code: CodeNotFound, Detail: "no model has that version", Err: err}
	case errors.Is(err, anomaly.ErrNotEnoughData):
		return &Error{Code: CodeValidation, Detail: "not enough stored samples in the training window to train a model; ingest more history first", Err: err}
	case errors.Is(err, anomaly.ErrInvalidSample):
		return &Error{Code: CodeValidation, Detail: "invalid samples", Err: err}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: CodeUnavailable, Detail: "the request ended before scoring finished", Err: err}
	case store.Contended(err):
		return &Error{Code: CodeUnavailable, Detail: "the database aborted the write for a concurrent one; retry (samples already stored are not stored twice)", Err: err, RetryAfter: time.Second}
	case store.Unavailable(err):
		// Samples a request stored before the database went away are kept
		// and skipped as duplicates when the client retries, so a retry is
		// always safe.
		return &Error{Code: CodeUnavailable, Detail: "the database is unavailable; retry later (samples already stored are not stored twice)", Err: err, RetryAfter: 5 * time.Second}
	}
	return err
}

// maxFieldErrors bounds the field errors one problem lists.
const maxFieldErrors = 10

// decodeSamples parses a detect or ingest body: one sample object, an object
// {"samples": […]}, or a JSON array of samples. Every sample is validated and
// normalized; the problem names each bad field by its JSON path
// ("samples[3].metrics.cpu_usage", or "metrics.cpu_usage" for a single
// sample). A missing timestamp means now.
func decodeSamples(raw []byte, now time.Time, limit int) (samples []anomaly.Sample, single bool, err error) {
	raw = bytes.TrimSpace(raw)
	var items []json.RawMessage
	prefix := "samples"
	switch {
	case len(raw) > 0 && raw[0] == '[':
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, false, Errorf(CodeMalformed, "malformed JSON array of samples")
		}
	case len(raw) > 0 && raw[0] == '{':
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(raw, &probe); err != nil {
			return nil, false, Errorf(CodeMalformed, "malformed JSON object")
		}
		if list, ok := probe["samples"]; ok {
			if len(probe) != 1 {
				return nil, false, Invalid(FieldError{Field: "samples", Detail: "a batch object holds only \"samples\""})
			}
			if err := json.Unmarshal(list, &items); err != nil || items == nil {
				return nil, false, Invalid(FieldError{Field: "samples", Detail: "must be an array of sample objects"})
			}
		} else {
			items, single, prefix = []json.RawMessage{raw}, true, ""
		}
	default:
		return nil, false, Errorf(CodeMalformed, "the body must be a sample object, {\"samples\": […]} or an array of samples")
	}
	switch {
	case len(items) == 0:
		return nil, false, Invalid(FieldError{Field: "samples", Detail: "must hold at least one sample"})
	case len(items) > limit:
		return nil, false, Invalid(FieldError{Field: "samples", Detail: fmt.Sprintf("holds %d samples; at most %d are accepted per request", len(items), limit)})
	}
	var fields []FieldError
	samples = make([]anomaly.Sample, 0, len(items))
	for i, it := range items {
		at := ""
		if prefix != "" {
			at = fmt.Sprintf("%s[%d].", prefix, i)
		}
		smp, ferr := decodeSample(it, now)
		if ferr == nil {
			smp, err = anomaly.Normalize(smp)
			var fe *anomaly.FieldError
			if errors.As(err, &fe) {
				ferr = &FieldError{Field: fe.Field, Detail: fe.Detail}
			}
		}
		if ferr != nil {
			ferr.Field = at + ferr.Field
			fields = append(fields, *ferr)
			if len(fields) == maxFieldErrors {
				break
			}
			continue
		}
		samples = append(samples, smp)
	}
	if len(fields) > 0 {
		return nil, false, Invalid(fields...)
	}
	return samples, single, nil
}

// decodeSample reads one sample object, returning the first bad field.
func decodeSample(raw json.RawMessage, now time.Time) (anomaly.Sample, *FieldError) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return anomaly.Sample{}, &FieldError{Field: "sample", Detail: "must be a JSON object with host, timestamp and metrics"}
	}
	for _, k := range sortedFieldNames(obj) {
		switch k {
		case "host", "timestamp", "metrics":
		default:
			return anomaly.Sample{}, &FieldError{Field: fieldName(k), Detail: "unknown field; a sample has host, timestamp and metrics"}
		}
	}
	var smp anomaly.Sample
	h, ok := obj["host"]
	if !ok || isNull(h) {
		return smp, &FieldError{Field: "host", Detail: "is required"}
	}
	if err := json.Unmarshal(h, &smp.Host); err != nil {
		return smp, &FieldError{Field: "host", Detail: "must be a string"}
	}
	ts, err := parseTimestamp(obj["timestamp"], now)
	if err != nil {
		return smp, &FieldError{Field: "timestamp", Detail: err.Error()}
	}
	smp.Timestamp = ts
	m, ok := obj["metrics"]
	if !ok || isNull(m) {
		return smp, &FieldError{Field: "metrics", Detail: "is required: an object of metric names to numbers"}
	}
	var metrics map[string]json.RawMessage
	if err := json.Unmarshal(m, &metrics); err != nil {
		return smp, &FieldError{Field: "metrics", Detail: "must be an object of metric names to numbers"}
	}
	smp.Metrics = make(map[string]float64, len(metrics))
	for _, name := range sortedFieldNames(metrics) {
		v, err := parseNumber(metrics[name])
		if err != nil {
			return smp, &FieldError{Field: "metrics." + name, Detail: err.Error()}
		}
		smp.Metrics[name] = v
	}
	return smp, nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func sortedFieldNames(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// Sorted so the first error reported is the same on every run.
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

// parseNumber accepts a JSON number only: a string, boolean or null is not a
// measurement, and a number too large for float64 is not finite.
func parseNumber(raw json.RawMessage) (float64, error) {
	s := string(bytes.TrimSpace(raw))
	if s == "" || !(s[0] == '-' || s[0] >= '0' && s[0] <= '9') {
		return 0, errors.New("must be a number")
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, errors.New("must be a finite number")
	}
	return v, nil
}

// parseTimestamp reads a sample's timestamp, a JSON string or number, by
// the rule every input follows (domain.ParseTimestamp); absent or null means
// now. On top of the rule is ingest's policy: a live sample is not from
// before 1970 nor more than maxFutureSkew ahead of the server's clock.
func parseTimestamp(raw json.RawMessage, now time.Time) (time.Time, error) {
	if raw == nil || isNull(raw) {
		return now.UTC(), nil
	}
	text := string(bytes.TrimSpace(raw))
	switch {
	case text != "" && text[0] == '"':
		if err := json.Unmarshal(raw, &text); err != nil {
			return time.Time{}, errors.New("must be an RFC 3339 string or Unix seconds")
		}
	case text == "" || !(text[0] == '-' || text[0] >= '0' && text[0] <= '9'):
		return time.Time{}, errors.New("must be an RFC 3339 string or Unix seconds")
	}
	t, err := domain.ParseTimestamp(text)
	if err != nil {
		return time.Time{}, err
	}
	if t.Year() < 1970 {
		return time.Time{}, errors.New("is before 1970")
	}
	if t.After(now.Add(maxFutureSkew)) {
		return time.Time{}, fmt.Errorf("is more than %s in the future", maxFutureSkew)
	}
	return t, nil
}
