package httpapi

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// Role is what a credential may do.
type Role string

// The roles. Admin may do everything a user may.
const (
	RoleUser  Role = "user"
	RoleAdmin Role = "admin"
	// RoleMetrics is the scrape token's: it reads the Prometheus
	// exposition and nothing else, so a scraper holds no admin power.
	RoleMetrics Role = "metrics"
)

// Principal is the authenticated caller of a request.
type Principal struct {
	// Subject is the JWT "sub" claim, or "admin-token" for the static token.
	Subject string `json:"subject"`
	Role    Role   `json:"role"`
	// Tenant limits a user to one namespace/host group; empty means unscoped.
	Tenant string `json:"tenant,omitempty"`
}

// Access is the policy a route is registered with.
type Access int

// The access policies.
const (
	// Public routes never need a credential (probes).
	Public Access = iota
	// Read routes need one only when AuthOptions.RequireAuth is set.
	Read
	// MetricsRead routes are Read routes that also take the read-only
	// scrape token (AuthOptions.MetricsToken): the Prometheus exposition.
	MetricsRead
	// TenantRead routes read tenant data (hosts, series, anomalies, a
	// host's learned baseline): they need a credential when RequireAuth is
	// set, and also when JWTSecret is set (tokens carry tenants) unless
	// OpenTenantReads says the operator chose open reads.
	TenantRead
	// UserRole routes change state and need a user or admin credential.
	UserRole
	// AdminRole routes need an admin credential.
	AdminRole
)

// AuthOptions configure the authenticator.
type AuthOptions struct {
	// AdminToken is a static bearer token with the admin role; empty disables it.
	AdminToken string
	// JWTSecret verifies HS256 bearer JWTs; empty disables JWTs.
	JWTSecret string
	// MetricsToken is a static bearer token with the metrics role, valid
	// only on MetricsRead routes; empty disables it.
	MetricsToken string
	// RequireAuth makes Read and TenantRead routes need a credential too
	// (SMARTCLOUDOPS_REQUIRE_AUTH=true).
	RequireAuth bool
	// OpenTenantReads keeps TenantRead routes open even when JWTSecret is
	// set (SMARTCLOUDOPS_REQUIRE_AUTH=false given explicitly). The zero
	// value is the safe default: tenant data needs a token once tokens can
	// carry tenants.
	OpenTenantReads bool
	// Now is the clock used to check expiry; time.Now when nil.
	Now func() time.Time
}

// ReadPolicy is which reads need a credential under a set of AuthOptions.
type ReadPolicy string

// The read policies, as the start-up log names them.
const (
	// ReadsOpen: no read needs a credential.
	ReadsOpen ReadPolicy = "reads-open"
	// TenantReadsNeedToken: tenant data needs a credential; other reads are open.
	TenantReadsNeedToken ReadPolicy = "tenant-reads-need-token"
	// AllReadsNeedToken: every read needs a credential.
	AllReadsNeedToken ReadPolicy = "all-reads-need-token"
)

// ReadPolicy says which reads o makes need a credential.
func (o AuthOptions) ReadPolicy() ReadPolicy {
	switch {
	case o.RequireAuth:
		return AllReadsNeedToken
	case o.JWTSecret != "" && !o.OpenTenantReads:
		return TenantReadsNeedToken
	}
	return ReadsOpen
}

type authenticator struct {
	adminSum [32]byte
	hasAdmin bool
	// metricsSum is the scrape token's digest, when hasMetrics.
	metricsSum [32]byte
	hasMetrics bool
	parser     *jwt.Parser
	secret     []byte
	// requireRead and requireTenant say whether Read and TenantRead routes
	// need a credential.
	requireRead, requireTenant bool
}

// claims are the JWT claims SmartCloudOps reads.
type claims struct {
	Role   string `json:"role"`
	Tenant string `json:"tenant"`
	jwt.RegisteredClaims
}

// errClaimType marks a token whose time claims are not JSON numbers.
var errClaimType = errors.New("exp, iat and nbf must be JSON numbers (seconds since the epoch)")

