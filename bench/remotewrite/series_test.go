package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
)

func TestUniverseLayout(t *testing.T) {
	for _, tc := range []struct {
		series, perHost int
		wantErr         string
	}{
		{series: 1000, perHost: 100},
		{series: 300, perHost: 150},
		{series: 1000, perHost: 30, wantErr: "at least"},
		{series: 1050, perHost: 100, wantErr: "multiple"},
		{series: 0, perHost: 100, wantErr: "multiple"},
	} {
		u, err := newUniverse(tc.series, tc.perHost)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("newUniverse(%d, %d) err = %v; want %q", tc.series, tc.perHost, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("newUniverse(%d, %d): %v", tc.series, tc.perHost, err)
		}
		if len(u.all) != tc.series || u.hosts != tc.series/tc.perHost {
			t.Fatalf("%d series on %d hosts; want %d on %d", len(u.all), u.hosts, tc.series, tc.series/tc.perHost)
		}
		seen := map[string]bool{}
		names := map[string]int{}
		for _, s := range u.all {
			if !slices.IsSortedFunc(s.labels, func(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) }) {
				t.Fatalf("labels not sorted: %v", s.labels)
			}
			var key strings.Builder
			var inst bool
			for _, l := range s.labels {
				key.WriteString(l.Name + "=" + l.Value + ",")
				if l.Name == "__name__" {
					names[l.Value]++
				}
				inst = inst || (l.Name == "instance" && strings.HasPrefix(l.Value, "rwbench-"))
			}
			if !inst {
				t.Fatalf("no rwbench instance label: %v", s.labels)
			}
			if seen[key.String()] {
				t.Fatalf("duplicate series %s", key.String())
			}
			seen[key.String()] = true
		}
		hosts := tc.series / tc.perHost
		for name, want := range map[string]int{
			"node_cpu_seconds_total": 32 * hosts, "node_memory_MemAvailable_bytes": hosts, "node_memory_MemTotal_bytes": hosts,
			"node_filesystem_avail_bytes": 2 * hosts, "node_network_receive_bytes_total": 2 * hosts,
			"node_network_transmit_bytes_total": 2 * hosts, "node_load1": hosts,
		} {
			if names[name] != want {
				t.Errorf("%s: %d series; want %d", name, names[name], want)
			}
		}
	}
}

func TestPartitionIsStableAndComplete(t *testing.T) {
	u1, _ := newUniverse(2000, 100)
	u2, _ := newUniverse(2000, 100)
	p1, p2 := u1.partition(7), u2.partition(7)
	total := 0
	for i := range p1 {
		if len(p1[i]) != len(p2[i]) {
			t.Fatalf("shard %d: %d vs %d series", i, len(p1[i]), len(p2[i]))
		}
		// A fair hash gives each of 7 shards about 2000/7 ≈ 286.
		if len(p1[i]) < 200 || len(p1[i]) > 380 {
			t.Errorf("shard %d holds %d series", i, len(p1[i]))
		}
		total += len(p1[i])
	}
	if total != 2000 {
		t.Fatalf("partition holds %d series; want 2000", total)
	}
}

// drain runs a shard generator for n requests, marshals and unmarshals
// each one as the wire carries it, and returns every sample by series.
func drain(t *testing.T, g *shardGen, n, batch int) map[string][]prompb.Sample {
	t.Helper()
	out := map[string][]prompb.Sample{}
	for range n {
		req, cnt := g.nextRequest(batch)
		if cnt != batch || len(req.Timeseries) != batch {
			t.Fatalf("request of %d samples, %d series; want %d", cnt, len(req.Timeseries), batch)
		}
		b, err := req.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		var back prompb.WriteRequest
		if err := back.Unmarshal(b); err != nil {
			t.Fatal(err)
		}
		for _, ts := range back.Timeseries {
			if len(ts.Samples) != 1 {
				t.Fatalf("%d samples in one TimeSeries; Prometheus's 1.0 queue sends one", len(ts.Samples))
			}
			key := labelKey(ts.Labels)
			out[key] = append(out[key], ts.Samples[0])
		}
	}
	return out
}

func labelKey(ls []prompb.Label) string {
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(l.Name + "=" + l.Value + ",")
	}
	return b.String()
}

func TestShardGenSeriesMoveRealistically(t *testing.T) {
	u, _ := newUniverse(300, 100)
	parts := u.partition(3)
	start := time.Unix(1_700_000_000, 0)
	g := newShardGen(parts[1], 1, start, 15*time.Second, 250)
	bySeries := drain(t, g, 40, 250)
	if len(bySeries) != len(parts[1]) {
		t.Fatalf("%d series sent; the shard owns %d", len(bySeries), len(parts[1]))
	}
	for key, ss := range bySeries {
		if len(ss) < 20 {
			t.Fatalf("%s: only %d samples", key, len(ss))
		}
		for i := 1; i < len(ss); i++ {
			if ss[i].Timestamp-ss[i-1].Timestamp != 15000 {
				t.Fatalf("%s: timestamps %d then %d; want one scrape (15 s) apart", key, ss[i-1].Timestamp, ss[i].Timestamp)
			}
			if strings.Contains(key, "_total,") && ss[i].Value < ss[i-1].Value {
				t.Fatalf("%s: counter fell from %g to %g", key, ss[i-1].Value, ss[i].Value)
			}
		}
		if strings.Contains(key, "__name__=node_memory_MemAvailable_bytes,") {
			for _, s := range ss {
				if s.Value < 2<<30 || s.Value > 14<<30 {
					t.Fatalf("MemAvailable %g out of its range", s.Value)
				}
			}
			if ss[0].Value == ss[len(ss)-1].Value {
				t.Errorf("MemAvailable never moved")
			}
		}
	}
	if ss := bySeries[firstKey(bySeries)]; ss[0].Timestamp != start.UnixMilli() {
		t.Errorf("first sample at %d; want the start %d", ss[0].Timestamp, start.UnixMilli())
	}
}

func firstKey(m map[string][]prompb.Sample) string {
	for k := range m {
		return k
	}
	return ""
}

func TestShardGenIsDeterministic(t *testing.T) {
	mk := func() *shardGen {
		u, _ := newUniverse(200, 100)
		return newShardGen(u.partition(2)[0], 0, time.Unix(1_700_000_000, 0), 10*time.Second, 64)
	}
	a, b := mk(), mk()
	for range 10 {
		ra, _ := a.nextRequest(64)
		ba, _ := ra.Marshal()
		rb, _ := b.nextRequest(64)
		bb, _ := rb.Marshal()
		if string(ba) != string(bb) {
			t.Fatal("two generators of one layout sent different requests")
		}
	}
}
