package anomaly

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisCache is a PredictionCache on a real Redis, as the cache part
// provides in production; keys live under a prefix unique to the test run.
type redisCache struct {
	c      *redis.Client
	prefix string
}

func (r *redisCache) Get(ctx context.Context, key string) ([]byte, bool, error) {
	b, err := r.c.Get(ctx, r.prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return b, true, nil
}

func (r *redisCache) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return r.c.Set(ctx, r.prefix+key, value, ttl).Err()
}

func newRedisCache(t *testing.T) *redisCache {
	t.Helper()
	url := os.Getenv("REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("REDIS_URL: %v", err)
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
	rc := &redisCache{c: c, prefix: "sco-test:anomaly:" + hex.EncodeToString(b[:]) + ":"}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		keys, err := c.Keys(ctx, rc.prefix+"*").Result()
		if err == nil && len(keys) > 0 {
			c.Del(ctx, keys...)
		}
		c.Close()
	})
	return rc
}

func TestPredictionCacheRedis(t *testing.T) {
	rc := newRedisCache(t)
	testPredictionCache(t, rc)
	// The entry carries the documented TTL.
	keys, err := rc.c.Keys(context.Background(), rc.prefix+"anomaly:pred2:*").Result()
	if err != nil || len(keys) != 2 {
		t.Fatalf("stored predictions = %v, %v; want 2 (one per distinct vector)", keys, err)
	}
	ttl, err := rc.c.TTL(context.Background(), keys[0]).Result()
	if err != nil || ttl <= 290*time.Second || ttl > 300*time.Second {
		t.Fatalf("prediction TTL = %v, %v; want about 300s", ttl, err)
	}
}
