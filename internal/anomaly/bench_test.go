package anomaly

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync/atomic"
	"testing"
	"time"
)

// benchService is a service with an active forest, the default batching and
// no cache, so every sample takes the full path: streaming step, queue,
// forest, combination.
func benchService(b *testing.B, mod func(o *Options)) *Service {
	s, _ := newService(b, mod)
	s.model.Store(fitModel(b, "iforest-bench", 1))
	return s
}

func reportQuantiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
}

// BenchmarkDetectSingle is the latency of one single-sample request.
func BenchmarkDetectSingle(b *testing.B) {
	for _, mode := range []struct {
		name string
		mod  func(o *Options)
	}{{"batched", nil}, {"inline", func(o *Options) { o.DisableBatching = true }}} {
		b.Run(mode.name, func(b *testing.B) {
			s := benchService(b, mode.mod)
			rng := rand.New(rand.NewPCG(1, 1))
			samples := make([]Sample, 1024)
			for i := range samples {
				samples[i], _ = Normalize(normalHost(rng, fmt.Sprintf("h%d", i%8), t0.Add(time.Duration(i)*time.Minute)))
			}
			lat := make([]time.Duration, 0, b.N)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				smp := samples[i%len(samples)]
				smp.Timestamp = t0.Add(time.Duration(i) * time.Minute)
				start := time.Now()
				if _, err := s.Detect(ctx, []Sample{smp}, DetectOptions{}); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			reportQuantiles(b, lat)
		})
	}
}

// BenchmarkDetectThroughput is samples per second under concurrent load,
// with requests of one sample and of 100.
func BenchmarkDetectThroughput(b *testing.B) {
	for _, size := range []int{1, 100} {
		b.Run(fmt.Sprintf("request=%d", size), func(b *testing.B) {
			s := benchService(b, func(o *Options) { o.QueueSize = 1 << 20 })
			var gid atomic.Int64
			ctx := context.Background()
			b.SetParallelism(4) // 4×GOMAXPROCS clients
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				g := gid.Add(1)
				rng := rand.New(rand.NewPCG(uint64(g), 2))
				batch := make([]Sample, size)
				for k := range batch {
					batch[k], _ = Normalize(normalHost(rng, fmt.Sprintf("g%d-%d", g, k), t0))
				}
				for i := 1; pb.Next(); i++ {
					for k := range batch {
						batch[k].Timestamp = t0.Add(time.Duration(i) * time.Minute)
					}
					if _, err := s.Detect(ctx, batch, DetectOptions{}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			el := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N*size)/el.Seconds(), "samples/s")
		})
	}
}
