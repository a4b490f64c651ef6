package httpapi

import (
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/maypok86/otter/v2"
	"golang.org/x/time/rate"
)

// LimitOptions bound what one client may do. A client is the address the
// connection comes from (an IPv6 client is its /64, which one host usually
// holds whole); X-Forwarded-For names it only when the connection comes from
// a trusted proxy. The zero value turns every limit off.
type LimitOptions struct {
	// AuthFailuresPerMinute is how many refused credentials a client may
	// present per minute, and at once; past it the client's credentials get
	// 429 with Retry-After before they are checked. 0 turns the limit off.
	AuthFailuresPerMinute int
	// WritesPerSecond is the sustained rate of state-changing requests
	// (POST, PUT, DELETE on user and admin routes) a client may send; bursts
	// of twice that (at least 1) pass. 0 turns the limit off.
	WritesPerSecond float64
	// TrustedProxies are the peers whose X-Forwarded-For is believed: the
	// client is the right-most address in it that is not itself trusted.
	// Empty believes no header.
	TrustedProxies []netip.Prefix
	// MaxClients bounds each per-client table; the least recently seen
	// client is forgotten first (which only ever resets it to a full
	// budget). 0 means 100000, about 10 MB per table at most.
	MaxClients int
}

// defaultMaxClients bounds the per-client tables when MaxClients is 0.
const defaultMaxClients = 100000

// Throttle reasons, the values of smartcloudops_http_throttled_total's label.
const (
	throttleAuthFailures = "auth_failures"
	throttleWrites       = "writes"
)

// limits holds the per-client budgets; a nil table is a limit turned off.
type limits struct {
	authFailures *clientBudget
	writes       *clientBudget
	trusted      []netip.Prefix
}

func newLimits(o LimitOptions, now func() time.Time) (*limits, error) {
	if o.AuthFailuresPerMinute < 0 || o.WritesPerSecond < 0 || math.IsNaN(o.WritesPerSecond) || math.IsInf(o.WritesPerSecond, 0) {
		return nil, fmt.Errorf("httpapi: limits must be 0 (off) or positive, got %d failures/min and %v writes/s", o.AuthFailuresPerMinute, o.WritesPerSecond)
	}
	maxClients := o.MaxClients
	if maxClients <= 0 {
		maxClients = defaultMaxClients
	}
	l := &limits{trusted: o.TrustedProxies}
	var err error
	if o.AuthFailuresPerMinute > 0 {
		n := o.AuthFailuresPerMinute
		if l.authFailures, err = newClientBudget(rate.Limit(float64(n)/60), n, maxClients, now); err != nil {
			return nil, err
		}
	}
	if o.WritesPerSecond > 0 {
		burst := max1(int(math.Ceil(2 * o.WritesPerSecond)))
		if l.writes, err = newClientBudget(rate.Limit(o.WritesPerSecond), burst, maxClients, now); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func max1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}

// clientBudget is a token bucket per client in a bounded table.
type clientBudget struct {
	limit rate.Limit
	burst int
	now   func() time.Time
	table *otter.Cache[netip.Addr, *rate.Limiter]
}

func newClientBudget(limit rate.Limit, burst, maxClients int, now func() time.Time) (*clientBudget, error) {
	// A bucket left alone this long is full again, so forgetting it then
	// changes nothing; reading it (peek) keeps it.
	refill := time.Duration(float64(burst)/float64(limit)*float64(time.Second)) + time.Second
	t, err := otter.New(&otter.Options[netip.Addr, *rate.Limiter]{
		MaximumSize:      maxClients,
		ExpiryCalculator: otter.ExpiryAccessing[netip.Addr, *rate.Limiter](refill),
	})
	if err != nil {
		return nil, fmt.Errorf("httpapi: per-client table: %w", err)
	}
	return &clientBudget{limit: limit, burst: burst, now: now, table: t}, nil
}

// wait is how long client must wait for its next event, without spending
// one; 0 when it may go now. A client never seen has its full budget.
func (b *clientBudget) wait(client netip.Addr) time.Duration {
	lim, ok := b.table.GetIfPresent(client)
	if !ok {
		return 0
	}
	return b.deficit(lim, b.now())
}

// take spends one event of client's budget: 0 when it had one, else how long
// it must wait (and nothing is spent).
func (b *clientBudget) take(client netip.Addr) time.Duration {
	lim, _ := b.table.ComputeIfAbsent(client, func() (*rate.Limiter, bool) {
		return rate.NewLimiter(b.limit, b.burst), false
	})
	now := b.now()
	if lim.AllowN(now, 1) {
		return 0
	}
	return b.deficit(lim, now)
}

func (b *clientBudget) deficit(lim *rate.Limiter, now time.Time) time.Duration {
	tokens := lim.TokensAt(now)
	if tokens >= 1 {
		return 0
	}
	return time.Duration((1 - tokens) / float64(b.limit) * float64(time.Second))
}

// client is the key a request is limited by.
func (l *limits) client(r *http.Request) netip.Addr {
	var a netip.Addr
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		a = ap.Addr()
	} else if x, err := netip.ParseAddr(r.RemoteAddr); err == nil {
		a = x
	}
	a = a.Unmap()
	if len(l.trusted) > 0 && l.isTrusted(a) {
		a = l.forwardedFor(r, a)
	}
	if a.Is6() {
		// One host usually holds a whole /64: keying by address would give
		// it 2^64 budgets.
		if p, err := a.Prefix(64); err == nil {
			a = p.Addr()
		}
	}
	return a
}

