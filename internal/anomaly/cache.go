package anomaly

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"time"
)

// PredictionCache stores forest predictions between requests. The cache part
// (internal/cache) is adapted to it by the wiring. Errors are counted and read as misses: a cache
// outage must never fail a detection.
type PredictionCache interface {
	// Get returns the value under key; ok is false on a miss.
	Get(ctx context.Context, key string) (value []byte, ok bool, err error)
	// Set stores value under key for ttl.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
}

// cacheKey is "anomaly:pred2:<model scope>:<sha256 of the feature vector's
// bits>": exact, so two vectors share an entry only when every feature is
// bit-for-bit equal, and short whatever the vector's width.
func cacheKey(version string, row []float64) string {
	h := sha256.New()
	var b [8]byte
	for _, v := range row {
		binary.LittleEndian.PutUint64(b[:], math.Float64bits(v))
		h.Write(b[:])
	}
	return "anomaly:pred2:" + version + ":" + hex.EncodeToString(h.Sum(nil)[:16])
}

func encodeScore(v float64) []byte { return binary.LittleEndian.AppendUint64(nil, math.Float64bits(v)) }

func decodeScore(b []byte) (float64, bool) {
	if len(b) != 8 {
		return 0, false
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(b))
	return v, v >= 0 && v <= 1
}
