package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/cache"
)

// Cache is what the cache endpoints need from the cache part.
type Cache interface {
	GetRaw(ctx context.Context, ns, key string) (cache.RawEntry, bool, error)
	PutRawWithDurability(ctx context.Context, ns, key, contentType string, body []byte, ttl time.Duration) (cache.WriteResult, error)
	DeleteWithDurability(ctx context.Context, ns, key string) (bool, cache.Durability, error)
	ClearNamespaceWithDurability(ctx context.Context, ns string) (int64, cache.Durability, error)
	Stats(ctx context.Context) cache.Stats
	MaxValueBytes() int
	// DefaultTTL is the TTL a write without one gets.
	DefaultTTL() time.Duration
}

func (s *Server) cacheOrUnavailable() (Cache, error) {
	if s.deps.Cache == nil {
		return nil, Errorf(CodeUnavailable, "the cache is disabled (ENABLE_CACHE=false)")
	}
	return s.deps.Cache, nil
}

// cacheError maps the cache part's sentinel errors to problems; anything else
// (the caller's deadline, a closed cache) means the cache cannot answer now.
func cacheError(err error) error {
	switch {
	case errors.Is(err, cache.ErrInvalidNamespace):
		return Invalid(FieldError{Field: "namespace", Detail: err.Error()})
	case errors.Is(err, cache.ErrInvalidKey):
		return Invalid(FieldError{Field: "key", Detail: err.Error()})
	case errors.Is(err, cache.ErrInvalidTTL):
		return Invalid(FieldError{Field: "ttl", Detail: err.Error()})
	case errors.Is(err, cache.ErrInvalidContentType):
		return Invalid(FieldError{Field: "Content-Type", Detail: err.Error()})
	case errors.Is(err, cache.ErrValueTooLarge):
		return &Error{Code: CodeTooLarge, Detail: err.Error(), Err: err}
	}
	return &Error{Code: CodeUnavailable, Detail: "the cache could not answer in time", Err: err}
}

// cacheEntry is the common start of the per-entry endpoints: the cache, and
// the validated, authorised namespace and key of the path.
func (s *Server) cacheEntry(r *http.Request) (Cache, string, string, error) {
	c, err := s.cacheOrUnavailable()
	if err != nil {
		return nil, "", "", err
	}
	ns, key, err := cacheTarget(r)
	if err != nil {
		return nil, "", "", err
	}
	return c, ns, key, nil
}

// cacheTarget validates the path's namespace and key and checks the caller
// owns the namespace: entries are tenant data, so even reads need a token.
func cacheTarget(r *http.Request) (ns, key string, err error) {
	ns, key = r.PathValue("namespace"), r.PathValue("key")
	// The mux refuses a raw "..", but PathValue decodes %2e%2e and %2F after
	// matching: the same rule is applied to what the segments decode to, so
	// an encoded dot segment is refused exactly like a raw one.
	if !cleanSegments(ns) || !cleanSegments(key) {
		return "", "", Errorf(CodeNotFound, "no endpoint at %s: paths must not contain empty, \".\" or \"..\" segments, percent-encoded or not", r.URL.EscapedPath())
	}
	if err := cache.ValidateNamespace(ns); err != nil {
		return "", "", cacheError(err)
	}
	if err := cache.ValidateKey(key); err != nil {
		return "", "", cacheError(err)
	}
	if err := mayUseNamespace(PrincipalFrom(r.Context()), ns); err != nil {
		return "", "", err
	}
	return ns, key, nil
}

// cleanSegments reports whether s, split at "/", has no empty, "." or ".."
// segment. The empty string passes: it is ValidateKey's to refuse with a 400.
func cleanSegments(s string) bool {
	if s == "" {
		return true
	}
	for seg := range strings.SplitSeq(s, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// mayUseNamespace lets admins use any namespace and a tenant only its own.
// Namespaces starting with "_" hold the service's own entries (cached query
// results, predictions) and are admin-only whatever a token's tenant claim says.
func mayUseNamespace(p *Principal, ns string) error {
	if strings.HasPrefix(ns, "_") && (p == nil || p.Role != RoleAdmin) {
		return Errorf(CodeForbidden, "namespaces starting with \"_\" are reserved for the service")
	}
	if !p.OwnsTenant(ns) {
		return Errorf(CodeForbidden, "the token may not use namespace %q: it needs the admin role or a tenant claim equal to the namespace", ns)
	}
	return nil
}

func (s *Server) cacheGet(w http.ResponseWriter, r *http.Request) error {
	c, ns, key, err := s.cacheEntry(r)
	if err != nil {
		return err
	}
	e, found, err := c.GetRaw(r.Context(), ns, key)
	if err != nil {
		return cacheError(err)
	}
	if e.Tier != "" {
		w.Header().Set("X-Cache", string(e.Tier))
	}
	if !found {
		return Errorf(CodeNotFound, "no entry %q in namespace %q", key, ns)
	}
	w.Header().Set("Content-Type", e.ContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(e.Body)))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(e.Body)
	}
	return nil
}

