package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/klauspost/compress/snappy"
	"github.com/pb33f/libopenapi"
	"github.com/pb33f/libopenapi/datamodel"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/smartcloudops/smartcloudops/internal/anomaly"
	"github.com/smartcloudops/smartcloudops/internal/cache"
	"github.com/smartcloudops/smartcloudops/internal/config"
	"github.com/smartcloudops/smartcloudops/internal/health"
	"github.com/smartcloudops/smartcloudops/internal/ingest"
	"github.com/smartcloudops/smartcloudops/internal/ingest/promwrite"
	"github.com/smartcloudops/smartcloudops/internal/logs"
	"github.com/smartcloudops/smartcloudops/internal/redistest"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
	"github.com/smartcloudops/smartcloudops/internal/tuning"
)

// The OpenAPI tests check openapi.json three ways: it is a valid OpenAPI 3.1
// document whose schemas are valid JSON Schema 2020-12; it documents exactly
// the routes the server registers; and every response the real server sends,
// to valid requests and to bad ones, is documented (status, content type,
// headers) and matches its schema.

const (
	oaDocURL    = "https://smartcloudops.invalid/openapi.json"
	oaAdmin     = "oa-admin-token-0123456789"
	oaJWTSecret = "oa-jwt-secret-0123456789-0123456789-abcdef"
)

var oaNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// ---- the document -----------------------------------------------------------

// oaSpec is the parsed document with a schema compiler over it.
type oaSpec struct {
	raw  []byte
	doc  map[string]any // encoding/json view, for navigation
	comp *jsonschema.Compiler

	mu       sync.Mutex
	compiled map[string]*jsonschema.Schema
	// covered are the "METHOD /path status" responses validated so far.
	covered map[string]int
	checked int
}

func loadOASpec(t *testing.T) *oaSpec {
	t.Helper()
	sp := &oaSpec{raw: openAPIDocument, compiled: map[string]*jsonschema.Schema{}, covered: map[string]int{}}
	if err := json.Unmarshal(sp.raw, &sp.doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(sp.raw))
	if err != nil {
		t.Fatal(err)
	}
	sp.comp = jsonschema.NewCompiler()
	sp.comp.DefaultDraft(jsonschema.Draft2020)
	sp.comp.AssertFormat()
	if err := sp.comp.AddResource(oaDocURL, inst); err != nil {
		t.Fatal(err)
	}
	return sp
}

// schema compiles the schema at a JSON pointer of the document; compiling
// also validates it against the JSON Schema 2020-12 metaschema.
func (sp *oaSpec) schema(ptr string) (*jsonschema.Schema, error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if s, ok := sp.compiled[ptr]; ok {
		return s, nil
	}
	segs := strings.Split(strings.TrimPrefix(ptr, "/"), "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	s, err := sp.comp.Compile(oaDocURL + "#/" + strings.Join(segs, "/"))
	if err != nil {
		return nil, err
	}
	sp.compiled[ptr] = s
	return s, nil
}

func oaEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func oaUnescape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
}

// at returns the node at a JSON pointer, or nil.
func (sp *oaSpec) at(ptr string) any {
	var cur any = sp.doc
	if ptr == "" || ptr == "/" {
		return cur
	}
	for _, seg := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		seg = oaUnescape(seg)
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[seg]
			if !ok {
				return nil
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(c) {
				return nil
			}
			cur = c[i]
		default:
			return nil
		}
	}
	return cur
}

// deref follows a local $ref: it returns the pointer and object it names.
func (sp *oaSpec) deref(ptr string) (string, map[string]any) {
	for range 10 {
		m, _ := sp.at(ptr).(map[string]any)
		r, ok := m["$ref"].(string)
		if !ok {
			return ptr, m
		}
		ptr = strings.TrimPrefix(r, "#")
	}
	return ptr, nil
}

// operations lists "METHOD /path" for every operation in the document.
func (sp *oaSpec) operations() []string {
	var out []string
	paths, _ := sp.doc["paths"].(map[string]any)
	for p, item := range paths {
		for m := range item.(map[string]any) {
			switch m {
			case "get", "put", "post", "delete", "patch", "head", "options", "trace":
				out = append(out, strings.ToUpper(m)+" "+p)
			}
		}
	}
	sort.Strings(out)
	return out
}

// oaPath turns a mux pattern into the document's "METHOD /path".
func oaPath(pattern string) string {
	return strings.ReplaceAll(strings.ReplaceAll(pattern, "...}", "}"), "{$}", "")
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	sp := loadOASpec(t)
	if v, _ := sp.doc["openapi"].(string); v != "3.1.0" {
		t.Fatalf("openapi = %q; want 3.1.0", v)
	}
	// 1. The official OpenAPI 3.1 schema, as libopenapi ships it.
	meta, err := jsonschema.UnmarshalJSON(strings.NewReader(datamodel.OpenAPI31SchemaData))
	if err != nil {
		t.Fatal(err)
	}
	mc := jsonschema.NewCompiler()
	if err := mc.AddResource("https://spec.openapis.org/oas/3.1/schema/2022-10-07", meta); err != nil {
		t.Fatal(err)
	}
	oas, err := mc.Compile("https://spec.openapis.org/oas/3.1/schema/2022-10-07")
	if err != nil {
		t.Fatal(err)
	}
	inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader(sp.raw))
	if err := oas.Validate(inst); err != nil {
		t.Fatalf("not a valid OpenAPI 3.1 document: %v", err)
	}

	// 2. libopenapi builds a 3.1 model from it, resolving every reference.
	d, err := libopenapi.NewDocument(sp.raw)
	if err != nil {
		t.Fatal(err)
	}
	if v := d.GetSpecInfo().VersionNumeric; v != 3.1 {
		t.Fatalf("libopenapi reads version %v", v)
	}
	m, err := d.BuildV3Model()
	if err != nil {
		t.Fatalf("libopenapi: %v", err)
	}
	if got := m.Model.Paths.PathItems.Len(); got == 0 {
		t.Fatal("libopenapi sees no paths")
	}

	// 3. Every $ref resolves; every schema is valid JSON Schema 2020-12.
	var schemas int
	var walk func(ptr string, v any)
	walk = func(ptr string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if r, ok := x["$ref"].(string); ok {
				if !strings.HasPrefix(r, "#/") || sp.at(strings.TrimPrefix(r, "#")) == nil {
					t.Errorf("%s: $ref %q does not resolve", ptr, r)
				}
			}
			for k, c := range x {
				cp := ptr + "/" + oaEscape(k)
				// A Schema Object: under components/schemas, or a "schema"
				// of a parameter, header or media type.
				if k == "schema" || strings.HasSuffix(ptr, "/components/schemas") {
					if _, err := sp.schema(cp); err != nil {
						t.Errorf("schema %s: %v", cp, err)
					}
					schemas++
					continue // a schema's insides are the compiler's
				}
				walk(cp, c)
			}
		case []any:
			for i, c := range x {
				walk(ptr+"/"+strconv.Itoa(i), c)
			}
		}
	}
	walk("", sp.doc)
	t.Logf("%d schemas compiled against JSON Schema 2020-12", schemas)

	// 4. Rules the OpenAPI schema cannot express: unique operationIds, path
	// templates and path parameters agree, every operation states its
	// access and security, documents a success and problem+json errors.
	ids := map[string]string{}
	tmpl := regexp.MustCompile(`\{([^}]+)\}`)
	for _, o := range sp.operations() {
		method, path, _ := strings.Cut(o, " ")
		ptr := "/paths/" + oaEscape(path) + "/" + strings.ToLower(method)
		op := sp.at(ptr).(map[string]any)
		id, _ := op["operationId"].(string)
		if id == "" || ids[id] != "" {
			t.Errorf("%s: operationId %q missing or also on %s", o, id, ids[id])
		}
		ids[id] = o
		want := map[string]bool{}
		for _, mm := range tmpl.FindAllStringSubmatch(path, -1) {
			want[mm[1]] = true
		}
		var params []any
		if pi, ok := sp.at("/paths/" + oaEscape(path) + "/parameters").([]any); ok {
			params = append(params, pi...)
		}
		if pl, ok := op["parameters"].([]any); ok {
			params = append(params, pl...)
		}
		for i := range params {
			_, p := sp.deref(fmt.Sprintf("%s/parameters/%d", ptr, i))
			if p == nil {
				continue
			}
			if p["in"] == "path" {
				if !want[p["name"].(string)] {
					t.Errorf("%s: path parameter %v not in the template", o, p["name"])
				}
				delete(want, p["name"].(string))
			}
		}
		for n := range want {
			t.Errorf("%s: template parameter {%s} is not declared", o, n)
		}
		access, _ := op["x-access"].(string)
		if !slices.Contains([]string{"public", "read", "tenant-read", "user", "tenant", "admin"}, access) {
			t.Errorf("%s: x-access %q", o, access)
		}
		if _, ok := op["security"]; !ok {
			t.Errorf("%s: no security", o)
		}
		resps, _ := op["responses"].(map[string]any)
		ok2xx := false
		for code := range resps {
			if code[0] == '2' {
				ok2xx = true
			}
			if code[0] == '4' || code[0] == '5' {
				rp, r := sp.deref(ptr + "/responses/" + code)
				content, _ := r["content"].(map[string]any)
				// The exceptions are by design: probes and reports that carry
				// their body on 503, ServeContent's 412/416, and the OTLP
				// endpoint, whose failures are the google.rpc.Status that
				// OTLP/HTTP specifies.
				_, problem := content["application/problem+json"]
				otlpStatus := path == "/v1/metrics" && content["application/x-protobuf"] != nil
				if !problem && !otlpStatus && !(code == "503" && content["application/json"] != nil) && code != "412" && code != "416" {
					t.Errorf("%s %s (%s): errors must be application/problem+json", o, code, rp)
				}
			}
		}
		if !ok2xx {
			t.Errorf("%s: no success response", o)
		}
	}
}

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	sp := loadOASpec(t)
	srv, err := New(Deps{Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry(), Ready: oaUp{}, Config: oaNoConfig{}})
	if err != nil {
		t.Fatal(err)
	}
	var routes []string
	for _, r := range srv.Routes() {
		routes = append(routes, oaPath(r))
	}
	sort.Strings(routes)
	documented := sp.operations()
	for _, r := range routes {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is not documented in openapi.json", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(routes, d) {
			t.Errorf("openapi.json documents %s, which routes() does not register", d)
		}
	}
	if len(documented) != len(routes) {
		t.Errorf("%d operations documented, %d routes", len(documented), len(routes))
	}
	t.Logf("%d routes, all documented", len(routes))
}

