package anomaly

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/domain"
)

// fitPCAModel is fitModel's PCA twin: a fleet PCA model on the same
// correlated hosts.
func fitPCAModel(t testing.TB) *activeModel {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 7))
	var hist []domain.MetricSample
	for i := range 2000 {
		hist = append(hist, ToStore(normalHost(rng, fmt.Sprintf("h%d", i%5), t0.Add(time.Duration(i)*time.Minute))))
	}
	ts := buildTrainingSet(hist, 0)
	models, _, failed := fitCandidates(ts.train, ts.impute, fitOptions{contamination: 0.005}, TypePCA)
	if len(failed) > 0 {
		t.Fatal(failed)
	}
	return &activeModel{info: ModelInfo{Version: "pca-test", Kind: ModelKind, ModelType: TypePCA, Active: true}, columns: ts.columns, fleet: models[0]}
}

// TestPartialRowsScoreLikeWholeOnes: Prometheus's remote write sends one
// scrape of a host in parts (its series are sharded over parallel
// requests), so the service receives rows holding some of a host model's
// metrics. The same points sent whole to one service and in three parts to
// another must alert at the same points: the model does not score a part
// that lacks metrics the host reports (the median it would impute beside
// a busy cpu makes a normal row look unusual to PCA), and scores the part
// that completes the instant on the whole row.
func TestPartialRowsScoreLikeWholeOnes(t *testing.T) {
	for _, model := range []struct {
		name string
		fit  func(testing.TB) *activeModel
	}{
		{"iforest", func(t testing.TB) *activeModel { return fitModel(t, "iforest-test", 1) }},
		{"pca", fitPCAModel},
	} {
		t.Run(model.name, func(t *testing.T) {
			whole, _ := newService(t, nil)
			split, _ := newService(t, nil)
			m := model.fit(t)
			whole.model.Store(m)
			split.model.Store(m)
			rng := rand.New(rand.NewPCG(5, 6))
			at := t0
			load := 0.5
			var wholeAlerts, splitAlerts []int
			modelScored := 0
			for i := range 400 {
				at = at.Add(15 * time.Second)
				// Load wanders, with busy but normal stretches 2-3σ up.
				load += 0.3*(0.5-load) + 0.03*rng.NormFloat64()
				if i%50 >= 40 {
					load = 0.75 + 0.02*rng.NormFloat64()
				}
				full := Sample{Host: "web-1", Timestamp: at, Metrics: map[string]float64{
					MetricCPU:         40 + 20*load + 2*rng.NormFloat64(),
					MetricMemory:      55 + 5*load + rng.NormFloat64(),
					MetricDisk:        60 + 0.1*rng.NormFloat64(),
					MetricRequestRate: 200 + 150*load + 5*rng.NormFloat64(),
				}}
				if r := learnOne(t, whole, full); r.IsAnomaly {
					wholeAlerts = append(wholeAlerts, i)
				}
				parts := []Sample{
					{Host: "web-1", Timestamp: at, Metrics: map[string]float64{MetricCPU: full.Metrics[MetricCPU]}},
					{Host: "web-1", Timestamp: at, Metrics: map[string]float64{MetricRequestRate: full.Metrics[MetricRequestRate]}},
					{Host: "web-1", Timestamp: at, Metrics: map[string]float64{MetricMemory: full.Metrics[MetricMemory], MetricDisk: full.Metrics[MetricDisk]}},
				}
				alerted := false
				for k, p := range parts {
					r := learnOne(t, split, p)
					alerted = alerted || r.IsAnomaly
					if _, scored := r.Components[m.fleet.typ]; scored {
						// The host's first instant has no history: its parts
						// are scored on imputed values, as any new host's.
						if k != len(parts)-1 && i > 0 {
							t.Fatalf("point %d: the model scored part %d of 3", i, k+1)
						}
						if k == len(parts)-1 {
							modelScored++
						}
					}
				}
				if alerted {
					splitAlerts = append(splitAlerts, i)
				}
			}
			if !slices.Equal(wholeAlerts, splitAlerts) {
				t.Fatalf("alerts at points %v sent whole, %v sent in parts", wholeAlerts, splitAlerts)
			}
			if modelScored != 400 {
				t.Fatalf("the model scored %d completed instants of 400", modelScored)
			}
		})
	}
}
