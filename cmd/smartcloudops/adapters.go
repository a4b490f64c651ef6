package main

import (
	"context"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/cache"
)

// Namespaces of the service's own cache entries. Namespaces that start with
// "_" are reserved: the HTTP API lets only admins use them, so no tenant
// token can read or clear cached query results or predictions.
const (
	queryCacheNamespace      = "_smartcloudops.query-results"
	predictionCacheNamespace = "_smartcloudops.predictions"
)

// namespaced adapts the cache part to the byte-oriented caches the store
// (query results) and the anomaly service (predictions) take, each in a
// namespace of its own.
type namespaced struct {
	c  *cache.Cache
	ns string
}

func (n namespaced) Get(ctx context.Context, key string) ([]byte, bool, error) {
	e, ok, err := n.c.GetRaw(ctx, n.ns, key)
	return e.Body, ok, err
}

func (n namespaced) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	_, err := n.c.PutRaw(ctx, n.ns, key, "application/octet-stream", val, ttl)
	return err
}

// sharedNamespaced adds what the store needs to keep cached query results
// coherent across replicas (querycache.SharedBackend): reads of the table versions
// straight from Redis, and writes that fail unless Redis took them. It is used
// only when Redis is configured; without Redis the store keeps its versions
// in the process, which is exact for a single replica.
type sharedNamespaced struct{ namespaced }

func (n sharedNamespaced) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	return n.c.PutShared(ctx, n.ns, key, "application/octet-stream", val, ttl)
}

func (n sharedNamespaced) GetMulti(ctx context.Context, keys []string) ([][]byte, error) {
	return n.c.GetShared(ctx, n.ns, keys)
}
