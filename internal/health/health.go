// Package health holds the status vocabulary that every part of SmartCloudOps
// reports in, so /performance/health can aggregate parts it knows nothing about.
package health

import "context"

// Status is a component's or the service's state.
type Status string

// The statuses, in the order an SRE reads them on /performance/health.
const (
	// StatusUp means the component works as configured.
	StatusUp Status = "UP"
	// StatusDegraded means the component serves, but not as configured
	// (for example the cache runs on its in-process tier while Redis is down).
	StatusDegraded Status = "DEGRADED"
	// StatusDown means the component cannot serve; the service reports DOWN.
	StatusDown Status = "DOWN"
	// StatusDisabled means the component is not configured; it does not
	// lower the service's status.
	StatusDisabled Status = "DISABLED"
)

// Component is one part's health as shown under "components" on /performance/health.
type Component struct {
	Status  Status         `json:"status"`
	Details map[string]any `json:"details,omitempty"`
}

// Checker is what every part implements to take part in /performance/health.
// Check must honour ctx's deadline: the health endpoint bounds each check.
type Checker interface {
	Check(ctx context.Context) Component
}

// CheckerFunc adapts a function to Checker.
type CheckerFunc func(ctx context.Context) Component

// Check calls f.
func (f CheckerFunc) Check(ctx context.Context) Component { return f(ctx) }

// Overall folds component statuses into the service status: any DOWN makes the
// service DOWN, otherwise any DEGRADED makes it DEGRADED; DISABLED never lowers it.
func Overall(components map[string]Component) Status {
	out := StatusUp
	for _, c := range components {
		switch c.Status {
		case StatusDown:
			return StatusDown
		case StatusDegraded:
			out = StatusDegraded
		}
	}
	return out
}