type oaUp struct{}

func (oaUp) Check(context.Context) health.Component { return health.Component{Status: health.StatusUp} }

type oaNoConfig struct{}

func (oaNoConfig) Redacted() []config.Entry { return []config.Entry{} }

// ---- validating responses -----------------------------------------------------

// oaSignificant are headers whose presence must be documented on the
// response that carries them.
var oaSignificant = []string{"X-Cache", "Retry-After", "Location", "WWW-Authenticate", "Allow"}

// check validates one exchange: the response must be documented for the
// operation the router chose (or, for an unmatched request, be the
// NotFound/MethodNotAllowed problem), with its content type, headers and a
// body that matches the schema. A 2xx answer also checks that the request
// itself fits the documented parameters and body.
func (sp *oaSpec) check(t *testing.T, srv *Server, r *http.Request, reqBody []byte, w *httptest.ResponseRecorder) {
	t.Helper()
	_, pattern := srv.mux.Handler(r)
	status := strconv.Itoa(w.Code)
	var (
		respPtr string
		key     string
		opPtr   string
	)
	if pattern == "" {
		switch w.Code {
		case http.StatusNotFound:
			respPtr = "/components/responses/NotFound"
		case http.StatusMethodNotAllowed:
			respPtr = "/components/responses/MethodNotAllowed"
		default:
			t.Errorf("%s %s matched no route but answered %d", r.Method, r.URL, w.Code)
			return
		}
		key = "(unmatched) " + status
	} else {
		method, path, _ := strings.Cut(oaPath(pattern), " ")
		if r.Method == http.MethodHead {
			method = http.MethodGet
		}
		opPtr = "/paths/" + oaEscape(path) + "/" + strings.ToLower(method)
		if sp.at(opPtr) == nil {
			t.Errorf("%s %s: route %s is not documented", r.Method, r.URL, pattern)
			return
		}
		respPtr = opPtr + "/responses/" + status
		if sp.at(respPtr) == nil {
			t.Errorf("%s %s answered %d, which %s %s does not document: %s", r.Method, r.URL, w.Code, method, path, truncate(w.Body.String(), 300))
			return
		}
		key = method + " " + path + " " + status
	}
	respPtr, resp := sp.deref(respPtr)
	where := fmt.Sprintf("%s %s → %d", r.Method, r.URL, w.Code)

	// Headers: documented ones present when required and valid; significant
	// ones documented when present.
	hdrs, _ := resp["headers"].(map[string]any)
	for name := range hdrs {
		hp, h := sp.deref(respPtr + "/headers/" + oaEscape(name))
		v := w.Header().Get(name)
		if v == "" {
			if req, _ := h["required"].(bool); req {
				t.Errorf("%s: required header %s missing", where, name)
			}
			continue
		}
		if s, err := sp.schema(hp + "/schema"); err != nil {
			t.Errorf("%s: header %s schema: %v", where, name, err)
		} else if err := s.Validate(v); err != nil {
			t.Errorf("%s: header %s=%q: %v", where, name, v, err)
		}
	}
	for _, name := range oaSignificant {
		if w.Header().Get(name) != "" && hdrs[name] == nil {
			t.Errorf("%s: sends %s=%q, which is not documented", where, name, w.Header().Get(name))
		}
	}
	if w.Header().Get("X-Request-ID") == "" {
		t.Errorf("%s: no X-Request-ID", where)
	}

	// Content.
	content, _ := resp["content"].(map[string]any)
	body := w.Body.Bytes()
	if len(content) == 0 {
		if len(body) != 0 {
			t.Errorf("%s: documented without content but sent %q", where, truncate(string(body), 100))
		}
	} else if r.Method != http.MethodHead {
		ct := w.Header().Get("Content-Type")
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil {
			t.Errorf("%s: Content-Type %q: %v", where, ct, err)
			return
		}
		// The most specific documented media type wins: exact, type/*, */*.
		match := ""
		for _, k := range []string{mt, strings.SplitN(mt, "/", 2)[0] + "/*", "*/*"} {
			if _, ok := content[k]; ok {
				match = k
				break
			}
		}
		if match == "" {
			t.Errorf("%s: Content-Type %q is not documented (documented: %v)", where, ct, slices.Sorted(maps.Keys(content)))
			return
		}
		if mt == "application/json" || strings.HasSuffix(mt, "+json") {
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
			if err != nil {
				t.Errorf("%s: body is not JSON: %v: %s", where, err, truncate(string(body), 200))
				return
			}
			if s, err := sp.schema(respPtr + "/content/" + oaEscape(match) + "/schema"); err != nil {
				t.Errorf("%s: schema: %v", where, err)
			} else if err := s.Validate(inst); err != nil {
				t.Errorf("%s: body does not match the schema: %v\nbody: %s", where, err, truncate(string(body), 1500))
			}
		} else if len(body) == 0 && w.Code != http.StatusNoContent {
			t.Errorf("%s: empty %s body", where, mt)
		}
	}

	if w.Code/100 == 2 && opPtr != "" {
		sp.checkRequest(t, opPtr, r, reqBody, where)
	}
	sp.mu.Lock()
	sp.covered[key]++
	sp.checked++
	sp.mu.Unlock()
}

// checkRequest validates an accepted request against the operation's
// parameters and request body, so the document does not refuse what the
// server accepts.
func (sp *oaSpec) checkRequest(t *testing.T, opPtr string, r *http.Request, body []byte, where string) {
	t.Helper()
	op := sp.at(opPtr).(map[string]any)
	params, _ := op["parameters"].([]any)
	known := map[string]bool{}
	for i := range params {
		pp, p := sp.deref(fmt.Sprintf("%s/parameters/%d", opPtr, i))
		if p["in"] != "query" {
			continue
		}
		name := p["name"].(string)
		known[name] = true
		vals, ok := r.URL.Query()[name]
		if !ok {
			continue
		}
		s, err := sp.schema(pp + "/schema")
		if err != nil {
			t.Errorf("%s: parameter %s: %v", where, name, err)
			continue
		}
		var v any = vals[0]
		if typ, _ := sp.at(pp + "/schema/type").(string); typ == "integer" || typ == "number" {
			v = json.Number(vals[0])
		}
		if err := s.Validate(v); err != nil {
			t.Errorf("%s: accepted %s=%q, which the document refuses: %v", where, name, vals[0], err)
		}
	}
	for name := range r.URL.Query() {
		if !known[name] {
			t.Errorf("%s: query parameter %q is not documented", where, name)
		}
	}
	rb, _ := op["requestBody"].(map[string]any)
	if rb == nil {
		return
	}
	content, _ := rb["content"].(map[string]any)
	if len(bytes.TrimSpace(body)) == 0 {
		if req, _ := rb["required"].(bool); req {
			t.Errorf("%s: accepted an empty body, which the document requires", where)
		}
		return
	}
	if content["application/json"] == nil {
		return
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return
	}
	if s, err := sp.schema(opPtr + "/requestBody/content/application~1json/schema"); err != nil {
		t.Errorf("%s: request schema: %v", where, err)
	} else if err := s.Validate(inst); err != nil {
		t.Errorf("%s: accepted a body the document refuses: %v\nbody: %s", where, err, truncate(string(body), 300))
	}
}

