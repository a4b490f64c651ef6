package anomaly

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartcloudops/smartcloudops/internal/redistest"
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
	c, prefix := redistest.Client(t, "anomaly")
	return &redisCache{c: c, prefix: prefix}
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
