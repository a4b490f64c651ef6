package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Role is what a credential may do.
type Role string

// The roles. Admin may do everything a user may.
const (
	RoleUser  Role = "user"
	RoleAdmin Role = "admin"
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
	// RequireAuth makes Read routes need a credential too.
	RequireAuth bool
	// Now is the clock used to check expiry; time.Now when nil.
	Now func() time.Time
}

type authenticator struct {
	adminSum [32]byte
	hasAdmin bool
	parser   *jwt.Parser
	secret   []byte
	require  bool
}

// claims are the JWT claims SmartCloudOps reads.
type claims struct {
	Role   string `json:"role"`
	Tenant string `json:"tenant"`
	jwt.RegisteredClaims
}

func newAuthenticator(o AuthOptions) *authenticator {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	a := &authenticator{require: o.RequireAuth, secret: []byte(o.JWTSecret)}
	if o.AdminToken != "" {
		// Comparing fixed-size digests keeps the comparison constant-time
		// regardless of the presented token's length.
		a.adminSum, a.hasAdmin = sha256.Sum256([]byte(o.AdminToken)), true
	}
	if o.JWTSecret != "" {
		a.parser = jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
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
	if a.hasAdmin {
		sum := sha256.Sum256([]byte(token))
		if subtle.ConstantTimeCompare(sum[:], a.adminSum[:]) == 1 {
			return &Principal{Subject: "admin-token", Role: RoleAdmin}, nil
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
	case err != nil:
		return nil, &Error{Code: CodeUnauthorized, Detail: "bearer token is not valid", Err: err}
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
		if access == Read && !a.require {
			return nil, nil
		}
		return nil, Errorf(CodeUnauthorized, "this endpoint needs Authorization: Bearer <token>")
	}
	switch {
	case access == AdminRole && p.Role != RoleAdmin:
		return p, Errorf(CodeForbidden, "this endpoint needs the admin role")
	case access == UserRole && p.Role != RoleAdmin && p.Role != RoleUser:
		return p, Errorf(CodeForbidden, "this endpoint needs the user or admin role")
	case access == Read && p.Role != RoleAdmin && p.Role != RoleUser:
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
