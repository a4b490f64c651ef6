package anomaly

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smartcloudops/smartcloudops/internal/domain"
)

// roleHost is a host of one of two roles: web hosts move cpu with requests,
// db hosts move memory with disk, on different levels.
func roleHost(rng *rand.Rand, host string, db bool, at time.Time) Sample {
	load := rng.NormFloat64()
	m := map[string]float64{MetricCPU: 40 + 10*load + rng.NormFloat64(), MetricMemory: 50 + rng.NormFloat64(),
		MetricDisk: 60 + rng.NormFloat64(), MetricRequestRate: 300 + 60*load + 3*rng.NormFloat64()}
	if db {
		m = map[string]float64{MetricCPU: 20 + rng.NormFloat64(), MetricMemory: 80 + 5*load + 0.5*rng.NormFloat64(),
			MetricDisk: 70 + 4*load + 0.5*rng.NormFloat64(), MetricRequestRate: 50 + rng.NormFloat64()}
	}
	return Sample{Host: host, Timestamp: at, Metrics: m}
}

func roleHistory(hosts, n int, db func(h int) bool) []domain.MetricSample {
	rng := rand.New(rand.NewPCG(21, 22))
	var hist []domain.MetricSample
	for i := range n {
		for h := range hosts {
			hist = append(hist, ToStore(roleHost(rng, fmt.Sprintf("h%02d", h), db(h), t0.Add(time.Duration(i)*time.Minute))))
		}
	}
	return hist
}

var quickFit = fitOptions{trees: 20, sampleSize: 64, contamination: 0.005}

func TestSelectionRecordsEveryCandidate(t *testing.T) {
	ts := buildTrainingSet(roleHistory(1, 600, func(int) bool { return false }), holdoutShare)
	am, val, err := trainModel(ts, quickFit, 0.5, 256)
	if err != nil {
		t.Fatal(err)
	}
	sel := val.Selection
	if sel == nil || len(sel.Candidates) != 2 || sel.Winner != am.fleet.typ || sel.ValidatedOn != "holdout" || sel.ValidationRows != len(ts.holdout)/len(ts.columns) {
		t.Fatalf("selection %+v", sel)
	}
	// cpu and request rate move together: breaking that is what PCA's Q
	// sees and axis-parallel splits do not, so PCA wins here.
	if sel.Winner != TypePCA || !strings.Contains(sel.Reason, "iforest: J") {
		t.Fatalf("winner %s: %s", sel.Winner, sel.Reason)
	}
	for _, c := range sel.Candidates {
		if c.Youden != (c.ShiftDetection+c.CorrelationDetection)/2-c.HoldoutFlagRate {
			t.Errorf("%s: J %v does not follow from its figures %+v", c.Type, c.Youden, c)
		}
	}
	if val.Hosts != nil || am.hosts != nil {
		t.Fatalf("one host got per-host models: %+v", val.Hosts)
	}
}