// ---- a real server --------------------------------------------------------------

type oaServer struct {
	srv   *Server
	spec  *oaSpec
	store *store.Store
	cache *cache.Cache
	svc   *anomaly.Service
}

type oaOptions struct {
	dbURL    string
	redisURL string
	noCache  bool
	noLogs   bool
	noDB     bool
	noAnom   bool
	// noTunables leaves PUT /performance/config without settings.
	noTunables bool
	auth       AuthOptions
	anomaly    AnomalyService
}

type oaClock struct{}

func (oaClock) Now() time.Time                         { return oaNow }
func (oaClock) NewTimer(d time.Duration) anomaly.Timer { return anomaly.SystemClock{}.NewTimer(d) }

// oaAuth keeps tenant reads open, so the scenarios can drive every
// endpoint's answers anonymously; oaAccess checks the default (auto) too.
func oaAuth() AuthOptions {
	return AuthOptions{AdminToken: oaAdmin, JWTSecret: oaJWTSecret, OpenTenantReads: true}
}

// rawCache keeps a part's byte values in a reserved namespace of the real
// cache, as cmd/smartcloudops does for the query cache.
type rawCache struct {
	c  *cache.Cache
	ns string
}

func (q rawCache) Get(ctx context.Context, key string) ([]byte, bool, error) {
	e, ok, err := q.c.GetRaw(ctx, q.ns, key)
	return e.Body, ok, err
}

func (q rawCache) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	_, err := q.c.PutRaw(ctx, q.ns, key, "application/octet-stream", val, ttl)
	return err
}

// newOAServer builds the API over real parts: a migrated store, the
// two-tier cache (memory-only or on Redis), the log pipeline writing into
// a temporary directory, and the anomaly service on the store and cache.
func newOAServer(t *testing.T, sp *oaSpec, o oaOptions) *oaServer {
	t.Helper()
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	cfg, err := config.Load(nil, func(k string) string {
		return map[string]string{"SMARTCLOUDOPS_ADMIN_TOKEN": oaAdmin, "JWT_SECRET": oaJWTSecret, "REDIS_PASSWORD": "hunter2"}[k]
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	x := &oaServer{spec: sp}
	d := Deps{Registry: reg, Config: cfg, Auth: o.auth, MaxBodyBytes: 64 << 10, Now: func() time.Time { return oaNow },
		Components: map[string]health.Checker{}}
	d.Logger = slog.New(slog.DiscardHandler)
	level := new(slog.LevelVar)
	if !o.noLogs {
		lg, err := logs.New(logs.Options{Dir: t.TempDir(), Copy: io.Discard, Fallback: io.Discard, CopyLevel: "off", Level: level}, reg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = lg.Close(context.Background()) })
		d.Logger, d.Logs = lg.Slog(), lg
		d.Components["logs"] = lg
	}
	if !o.noCache {
		var b [6]byte
		_, _ = rand.Read(b[:])
		x.cache, err = cache.New(ctx, cache.Options{RedisURL: o.redisURL, KeyPrefix: "sco-openapi-test-" + hex.EncodeToString(b[:]) + ":",
			MaxValueBytes: 1000, Registerer: reg, ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond, DialTimeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			for _, ns := range []string{"team-a", "team-b", "_smartcloudops.query-results", "_smartcloudops.predictions"} {
				_, _ = x.cache.ClearNamespace(context.Background(), ns)
			}
			x.cache.Close()
		})
		d.Cache = x.cache
		d.Components["cache"] = x.cache
		d.Components["redis"] = x.cache
		if o.redisURL == "" {
			d.Components["redis"] = health.CheckerFunc(func(context.Context) health.Component {
				return health.Component{Status: health.StatusDisabled, Details: map[string]any{"reason": "no Redis configured"}}
			})
		}
	}
	d.Ready = oaUp{}
	if !o.noDB {
		so := store.Options{URL: o.dbURL, PoolSize: 2, SlowQueryThreshold: time.Nanosecond, Registerer: reg, Logger: d.Logger}
		if x.cache != nil {
			so.Cache = rawCache{x.cache, "_smartcloudops.query-results"}
		}
		x.store, err = store.Open(ctx, so)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { x.store.Close() })
		if _, err := x.store.Migrate(ctx, nil); err != nil {
			t.Fatal(err)
		}
		d.Database, d.Series, d.Ready = leaderAdminOf(t, x.store), x.store, x.store
		d.Components["database"] = x.store
	}
	switch {
	case o.anomaly != nil:
		d.Anomaly = o.anomaly
	case !o.noAnom:
		ao := anomaly.Options{Registerer: reg, Logger: d.Logger, Clock: oaClock{}, MaxBatch: 200, QueueSize: 1000, MinTrainingRows: 100, Trees: 20}
		if x.store != nil {
			ao.Store = x.store
		}
		if x.cache != nil {
			ao.Cache = rawCache{x.cache, "_smartcloudops.predictions"}
		}
		x.svc, err = anomaly.New(ctx, ao)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = x.svc.Close(context.Background()) })
		d.Anomaly = x.svc
		d.Components["anomaly"] = x.svc
		d.RemoteWrite, err = promwrite.New(promwrite.Options{Sink: x.svc, Tracker: ingest.NewTracker(ingest.TrackerOptions{}), Registerer: reg,
			MaxBodyBytes: 16 << 10, MaxDecodedBytes: 1 << 20, Now: func() time.Time { return oaNow }})
		if err != nil {
			t.Fatal(err)
		}
	}
	if d.Anomaly != nil {
		d.OTLP = oaOTLPReceiver(t, d.Anomaly, reg)
	}
	if !o.noTunables {
		d.Tunables = oaTunables(d.Logger, level, x)
	}
	x.srv, err = New(d)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// oaTunables registers runtime settings on the real parts, as the service's
// wiring does.
func oaTunables(log *slog.Logger, level *slog.LevelVar, x *oaServer) *tuning.Registry {
	r := tuning.New(log, func() time.Time { return oaNow })
	r.Add(tuning.Enum("logs.level", "lowest level logged", []string{"debug", "info", "warn", "error"},
		func() string { return strings.ToLower(level.Level().String()) },
		func(v string) { _ = level.UnmarshalText([]byte(v)) }))
	if x.cache != nil {
		r.Add(tuning.Duration("cache.default_ttl", "TTL of cache entries written without one", time.Second, cache.MaxTTL,
			x.cache.DefaultTTL, func(d time.Duration) { _ = x.cache.SetDefaultTTL(d) }, nil))
	}
	if x.store != nil {
		r.Add(tuning.Duration("database.slow_query_threshold", "log statements at least this slow", 0, time.Hour,
			x.store.Diagnostics().SlowQueryThreshold, x.store.Diagnostics().SetSlowQueryThreshold, nil))
	}
	if x.svc != nil {
		r.Add(tuning.Integer("anomaly.batch_size", "largest micro-batch of model scoring", 1, 10000,
			func() int64 { n, _, _ := x.svc.Batching(); return int64(n) },
			func(n int64) { _, to, _ := x.svc.Batching(); _ = x.svc.SetBatching(int(n), to) }, nil))
	}
	return r
}

// do sends one request and validates the exchange against the document.
func (x *oaServer) do(t *testing.T, method, target, auth, contentType, body string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	x.srv.ServeHTTP(w, r)
	x.spec.check(t, x.srv, r, []byte(body), w)
	return w
}

// want sends a request that must answer status.
func (x *oaServer) want(t *testing.T, status int, method, target, auth, contentType, body string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	w := x.do(t, method, target, auth, contentType, body, hdr...)
	if w.Code != status {
		t.Errorf("%s %s: %d; want %d: %s", method, target, w.Code, status, truncate(w.Body.String(), 300))
	}
	return w
}

