package alerting

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// fakeAM is an Alertmanager's POST /api/v2/alerts: it records every batch
// and answers with the status the test chooses for each request.
type fakeAM struct {
	srv    *httptest.Server
	mu     sync.Mutex
	posts  [][]Alert
	status func(n int) int // status of the n-th request (from 1); 200 when nil
	gate   chan struct{}   // when set, each request waits for it
	calls  atomic.Int64
}

func newFakeAM(t *testing.T) *fakeAM {
	t.Helper()
	f := &fakeAM{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(f.calls.Add(1))
		if r.Method != http.MethodPost || r.URL.Path != "/api/v2/alerts" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request line", http.StatusNotFound)
			return
		}
		if f.gate != nil {
			select {
			case <-f.gate:
			case <-r.Context().Done():
				return
			}
		}
		var batch []Alert
		if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		code := http.StatusOK
		if f.status != nil {
			code = f.status(n)
		}
		if code == http.StatusOK {
			f.mu.Lock()
			f.posts = append(f.posts, batch)
			f.mu.Unlock()
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAM) received() [][]Alert {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]Alert(nil), f.posts...)
}

func (f *fakeAM) alerts() []Alert {
	var out []Alert
	for _, b := range f.received() {
		out = append(out, b...)
	}
	return out
}

func newNotifier(t *testing.T, mod func(o *Options), urls ...string) (*Notifier, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	o := Options{URLs: urls, Registerer: reg, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, ResendInterval: time.Hour}
	if mod != nil {
		mod(&o)
	}
	n, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.Close(ctx)
	})
	return n, reg
}

func alert(i int) Alert {
	return Alert{Labels: map[string]string{"alertname": "Test", "host": fmt.Sprintf("h-%d", i)},
		Annotations: map[string]string{"summary": "s"}, StartsAt: time.Now().Add(-time.Minute), GeneratorURL: "http://x/"}
}

// eventually polls cond for up to 10 s: the machine is slow and shared.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func closeNow(t *testing.T, n *Notifier) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestBatching: alerts queued while a post is in flight leave in batches of
// at most BatchSize, and every one arrives once.
func TestBatching(t *testing.T) {
	am := newFakeAM(t)
	am.gate = make(chan struct{})
	n, reg := newNotifier(t, func(o *Options) { o.BatchSize = 10 }, am.srv.URL)
	n.Fire("k0", alert(0), true)
	eventually(t, "first post in flight", func() bool { return am.calls.Load() == 1 })
	for i := 1; i < 35; i++ {
		n.Fire(fmt.Sprintf("k%d", i), alert(i), true)
	}
	close(am.gate)
	closeNow(t, n)
	posts := am.received()
	seen := map[string]int{}
	for _, b := range posts {
		if len(b) > 10 {
			t.Fatalf("batch of %d alerts; BatchSize is 10", len(b))
		}
		for _, a := range b {
			seen[a.Labels["host"]]++
			if !a.EndsAt.After(time.Now()) || a.StartsAt.IsZero() {
				t.Fatalf("firing alert with endsAt %v startsAt %v", a.EndsAt, a.StartsAt)
			}
		}
	}
	if len(seen) != 35 || len(posts) != 5 {
		t.Fatalf("%d distinct alerts in %d posts; want 35 in 5 (1 + 34 in batches of 10)", len(seen), len(posts))
	}
	if got := testutil.ToFloat64(n.m.sent.WithLabelValues(am.srv.URL)); got != 35 {
		t.Fatalf("sent = %v", got)
	}
	lintMetrics(t, reg)
}

