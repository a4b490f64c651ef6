package cache

import (
	"fmt"
	"time"
)

// DefaultTTL is the TTL applied to writes that give none.
func (c *Cache) DefaultTTL() time.Duration { return time.Duration(c.defaultTTL.Load()) }

// SetDefaultTTL changes the TTL of later writes that give none; entries
// already written keep theirs. It is safe to call while the cache serves.
func (c *Cache) SetDefaultTTL(ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("%w: default TTL must be positive", ErrInvalidTTL)
	}
	if err := ValidateTTL(ttl); err != nil {
		return err
	}
	c.defaultTTL.Store(int64(ttl))
	return nil
}

// CompressionThreshold is the encoded size from which values are compressed.
func (c *Cache) CompressionThreshold() int { return int(c.codecs.threshold.Load()) }

// SetCompressionThreshold changes the size from which later writes are
// compressed. Readers need no change: every stored value's header says
// whether it is compressed.
func (c *Cache) SetCompressionThreshold(n int) error {
	if n < 1 {
		return fmt.Errorf("cache: compression threshold %d: must be at least 1 byte", n)
	}
	c.codecs.threshold.Store(int64(n))
	return nil
}
