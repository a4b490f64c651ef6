package detectcli

import (
	"context"
	"encoding/csv"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/anomaly"
	"github.com/smartcloudops/smartcloudops/internal/store"
	"github.com/smartcloudops/smartcloudops/internal/store/storetest"
)

// fixedClock stands still at one instant; no timer it makes fires (the
// service under test has no retraining schedule).
type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time                       { return c.t }
func (c fixedClock) NewTimer(time.Duration) anomaly.Timer { return idleTimer{} }
func (idleTimer) C() <-chan time.Time                     { return nil }
func (idleTimer) Stop() bool                              { return true }

type idleTimer struct{}

// TestTrainRowsEqualsServiceTrainThenDetect: `detect --train-rows N` gives
// every row the scores the service gives the same rows when it ingests the
// first N, trains (with the model selection), and then scores the rest as
// they arrive: the same model type, the same model score, the same final
// score and decision. The training rows themselves are compared on the model
// score, read back through the read-only Detect.
func TestTrainRowsEqualsServiceTrainThenDetect(t *testing.T) {
	const n, trainN = 700, 400
	tests := []struct {
		name  string
		fault func(v []float64)
	}{
		{"correlation break", func(v []float64) { v[1] = 50 + (v[1]-50)*0.1 - 0.3*(v[0]-100) }},
		{"level shift", func(v []float64) { v[2] += 6 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			in := sensors(n, 500, 150, tc.fault)
			cli, err := runCLI(t, in, "--train-rows", strconv.Itoa(trainN))
			if err != nil {
				t.Fatal(err)
			}
			recs, err := csv.NewReader(strings.NewReader(in)).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			samples := make([]anomaly.Sample, n)
			for i, r := range recs[1:] {
				ts, err := time.Parse(time.RFC3339, r[0])
				if err != nil {
					t.Fatal(err)
				}
				m := map[string]float64{}
				for j, name := range recs[0][1:] {
					m[name], _ = strconv.ParseFloat(r[j+1], 64)
				}
				samples[i] = anomaly.Sample{Host: "h", Timestamp: ts, Metrics: m}
			}
			st, err := store.Open(ctx, store.Options{URL: storetest.SQLiteURL(t), PoolSize: 2})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			if _, err := st.Migrate(ctx, nil); err != nil {
				t.Fatal(err)
			}
			s, err := anomaly.New(ctx, anomaly.Options{Store: st, DisableBatching: true,
				Clock: fixedClock{samples[trainN-1].Timestamp.Add(time.Second)}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close(context.Background()) })
			for i := 0; i < trainN; i += 100 {
				if _, err := s.Ingest(ctx, samples[i:i+100]); err != nil {
					t.Fatal(err)
				}
			}
			info, err := s.Train(ctx, true)
			if err != nil {
				t.Fatal(err)
			}
			modelCol := col(t, cli, "model_score")
			for i := range trainN {
				res, err := s.Detect(ctx, samples[i:i+1], anomaly.DetectOptions{NoCache: true})
				if err != nil {
					t.Fatal(err)
				}
				if got := formatScore(res[0].Components[info.ModelType]); got != cli[1+i][len(cli[0])-1] {
					t.Fatalf("training row %d: service %s score %s, CLI model_score %s", i, info.ModelType, got, cli[1+i][len(cli[0])-1])
				}
			}
			for i := trainN; i < n; i++ {
				rep, err := s.Ingest(ctx, samples[i:i+1])
				if err != nil {
					t.Fatal(err)
				}
				r := rep.Results[0]
				// A trained run's is_anomaly is the state (sustained), as SKAB
				// labels every row of a fault; the service's alert is once per
				// incident.
				flag := "0"
				if r.Sustained {
					flag = "1"
				}
				c := cli[1+i]
				if formatScore(r.Components[info.ModelType]) != formatScore(modelCol[i]) || formatScore(r.AnomalyScore) != c[2] || flag != c[3] {
					t.Fatalf("row %d: service model %v score %v sustained %v; CLI %v", i, r.Components[info.ModelType], r.AnomalyScore, r.Sustained, c)
				}
			}
			t.Logf("model type %s (%s)", info.ModelType, info.Version)
		})
	}
}