// TestRetries: 5xx, 429 and network errors are retried with backoff; a 4xx
// is not; the last failure is counted by reason.
func TestRetries(t *testing.T) {
	cases := []struct {
		name     string
		status   func(n int) int
		attempts int64
		sent     float64
		failed   string
	}{
		{"503 then ok", func(n int) int { return map[bool]int{true: 503, false: 200}[n <= 2] }, 3, 1, ""},
		{"429 then ok", func(n int) int { return map[bool]int{true: 429, false: 200}[n <= 1] }, 2, 1, ""},
		{"500 always", func(int) int { return 500 }, 4, 0, "status_5xx"},
		{"400 no retry", func(int) int { return 400 }, 1, 0, "status_4xx"},
		{"404 no retry", func(int) int { return 404 }, 1, 0, "status_4xx"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			am := newFakeAM(t)
			am.status = tc.status
			n, _ := newNotifier(t, func(o *Options) { o.MaxAttempts = 4 }, am.srv.URL)
			n.Fire("k", alert(1), true)
			closeNow(t, n)
			if got := am.calls.Load(); got != tc.attempts {
				t.Fatalf("%d attempts; want %d", got, tc.attempts)
			}
			if got := testutil.ToFloat64(n.m.sent.WithLabelValues(am.srv.URL)); got != tc.sent {
				t.Fatalf("sent = %v; want %v", got, tc.sent)
			}
			if tc.failed != "" {
				if got := testutil.ToFloat64(n.m.failed.WithLabelValues(am.srv.URL, tc.failed)); got != 1 {
					t.Fatalf("failed{%s} = %v", tc.failed, got)
				}
			}
			retries := 0.0
			for _, r := range []string{"status_5xx", "status_429", "network"} {
				retries += testutil.ToFloat64(n.m.retries.WithLabelValues(am.srv.URL, r))
			}
			if int64(retries) != tc.attempts-1 {
				t.Fatalf("retries = %v; want %d", retries, tc.attempts-1)
			}
		})
	}
}

// TestNetworkErrorRetried: an Alertmanager that is not there is tried
// MaxAttempts times, the alert counted failed for the network.
func TestNetworkErrorRetried(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close()
	n, _ := newNotifier(t, func(o *Options) { o.MaxAttempts = 3 }, url)
	n.Fire("k", alert(1), true)
	closeNow(t, n)
	if got := testutil.ToFloat64(n.m.failed.WithLabelValues(url, "network")); got != 1 {
		t.Fatalf("failed{network} = %v", got)
	}
	if got := testutil.ToFloat64(n.m.retries.WithLabelValues(url, "network")); got != 2 {
		t.Fatalf("retries{network} = %v; want 2", got)
	}
}

// TestFullQueueDrops: with the worker stuck on a post, what does not fit
// the queue is dropped and counted, and Fire never waits.
func TestFullQueueDrops(t *testing.T) {
	am := newFakeAM(t)
	am.gate = make(chan struct{})
	n, reg := newNotifier(t, func(o *Options) { o.QueueSize = 5 }, am.srv.URL)
	n.Fire("k0", alert(0), true)
	eventually(t, "first post in flight", func() bool { return am.calls.Load() == 1 })
	start := time.Now()
	for i := 1; i <= 20; i++ {
		n.Fire(fmt.Sprintf("k%d", i), alert(i), true)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Fire blocked for %s", took)
	}
	if got := testutil.ToFloat64(n.m.dropped.WithLabelValues("queue_full")); got != 15 {
		t.Fatalf("dropped{queue_full} = %v; want 15", got)
	}
	if got := gauge(t, reg, "smartcloudops_alerts_queue_length"); got != 5 {
		t.Fatalf("queue length = %v", got)
	}
	close(am.gate)
	closeNow(t, n)
	if got := len(am.alerts()); got != 6 {
		t.Fatalf("%d alerts delivered; want 6", got)
	}
	n.Fire("late", alert(99), true)
	if got := testutil.ToFloat64(n.m.dropped.WithLabelValues("closed")); got != 1 {
		t.Fatalf("dropped{closed} = %v", got)
	}
}

