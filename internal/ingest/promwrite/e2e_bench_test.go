package promwrite

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/smartcloudops/smartcloudops/internal/anomaly"
	"github.com/smartcloudops/smartcloudops/internal/ingest"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

// BenchmarkWriteToStore is the receiver on the real ingest path: decode,
// map, the anomaly service (streaming detectors, no model) and the store,
// on both databases. Each op is one scrape of 200 node_exporter hosts sent
// as Prometheus sends it, 2,000 samples a request, with each host's series
// split over two requests (so every row is stored in two parts, the second
// merged). samples/s counts the samples sent.
func BenchmarkWriteToStore(b *testing.B) {
	for _, db := range []string{"sqlite", "postgres"} {
		b.Run(db, func(b *testing.B) {
			url := storetest.SQLiteURL(b)
			if db == "postgres" {
				url = storetest.PostgresURL(b)
			}
			ctx := context.Background()
			st, err := store.Open(ctx, store.Options{URL: url, PoolSize: 4})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			if _, err := st.Migrate(ctx, nil); err != nil {
				b.Fatal(err)
			}
			svc, err := anomaly.New(ctx, anomaly.Options{Store: st, MaxBatch: 5000})
			if err != nil {
				b.Fatal(err)
			}
			defer svc.Close(ctx) //nolint:errcheck
			const hosts, perReq = 200, 2000
			base := exposition(b, scrape1, "x", t0)
			r, err := New(Options{Sink: svc, Tracker: ingest.NewTracker(ingest.TrackerOptions{}), Now: func() time.Time { return t0.Add(24 * time.Hour) }})
			if err != nil {
				b.Fatal(err)
			}
			scrape := func(k int) [][]byte {
				var bodies [][]byte
				var cur []prompb.TimeSeries
				flush := func() {
					bodies = append(bodies, encode(b, &prompb.WriteRequest{Timeseries: cur}))
					cur = nil
				}
				// Every host's first half of series, then every host's
				// second half: two parts per row.
				for half := range 2 {
					for h := range hosts {
						for i, s := range base {
							if i%2 != half {
								continue
							}
							ls := append([]prompb.Label(nil), s.Labels...)
							for j := range ls {
								if ls[j].Name == "instance" {
									ls[j].Value = fmt.Sprintf("node-%03d:9100", h)
								}
							}
							v := s.Samples[0].Value + float64(k*(h+1))
							cur = append(cur, prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Value: v, Timestamp: t0.Add(time.Duration(k) * 15 * time.Second).UnixMilli()}}})
							if len(cur) == perReq {
								flush()
							}
						}
					}
				}
				if len(cur) > 0 {
					flush()
				}
				return bodies
			}
			b.ResetTimer()
			sent := 0
			for k := 0; b.Loop(); k++ {
				b.StopTimer()
				bodies := scrape(k)
				b.StartTimer()
				for _, body := range bodies {
					if _, err := r.Write(ctx, Request{ContentType: "application/x-protobuf", ContentEncoding: "snappy", ContentLength: int64(len(body)), Body: bytes.NewReader(body)}); err != nil {
						b.Fatal(err)
					}
				}
				sent += hosts * len(base)
			}
			b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}