func oaJWT(t *testing.T, role, tenant string) string {
	t.Helper()
	c := jwt.MapClaims{"sub": "oa-" + role, "role": role, "exp": oaNow.Add(time.Hour).Unix()}
	if tenant != "" {
		c["tenant"] = tenant
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(oaJWTSecret))
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + s
}

// ---- the scenarios -----------------------------------------------------------------

func TestOpenAPIResponses(t *testing.T) {
	sp := loadOASpec(t)
	base := oaOptions{auth: oaAuth()}

	t.Run("sqlite+memory cache", func(t *testing.T) {
		o := base
		o.dbURL = storetest.SQLiteURL(t)
		oaEverything(t, newOAServer(t, sp, o))
	})
	t.Run("postgres+redis cache", func(t *testing.T) {
		o := base
		o.dbURL, o.redisURL = storetest.PostgresURL(t), redistest.URL()
		oaEverything(t, newOAServer(t, sp, o))
	})
	t.Run("redis down", func(t *testing.T) {
		o := base
		o.dbURL, o.redisURL, o.noAnom = storetest.SQLiteURL(t), "redis://127.0.0.1:1/0", true
		x := newOAServer(t, sp, o)
		admin := "Bearer " + oaAdmin
		w := x.want(t, http.StatusOK, "PUT", "/performance/cache/team-a/k", admin, "text/plain", "v")
		if got := w.Header().Get("X-Cache"); got != "FALLBACK" {
			t.Errorf("PUT with Redis down: X-Cache %q; want FALLBACK", got)
		}
		x.want(t, http.StatusOK, "GET", "/performance/cache/team-a/k", admin, "", "")
		x.want(t, http.StatusOK, "GET", "/performance/cache/stats", "", "", "")
		w = x.want(t, http.StatusOK, "GET", "/performance/health", "", "", "")
		if !strings.Contains(w.Body.String(), `"DEGRADED"`) {
			t.Errorf("health with Redis down: %s", w.Body)
		}
	})
	t.Run("parts disabled", func(t *testing.T) {
		x := newOAServer(t, sp, oaOptions{auth: oaAuth(), noCache: true, noLogs: true, noDB: true, noAnom: true, noTunables: true})
		admin := "Bearer " + oaAdmin
		for _, c := range []struct{ method, path, ct, body string }{
			{"GET", "/performance/cache/stats", "", ""},
			{"GET", "/performance/cache/team-a/k", "", ""},
			{"PUT", "/performance/cache/team-a/k", "text/plain", "v"},
			{"DELETE", "/performance/cache/team-a/k", "", ""},
			{"POST", "/performance/cache/clear", "application/json", `{"namespace":"team-a"}`},
			{"GET", "/performance/logs/stats", "", ""},
			{"GET", "/performance/database/stats", "", ""},
			{"GET", "/performance/database/indexes", "", ""},
			{"POST", "/performance/database/indexes", "application/json", `{"table":"system_metrics","columns":["cpu_usage"]}`},
			{"POST", "/performance/database/optimize", "", ""},
			{"POST", "/performance/anomaly/detect", "application/json", oaSample("web-1", 50)},
			{"POST", "/api/v1/metrics", "application/json", oaSample("web-1", 50)},
			{"POST", "/v1/metrics", "application/json", oaOTLPJSON("web-1")},
			{"GET", "/performance/anomaly/stats", "", ""},
			{"GET", "/performance/anomaly/models", "", ""},
			{"POST", "/performance/anomaly/models", "", ""},
			{"POST", "/performance/anomaly/models/v1/activate", "", ""},
			{"PUT", "/performance/config", "application/json", `{"logs.level":"debug"}`},
			{"GET", "/api/v1/hosts", "", ""},
			{"GET", "/api/v1/hosts/web-1/metrics", "", ""},
			{"GET", "/api/v1/anomalies", "", ""},
		} {
			x.want(t, http.StatusServiceUnavailable, c.method, c.path, admin, c.ct, c.body)
		}
		x.want(t, http.StatusOK, "GET", "/performance/health", "", "", "")
		x.want(t, http.StatusOK, "GET", "/performance/summary", "", "", "")
		x.want(t, http.StatusOK, "GET", "/performance/config", "", "", "")
		x.want(t, http.StatusOK, "GET", "/readyz", "", "", "")
	})
	t.Run("anomaly service refusing", func(t *testing.T) {
		for _, err := range []error{&anomaly.QueueFullError{Depth: 10, Capacity: 10, RetryAfter: 1500 * time.Millisecond}, anomaly.ErrBusy, anomaly.ErrClosed} {
			x := newOAServer(t, sp, oaOptions{auth: oaAuth(), noCache: true, noLogs: true, noDB: true, anomaly: oaRefusing{err}})
			admin := "Bearer " + oaAdmin
			w := x.want(t, http.StatusServiceUnavailable, "POST", "/performance/anomaly/detect", "", "application/json", oaSample("web-1", 50))
			if w.Header().Get("Retry-After") == "" {
				t.Errorf("%v: no Retry-After", err)
			}
			x.want(t, http.StatusServiceUnavailable, "POST", "/api/v1/metrics", admin, "application/json", oaSample("web-1", 50))
			if w := x.want(t, http.StatusServiceUnavailable, "POST", "/v1/metrics", admin, "application/json", oaOTLPJSON("web-1")); w.Header().Get("Retry-After") == "" {
				t.Errorf("%v: OTLP without Retry-After", err)
			}
			x.want(t, http.StatusServiceUnavailable, "POST", "/performance/anomaly/models", admin, "", "")
			x.want(t, http.StatusServiceUnavailable, "POST", "/performance/anomaly/models/v1/activate", admin, "", "")
			x.want(t, http.StatusServiceUnavailable, "GET", "/performance/anomaly/models", "", "", "")
		}
	})
	t.Run("access levels", func(t *testing.T) { oaAccess(t, sp) })
	t.Run("per-client limits", func(t *testing.T) { oaLimits(t, sp) })
	t.Run("database down", func(t *testing.T) {
		o := base
		o.dbURL, o.noAnom = storetest.SQLiteURL(t), true
		x := newOAServer(t, sp, o)
		x.store.Close()
		x.want(t, http.StatusServiceUnavailable, "GET", "/readyz", "", "", "")
		w := x.want(t, http.StatusServiceUnavailable, "GET", "/performance/health", "", "", "")
		if !strings.Contains(w.Body.String(), `"DOWN"`) {
			t.Errorf("health with the database closed: %s", w.Body)
		}
		x.want(t, http.StatusOK, "GET", "/performance/summary", "", "", "")
		for _, path := range []string{"/performance/database/stats", "/performance/database/indexes", "/api/v1/hosts", "/api/v1/hosts/web-1/metrics", "/api/v1/anomalies"} {
			x.want(t, http.StatusServiceUnavailable, "GET", path, "", "", "")
		}
		// A failed maintenance run answers its report, every step failed.
		w = x.want(t, http.StatusServiceUnavailable, "POST", "/performance/database/optimize", "Bearer "+oaAdmin, "", "")
		if !strings.Contains(w.Body.String(), `"ok": false`) {
			t.Errorf("optimize on a closed database: %s", w.Body)
		}
	})

	// Coverage: every operation answered at least one success, and every
	// documented response but the 500s (a panic or an unexpected part
	// failure) was seen.
	var missing, notDriven []string
	for _, o := range sp.operations() {
		method, path, _ := strings.Cut(o, " ")
		resps, _ := sp.at("/paths/" + oaEscape(path) + "/" + strings.ToLower(method) + "/responses").(map[string]any)
		ok := false
		for code := range resps {
			k := o + " " + code
			if sp.covered[k] > 0 {
				if code[0] == '2' {
					ok = true
				}
				continue
			}
			if code != "500" {
				missing = append(missing, k)
			} else {
				notDriven = append(notDriven, k)
			}
		}
		if !ok {
			t.Errorf("%s: no success response was validated", o)
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("documented response never validated: %s", m)
	}
	sort.Strings(notDriven)
	t.Logf("%d responses validated, %d distinct operation/status pairs, across %d operations", sp.checked, len(sp.covered), len(sp.operations()))
	t.Logf("every documented response was validated but %d 500s", len(notDriven))
	for k, n := range sp.covered {
		if strings.HasSuffix(k, " 500") {
			t.Logf("a 500 was sent: %s (%d times)", k, n)
		}
	}
}

// oaRemoteWrite drives POST /api/v1/write: a remote write 1.0 and a 2.0
// request taken, and each refusal.
func oaRemoteWrite(t *testing.T, x *oaServer, user string) {
	t.Helper()
	ts := oaNow.Add(-time.Minute).UnixMilli()
	v1, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "node_load1"}, {Name: "instance", Value: "rw-1:9100"}},
		Samples: []prompb.Sample{{Value: 0.5, Timestamp: ts}},
	}}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	body := string(snappy.Encode(nil, v1))
	enc := []string{"Content-Encoding", "snappy"}
	x.want(t, http.StatusNoContent, "POST", "/api/v1/write", user, "application/x-protobuf", body, enc...)
	syms := writev2.NewSymbolTable()
	refs := syms.SymbolizeLabels(labels.FromStrings("__name__", "node_load1", "instance", "rw-2:9100"), nil)
	v2, err := (&writev2.Request{Symbols: syms.Symbols(), Timeseries: []writev2.TimeSeries{{LabelsRefs: refs, Samples: []writev2.Sample{{Value: 1, Timestamp: ts}}}}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	w := x.want(t, http.StatusNoContent, "POST", "/api/v1/write", user, "application/x-protobuf;proto=io.prometheus.write.v2.Request", string(snappy.Encode(nil, v2)), enc...)
	if got := w.Header().Get("X-Prometheus-Remote-Write-Samples-Written"); got != "1" {
		t.Errorf("remote write 2.0: samples written header %q", got)
	}
	// A tenant's token stores the host under the tenant, whatever the labels say.
	acme := oaJWT(t, "user", "acme")
	x.want(t, http.StatusNoContent, "POST", "/api/v1/write", acme, "application/x-protobuf", body, enc...)
	w = x.want(t, http.StatusOK, "GET", "/api/v1/hosts/acme%2Frw-1/metrics", acme, "", "")
	if !strings.Contains(w.Body.String(), `"load_average": 0.5`) && !strings.Contains(w.Body.String(), `"load_average":0.5`) {
		t.Errorf("the tenant's remote-written host: %s", w.Body)
	}
	x.want(t, http.StatusUnauthorized, "POST", "/api/v1/write", "", "application/x-protobuf", body, enc...)
	x.want(t, http.StatusBadRequest, "POST", "/api/v1/write", user, "application/x-protobuf", "not snappy", enc...)
	x.want(t, http.StatusRequestEntityTooLarge, "POST", "/api/v1/write", user, "application/x-protobuf", strings.Repeat("x", 20<<10), enc...)
	x.want(t, http.StatusUnsupportedMediaType, "POST", "/api/v1/write", user, "application/x-protobuf", body, "Content-Encoding", "gzip")
}

func oaSample(host string, cpu float64) string {
	return fmt.Sprintf(`{"host":%q,"timestamp":"2026-11-28T11:59:00Z","metrics":{"cpu_usage":%g,"memory_usage":40}}`, host, cpu)
}

// oaEverything drives every route of a fully wired server with valid
// requests and with bad ones.
func oaEverything(t *testing.T, x *oaServer) {
	admin := "Bearer " + oaAdmin
	oaOTLP(t, x)
	teamA := oaJWT(t, "user", "team-a")
	teamB := oaJWT(t, "user", "team-b")
	user := oaJWT(t, "user", "")

	// Probes, configuration, metrics, this document.
	w := x.want(t, http.StatusOK, "GET", "/livez", "", "", "", "X-Request-ID", "trace-abc")
	if w.Header().Get("X-Request-ID") != "trace-abc" {
		t.Errorf("X-Request-ID not echoed")
	}
	x.want(t, http.StatusOK, "HEAD", "/livez", "", "", "")
	x.want(t, http.StatusOK, "GET", "/readyz", "", "", "")
	x.want(t, http.StatusOK, "GET", "/performance/health", "", "", "")
	x.want(t, http.StatusOK, "GET", "/performance/config", "", "", "")
	x.want(t, http.StatusOK, "GET", "/performance/metrics", "", "", "")
	x.want(t, http.StatusOK, "GET", "/performance/metrics", "", "", "", "Accept", "application/openmetrics-text; version=1.0.0")
	w = x.want(t, http.StatusOK, "GET", "/performance/openapi.json", "", "", "")
	if !bytes.Equal(w.Body.Bytes(), openAPIDocument) {
		t.Error("GET /performance/openapi.json does not serve the embedded document")
	}
	x.want(t, http.StatusNotFound, "GET", "/nope", "", "", "")
	x.want(t, http.StatusMethodNotAllowed, "DELETE", "/performance/health", "", "", "")
	x.want(t, http.StatusMethodNotAllowed, "POST", "/performance/cache/stats", admin, "", "")
	x.want(t, http.StatusMethodNotAllowed, "PUT", "/performance/openapi.json", "", "", "")
	x.want(t, http.StatusUnauthorized, "GET", "/performance/config", "Bearer wrong-token-0123456789", "", "")

	// Cache.
	x.want(t, http.StatusOK, "PUT", "/performance/cache/team-a/user/42?ttl=60", teamA, "text/csv", "id,name\n42,Ada\n")
	w = x.want(t, http.StatusOK, "GET", "/performance/cache/team-a/user/42", teamA, "", "")
	if w.Body.String() != "id,name\n42,Ada\n" || w.Header().Get("Content-Type") != "text/csv" {
		t.Errorf("GET after PUT: %q %q", w.Body, w.Header().Get("Content-Type"))
	}
	x.want(t, http.StatusOK, "PUT", "/performance/cache/team-a/json", admin, "application/json", `{"a":1}`)
	x.want(t, http.StatusOK, "GET", "/performance/cache/team-a/json", admin, "", "")
	x.want(t, http.StatusOK, "PUT", "/performance/cache/team-a/empty?ttl=0", teamA, "", "")
	x.want(t, http.StatusOK, "HEAD", "/performance/cache/team-a/empty", teamA, "", "")
	x.want(t, http.StatusNotFound, "GET", "/performance/cache/team-a/nope", teamA, "", "")
	x.want(t, http.StatusNoContent, "DELETE", "/performance/cache/team-a/empty", teamA, "", "")
	x.want(t, http.StatusNotFound, "DELETE", "/performance/cache/team-a/empty", teamA, "", "")
	x.want(t, http.StatusBadRequest, "PUT", "/performance/cache/team-a/k?ttl=-1", teamA, "text/plain", "v")
	x.want(t, http.StatusBadRequest, "PUT", "/performance/cache/team-a/k?ttl=soon", teamA, "text/plain", "v")
	x.want(t, http.StatusBadRequest, "PUT", "/performance/cache/team-a/k", teamA, "text/plain\x01", "v")
	x.want(t, http.StatusBadRequest, "GET", "/performance/cache/team-a/", teamA, "", "")
	x.want(t, http.StatusBadRequest, "GET", "/performance/cache/team-a/a%01b", teamA, "", "")
	long := strings.Repeat("n", 513)
	x.want(t, http.StatusBadRequest, "GET", "/performance/cache/"+long+"/k", admin, "", "")
	x.want(t, http.StatusBadRequest, "DELETE", "/performance/cache/team-a/"+long, teamA, "", "")
	x.want(t, http.StatusRequestEntityTooLarge, "PUT", "/performance/cache/team-a/big", teamA, "text/plain", strings.Repeat("x", 2000))
	x.want(t, http.StatusRequestEntityTooLarge, "PUT", "/performance/cache/team-a/huge", teamA, "text/plain", strings.Repeat("x", 70<<10))
	x.want(t, http.StatusUnauthorized, "GET", "/performance/cache/team-a/user/42", "", "", "")
	x.want(t, http.StatusForbidden, "GET", "/performance/cache/team-a/user/42", teamB, "", "")
	x.want(t, http.StatusForbidden, "PUT", "/performance/cache/team-a/user/42", user, "text/plain", "v")
	x.want(t, http.StatusForbidden, "DELETE", "/performance/cache/_smartcloudops.query-results/k", oaJWT(t, "user", "_smartcloudops.query-results"), "", "")
	x.want(t, http.StatusForbidden, "POST", "/performance/cache/clear", teamB, "application/json", `{"namespace":"team-a"}`)
	x.want(t, http.StatusBadRequest, "POST", "/performance/cache/clear", teamA, "application/json", `{"namespace":""}`)
	x.want(t, http.StatusBadRequest, "POST", "/performance/cache/clear", teamA, "application/json", `{"ns":"team-a"}`)
	x.want(t, http.StatusBadRequest, "POST", "/performance/cache/clear", teamA, "application/json", `{"namespace":`)
	x.want(t, http.StatusBadRequest, "POST", "/performance/cache/clear", teamA, "", "")
	x.want(t, http.StatusUnsupportedMediaType, "POST", "/performance/cache/clear", teamA, "text/plain", `{"namespace":"team-a"}`)
	x.want(t, http.StatusRequestEntityTooLarge, "POST", "/performance/cache/clear", teamA, "application/json", `{"namespace":"`+strings.Repeat("a", 70<<10)+`"}`)
	x.want(t, http.StatusOK, "POST", "/performance/cache/clear", teamA, "application/json", `{"namespace":"team-a"}`)
	x.want(t, http.StatusOK, "GET", "/performance/cache/stats", "", "", "")

	// Logs.
	x.want(t, http.StatusOK, "GET", "/performance/logs/stats", "", "", "")

	// Anomaly detection.
	x.want(t, http.StatusOK, "POST", "/performance/anomaly/detect", "", "application/json", oaSample("web-1", 95.5))
	x.want(t, http.StatusOK, "POST", "/performance/anomaly/detect?use_cache=false", "", "application/json",
		`{"samples":[`+oaSample("web-1", 20)+`,{"host":"web-2","metrics":{"cpu":10}}]}`)
	x.want(t, http.StatusOK, "POST", "/performance/anomaly/detect", "", "application/json",
		`[`+oaSample("web-1", 30)+`,{"host":"web-2","timestamp":1795867140,"metrics":{"cpu":10}}]`)
	for _, bad := range []string{`{"host":"a","metrics":{"cpu_usage":"high"}}`, `{"host":"a"}`, `{"samples":[]}`, `"hello"`, `{"host":`, ``,
		`{"samples":[` + strings.TrimSuffix(strings.Repeat(`{"host":"h","metrics":{"cpu":1}},`, 201), ",") + `]}`} {
		x.want(t, http.StatusBadRequest, "POST", "/performance/anomaly/detect", "", "application/json", bad)
	}
	x.want(t, http.StatusBadRequest, "POST", "/performance/anomaly/detect?use_cache=maybe", "", "application/json", oaSample("web-1", 50))
	x.want(t, http.StatusUnsupportedMediaType, "POST", "/performance/anomaly/detect", "", "text/plain", oaSample("web-1", 50))
	x.want(t, http.StatusRequestEntityTooLarge, "POST", "/performance/anomaly/detect", "", "application/json", `{"host":"`+strings.Repeat("a", 70<<10)+`"}`)

	x.want(t, http.StatusUnauthorized, "POST", "/api/v1/metrics", "", "application/json", oaSample("web-1", 50))
	w = x.want(t, http.StatusForbidden, "POST", "/api/v1/metrics", oaJWT(t, "user", "acme"), "application/json", `[`+oaSample("acme/web-1", 50)+`,`+oaSample("web-1", 50)+`]`)
	if p := decodeOAProblem(w); len(p.Errors) != 1 {
		t.Errorf("tenant problem: %s", w.Body)
	}
	x.want(t, http.StatusOK, "POST", "/api/v1/metrics", oaJWT(t, "user", "acme"), "application/json", oaSample("acme/web-1", 97))
	x.want(t, http.StatusBadRequest, "POST", "/api/v1/metrics", user, "application/json", `{"host":"a b","metrics":{"cpu":1}}`)
	x.want(t, http.StatusUnsupportedMediaType, "POST", "/api/v1/metrics", user, "text/csv", "host,cpu\n")
	x.want(t, http.StatusRequestEntityTooLarge, "POST", "/api/v1/metrics", user, "application/json", `{"host":"`+strings.Repeat("a", 70<<10)+`"}`)

	oaRemoteWrite(t, x, user)

	x.want(t, http.StatusOK, "GET", "/performance/anomaly/models", "", "", "")
	x.want(t, http.StatusBadRequest, "POST", "/performance/anomaly/models", admin, "", "") // no history yet
	// History through the ingest endpoint: 150 samples, one a minute.
	var batch []string
	for i := range 150 {
		batch = append(batch, fmt.Sprintf(`{"host":"web-9","timestamp":%q,"metrics":{"cpu_usage":%d,"memory_usage":%d}}`,
			oaNow.Add(-time.Duration(150-i)*time.Minute).Format(time.RFC3339), 40+i%17, 50+i%11))
	}
	x.want(t, http.StatusOK, "POST", "/api/v1/metrics", admin, "application/json", `{"samples":[`+strings.Join(batch, ",")+`]}`)
	x.want(t, http.StatusOK, "POST", "/api/v1/metrics", admin, "application/json", `[`+batch[0]+`]`) // a duplicate
	var first, second anomaly.ModelInfo
	w = x.want(t, http.StatusCreated, "POST", "/performance/anomaly/models", admin, "", "")
	_ = json.Unmarshal(w.Body.Bytes(), &first)
	w = x.want(t, http.StatusCreated, "POST", "/performance/anomaly/models", admin, "application/json", `{"activate":false}`)
	_ = json.Unmarshal(w.Body.Bytes(), &second)
	x.want(t, http.StatusBadRequest, "POST", "/performance/anomaly/models", admin, "application/json", `{"activate":"yes"}`)
	x.want(t, http.StatusUnsupportedMediaType, "POST", "/performance/anomaly/models", admin, "text/plain", `x`)
	x.want(t, http.StatusRequestEntityTooLarge, "POST", "/performance/anomaly/models", admin, "application/json", `{"activate":true,"x":"`+strings.Repeat("a", 70<<10)+`"}`)
	x.want(t, http.StatusForbidden, "POST", "/performance/anomaly/models", user, "", "")
	x.want(t, http.StatusNotFound, "POST", "/performance/anomaly/models/nope/activate", admin, "", "")
	x.want(t, http.StatusBadRequest, "POST", "/performance/anomaly/models/"+strings.Repeat("v", 129)+"/activate", admin, "", "")
	x.want(t, http.StatusOK, "POST", "/performance/anomaly/models/"+url.PathEscape(second.Version)+"/activate", admin, "", "")
	x.want(t, http.StatusOK, "GET", "/performance/anomaly/models", "", "", "")
	x.want(t, http.StatusOK, "POST", "/performance/anomaly/series/rebaseline", admin, "application/json", `{"host":"web-9","metric":"cpu"}`)
	x.want(t, http.StatusOK, "POST", "/performance/anomaly/series/rebaseline", admin, "application/json", `{"host":"web-9"}`)
	x.want(t, http.StatusNotFound, "POST", "/performance/anomaly/series/rebaseline", admin, "application/json", `{"host":"web-9","metric":"gc_ms"}`)
	x.want(t, http.StatusNotFound, "POST", "/performance/anomaly/series/rebaseline", admin, "application/json", `{"host":"nowhere"}`)
	x.want(t, http.StatusBadRequest, "POST", "/performance/anomaly/series/rebaseline", admin, "application/json", `{"host":"web-9","metric":""}`)
	x.want(t, http.StatusBadRequest, "POST", "/performance/anomaly/series/rebaseline", admin, "application/json", `{"metric":"cpu"}`)
	x.want(t, http.StatusBadRequest, "POST", "/performance/anomaly/series/rebaseline", admin, "", "")
	x.want(t, http.StatusForbidden, "POST", "/performance/anomaly/series/rebaseline", user, "application/json", `{"host":"web-9"}`)
	x.want(t, http.StatusUnauthorized, "POST", "/performance/anomaly/series/rebaseline", "", "application/json", `{"host":"web-9"}`)
	x.want(t, http.StatusUnsupportedMediaType, "POST", "/performance/anomaly/series/rebaseline", admin, "text/plain", `{"host":"web-9"}`)
	x.want(t, http.StatusRequestEntityTooLarge, "POST", "/performance/anomaly/series/rebaseline", admin, "application/json", `{"host":"`+strings.Repeat("a", 70<<10)+`"}`)
	x.want(t, http.StatusOK, "POST", "/performance/anomaly/detect", "", "application/json", oaSample("web-9", 99))
	x.want(t, http.StatusOK, "POST", "/performance/anomaly/detect", "", "application/json", oaSample("web-9", 99)) // prediction cache
	x.want(t, http.StatusOK, "GET", "/performance/anomaly/stats", "", "", "")

	// Database.
	x.want(t, http.StatusOK, "GET", "/performance/database/stats", "", "", "")
	x.want(t, http.StatusOK, "GET", "/performance/database/stats?sort=calls&limit=5", "", "", "")
	for _, q := range []string{"sort=nope", "limit=0", "limit=501", "limit=x"} {
		x.want(t, http.StatusBadRequest, "GET", "/performance/database/stats?"+q, "", "", "")
	}
	x.want(t, http.StatusOK, "GET", "/performance/database/indexes", "", "", "")
	x.want(t, http.StatusCreated, "POST", "/performance/database/indexes?wait=30s", admin, "application/json", `{"table":"system_metrics","columns":["cpu_usage"]}`)
	x.want(t, http.StatusBadRequest, "POST", "/performance/database/indexes", admin, "application/json", `{"table":"system_metrics","columns":["host"]}`)
	x.want(t, http.StatusBadRequest, "POST", "/performance/database/indexes", admin, "application/json", `{"table":"nope","columns":["x"]}`)
	x.want(t, http.StatusBadRequest, "POST", "/performance/database/indexes", admin, "application/json", `{}`)
	x.want(t, http.StatusBadRequest, "POST", "/performance/database/indexes?wait=forever", admin, "application/json", `{"table":"system_metrics","columns":["memory_usage"]}`)
	x.want(t, http.StatusUnsupportedMediaType, "POST", "/performance/database/indexes", admin, "text/plain", `{}`)
	x.want(t, http.StatusRequestEntityTooLarge, "POST", "/performance/database/indexes", admin, "application/json", `{"table":"`+strings.Repeat("a", 70<<10)+`"}`)
	x.want(t, http.StatusOK, "GET", "/performance/database/indexes", "", "", "")
	x.want(t, http.StatusOK, "POST", "/performance/database/optimize", admin, "", "")
	x.want(t, http.StatusOK, "POST", "/performance/database/optimize?wait=30", admin, "application/json", `{"vacuum":true}`)
	x.want(t, http.StatusBadRequest, "POST", "/performance/database/optimize", admin, "application/json", `{"vacuum":"yes"}`)
	x.want(t, http.StatusBadRequest, "POST", "/performance/database/optimize?wait=31s", admin, "", "")
	x.want(t, http.StatusUnsupportedMediaType, "POST", "/performance/database/optimize", admin, "text/plain", `{}`)
	x.want(t, http.StatusRequestEntityTooLarge, "POST", "/performance/database/optimize", admin, "application/json", `{"vacuum":true,"x":"`+strings.Repeat("a", 70<<10)+`"}`)
	for _, c := range []struct{ path, body string }{
		{"/performance/database/optimize?wait=0", `{}`},
		{"/performance/database/indexes?wait=0s", `{"table":"system_metrics","columns":["memory_usage"]}`},
	} {
		w := x.want(t, http.StatusAccepted, "POST", c.path, admin, "application/json", c.body)
		loc := w.Header().Get("Location")
		if loc == "" {
			continue
		}
		x.want(t, http.StatusOK, "GET", loc, "", "", "")
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			w := x.want(t, http.StatusOK, "GET", loc, "", "", "")
			if !strings.Contains(w.Body.String(), `"status": "running"`) || time.Now().After(deadline) {
				break
			}
		}
	}
	x.want(t, http.StatusNotFound, "GET", "/performance/database/jobs/nope", "", "", "")
	x.want(t, http.StatusOK, "GET", "/performance/database/stats", "", "", "")

	// Runtime configuration.
	x.want(t, http.StatusOK, "PUT", "/performance/config", admin, "application/json", `{"cache.default_ttl":"120s","logs.level":"debug","anomaly.batch_size":50}`)
	w = x.want(t, http.StatusOK, "GET", "/performance/config", "", "", "")
	if !strings.Contains(w.Body.String(), `"changed_by": "admin-token"`) {
		t.Errorf("GET /performance/config after PUT does not say who changed it: %s", truncate(w.Body.String(), 300))
	}
	for _, bad := range []string{`{"nope":1}`, `{"cache.default_ttl":"forever","logs.level":"info"}`, `{"anomaly.batch_size":0}`, `{"logs.level":3}`, `{}`, `[]`, `null`, `{"a":`} {
		x.want(t, http.StatusBadRequest, "PUT", "/performance/config", admin, "application/json", bad)
	}
	x.want(t, http.StatusUnsupportedMediaType, "PUT", "/performance/config", admin, "text/plain", `{"logs.level":"info"}`)
	x.want(t, http.StatusRequestEntityTooLarge, "PUT", "/performance/config", admin, "application/json", `{"logs.level":"`+strings.Repeat("a", 70<<10)+`"}`)
	x.want(t, http.StatusOK, "PUT", "/performance/config", admin, "", `{"logs.level":"info"}`)

	// Hosts, series and stored anomalies.
	acme := oaJWT(t, "user", "acme")
	x.want(t, http.StatusOK, "GET", "/api/v1/hosts", "", "", "")
	x.want(t, http.StatusOK, "GET", "/api/v1/hosts?limit=1", acme, "", "")
	for _, q := range []string{"limit=0", "limit=1001", "lmit=5"} {
		x.want(t, http.StatusBadRequest, "GET", "/api/v1/hosts?"+q, "", "", "")
	}
	x.want(t, http.StatusOK, "GET", "/api/v1/hosts/web-9/metrics", "", "", "")
	x.want(t, http.StatusOK, "GET", "/api/v1/hosts/web-9/metrics?from=2026-11-28T10:00:00Z&to=2026-11-28T12:00:00Z&limit=10", user, "", "")
	x.want(t, http.StatusOK, "GET", "/api/v1/hosts/acme%2Fweb-1/metrics", acme, "", "")
	x.want(t, http.StatusForbidden, "GET", "/api/v1/hosts/web-9/metrics", acme, "", "")
	for _, q := range []string{"from=yesterday", "from=2026-11-28T12:00:00Z&to=2026-11-28T10:00:00Z", "limit=10001", "form=2026-11-28T10:00:00Z"} {
		x.want(t, http.StatusBadRequest, "GET", "/api/v1/hosts/web-9/metrics?"+q, "", "", "")
	}
	x.want(t, http.StatusBadRequest, "GET", "/api/v1/hosts/a%20b/metrics", "", "", "")
	x.want(t, http.StatusOK, "GET", "/api/v1/anomalies", "", "", "")
	x.want(t, http.StatusOK, "GET", "/api/v1/anomalies?host=acme%2Fweb-1&from=2026-11-28T00:00:00Z&limit=5", acme, "", "")
	x.want(t, http.StatusForbidden, "GET", "/api/v1/anomalies?host=web-9", acme, "", "")
	for _, q := range []string{"limit=x", "host=", "to=soon", "hots=web-9"} {
		x.want(t, http.StatusBadRequest, "GET", "/api/v1/anomalies?"+q, "", "", "")
	}

	// The dashboard.
	w = x.want(t, http.StatusOK, "GET", "/", "", "", "")
	etag := w.Header().Get("ETag")
	x.want(t, http.StatusOK, "HEAD", "/", "", "", "")
	x.want(t, http.StatusNotModified, "GET", "/", "", "", "", "If-None-Match", etag)
	x.want(t, http.StatusPartialContent, "GET", "/", "", "", "", "Range", "bytes=0-9")
	x.want(t, http.StatusPartialContent, "GET", "/ui/dashboard.js", "", "", "", "Range", "bytes=0-9,20-29")
	x.want(t, http.StatusRequestedRangeNotSatisfiable, "GET", "/", "", "", "", "Range", "bytes=99999999-")
	x.want(t, http.StatusPreconditionFailed, "GET", "/", "", "", "", "If-Match", `"nope"`)
	for _, f := range []string{"dashboard.js", "dashboard.css", "index.html"} {
		x.want(t, http.StatusOK, "GET", "/ui/"+f, "", "", "")
	}
	x.want(t, http.StatusNotModified, "GET", "/ui/dashboard.css", "", "", "", "If-None-Match", `*`)
	x.want(t, http.StatusPreconditionFailed, "GET", "/ui/dashboard.css", "", "", "", "If-Match", `"nope"`)
	x.want(t, http.StatusRequestedRangeNotSatisfiable, "GET", "/ui/dashboard.css", "", "", "", "Range", "bytes=99999999-")
	x.want(t, http.StatusNotFound, "GET", "/ui/nope.js", "", "", "")

	x.want(t, http.StatusOK, "GET", "/performance/summary", "", "", "")
	x.want(t, http.StatusOK, "GET", "/performance/health", "", "", "")
}