// TestResendAndResolve: a firing alert is re-posted with a later endsAt
// until it resolves; the resolution carries its labels and the end time,
// and nothing is re-posted after it. An unknown resolution is counted.
func TestResendAndResolve(t *testing.T) {
	am := newFakeAM(t)
	n, _ := newNotifier(t, func(o *Options) { o.ResendInterval = 30 * time.Millisecond }, am.srv.URL)
	a := alert(1)
	a.Labels["severity"] = "high"
	fired := time.Now()
	n.Fire("k", a, true)
	n.Fire("once", alert(2), false)
	eventually(t, "three posts of the firing alert", func() bool {
		c := 0
		for _, x := range am.alerts() {
			if x.Labels["host"] == "h-1" {
				c++
			}
		}
		return c >= 3
	})
	var ends []time.Time
	for _, x := range am.alerts() {
		if x.Labels["host"] == "h-1" {
			ends = append(ends, x.EndsAt)
		}
	}
	if !ends[len(ends)-1].After(ends[0]) {
		t.Fatalf("re-posts did not move endsAt: %v", ends)
	}
	end := time.Now().Add(-time.Second).Truncate(time.Millisecond)
	n.Resolve("k", end)
	n.Resolve("never-fired", end)
	eventually(t, "the resolution", func() bool {
		all := am.alerts()
		last := all[len(all)-1]
		return last.Labels["host"] == "h-1" && last.EndsAt.Equal(end)
	})
	if last := am.alerts()[len(am.alerts())-1]; last.Labels["severity"] != "high" || !last.StartsAt.Equal(a.StartsAt) {
		t.Fatalf("resolution lost the alert's labels or start: %+v", last)
	}
	count := len(am.alerts())
	time.Sleep(150 * time.Millisecond)
	for _, x := range am.alerts()[count:] {
		t.Fatalf("posted after the resolution: %+v", x)
	}
	if got := testutil.ToFloat64(n.m.dropped.WithLabelValues("unknown_alert")); got != 1 {
		t.Fatalf("dropped{unknown_alert} = %v", got)
	}
	if got := testutil.ToFloat64(n.m.untracked.WithLabelValues("caller")); got != 1 {
		t.Fatalf("untracked{caller} = %v", got)
	}
	for _, x := range am.alerts() {
		if x.Labels["host"] == "h-2" && x.EndsAt.Before(fired.Add(4*30*time.Millisecond)) {
			t.Fatalf("untracked alert posted without its resolve timeout ahead: %+v", x)
		}
	}
}

// TestEveryAlertmanagerGetsEachAlert: alerts go to every configured URL,
// and one that fails does not hold back the other.
func TestEveryAlertmanagerGetsEachAlert(t *testing.T) {
	a, b := newFakeAM(t), newFakeAM(t)
	b.status = func(int) int { return 400 }
	n, _ := newNotifier(t, nil, a.srv.URL, b.srv.URL+"/")
	n.Fire("k", alert(1), true)
	closeNow(t, n)
	if len(a.alerts()) != 1 || b.calls.Load() != 1 {
		t.Fatalf("a got %d alerts, b %d posts", len(a.alerts()), b.calls.Load())
	}
}

// TestCloseDrainsWithinDeadline: Close posts what was queued; when the
// Alertmanager hangs past the deadline it gives up, says so, and counts the
// alerts as failed on shutdown.
func TestCloseDrainsWithinDeadline(t *testing.T) {
	am := newFakeAM(t)
	n, _ := newNotifier(t, nil, am.srv.URL)
	for i := range 200 {
		n.Fire(fmt.Sprintf("k%d", i), alert(i), true)
	}
	closeNow(t, n)
	if got := len(am.alerts()); got != 200 {
		t.Fatalf("%d of 200 queued alerts posted by Close", got)
	}

	hung := newFakeAM(t)
	hung.gate = make(chan struct{})
	defer close(hung.gate)
	n2, _ := newNotifier(t, nil, hung.srv.URL)
	n2.Fire("k", alert(1), true)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := n2.Close(ctx); err == nil {
		t.Fatal("Close returned nil though the post never finished")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Close took %s past its deadline", took)
	}
	if got := testutil.ToFloat64(n2.m.failed.WithLabelValues(hung.srv.URL, "shutdown")); got != 1 {
		t.Fatalf("failed{shutdown} = %v", got)
	}
}

func TestNewRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"am:9093", "ftp://am", "http://", "http://u:secret@%zz"} {
		_, err := New(Options{URLs: []string{u}})
		if err == nil {
			t.Errorf("New accepted %q", u)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("error shows the password: %v", err)
		}
	}
	if _, err := New(Options{}); err == nil {
		t.Error("New accepted no URL")
	}
}

func gauge(t *testing.T, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s", name)
	return 0
}

func lintMetrics(t *testing.T, reg prometheus.Gatherer) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// BenchmarkFire is what a caller pays to hand an alert over: the worker
// posts in the background to a local Alertmanager stand-in.
func BenchmarkFire(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	n, err := New(Options{URLs: []string{srv.URL}, QueueSize: 1 << 20, ResendInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close(context.Background())
	a := alert(1)
	i := 0
	for b.Loop() {
		n.Fire(strconv.Itoa(i%1000), a, true)
		i++
	}
}