func TestPerHostModelsBeatTheFleetAndRoundTrip(t *testing.T) {
	// Two db hosts among six web hosts: the fleet model is mostly web.
	hist := roleHistory(8, 400, func(h int) bool { return h < 2 })
	ts := buildTrainingSet(hist, holdoutShare)
	am, val, err := trainModel(ts, quickFit, 0.5, 256)
	if err != nil {
		t.Fatal(err)
	}
	if val.Hosts == nil || val.Hosts.TooFewRows+val.Hosts.OverCap+val.Hosts.Failed != 0 ||
		len(val.Hosts.Models)+val.Hosts.FleetWon != 8 || len(am.hosts) != len(val.Hosts.Models) {
		t.Fatalf("hosts %+v, %d models", val.Hosts, len(am.hosts))
	}
	for _, h := range []string{"h00", "h01"} {
		if am.hosts[h] == nil {
			t.Errorf("db host %s uses the fleet model: %+v", h, val.Hosts)
		}
	}
	am.info = ModelInfo{Version: "v-test"}
	b, err := encodeArtifact(am)
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodeArtifact(ModelInfo{Version: "v-test"}, b)
	if err != nil {
		t.Fatal(err)
	}
	if back.info.HostModels != len(am.hosts) || back.info.ModelType != am.fleet.typ {
		t.Fatalf("decoded info %+v", back.info)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 50 {
		host := fmt.Sprintf("h%02d", i%10) // h08, h09: unknown hosts, the fleet model
		smp := roleHost(rng, host, i%10 < 2, t0)
		h1, r1 := am.row(smp)
		h2, r2 := back.row(smp)
		a, c := []float64{0}, []float64{0}
		if err := h1.scoreRows([][]float64{r1}, a); err != nil {
			t.Fatal(err)
		}
		if err := h2.scoreRows([][]float64{r2}, c); err != nil {
			t.Fatal(err)
		}
		if a[0] != c[0] || (h2 == back.fleet) != (am.hosts[host] == nil) {
			t.Fatalf("%s: %v before the round trip, %v after", host, a[0], c[0])
		}
	}
	// The db hosts score their own normal rows as normal, and their own
	// model sees a broken db pattern (memory and disk, which rise together
	// on a db host, moving apart) that the mostly-web fleet model misses.
	own, fleet, ownBroken, fleetBroken := 0, 0, 0, 0
	for range 200 {
		smp := roleHost(rng, "h00", true, t0)
		_, row := am.row(smp)
		if s := score1(t, am.modelFor("h00"), row); s >= 0.5 {
			own++
		}
		if s := score1(t, am.fleet, row); s >= 0.5 {
			fleet++
		}
		load := (smp.Metrics[MetricMemory] - 80) / 5
		smp.Metrics[MetricDisk] = 70 - 4*load + 0.5*rng.NormFloat64()
		_, row = am.row(smp)
		if s := score1(t, am.modelFor("h00"), row); s >= 0.5 {
			ownBroken++
		}
		if s := score1(t, am.fleet, row); s >= 0.5 {
			fleetBroken++
		}
	}
	if own > 20 || ownBroken <= fleetBroken {
		t.Errorf("db host's rows flagged by its own model, the fleet model: normal %d, %d; broken pattern %d, %d", own, fleet, ownBroken, fleetBroken)
	}
	t.Logf("db host's rows flagged by its own model, the fleet model: normal %d, %d; broken pattern %d, %d", own, fleet, ownBroken, fleetBroken)
}

func score1(t *testing.T, h *hostModel, row []float64) float64 {
	t.Helper()
	out := []float64{0}
	if err := h.scoreRows([][]float64{row}, out); err != nil {
		t.Fatal(err)
	}
	return out[0]
}

func TestPerHostModelsCapped(t *testing.T) {
	if testing.Short() {
		t.Skip("fits many models")
	}
	n := maxHostModels + 3
	hist := roleHistory(n, 300, func(h int) bool { return h%2 == 0 })
	// One host too short for a model of its own.
	hist = append(hist, ToStore(roleHost(rand.New(rand.NewPCG(1, 1)), "tiny", false, t0)))
	am, val, err := trainModel(buildTrainingSet(hist, holdoutShare), fitOptions{trees: 5, sampleSize: 32, contamination: 0.005}, 0.5, 256)
	if err != nil {
		t.Fatal(err)
	}
	r := val.Hosts
	if len(am.hosts) > maxHostModels || r.OverCap+len(r.Models)+r.FleetWon+r.Failed != n || r.TooFewRows != 1 {
		t.Fatalf("%d host models, report %+v", len(am.hosts), r)
	}
	if len(am.hosts) == maxHostModels && r.OverCap == 0 {
		t.Fatalf("cap reached but nothing counted over it: %+v", r)
	}
}

// TestVersion1ArtifactStillLoads: a forest stored before the model
// selection (magic SCOANOM1, one forest) loads as the fleet forest and
// scores as it did.
func TestVersion1ArtifactStillLoads(t *testing.T) {
	m := fitModel(t, "iforest-old", 1)
	fb, err := m.fleet.forest.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	hdr, _ := json.Marshal(artifactHeader{Columns: m.columns, Impute: m.fleet.impute, Calib: m.fleet.calib})
	old := append([]byte("SCOANOM1"), binary.LittleEndian.AppendUint32(nil, uint32(len(hdr)))...)
	old = append(append(old, hdr...), fb...)
	rec := domain.Model{Version: "iforest-old", Kind: ModelKind, Validation: json.RawMessage(`{"train_rows":10}`)}
	info := infoFromStore(rec)
	if info.ModelType != TypeIForest || info.HostModels != 0 {
		t.Fatalf("old row's info %+v", info)
	}
	back, err := decodeArtifact(info, old)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	for range 20 {
		smp := normalHost(rng, "x", t0)
		smp.Metrics[MetricCPU] += 30 * rng.Float64()
		_, row := m.row(smp)
		if a, b := score1(t, m.fleet, row), score1(t, back.fleet, row); a != b || back.fleet.typ != TypeIForest || back.hosts != nil {
			t.Fatalf("%v before, %v after", a, b)
		}
	}
	// A truncated or altered version-2 artifact is refused, never loaded half.
	v2, err := encodeArtifact(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{v2[:len(v2)-1], append(v2, 0), []byte("SCOANOM2\xff\xff\xff\xff")} {
		if _, err := decodeArtifact(info, bad); err == nil {
			t.Errorf("artifact of %d bytes accepted", len(bad))
		}
	}
}

// BenchmarkHostModelBaseline scores the rows of ../shared/tools/iforest-baseline's
// data set (IFOREST_DATA; fit on the first half, as that tool does) through
// the service's scoring step, hostModel.scoreRows, for each model type: the
// figure to set beside the tool's batch_rows_per_s.
//
//	/usr/bin/python3 ../shared/tools/iforest-baseline make /tmp/if.csv
//	IFOREST_DATA=/tmp/if.csv go test -run '^$' -bench HostModelBaseline ./internal/anomaly/
func BenchmarkHostModelBaseline(b *testing.B) {
	path := os.Getenv("IFOREST_DATA")
	if path == "" {
		b.Skip("IFOREST_DATA is not set; make the file with ../shared/tools/iforest-baseline make /tmp/if.csv")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		b.Skipf("IFOREST_DATA: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")[1:]
	var rows [][]float64
	for _, l := range lines {
		f := strings.Split(l, ",")
		r := make([]float64, len(f)-1)
		for j := range r {
			r[j], _ = strconv.ParseFloat(f[j], 64)
		}
		rows = append(rows, r)
	}
	cols := len(rows[0])
	var train []float64
	for _, r := range rows[:len(rows)/2] {
		train = append(train, r...)
	}
	impute := make([]float64, cols)
	cands, reps, failed := fitCandidates(train, impute, fitOptions{contamination: 0.005})
	if len(failed) > 0 {
		b.Fatal(failed)
	}
	out := make([]float64, len(rows))
	for i, m := range cands {
		b.Run(reps[i].Type, func(b *testing.B) {
			for b.Loop() {
				if err := m.scoreRows(rows, out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(rows))*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
