package main

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartcloudops/smartcloudops/internal/config"
	"github.com/smartcloudops/smartcloudops/internal/health"
)

// newRedisChecker reports Redis reachability for /performance/health:
// DISABLED when no Redis is configured (the service runs memory-only and stays UP),
// DEGRADED when it is configured but does not answer, since everything that uses
// Redis has an in-process fallback.
func newRedisChecker(cfg *config.Config) (health.Checker, func()) {
	url := cfg.EffectiveRedisURL()
	if url == "" {
		return health.CheckerFunc(func(context.Context) health.Component {
			return health.Component{Status: health.StatusDisabled, Details: map[string]any{
				"reason": "no Redis configured: set REDIS_URL or REDIS_HOST to enable the shared cache tier",
			}}
		}), func() {}
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		return health.CheckerFunc(func(context.Context) health.Component {
			return health.Component{Status: health.StatusDegraded, Details: map[string]any{"error": "REDIS_URL does not parse"}}
		}), func() {}
	}
	opts.PoolSize = 2
	opts.DialTimeout = time.Second
	c := redis.NewClient(opts)
	addr := config.RedactURL(url)
	return health.CheckerFunc(func(ctx context.Context) health.Component {
		start := time.Now()
		err := c.Ping(ctx).Err()
		d := map[string]any{"address": addr, "latency_ms": float64(time.Since(start).Microseconds()) / 1000}
		if err != nil {
			d["error"] = "Redis did not answer PING"
			return health.Component{Status: health.StatusDegraded, Details: d}
		}
		return health.Component{Status: health.StatusUp, Details: d}
	}), func() { c.Close() }
}