func decodeOAProblem(w *httptest.ResponseRecorder) Problem {
	var p Problem
	_ = json.Unmarshal(w.Body.Bytes(), &p)
	return p
}

// oaRefusing is an anomaly service that refuses every call with err, to
// reach the 503 answers (and their Retry-After) a real service sends only
// under load.
type oaRefusing struct{ err error }

func (s oaRefusing) Detect(context.Context, []anomaly.Sample, anomaly.DetectOptions) ([]anomaly.Result, error) {
	return nil, s.err
}
func (s oaRefusing) Ingest(context.Context, []anomaly.Sample) (anomaly.IngestReport, error) {
	return anomaly.IngestReport{}, s.err
}
func (s oaRefusing) Stats() anomaly.Stats                                { return anomaly.Stats{} }
func (s oaRefusing) Models(context.Context) ([]anomaly.ModelInfo, error) { return nil, s.err }
func (s oaRefusing) Train(context.Context, bool) (anomaly.ModelInfo, error) {
	return anomaly.ModelInfo{}, s.err
}
func (s oaRefusing) Activate(context.Context, string) (anomaly.ModelInfo, error) {
	return anomaly.ModelInfo{}, s.err
}
func (s oaRefusing) Rebaseline(context.Context, string, string, string) (anomaly.RebaselineReport, error) {
	return anomaly.RebaselineReport{}, s.err
}
func (s oaRefusing) MaxBatch() int { return 10 }

