package main

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name       string
		kind       kind
		status     int
		retryAfter bool
		want       class
	}{
		{"ok", kindIngest, http.StatusOK, false, classOK},
		{"no content", kindCachePut, http.StatusNoContent, false, classOK},
		{"cache miss is an answer", kindCacheGet, http.StatusNotFound, false, classOK},
		{"404 elsewhere is not", kindIngest, http.StatusNotFound, false, classOther},
		{"degraded with Retry-After", kindIngest, http.StatusServiceUnavailable, true, classDegraded},
		{"503 without Retry-After", kindDetect, http.StatusServiceUnavailable, false, classUnavailable},
		{"500 even with Retry-After", kindIngest, http.StatusInternalServerError, true, classServerError},
		{"no answer", kindDetect, 0, false, classNoAnswer},
		{"429", kindDetect, http.StatusTooManyRequests, true, classOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classify(tt.kind, tt.status, tt.retryAfter); got != tt.want {
				t.Errorf("classify(%s, %d, %v) = %d; want %d", tt.kind, tt.status, tt.retryAfter, got, tt.want)
			}
		})
	}
}

func TestNetCause(t *testing.T) {
	tests := map[string]string{
		`Post "http://127.0.0.1:1/x": dial tcp 127.0.0.1:1: connect: connection refused`: "refused",
		`Post "http://127.0.0.1:1/x": EOF`:                                               "EOF",
		`read tcp 127.0.0.1:2->127.0.0.1:1: read: connection reset by peer`:              "reset",
		`Get "http://x": context deadline exceeded (Client.Timeout exceeded while …)`:    "timeout",
		`something else`: "other",
	}
	for in, want := range tests {
		if got := netCause(in); got != want {
			t.Errorf("netCause(%q) = %q; want %q", in, got, want)
		}
	}
}

// TestAccount checks the data-loss ledger: only 2xx answers are
// acknowledgements, writes answered as not durable and writes the killed
// cache server took with it are reported apart, everything else missing is
// lost.
func TestAccount(t *testing.T) {
	inject := time.Unix(1000, 0)
	before, after := inject.Add(-time.Second), inject.Add(time.Second)
	s := func(host string, ts int64) sampleKey { return sampleKey{host: host, ts: ts} }
	put := func(key, tier string, durable bool, at time.Time) *putRecord {
		return &putRecord{key: key, value: "v" + key, tier: tier, durable: durable, sentAt: at}
	}
	outcomes := []outcome{
		{kind: kindIngest, status: 200, samples: []sampleKey{s("a", 1), s("a", 2)}},
		{kind: kindIngest, status: 200, samples: []sampleKey{s("b", 1)}},
		// Refused: not acknowledged, so its sample may be missing.
		{kind: kindIngest, status: 503, retryAfter: true, samples: []sampleKey{s("c", 1)}},
		{kind: kindCachePut, status: 200, put: put("kept", "L2", true, after)},
		{kind: kindCachePut, status: 200, put: put("gone", "FALLBACK", true, after)},
		{kind: kindCachePut, status: 200, put: put("volatile", "FALLBACK", false, after)},
		{kind: kindCachePut, status: 200, put: put("early", "L2", true, before)},
		{kind: kindCachePut, status: 500, put: put("failed", "", true, after)},
		{kind: kindDetect, status: 0, err: "EOF"},
	}
	stored := map[sampleKey]bool{s("a", 1): true, s("b", 1): true}
	readable := map[string]bool{"kept": true}
	tests := []struct {
		name        string
		wipedServer bool
		want        loss
	}{
		{"server kept its data", false, loss{samplesAcked: 3, samplesLost: 1, putsAcked: 3, putsLost: 2, nonDurable: 1, nonDurableGone: 1}},
		{"server was killed", true, loss{samplesAcked: 3, samplesLost: 1, putsAcked: 2, putsLost: 1, nonDurable: 1, nonDurableGone: 1, serverWiped: 1, serverWipedGone: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPhase("x")
			p.injectedAt = inject
			for _, o := range outcomes {
				p.record(o)
			}
			got := p.account(func(k sampleKey) bool { return stored[k] }, func(w putRecord) bool { return readable[w.key] }, tt.wipedServer)
			if got.samplesAcked != tt.want.samplesAcked || got.samplesLost != tt.want.samplesLost ||
				got.putsAcked != tt.want.putsAcked || got.putsLost != tt.want.putsLost ||
				got.nonDurable != tt.want.nonDurable || got.nonDurableGone != tt.want.nonDurableGone ||
				got.serverWiped != tt.want.serverWiped || got.serverWipedGone != tt.want.serverWipedGone {
				t.Errorf("account = %+v;\nwant %+v", got, tt.want)
			}
			if got.lost() != tt.want.samplesLost+tt.want.putsLost {
				t.Errorf("lost() = %d", got.lost())
			}
			if got.lostByTier["FALLBACK"] != 1 {
				t.Errorf("lostByTier = %v; want FALLBACK 1", got.lostByTier)
			}
			if p.requests != len(outcomes) || p.classes[classOK] != 6 || p.classes[classDegraded] != 1 ||
				p.classes[classServerError] != 1 || p.classes[classNoAnswer] != 1 {
				t.Errorf("requests %d classes %v", p.requests, p.classes)
			}
			notes := strings.Join(phaseNotes(p, got), "\n")
			for _, want := range []string{"detect no answer (EOF) ×1", "cache-put 500 ×1", "ingest 503 ×1", "X-Cache FALLBACK ×1", "not durable"} {
				if !strings.Contains(notes, want) {
					t.Errorf("notes lack %q:\n%s", want, notes)
				}
			}
		})
	}
}

func TestWriteTable(t *testing.T) {
	rows := []result{
		{name: "baseline", requests: 10, classes: [numClasses]int{classOK: 10}, p99: 3 * time.Millisecond, recovery: time.Millisecond,
			loss: loss{samplesAcked: 9, putsAcked: 3}},
		{name: "pg-kill", requests: 12, classes: [numClasses]int{classOK: 7, classServerError: 5}, p99: 2 * time.Second, recovery: -1,
			loss: loss{samplesAcked: 4, samplesLost: 1, putsAcked: 2}},
		{name: "log-full", skipped: "not root"},
	}
	var b bytes.Buffer
	if err := writeTable(&b, rows); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("want header, 3 rows and the skip reason; got\n%s", out)
	}
	for i, want := range [][]string{
		{"fault", "requests", "503+Retry-After", "500", "no answer", "p99", "acked lost", "recovery"},
		{"baseline", "10", "0/9 ingest, 0/3 cache", "1.00ms", "3.00ms"},
		{"pg-kill", "12", "1/4 ingest, 0/2 cache", "not recovered", "2.00s"},
		{"log-full", "skipped"},
		{"log-full skipped: not root"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}
	// Columns line up: every row is as wide as the header.
	if len(lines[1]) != len(lines[0]) || len(lines[2]) != len(lines[0]) {
		t.Errorf("rows are not aligned:\n%s", out)
	}
}

func TestPhaseP99(t *testing.T) {
	p := newPhase("x")
	for i := 1; i <= 200; i++ {
		p.record(outcome{kind: kindDetect, status: 200, took: time.Duration(i) * time.Millisecond})
	}
	// Requests without an answer have no latency to count.
	p.record(outcome{kind: kindDetect, status: 0, took: time.Hour})
	if got := p.p99(); got != 198*time.Millisecond {
		t.Errorf("p99 = %s; want 198ms", got)
	}
	if got := newPhase("empty").p99(); got != 0 {
		t.Errorf("empty p99 = %s", got)
	}
}