// UnmarshalJSON refuses time claims that are not JSON numbers: the JWT
// library would read "exp":"9999999999" as a date, and RFC 7519 says a
// NumericDate is a number, so a string is a token someone got wrong or made up.
func (c *claims) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	for _, k := range [...]string{"exp", "iat", "nbf"} {
		if v, ok := raw[k]; ok && !isJSONNumber(v) {
			return fmt.Errorf("claim %s: %w", k, errClaimType)
		}
	}
	type plain claims // drops this method, so the next call decodes the fields
	return json.Unmarshal(b, (*plain)(c))
}

func isJSONNumber(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) > 0 && (v[0] == '-' || (v[0] >= '0' && v[0] <= '9'))
}

// MaxTenantLen bounds a tenant name.
const MaxTenantLen = 64

// ValidTenant reports why name cannot be a tenant, or "" when it can. A
// tenant is one segment of a host name: hosts "<tenant>/…" belong to it, so
// a '/' in a tenant would make tenant "acme" the owner of tenant "acme/x"'s
// hosts. Like host names, it has no spaces or control characters.
func ValidTenant(name string) string {
	switch {
	case name == "":
		return "is empty"
	case len(name) > MaxTenantLen:
		return fmt.Sprintf("is longer than %d bytes", MaxTenantLen)
	case !utf8.ValidString(name):
		return "is not valid UTF-8"
	case name == "." || name == "..":
		return "must not be \".\" or \"..\""
	}
	for _, c := range name {
		if c == '/' {
			return "must not contain \"/\" (it separates the tenant from the host)"
		}
		if c <= ' ' || c == 0x7f || (c >= 0x80 && c <= 0x9f) {
			return "must not contain spaces or control characters"
		}
	}
	return ""
}

// TenantOfHost is the tenant a host belongs to: its first '/'-separated
// segment when the host has one ("acme/web-1" is acme's, "acme/x/web-1"
// too), else "" (an unscoped host, which only unscoped tokens may touch).
func TenantOfHost(host string) string {
	t, _, ok := strings.Cut(host, "/")
	if !ok {
		return ""
	}
	return t
}

func newAuthenticator(o AuthOptions) *authenticator {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	policy := o.ReadPolicy()
	a := &authenticator{
		requireRead:   policy == AllReadsNeedToken,
		requireTenant: policy != ReadsOpen,
		secret:        []byte(o.JWTSecret),
	}
	if o.AdminToken != "" {
		// Comparing fixed-size digests keeps the comparison constant-time
		// regardless of the presented token's length.
		a.adminSum, a.hasAdmin = sha256.Sum256([]byte(o.AdminToken)), true
	}
	if o.MetricsToken != "" {
		a.metricsSum, a.hasMetrics = sha256.Sum256([]byte(o.MetricsToken)), true
	}
	if o.JWTSecret != "" {
		a.parser = jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			// A token issued in the future (beyond the leeway for clock
			// skew) was minted by a wrong clock or to outlive its exp.
			jwt.WithIssuedAt(),
			jwt.WithLeeway(30*time.Second),
			jwt.WithTimeFunc(now),
		)
	}
	return a
}

func (a *authenticator) configured() bool { return a.hasAdmin || a.parser != nil }

