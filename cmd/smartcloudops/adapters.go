package main

import (
	"context"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/cache"
)

// queryCacheNamespace holds the store's cached query results. Namespaces that
// start with "_" are reserved for the service: the HTTP API refuses them, so
// no tenant token can read or clear cached query results.
const queryCacheNamespace = "_smartcloudops.query-results"

// queryCache adapts the cache part to the store's ResultCache.
type queryCache struct{ c *cache.Cache }

func (q queryCache) Get(ctx context.Context, key string) ([]byte, bool, error) {
	e, ok, err := q.c.GetRaw(ctx, queryCacheNamespace, key)
	return e.Body, ok, err
}

func (q queryCache) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	_, err := q.c.PutRaw(ctx, queryCacheNamespace, key, "application/octet-stream", val, ttl)
	return err
}
