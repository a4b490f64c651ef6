// Package redistest gives tests a connection to the real Redis (REDIS_URL,
// default redis://127.0.0.1:6379/0) and a key prefix of their own, removed
// when the test ends, so tests of several packages share one server safely.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// URL is the Redis the tests use: REDIS_URL, or the local default.
func URL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// Client connects to URL and returns the client and a prefix unique to this
// test ("sco-test:<name>:<random>:"). The test fails, saying how to fix it,
// when Redis does not answer. At cleanup every key under the prefix is
// deleted and the client closed.
func Client(t testing.TB, name string) (*redis.Client, string) {
	t.Helper()
	url := URL()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("REDIS_URL %q: %v", url, err)
	}
	c := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		t.Fatalf("Redis is not reachable at REDIS_URL (%s): %v; start it or point REDIS_URL at one", url, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "sco-test:" + name + ":" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if keys, err := c.Keys(ctx, prefix+"*").Result(); err == nil && len(keys) > 0 {
			c.Del(ctx, keys...)
		}
		c.Close()
	})
	return c, prefix
}