// authenticate returns the request's principal, nil when it carries no
// credential, or a coded error for a bad one.
func (a *authenticator) authenticate(r *http.Request) (*Principal, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, nil
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return nil, Errorf(CodeUnauthorized, "Authorization must be \"Bearer <token>\"")
	}
	token = strings.TrimSpace(token)
	if a.hasAdmin || a.hasMetrics {
		sum := sha256.Sum256([]byte(token))
		if a.hasAdmin && subtle.ConstantTimeCompare(sum[:], a.adminSum[:]) == 1 {
			return &Principal{Subject: "admin-token", Role: RoleAdmin}, nil
		}
		if a.hasMetrics && subtle.ConstantTimeCompare(sum[:], a.metricsSum[:]) == 1 {
			return &Principal{Subject: "metrics-token", Role: RoleMetrics}, nil
		}
	}
	if a.parser == nil {
		return nil, Errorf(CodeUnauthorized, "bearer token is not valid")
	}
	var c claims
	_, err := a.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return a.secret, nil })
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, &Error{Code: CodeUnauthorized, Detail: "bearer token has expired", Err: err}
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return nil, &Error{Code: CodeUnauthorized, Detail: "bearer token must carry an exp claim", Err: err}
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return nil, &Error{Code: CodeUnauthorized, Detail: "bearer token's iat is in the future", Err: err}
	case errors.Is(err, errClaimType):
		return nil, &Error{Code: CodeUnauthorized, Detail: "bearer token's " + errClaimType.Error(), Err: err}
	case err != nil:
		return nil, &Error{Code: CodeUnauthorized, Detail: "bearer token is not valid", Err: err}
	}
	if c.Tenant != "" {
		if why := ValidTenant(c.Tenant); why != "" {
			return nil, Errorf(CodeUnauthorized, "bearer token's tenant claim %s", why)
		}
	}
	return &Principal{Subject: c.Subject, Role: Role(c.Role), Tenant: c.Tenant}, nil
}

// authorize applies the route's policy to the request.
func (a *authenticator) authorize(r *http.Request, access Access) (*Principal, error) {
	if access == Public {
		return nil, nil
	}
	if access >= UserRole && !a.configured() {
		return nil, Errorf(CodeAuthNotSet, "this endpoint changes state and needs a credential, but none is configured: set SMARTCLOUDOPS_ADMIN_TOKEN (16+ characters) or JWT_SECRET (32+ bytes) and restart")
	}
	p, err := a.authenticate(r)
	if err != nil {
		return nil, err
	}
	if p == nil {
		if ((access == Read || access == MetricsRead) && !a.requireRead) || (access == TenantRead && !a.requireTenant) {
			return nil, nil
		}
		return nil, Errorf(CodeUnauthorized, "this endpoint needs Authorization: Bearer <token>")
	}
	switch {
	case access == MetricsRead && p.Role == RoleMetrics:
		return p, nil
	case p.Role == RoleMetrics:
		// The scrape token is refused everywhere else, also on reads, so a
		// leaked Prometheus config exposes metrics and nothing more.
		return p, Errorf(CodeForbidden, "the metrics token may only read /metrics and /performance/metrics")
	case access == AdminRole && p.Role != RoleAdmin:
		return p, Errorf(CodeForbidden, "this endpoint needs the admin role")
	case access == UserRole && p.Role != RoleAdmin && p.Role != RoleUser:
		return p, Errorf(CodeForbidden, "this endpoint needs the user or admin role")
	case (access == Read || access == MetricsRead || access == TenantRead) && p.Role != RoleAdmin && p.Role != RoleUser:
		return p, Errorf(CodeForbidden, "the token's role %q may not read this endpoint", p.Role)
	}
	return p, nil
}

// OwnsTenant reports whether p may act on data that belongs to tenant (a
// cache namespace): an admin may, and so may a user whose tenant claim names
// exactly that tenant; an unscoped user owns no tenant's data.
func (p *Principal) OwnsTenant(tenant string) bool {
	if p == nil {
		return false
	}
	return p.Role == RoleAdmin || (p.Role == RoleUser && p.Tenant != "" && p.Tenant == tenant)
}

// MayUseHost reports whether p may read or write host's data: an admin, an
// unscoped user and (while tenant reads are open) an anonymous caller may
// use any host; a tenant's token only hosts whose first segment is its
// tenant ("acme/web-1" for acme, never "acme-x/web-1" nor the bare "acme").
func (p *Principal) MayUseHost(host string) bool {
	if p == nil || p.Role == RoleAdmin || p.Tenant == "" {
		return true
	}
	return TenantOfHost(host) == p.Tenant && len(host) > len(p.Tenant)+1
}
