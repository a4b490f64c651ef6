package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Problem is an RFC 9457 problem details object. Every error response of the
// API is one, served as application/problem+json.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// RequestID ties the response to the access log and any error logged for it.
	RequestID string `json:"request_id,omitempty"`
	// Errors names each invalid field, for validation problems.
	Errors []FieldError `json:"errors,omitempty"`
}

// FieldError is one invalid input field.
type FieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// Code classifies a problem. Handlers return coded errors; one table maps codes
// to statuses and titles, so a status is never chosen ad hoc in a handler.
type Code string

// The problem codes.
const (
	CodeNotFound         Code = "not-found"
	CodeMethodNotAllowed Code = "method-not-allowed"
	CodeMalformed        Code = "malformed-request"
	CodeValidation       Code = "validation-failed"
	CodeTooLarge         Code = "payload-too-large"
	CodeUnsupportedMedia Code = "unsupported-media-type"
	CodeUnauthorized     Code = "unauthorized"
	CodeForbidden        Code = "forbidden"
	CodeAuthNotSet       Code = "auth-not-configured"
	CodeTooManyRequests  Code = "too-many-requests"
	CodeUnavailable      Code = "unavailable"
	CodeInternal         Code = "internal"
)

var codeTable = map[Code]struct {
	status int
	title  string
}{
	CodeNotFound:         {http.StatusNotFound, "Not found"},
	CodeMethodNotAllowed: {http.StatusMethodNotAllowed, "Method not allowed"},
	CodeMalformed:        {http.StatusBadRequest, "Malformed request"},
	CodeValidation:       {http.StatusBadRequest, "Invalid input"},
	CodeTooLarge:         {http.StatusRequestEntityTooLarge, "Payload too large"},
	CodeUnsupportedMedia: {http.StatusUnsupportedMediaType, "Unsupported media type"},
	CodeUnauthorized:     {http.StatusUnauthorized, "Authentication required"},
	CodeForbidden:        {http.StatusForbidden, "Forbidden"},
	CodeAuthNotSet:       {http.StatusForbidden, "Authentication not configured"},
	CodeTooManyRequests:  {http.StatusTooManyRequests, "Too many requests"},
	CodeUnavailable:      {http.StatusServiceUnavailable, "Service unavailable"},
	CodeInternal:         {http.StatusInternalServerError, "Internal error"},
}

// Error is an error a handler returns to produce a problem response. Detail is
// shown to the client, so it must never carry SQL, paths or secrets; the
// wrapped Err is logged instead.
type Error struct {
	Code   Code
	Detail string
	Fields []FieldError
	Err    error
	// RetryAfter, when positive, is sent as the Retry-After header (whole
	// seconds, rounded up), so a client backs off instead of hammering a
	// part that is recovering.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Detail, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Detail)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds a coded error with a client-facing detail.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// fieldName is how a problem names a client's key: an empty key is written
// as "" so that every field error names something a client can find.
func fieldName(k string) string {
	if k == "" {
		return `""`
	}
	return k
}

// Invalid builds a validation error naming the fields at fault; a field
// with an empty name (a client's "" key) is named "".
func Invalid(fields ...FieldError) *Error {
	names := make([]string, len(fields))
	for i, f := range fields {
		fields[i].Field = fieldName(f.Field)
		names[i] = fields[i].Field
	}
	return &Error{Code: CodeValidation, Detail: "invalid " + strings.Join(names, ", "), Fields: fields}
}

// jsonKind names a Go type the way a client thinks of it: as a JSON kind,
// not as a Go type name.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "string"
		}
		return "array"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	}
	return "value"
}

func problemType(c Code) string { return "urn:smartcloudops:problem:" + string(c) }

// writeProblem sends err as problem+json. Errors that are not *Error are
// internal: the client learns only that, and the caller logs the cause.
func writeProblem(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Code: CodeInternal, Detail: "the server could not complete the request; see its log for the request id", Err: err}
	}
	ct, ok := codeTable[e.Code]
	if !ok {
		ct = codeTable[CodeInternal]
	}
	for i := range e.Fields {
		e.Fields[i].Field = fieldName(e.Fields[i].Field)
	}
	p := Problem{
		Type:      problemType(e.Code),
		Title:     ct.title,
		Status:    ct.status,
		Detail:    e.Detail,
		Instance:  r.URL.Path,
		RequestID: infoFrom(r.Context()).id,
		Errors:    e.Fields,
	}
	info := infoFrom(r.Context())
	info.err = err
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// writeJSON sends v with status. v is encoded into a buffer first, so a
// value that cannot be encoded (a NaN that slipped through, a type without
// a JSON form) becomes a logged 500 problem instead of a 200 with an empty or
// cut-off body.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	buf := jsonBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledJSONBuffer {
			buf.Reset()
			jsonBuffers.Put(buf)
		}
	}()
	enc := json.NewEncoder(buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		writeProblem(w, r, &Error{Code: CodeInternal, Detail: "the server could not encode its answer; see its log for the request id",
			Err: fmt.Errorf("httpapi: encode %d response: %w", status, err)})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// jsonBuffers recycles response buffers; one larger than
// maxPooledJSONBuffer (a big series read) is left to the collector rather
// than pinned in the pool.
var jsonBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledJSONBuffer = 1 << 20

// decodeJSON reads one JSON value from the body into dst. Unknown fields,
// trailing data, a wrong content type and an over-long body are client errors
// with a detail that says where the problem is. An empty body is allowed when
// allowEmpty, leaving dst as it is.
func decodeJSON(r *http.Request, dst any, allowEmpty bool) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt := strings.TrimSpace(strings.ToLower(strings.SplitN(ct, ";", 2)[0]))
		if mt != "application/json" && !strings.HasSuffix(mt, "+json") {
			return Errorf(CodeUnsupportedMedia, "Content-Type must be application/json, got %q", mt)
		}
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		if errors.Is(err, io.EOF) {
			if allowEmpty {
				return nil
			}
			return Errorf(CodeMalformed, "request body is empty; a JSON object is required")
		}
		return jsonError(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		if err != nil {
			return jsonError(err)
		}
		return Errorf(CodeMalformed, "request body has data after the JSON value")
	}
	return nil
}

func jsonError(err error) error {
	var (
		syn     *json.SyntaxError
		typ     *json.UnmarshalTypeError
		tooBig  *http.MaxBytesError
		unknown = "json: unknown field "
	)
	switch {
	case errors.As(err, &tooBig):
		return Errorf(CodeTooLarge, "request body is larger than %d bytes", tooBig.Limit)
	case errors.As(err, &syn):
		return Errorf(CodeMalformed, "malformed JSON at byte %d: %s", syn.Offset, syn.Error())
	case errors.As(err, &typ):
		if typ.Field == "" {
			return Errorf(CodeMalformed, "request body must be a JSON %s, got JSON %s", jsonKind(typ.Type), typ.Value)
		}
		return Invalid(FieldError{Field: typ.Field, Detail: fmt.Sprintf("must be a JSON %s, got JSON %s", jsonKind(typ.Type), typ.Value)})
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Errorf(CodeMalformed, "malformed JSON: unexpected end of body")
	case strings.HasPrefix(err.Error(), unknown):
		return Invalid(FieldError{Field: strings.Trim(strings.TrimPrefix(err.Error(), unknown), `"`), Detail: "unknown field"})
	}
	return Errorf(CodeMalformed, "malformed JSON: %s", err.Error())
}
