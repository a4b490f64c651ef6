package cache

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRuntimeSetters(t *testing.T) {
	c, err := New(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.SetDefaultTTL(0); !errors.Is(err, ErrInvalidTTL) {
		t.Fatalf("SetDefaultTTL(0) = %v; want ErrInvalidTTL", err)
	}
	if err := c.SetDefaultTTL(42 * time.Second); err != nil || c.DefaultTTL() != 42*time.Second {
		t.Fatalf("SetDefaultTTL: %v, %s", err, c.DefaultTTL())
	}
	if err := c.Set(ctx, "ns", "k", "v", 0); err != nil {
		t.Fatal(err)
	}
	if ttl, ok, err := c.TTL(ctx, "ns", "k"); err != nil || !ok || ttl > 42*time.Second || ttl < 40*time.Second {
		t.Fatalf("TTL after SetDefaultTTL(42s) = %s, %v, %v", ttl, ok, err)
	}
	if err := c.SetCompressionThreshold(0); err == nil {
		t.Fatal("SetCompressionThreshold(0) accepted")
	}
	if err := c.SetCompressionThreshold(16); err != nil || c.CompressionThreshold() != 16 {
		t.Fatalf("SetCompressionThreshold: %v %d", err, c.CompressionThreshold())
	}
	big := strings.Repeat("abcdefgh", 64)
	if err := c.Set(ctx, "ns", "big", big, 0); err != nil {
		t.Fatal(err)
	}
	var got string
	if found, err := c.Get(ctx, "ns", "big", &got); err != nil || !found || got != big {
		t.Fatalf("round trip after threshold change: %v %v", found, err)
	}
}