// forwardedFor walks X-Forwarded-For from the right (the entries the trusted
// proxies appended) to the first address that is not a trusted proxy. A
// malformed entry stops the walk at the last trusted hop, so a forged header
// cannot pick a fresh budget.
func (l *limits) forwardedFor(r *http.Request, peer netip.Addr) netip.Addr {
	vals := r.Header.Values("X-Forwarded-For")
	for i := len(vals) - 1; i >= 0; i-- {
		hops := strings.Split(vals[i], ",")
		for j := len(hops) - 1; j >= 0; j-- {
			x, err := netip.ParseAddr(strings.TrimSpace(hops[j]))
			if err != nil {
				return peer
			}
			x = x.Unmap()
			if !l.isTrusted(x) {
				return x
			}
			peer = x
		}
	}
	return peer
}

func (l *limits) isTrusted(a netip.Addr) bool {
	for _, p := range l.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// telemetryRoutes are the routes a metrics pipeline sends to (Prometheus
// remote write, an OpenTelemetry exporter), which do not spend the writes
// budget: a sender's shards post many requests a second by design, and
// Prometheus drops a batch answered 429 unless told to retry it. Their own
// limits (body, series and samples per request, series per tenant) and the
// scoring queue's admission (503, which every sender retries) bound them.
var telemetryRoutes = map[string]bool{"POST /api/v1/write": true, "POST /v1/metrics": true}

// isWrite says whether a request to a route of access changes state and so
// spends the writes budget.
func isWrite(r *http.Request, access Access) bool {
	if access < UserRole || telemetryRoutes[r.Pattern] {
		return false
	}
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch:
		return true
	}
	return false
}

// throttled is the 429 problem for a client that must wait d; Retry-After
// rounds up to whole seconds so a client that obeys it is let through.
func (s *Server) throttled(w http.ResponseWriter, reason string, d time.Duration, detail string) error {
	secs := max1(int(math.Ceil(d.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	s.metrics.throttled.WithLabelValues(reason).Inc()
	return Errorf(CodeTooManyRequests, "%s: retry after %d s", detail, secs)
}

// admit applies the per-client limits that come before the credential is
// checked: a client past its failed-credential budget is refused whatever it
// presents, and a state-changing request spends the writes budget.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, access Access) error {
	if access == Public {
		return nil
	}
	l := s.limits
	if l.authFailures == nil && l.writes == nil {
		return nil
	}
	client := l.client(r)
	if l.authFailures != nil && r.Header.Get("Authorization") != "" {
		if d := l.authFailures.wait(client); d > 0 {
			return s.throttled(w, throttleAuthFailures, d, "too many refused credentials from this client")
		}
	}
	if l.writes != nil && isWrite(r, access) {
		if d := l.writes.take(client); d > 0 {
			return s.throttled(w, throttleWrites, d, "too many state-changing requests from this client")
		}
	}
	return nil
}

// authFailed counts a refused credential against the client's budget.
func (s *Server) authFailed(r *http.Request) {
	s.metrics.authFailures.Inc()
	if s.limits.authFailures != nil {
		s.limits.authFailures.take(s.limits.client(r))
	}
}