// cachePutResponse is the body of a successful PUT.
type cachePutResponse struct {
	Namespace  string  `json:"namespace"`
	Key        string  `json:"key"`
	Bytes      int     `json:"bytes"`
	TTLSeconds float64 `json:"ttl_seconds"`
	Tier       string  `json:"tier"`
	// Durability is also sent as X-Cache-Durability: "memory" says the
	// value lives in this process only and will not outlive Redis's return.
	Durability string `json:"durability"`
}

// durabilityHeader tells a client whether its write will survive a Redis
// outage (see cache.Durability): a write that will not is never a silent loss.
const durabilityHeader = "X-Cache-Durability"

func (s *Server) cachePut(w http.ResponseWriter, r *http.Request) error {
	c, ns, key, err := s.cacheEntry(r)
	if err != nil {
		return err
	}
	var ttl time.Duration
	if raw := r.URL.Query().Get("ttl"); raw != "" {
		secs, perr := strconv.ParseInt(raw, 10, 64)
		if perr != nil || secs < 0 || time.Duration(secs) > cache.MaxTTL/time.Second {
			return Invalid(FieldError{Field: "ttl", Detail: fmt.Sprintf("must be a whole number of seconds from 0 (the default TTL) to %d", int64(cache.MaxTTL/time.Second))})
		}
		ttl = time.Duration(secs) * time.Second
	}
	limit := c.MaxValueBytes()
	if r.ContentLength > int64(limit) {
		return Errorf(CodeTooLarge, "value is %d bytes; the maximum is %d", r.ContentLength, limit)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return Errorf(CodeTooLarge, "request body is larger than %d bytes", tooBig.Limit)
		}
		return Errorf(CodeMalformed, "reading the request body: %v", err)
	}
	if len(body) > limit {
		return Errorf(CodeTooLarge, "value is larger than the maximum of %d bytes", limit)
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/octet-stream"
	}
	if ttl == 0 {
		// Resolved here rather than in the cache so the answer names the TTL
		// the entry really got, even if the default changes meanwhile.
		ttl = c.DefaultTTL()
	}
	res, err := c.PutRawWithDurability(r.Context(), ns, key, ct, body, ttl)
	if err != nil {
		return cacheError(err)
	}
	w.Header().Set("X-Cache", string(res.Tier))
	w.Header().Set(durabilityHeader, string(res.Durability))
	resp := cachePutResponse{Namespace: ns, Key: key, Bytes: len(body), Tier: string(res.Tier), TTLSeconds: ttl.Seconds(), Durability: string(res.Durability)}
	writeJSON(w, r, http.StatusOK, resp)
	return nil
}

func (s *Server) cacheDelete(w http.ResponseWriter, r *http.Request) error {
	c, ns, key, err := s.cacheEntry(r)
	if err != nil {
		return err
	}
	existed, d, err := c.DeleteWithDurability(r.Context(), ns, key)
	if err != nil {
		return cacheError(err)
	}
	// On a 404 too: during an outage Redis may still hold the entry.
	w.Header().Set(durabilityHeader, string(d))
	if !existed {
		return Errorf(CodeNotFound, "no entry %q in namespace %q", key, ns)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// cacheClearRequest is the body of POST /performance/cache/clear (the seed's call).
type cacheClearRequest struct {
	Namespace string `json:"namespace"`
}

func (s *Server) cacheClear(w http.ResponseWriter, r *http.Request) error {
	c, err := s.cacheOrUnavailable()
	if err != nil {
		return err
	}
	var req cacheClearRequest
	if err := decodeJSON(r, &req, false); err != nil {
		return err
	}
	if err := cache.ValidateNamespace(req.Namespace); err != nil {
		return cacheError(err)
	}
	if !cleanSegments(req.Namespace) {
		// No PUT can have written such a namespace (see cacheTarget).
		return Invalid(FieldError{Field: "namespace", Detail: "must not contain empty, \".\" or \"..\" segments"})
	}
	if err := mayUseNamespace(PrincipalFrom(r.Context()), req.Namespace); err != nil {
		return err
	}
	n, d, err := c.ClearNamespaceWithDurability(r.Context(), req.Namespace)
	if err != nil {
		return cacheError(err)
	}
	w.Header().Set(durabilityHeader, string(d))
	writeJSON(w, r, http.StatusOK, map[string]any{"namespace": req.Namespace, "removed": n, "durability": string(d)})
	return nil
}

func (s *Server) cacheStats(w http.ResponseWriter, r *http.Request) error {
	c, err := s.cacheOrUnavailable()
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, c.Stats(r.Context()))
	return nil
}