// oaAccess checks every operation's documented x-access against the
// server's behaviour, validating each refusal against the document.
func oaAccess(t *testing.T, sp *oaSpec) {
	strict := newOAServer(t, sp, oaOptions{auth: AuthOptions{AdminToken: oaAdmin, JWTSecret: oaJWTSecret, RequireAuth: true}, dbURL: storetest.SQLiteURL(t)})
	open := newOAServer(t, sp, oaOptions{auth: AuthOptions{AdminToken: oaAdmin, JWTSecret: oaJWTSecret}, dbURL: storetest.SQLiteURL(t), noAnom: true})
	openTenants := newOAServer(t, sp, oaOptions{auth: oaAuth(), dbURL: storetest.SQLiteURL(t), noAnom: true, noCache: true, noLogs: true})
	none := newOAServer(t, sp, oaOptions{dbURL: storetest.SQLiteURL(t), noAnom: true})
	viewer := oaJWT(t, "viewer", "")
	user := oaJWT(t, "user", "")
	teamA := oaJWT(t, "user", "team-a")
	for _, o := range sp.operations() {
		method, path, _ := strings.Cut(o, " ")
		op := sp.at("/paths/" + oaEscape(path) + "/" + strings.ToLower(method)).(map[string]any)
		access := op["x-access"].(string)
		target := strings.NewReplacer("{namespace}", "team-a", "{key}", "k/1", "{version}", "v1", "{id}", "0123456789abcdef",
			"{host}", "web-1", "{file}", "dashboard.js").Replace(path)
		ct, body := "", ""
		switch target {
		case "/performance/cache/clear":
			ct, body = "application/json", `{"namespace":"team-a"}`
		case "/performance/config":
			if method == "PUT" {
				ct, body = "application/json", `{"logs.level":"info"}`
			}
		}
		refused := func(w *httptest.ResponseRecorder) bool { return w.Code == 401 || w.Code == 403 }

		// No credential, SMARTCLOUDOPS_REQUIRE_AUTH=true: only public answers.
		w := strict.do(t, method, target, "", ct, body)
		if (access == "public") == (w.Code == 401) {
			t.Errorf("%s (%s) without a credential and REQUIRE_AUTH: %d", o, access, w.Code)
		}
		// No credential, REQUIRE_AUTH unset (auto) with JWT_SECRET set:
		// public and read answer, tenant data does not.
		w = open.do(t, method, target, "", ct, body)
		if (access == "public" || access == "read") == (w.Code == 401) {
			t.Errorf("%s (%s) without a credential: %d", o, access, w.Code)
		}
		// No credential, REQUIRE_AUTH=false given: tenant data answers too.
		w = openTenants.do(t, method, target, "", ct, body)
		if (access == "public" || access == "read" || access == "tenant-read") == (w.Code == 401) {
			t.Errorf("%s (%s) without a credential and REQUIRE_AUTH=false: %d", o, access, w.Code)
		}
		// A bad credential is refused wherever one is checked.
		w = open.do(t, method, target, "Bearer not-a-token", ct, body)
		if (access != "public") != (w.Code == 401) {
			t.Errorf("%s (%s) with a bad credential: %d", o, access, w.Code)
		}
		// A role that is neither user nor admin.
		w = open.do(t, method, target, viewer, ct, body)
		if (access != "public") != (w.Code == 403) {
			t.Errorf("%s (%s) with role viewer: %d", o, access, w.Code)
		}
		// A user without a tenant: refused by admin and tenant endpoints only.
		w = open.do(t, method, target, user, ct, body)
		if (access == "admin" || access == "tenant") != (w.Code == 403) {
			t.Errorf("%s (%s) as a user: %d", o, access, w.Code)
		}
		// The namespace's tenant passes a tenant endpoint.
		if access == "tenant" {
			if w := open.do(t, method, target, teamA, ct, body); refused(w) {
				t.Errorf("%s as tenant team-a: %d", o, w.Code)
			}
		}
		// The admin passes everything.
		if w := open.do(t, method, target, "Bearer "+oaAdmin, ct, body); refused(w) {
			t.Errorf("%s as admin: %d", o, w.Code)
		}
		// No credential configured: reads are open (single-user mode), and
		// state-changing endpoints say how to set one.
		w = none.do(t, method, target, "", ct, body)
		if w.Code == 401 {
			t.Errorf("%s (%s) with no credential configured: 401", o, access)
		}
		if (access == "user" || access == "tenant" || access == "admin") != (w.Code == 403 && strings.Contains(w.Body.String(), "auth-not-configured")) {
			t.Errorf("%s (%s) with no credential configured: %d %s", o, access, w.Code, truncate(w.Body.String(), 200))
		}
	}
}

