package cache

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/redistest"
)

func TestSharedCalls(t *testing.T) {
	ctx := context.Background()
	mem, err := New(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	if _, err := mem.GetShared(ctx, "ns", []string{"a"}); !errors.Is(err, ErrNotShared) {
		t.Fatalf("memory-only GetShared: %v; want ErrNotShared", err)
	}
	if err := mem.PutShared(ctx, "ns", "a", "", []byte("x"), time.Minute); !errors.Is(err, ErrNotShared) {
		t.Fatalf("memory-only PutShared: %v; want ErrNotShared", err)
	}

	prefix := testPrefix(t, rawClient(t, redistest.URL()))
	a, _ := newRedisCache(t, prefix, nil)
	b, _ := newRedisCache(t, prefix, nil)
	if err := a.PutShared(ctx, "v", "t1", "", []byte("tok-1"), time.Minute); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 8192) // compressed on the wire; must come back byte for byte
	for i := range big {
		big[i] = byte(i % 7)
	}
	if err := a.PutShared(ctx, "v", "t2", "", big, time.Minute); err != nil {
		t.Fatal(err)
	}
	got, err := b.GetShared(ctx, "v", []string{"t1", "missing", "t2"})
	if err != nil {
		t.Fatal(err)
	}
	if string(got[0]) != "tok-1" || got[1] != nil || len(got[2]) != len(big) || got[2][100] != big[100] {
		t.Fatalf("GetShared = %q, %v, %d bytes", got[0], got[1], len(got[2]))
	}
	if _, err := b.GetShared(ctx, "v", []string{"bad\x00key"}); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("bad key: %v", err)
	}
}