// oaLimits drives the 429 of every non-public operation: once a client has
// spent its budget of refused credentials, every credential it presents is
// refused before it is checked; and a client over its write rate is refused
// a state-changing request.
func oaLimits(t *testing.T, sp *oaSpec) {
	x := newOAServer(t, sp, oaOptions{auth: oaAuth(), noCache: true, noLogs: true, noDB: true, noAnom: true, noTunables: true})
	lim, err := newLimits(LimitOptions{AuthFailuresPerMinute: 1}, func() time.Time { return oaNow })
	if err != nil {
		t.Fatal(err)
	}
	x.srv.limits = lim
	x.want(t, http.StatusUnauthorized, "GET", "/performance/config", "Bearer not-a-token", "", "")
	for _, o := range sp.operations() {
		method, path, _ := strings.Cut(o, " ")
		op := sp.at("/paths/" + oaEscape(path) + "/" + strings.ToLower(method)).(map[string]any)
		if op["x-access"] == "public" {
			continue
		}
		target := strings.NewReplacer("{namespace}", "team-a", "{key}", "k/1", "{version}", "v1", "{id}", "0123456789abcdef",
			"{host}", "web-1", "{file}", "dashboard.js").Replace(path)
		// Even the right token: the client is refused before it is checked.
		w := x.want(t, http.StatusTooManyRequests, method, target, "Bearer "+oaAdmin, "", "")
		if ra, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
			t.Errorf("%s: Retry-After %q", o, w.Header().Get("Retry-After"))
		}
	}

	x = newOAServer(t, sp, oaOptions{auth: oaAuth(), noCache: true, noLogs: true, noDB: true, noAnom: true, noTunables: true})
	if x.srv.limits, err = newLimits(LimitOptions{WritesPerSecond: 0.5}, func() time.Time { return oaNow }); err != nil {
		t.Fatal(err)
	}
	// A burst of one (twice 0.5/s) passes, the next write waits 2 s.
	x.do(t, "POST", "/performance/anomaly/models", "Bearer "+oaAdmin, "application/json", "{}")
	w := x.want(t, http.StatusTooManyRequests, "POST", "/performance/anomaly/models", "Bearer "+oaAdmin, "application/json", "{}")
	if w.Header().Get("Retry-After") != "2" {
		t.Errorf("write limit Retry-After %q; want 2", w.Header().Get("Retry-After"))
	}
}

// truncate cuts s to n bytes for a failure message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
